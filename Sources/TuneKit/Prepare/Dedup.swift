// Dedup — exact deduplication (SHA-256 of the rendered text) and near-deduplication with MinHash
// signatures over word n-gram shingles, bucketed by LSH bands and confirmed by estimated Jaccard.

import Engine
import Foundation

/// Remembers kept rows and says whether a new one duplicates an earlier one. The first occurrence
/// (in input order, eval file first) is kept; later ones are dropped.
///
/// ### See Also
/// - Broder, "On the resemblance and containment of documents" (1997) — MinHash.
/// - Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3 — LSH banding.
public struct Deduplicator: Sendable {
    public let config: PrepareConfig.Dedup
    /// LSH shape: `bands` × `rows` signature entries (≤ num_perm).
    public let bands: Int, rows: Int
    private var exact: [SHA256.Digest: RowSource] = [:]
    private var signatures: [[UInt64]] = []
    private var owners: [RowSource] = []
    private var buckets: [[UInt64: [Int32]]]
    private let permSeeds: [UInt64]

    public init(config: PrepareConfig.Dedup) {
        self.config = config
        if let near = config.near {
            if let b = near.bands, b > 0 {
                (bands, rows) = (b, max(1, near.numPerm / b))
            } else {
                (bands, rows) = Self.optimalBands(threshold: near.threshold, numPerm: near.numPerm)
            }
            var rng = SplitMix64(seed: near.seed)
            permSeeds = (0..<near.numPerm).map { _ in rng.next() }
        } else {
            (bands, rows) = (0, 0)
            permSeeds = []
        }
        buckets = Array(repeating: [:], count: bands)
    }

    /// A duplicate's reason and the row it duplicates.
    public struct Match: Sendable, Equatable {
        public var reason: DropReason
        public var original: RowSource
        public var similarity: Double
    }

    /// Checks `text`; when it is new, records it as kept and returns nil.
    public mutating func check(_ text: String, source: RowSource) -> Match? {
        let digest = SHA256.hash(text.utf8)
        if config.exact, let first = exact[digest] {
            return Match(reason: .duplicate, original: first, similarity: 1)
        }
        var sig: [UInt64] = []
        if let near = config.near {
            sig = signature(text)
            var seen = Set<Int32>()
            for b in 0..<bands {
                for cand in buckets[b][bandKey(sig, b)] ?? [] where seen.insert(cand).inserted {
                    let s = Self.similarity(sig, signatures[Int(cand)])
                    if s >= near.threshold { return Match(reason: .nearDuplicate, original: owners[Int(cand)], similarity: s) }
                }
            }
        }
        if config.exact { exact[digest] = source }
        if config.near != nil {
            let idx = Int32(signatures.count)
            signatures.append(sig)
            owners.append(source)
            for b in 0..<bands { buckets[b][bandKey(sig, b), default: []].append(idx) }
        }
        return nil
    }

    // MARK: - MinHash

    /// FNV-1a hashes of the lowercased alphanumeric words of `text` (scalar-wise: letters and
    /// digits form words, everything else separates them; ASCII is lowercased on the fly).
    static func wordHashes(_ text: String) -> [UInt64] {
        var out: [UInt64] = []
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var inWord = false
        func feed(_ v: UInt32) {
            h = (h ^ UInt64(v)) &* 0x0000_0100_0000_01B3
            inWord = true
        }
        for c in text.unicodeScalars {
            let v = c.value
            if (0x61...0x7A).contains(v) || (0x30...0x39).contains(v) { feed(v) }
            else if (0x41...0x5A).contains(v) { feed(v + 0x20) }
            else if v >= 0x80, c.properties.isAlphabetic || c.properties.numericType != nil {
                for l in c.properties.lowercaseMapping.unicodeScalars { feed(l.value) }
            } else if inWord {
                out.append(h)
                h = 0xcbf2_9ce4_8422_2325
                inWord = false
            }
        }
        if inWord { out.append(h) }
        return out
    }

    /// Hashes of the word n-grams (one shingle of all words when there are fewer than n).
    func shingles(_ text: String) -> [UInt64] {
        let w = Self.wordHashes(text)
        let n = max(1, config.near?.ngram ?? 5)
        guard !w.isEmpty else { return [Self.fnv(text.utf8)] }
        let count = max(1, w.count - n + 1)
        var out: [UInt64] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            var h: UInt64 = 0x243F_6A88_85A3_08D3
            for j in i..<min(w.count, i + n) { h = Self.mix(h ^ w[j]) }
            out.append(h)
        }
        return out
    }

    /// The MinHash signature: for each permutation seed s, min over shingles of mix(x ⊕ s).
    public func signature(_ text: String) -> [UInt64] {
        let sh = shingles(text)
        var sig = [UInt64](repeating: .max, count: permSeeds.count)
        sh.withUnsafeBufferPointer { xs in
            for (p, s) in permSeeds.enumerated() {
                var m = UInt64.max
                for x in xs { m = min(m, Self.mix(x ^ s)) }
                sig[p] = m
            }
        }
        return sig
    }

    /// Fraction of equal signature entries: an unbiased estimate of Jaccard similarity.
    public static func similarity(_ a: [UInt64], _ b: [UInt64]) -> Double {
        guard !a.isEmpty, a.count == b.count else { return 0 }
        var eq = 0
        for i in a.indices where a[i] == b[i] { eq += 1 }
        return Double(eq) / Double(a.count)
    }

    private func bandKey(_ sig: [UInt64], _ band: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(band)
        for v in sig[band * rows..<(band + 1) * rows] { h = Self.mix(h ^ v) }
        return h
    }

    static func fnv<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// SplitMix64's finalizer: a bijective 64-bit mix.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    // MARK: - LSH shape

    /// The (bands, rows) with b·r ≤ numPerm minimising w_fp·∫₀ᵗ P + w_fn·∫ₜ¹ (1 − P), where a pair of
    /// similarity s becomes a candidate with probability P(s) = 1 − (1 − sʳ)ᵇ (datasketch's
    /// `_optimal_param`, midpoint rule). Candidates are confirmed by their estimated Jaccard, so a
    /// false positive costs only a comparison while a false negative keeps a duplicate: the default
    /// weights (0.05, 0.95) favour recall. At t = 0.9 with 128 permutations that gives b = 9, r = 14:
    /// P(0.9) ≈ 0.90, P(0.93) ≈ 0.98, P(0.7) ≈ 0.06 (datasketch's ½/½ gives b = 5, r = 25 and P(0.93) ≈ 0.59).
    public static func optimalBands(threshold t: Double, numPerm: Int, falsePositiveWeight wfp: Double = 0.05,
                                    falseNegativeWeight wfn: Double = 0.95) -> (Int, Int) {
        func integrate(_ f: (Double) -> Double, _ a: Double, _ b: Double) -> Double {
            let n = 200, h = (b - a) / Double(n)
            return (0..<n).reduce(0) { $0 + f(a + (Double($1) + 0.5) * h) } * h
        }
        var best = (1, max(1, numPerm)), bestErr = Double.infinity
        for b in 1...max(1, numPerm) {
            for r in 1...max(1, numPerm / b) {
                let p = { (s: Double) in 1 - pow(1 - pow(s, Double(r)), Double(b)) }
                let fp = integrate(p, 0, t), fn = integrate({ 1 - p($0) }, t, 1)
                let err = wfp * fp + wfn * fn
                if err < bestErr { bestErr = err; best = (b, r) }
            }
        }
        return best
    }
}
