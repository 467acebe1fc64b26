// PrepareConfig — the prepare stage's frozen input: formats, template, filters, dedup, split, packing,
// sharding. Codable with snake_case keys and a default for every field, so `{}` is a valid config.

import Foundation
import Yams

/// Configuration of the prepare stage (the `prepare:` section of pipeline.yaml).
public struct PrepareConfig: Codable, Hashable, Sendable {
    /// Row format of every input file; `auto` detects it per row.
    public var format: DatasetFormat = .auto
    /// "auto" (the model's chat template), "none" (plain concatenation) or a template name.
    public var template: String = "auto"
    /// System prompt for alpaca/completion rows mapped onto chat (nil: the template's default).
    public var systemPrompt: String?
    /// Rows with more tokens than this are dropped (`too_long`). Never truncated.
    public var maxTokens: Int = 2048
    /// Rows with fewer tokens than this are dropped (`too_short`).
    public var minTokens: Int = 1
    /// What a malformed row does: `skip` (count it, report file:line) or `fail` (stop at the first).
    public var onError: OnError = .skip
    public var dedup = Dedup()
    public var split = Split()
    public var pack = Pack()
    /// Rows (sequences) per shard file.
    public var shardRows: Int = 4096

    public enum OnError: String, Codable, Hashable, Sendable { case skip, fail }

    /// Exact and near (MinHash/LSH) deduplication.
    public struct Dedup: Codable, Hashable, Sendable {
        public var exact = true
        /// nil turns near-dedup off.
        public var near: Near? = Near()
        public init() {}

        public struct Near: Codable, Hashable, Sendable {
            /// Estimated Jaccard similarity at or above which a later row is a near-duplicate.
            public var threshold = 0.9
            public var numPerm = 128
            /// LSH bands; nil picks the (bands, rows) that minimise false positives + negatives at `threshold`.
            public var bands: Int?
            /// Word n-gram size of the shingles.
            public var ngram = 5
            public var seed: UInt64 = 1
            public init() {}
            enum CodingKeys: String, CodingKey { case threshold, numPerm = "num_perm", bands, ngram, seed }
        }
    }

    /// Seeded train/eval split, or a given eval file.
    public struct Split: Codable, Hashable, Sendable {
        /// Fraction of rows held out when there is no eval file.
        public var evalFraction = 0.1
        public var seed: UInt64 = 0
        /// A separate held-out file; when set, `evalFraction` is ignored.
        public var evalFile: String?
        public init() {}
        enum CodingKeys: String, CodingKey { case evalFraction = "eval_fraction", seed, evalFile = "eval_file" }
    }

    /// Greedy packing of rows into `seqLen`-token sequences with segment boundaries.
    public struct Pack: Codable, Hashable, Sendable {
        public var enabled = false
        public var seqLen = 2048
        public init() {}
        enum CodingKeys: String, CodingKey { case enabled, seqLen = "seq_len" }
    }

    public init() {}

    enum CodingKeys: String, CodingKey {
        case format, template, systemPrompt = "system_prompt", maxTokens = "max_tokens", minTokens = "min_tokens"
        case onError = "on_error", dedup, split, pack, shardRows = "shard_rows"
    }

    // MARK: - Validation

    /// Every problem with the values, all at once (empty when valid).
    public func problems() -> [String] {
        var p: [String] = []
        if maxTokens < 1 { p.append("max_tokens: expected a positive integer, got \(maxTokens)") }
        if minTokens < 0 { p.append("min_tokens: expected zero or more, got \(minTokens)") }
        if minTokens > maxTokens { p.append("min_tokens (\(minTokens)) is larger than max_tokens (\(maxTokens))") }
        if shardRows < 1 { p.append("shard_rows: expected a positive integer, got \(shardRows)") }
        if !(0..<1).contains(split.evalFraction) { p.append("split.eval_fraction: expected a value in [0, 1), got \(split.evalFraction)") }
        if pack.enabled, pack.seqLen < 2 { p.append("pack.seq_len: expected at least 2, got \(pack.seqLen)") }
        if let n = dedup.near {
            if !(n.threshold > 0 && n.threshold <= 1) { p.append("dedup.near.threshold: expected a value in (0, 1], got \(n.threshold)") }
            if n.numPerm < 2 { p.append("dedup.near.num_perm: expected at least 2, got \(n.numPerm)") }
            if let b = n.bands, b < 1 || n.numPerm % b != 0 {
                p.append("dedup.near.bands: expected a divisor of num_perm (\(n.numPerm)), got \(b)")
            }
            if n.ngram < 1 { p.append("dedup.near.ngram: expected a positive integer, got \(n.ngram)") }
        }
        return p
    }
}

// MARK: - Decoding with defaults

extension PrepareConfig {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = PrepareConfig()
        format = try c.decodeIfPresent(DatasetFormat.self, forKey: .format) ?? d.format
        template = try c.decodeIfPresent(String.self, forKey: .template) ?? d.template
        systemPrompt = try c.decodeIfPresent(String.self, forKey: .systemPrompt)
        maxTokens = try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? d.maxTokens
        minTokens = try c.decodeIfPresent(Int.self, forKey: .minTokens) ?? d.minTokens
        onError = try c.decodeIfPresent(OnError.self, forKey: .onError) ?? d.onError
        dedup = try c.decodeIfPresent(Dedup.self, forKey: .dedup) ?? d.dedup
        split = try c.decodeIfPresent(Split.self, forKey: .split) ?? d.split
        pack = try c.decodeIfPresent(Pack.self, forKey: .pack) ?? d.pack
        shardRows = try c.decodeIfPresent(Int.self, forKey: .shardRows) ?? d.shardRows
    }
}

extension PrepareConfig.Dedup {
    enum CodingKeys: String, CodingKey { case exact, near }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        exact = try c.decodeIfPresent(Bool.self, forKey: .exact) ?? true
        // An absent key keeps the default; an explicit null turns near-dedup off.
        near = c.contains(.near) ? try c.decodeIfPresent(Near.self, forKey: .near) : Near()
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(exact, forKey: .exact)
        try c.encode(near, forKey: .near)
    }
}

extension PrepareConfig.Dedup.Near {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Self()
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? d.threshold
        numPerm = try c.decodeIfPresent(Int.self, forKey: .numPerm) ?? d.numPerm
        bands = try c.decodeIfPresent(Int.self, forKey: .bands)
        ngram = try c.decodeIfPresent(Int.self, forKey: .ngram) ?? d.ngram
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
    }
}

extension PrepareConfig.Split {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        evalFraction = try c.decodeIfPresent(Double.self, forKey: .evalFraction) ?? 0.1
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        evalFile = try c.decodeIfPresent(String.self, forKey: .evalFile)
    }
}

extension PrepareConfig.Pack {
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? false
        seqLen = try c.decodeIfPresent(Int.self, forKey: .seqLen) ?? 2048
    }
}

// MARK: - Loading

extension PrepareConfig {
    /// Reads a config file (YAML or JSON; either the section itself or a document with a
    /// `prepare:` key) and checks its values, reporting every problem at once.
    public static func load(path: String) throws -> PrepareConfig {
        guard let data = FileManager.default.contents(atPath: path) else { throw TuneError(.fileAccess, "\(path): cannot read config") }
        guard let text = String(data: data, encoding: .utf8) else { throw TuneError(.invalidArgument, "\(path): not valid UTF-8") }
        let cfg: PrepareConfig
        do {
            let node = try Yams.compose(yaml: text)
            let section = node?.mapping?["prepare"] ?? node
            cfg = try section.map { try YAMLDecoder().decode(PrepareConfig.self, from: $0) } ?? PrepareConfig()
        } catch {
            throw TuneError(.invalidArgument, "\(path): \(error)")
        }
        let p = cfg.problems()
        guard p.isEmpty else { throw TuneError(.invalidArgument, p.map { "\(path): \($0)" }.joined(separator: "\n")) }
        return cfg
    }
}
