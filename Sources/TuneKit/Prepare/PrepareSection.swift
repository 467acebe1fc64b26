// PrepareSection — the pipeline's `prepare:` section, read from YAML with defaults (docs/pipeline.md).

/// `prepare:` — turn JSONL files into token shards. The fields are `PrepareConfig`'s (same names as
/// in `tune prepare --config`), plus the input files.
public struct PrepareSection: Codable, Hashable, Sendable {
    /// Training JSONL files (relative to the pipeline file).
    public var train: [String]
    public var config: PrepareConfig
    /// Governance of the data, one entry per training file (and the eval file), section-wide values filling
    /// what a file does not say; empty when the section says nothing about licenses, terms or sources.
    public var data: [DataTerms]

    init(_ r: YAMLReader) {
        // `train:` is a path, a list of paths, or a list mixing paths and {path, license, terms, source}.
        var perFile: [DataTerms] = []
        if let v = r.value("train"), let seq = v.sequence, seq.contains(where: { $0.mapping != nil }) {
            train = []
            for (i, item) in seq.enumerated() {
                if let s = item.scalar { train.append(s.string); perFile.append(DataTerms(path: s.string)); continue }
                let o = YAMLReader(sink: r.sink, path: "\(r.fieldPath("train"))[\(i)]", node: item)
                let path = o.string("path", required: true) ?? ""
                train.append(path)
                perFile.append(DataTerms(path: path, license: o.string("license"), terms: o.string("terms"), source: o.string("source")))
                o.finish()
            }
        } else {
            train = r.strings("train")
            perFile = train.map { DataTerms(path: $0) }
        }
        if train.isEmpty { r.report(r.node, "train", "required field is missing", hint: "train: datasets/my-task/train.jsonl") }
        let wide = DataTerms(path: "", license: r.string("license"), terms: r.string("terms"), source: r.string("source"))
        var c = PrepareConfig()
        c.split.evalFile = r.string("eval")
        c.format = DatasetFormat(rawValue: r.choice("format", DatasetFormat.allCases.map(\.rawValue), default: "auto")) ?? .auto
        c.template = r.string("template", default: c.template) ?? c.template
        c.systemPrompt = r.string("system_prompt")
        c.maxTokens = r.int("max_tokens", default: c.maxTokens, min: 1)
        c.minTokens = r.int("min_tokens", default: c.minTokens, min: 0)
        c.onError = PrepareConfig.OnError(rawValue: r.choice("on_error", ["skip", "fail"], default: "skip")) ?? .skip
        c.shardRows = r.int("shard_rows", default: c.shardRows, min: 1)
        if let d = r.object("dedup") {
            c.dedup.exact = d.bool("exact", default: true)
            if let v = d.value("near"), v.scalar != nil, ["false", "off", "no", "null", "~", ""].contains(v.scalar!.string.lowercased()) {
                c.dedup.near = nil
            } else if let n = d.object("near") {
                var near = PrepareConfig.Dedup.Near()
                near.threshold = n.double("threshold", default: near.threshold, range: 0...1, exclusiveLower: true)
                near.numPerm = n.int("num_perm", default: near.numPerm, min: 2)
                near.bands = n.has("bands") ? n.int("bands", default: 1, min: 1) : nil
                near.ngram = n.int("ngram", default: near.ngram, min: 1)
                near.seed = UInt64(n.int("seed", default: Int(near.seed), min: 0))
                n.finish()
                c.dedup.near = near
            }
            d.finish()
        }
        if let sp = r.object("split") {
            c.split.evalFraction = sp.double("eval_fraction", default: 0.1, range: 0...0.9)
            c.split.seed = UInt64(sp.int("seed", default: 0, min: 0))
            if c.split.evalFile != nil, sp.has("eval_fraction") {
                sp.report(sp.value("eval_fraction"), "eval_fraction", "cannot be combined with an eval file",
                          hint: "remove split.eval_fraction, or remove prepare.eval to split the training data")
            }
            sp.finish()
        }
        if let p = r.object("pack") {
            c.pack.enabled = p.bool("enabled", default: true)
            c.pack.seqLen = p.int("seq_len", default: c.maxTokens, min: 2)
            p.finish()
        }
        for problem in c.problems() { r.report(r.node, nil, problem) }
        config = c
        if let e = c.split.evalFile { perFile.append(DataTerms(path: e)) }
        let filled = perFile.map { f in
            DataTerms(path: f.path, license: f.license ?? wide.license, terms: f.terms ?? wide.terms, source: f.source ?? wide.source)
        }
        data = filled.contains(where: \.hasTerms) ? filled : []
        r.finish()
    }
}


/// What is known about one data file's provenance: its license (SPDX id or free text), the terms it was
/// obtained under, and where it came from (a URL). Recorded on the dataset artifact (metadata `data`) and
/// inherited by every artifact derived from it.
public struct DataTerms: Codable, Hashable, Sendable {
    public var path: String
    public var license: String?
    public var terms: String?
    public var source: String?

    public init(path: String, license: String? = nil, terms: String? = nil, source: String? = nil) {
        self.path = path
        self.license = license
        self.terms = terms
        self.source = source
    }

    var hasTerms: Bool { license != nil || terms != nil || source != nil }

    /// `license — terms` (nil when neither is known).
    var summary: String? {
        let parts = [license, terms].compactMap { $0 }
        return parts.isEmpty ? nil : parts.joined(separator: " — ")
    }

    var json: JSONValue {
        var o: [String: JSONValue] = ["path": .string(path)]
        if let license { o["license"] = .string(license) }
        if let terms { o["terms"] = .string(terms) }
        if let source { o["source"] = .string(source) }
        return .object(o)
    }
}
