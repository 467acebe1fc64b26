// EvalSection — the pipeline's `eval:` section (EvalConfig; docs/eval.md).

/// `eval:` — base vs tuned vs merged on held-out data: metrics, promotion gate, costs (EvalConfig, docs/eval.md).
public struct EvalSection: Codable, Hashable, Sendable {
    public var config: EvalConfig

    init(_ r: YAMLReader) { config = EvalConfig(r) }
}

