// PrepareSection — the pipeline's `prepare:` section, read from YAML with defaults (docs/pipeline.md).

/// `prepare:` — turn JSONL files into token shards. The fields are `PrepareConfig`'s (same names as
/// in `tune prepare --config`), plus the input files.
public struct PrepareSection: Codable, Hashable, Sendable {
    /// Training JSONL files (relative to the pipeline file).
    public var train: [String]
    public var config: PrepareConfig

    init(_ r: YAMLReader) {
        train = r.strings("train")
        if train.isEmpty { r.report(r.node, "train", "required field is missing", hint: "train: datasets/my-task/train.jsonl") }
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
        r.finish()
    }
}

