// Sparsify — thinning one task vector before it is merged: TIES magnitude top-k and DARE Bernoulli
// drop with 1/density rescale. Pure functions on a flat [Float]; randomness is the caller's seeded RNG.

/// Sparsification of one task vector.
import Engine

public enum Sparsify {
    /// Keeps the `k = ⌊density·n⌋` entries of largest magnitude and zeroes the rest (mergekit's
    /// `magnitude`). Ties at the threshold are kept in index order. `density >= 1` returns `tau` unchanged.
    /// - Parameters:
    ///   - tau: task vector, `n` entries (any shape, flattened).
    ///   - density: fraction kept, in (0, 1].
    /// - Throws: when `k` is 0 (the whole tensor would vanish).
    public static func magnitude(_ tau: inout [Float], density: Double, label: String) throws {
        try magnitude(&tau, density: density, rescale: nil, label: label)
    }

    /// `magnitude` followed by an optional rescale of the kept entries.
    public static func magnitude(_ tau: inout [Float], density: Double, rescale: RescaleNorm?, label: String) throws {
        let l1Before = rescale == .l1 ? l1(tau) : 0
        guard density < 1 else { return }
        let n = tau.count, k = Int(density * Double(n))
        guard k > 0 else {
            throw TuneError(.invalidArgument, "\(label): density \(density) keeps no entry of \(n) (use a larger density)")
        }
        guard k < n else { return }
        var mags = tau.map { abs($0) }
        let t = kthLargest(&mags, k)
        // Entries strictly above the threshold are all kept; fill up with entries equal to it.
        var above = 0
        for v in tau where abs(v) > t { above += 1 }
        var equalBudget = k - above
        tau.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let m = abs(p[i])
                if m > t { continue }
                if m == t, equalBudget > 0 { equalBudget -= 1; continue }
                p[i] = 0
            }
        }
        applyRescale(&tau, rescale, density: density, l1Before: l1Before)
    }

    /// Scales kept entries: ×1/density, or so that the L1 norm is what it was before masking
    /// (skipped, as in mergekit, when either norm is below 1e-7).
    static func applyRescale(_ tau: inout [Float], _ mode: RescaleNorm?, density: Double, l1Before: Double) {
        switch mode {
        case nil: return
        case .inverseDensity?:
            let s = Float(1 / density)
            for i in tau.indices { tau[i] *= s }
        case .l1?:
            let after = l1(tau)
            guard l1Before >= 1e-7, after >= 1e-7 else { return }
            let s = Float(l1Before / after)
            for i in tau.indices { tau[i] *= s }
        }
    }

    static func l1(_ a: [Float]) -> Double {
        var s = 0.0
        for v in a { s += Double(abs(v)) }
        return s
    }

    /// Keeps each entry independently with probability `density` (DARE), multiplying kept entries by
    /// 1/density with `.inverseDensity` (so every entry keeps its expected value) or matching the L1 norm with `.l1`.
    /// Returns the number of entries kept.
    @discardableResult
    public static func bernoulli(_ tau: inout [Float], density: Double, rescale: RescaleNorm?, rng: inout SplitMix64) -> Int {
        guard density < 1 else { return tau.count }
        let l1Before = rescale == .l1 ? l1(tau) : 0
        var kept = 0
        tau.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count {
                if rng.nextUnitDouble() < density { kept += 1 } else { p[i] = 0 }
            }
        }
        applyRescale(&tau, rescale, density: density, l1Before: l1Before)
        return kept
    }

    /// The k-th largest value of `a` (1-based k), by quickselect; reorders `a`.
    static func kthLargest(_ a: inout [Float], _ k: Int) -> Float {
        precondition(k >= 1 && k <= a.count)
        let target = k - 1   // index in descending order
        return a.withUnsafeMutableBufferPointer { p -> Float in
            var lo = 0, hi = p.count - 1
            var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
            while lo < hi {
                // Median of three random-ish picks keeps quickselect linear on sorted input.
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                let r = lo + Int((seed >> 33) % UInt64(hi - lo + 1))
                let pivot = p[r]
                // Three-way partition, descending: [> pivot | == pivot | < pivot].
                var lt = lo, i = lo, gt = hi
                while i <= gt {
                    if p[i] > pivot { p.swapAt(lt, i); lt += 1; i += 1 }
                    else if p[i] < pivot { p.swapAt(i, gt); gt -= 1 }
                    else { i += 1 }
                }
                if target < lt { hi = lt - 1 } else if target > gt { lo = gt + 1 } else { return pivot }
            }
            return p[lo]
        }
    }
}
