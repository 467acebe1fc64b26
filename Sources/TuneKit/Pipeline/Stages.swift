// Stages — the one list of pipeline stages, in flow order. The runner, `pipeline.yaml`'s sections,
// `--from`/`--until`/`--force` and the Slurm executor all walk this list; each stage lives with its
// domain (Prepare/, Train/, Merge/, Eval/, Register/).

/// The stages tune runs. A new stage is one file (its `Stage` type in an `extension Stages`) plus one line here.
public enum Stages {
    public static let all: [any Stage.Type] = [
        Prepare.self,    // JSONL → token shards (Prepare/PrepareStage+Pipeline.swift)
        Train.self,      // LoRA / QLoRA adapter, local or managed (Train/TrainStage.swift)
        Merge.self,      // adapters → merged adapter or model (Merge/MergeStage.swift)
        Eval.self,       // base vs tuned vs merged, gate, report (Eval/EvalStage.swift)
        Register.self,   // aliases onto the newest model (Register/RegisterStage.swift)
    ]

    /// The stages' names, in flow order.
    public static let kinds: [StageKind] = all.map { kind(of: $0) }
    /// Each stage's output-name suffix, by stage.
    static let outputSuffixes: [StageKind: String] = Dictionary(uniqueKeysWithValues: all.map { (kind(of: $0), suffix(of: $0)) })

    private static func kind<S: Stage>(of stage: S.Type) -> StageKind { S.kind }
    private static func suffix<S: Stage>(of stage: S.Type) -> String { S.outputSuffix }
}
