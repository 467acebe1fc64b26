// PipelineSpec — `pipeline.yaml` as typed, validated values (schema: docs/pipeline.md).
//
//     let spec = try PipelineSpec.load(path: "pipelines/sample.yaml")   // throws ConfigError listing every problem
//     for stage in spec.stages { … }                                     // prepare → train → merge → eval → register

import Foundation
import Yams

/// A whole pipeline: identity, base model, and the optional stage sections.
public struct PipelineSpec: Codable, Hashable, Sendable {
    public var name: String
    /// Base model: a path (`.gguf` file or HF directory) or a registry reference (`smollm2@latest`).
    public var base: String
    public var seed: UInt64
    /// Registry database path (default `.tune/registry.sqlite`).
    public var registry: String?
    /// Where stages run: `local` (this process) or `slurm` (one batch job per stage).
    public var executor: String
    /// Cluster settings for `executor: slurm`.
    public var slurm: SlurmSection?
    /// Each stage's `resources:` (its Slurm job's request), by stage name.
    public var resources: [String: StageResources] = [:]
    public var prepare: PrepareSection?
    public var train: TrainSection?
    public var merge: MergeSection?
    public var eval: EvalSection?
    public var register: RegisterSection?
    /// When the scheduler re-runs the pipeline (docs/schedule.md).
    public var schedule: ScheduleSection?
    /// Who hears about scheduled runs.
    public var notify: NotifySection?

    /// Directory the pipeline file lives in; relative paths in the spec resolve against it.
    public var baseDirectory: String
    /// `--set KEY=VALUE` overrides applied to the file (already part of the values above; kept to be
    /// recorded with the run, shown by `--dry-run`, and passed on to Slurm stage jobs).
    public var overrides: [PipelineOverride] = []

    /// The stages present, in flow order.
    public var stages: [StageKind] { StageKind.allCases.filter { has($0) } }

    public func has(_ stage: StageKind) -> Bool {
        switch stage {
        case .prepare: prepare != nil
        case .train: train != nil
        case .merge: merge != nil
        case .eval: eval != nil
        case .register: register != nil
        }
    }

    /// Reads and validates a pipeline file. Throws `ConfigError` with every problem found, or
    /// `TuneKitError` if the file cannot be read or is not YAML.
    /// `overrides` (`--set KEY=VALUE`) are applied to the YAML before it is read, exactly as if written in the file.
    public static func load(path: String, overrides: [PipelineOverride] = []) throws -> PipelineSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(diagnostics: [Diagnostic(file: path, line: 1, column: 1, path: "",
                                                       message: "cannot read the file", hint: nil)])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigError(diagnostics: [Diagnostic(file: path, line: 1, column: 1, path: "",
                                                       message: "not valid UTF-8", hint: nil)])
        }
        let dir = (URL(fileURLWithPath: path).deletingLastPathComponent().path)
        return try parse(yaml: text, file: path, baseDirectory: dir, overrides: overrides)
    }

    /// Parses YAML text; `file` names it in diagnostics.
    public static func parse(yaml: String, file: String, baseDirectory: String = ".",
                             overrides: [PipelineOverride] = []) throws -> PipelineSpec {
        let sink = DiagnosticSink(file: file)
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch let e as YamlError {
            throw ConfigError(diagnostics: [Self.diagnostic(for: e, file: file)])
        }
        guard var node else {
            throw ConfigError(diagnostics: [Diagnostic(file: file, line: 1, column: 1, path: "",
                                                       message: "the file is empty; expected a pipeline mapping",
                                                       hint: "start with `name:` and `base:` (see docs/pipeline.md)")])
        }
        var applied = overrides
        if !overrides.isEmpty {
            node = PipelineOverride.apply(&applied, to: node, fileLines: yaml.split(separator: "\n", omittingEmptySubsequences: false).count,
                                          sink: sink)
        }
        let r = YAMLReader(sink: sink, path: "", node: node)
        let name = r.string("name", required: true) ?? ""
        if r.has("name"), !Self.isValidName(name) {
            r.report(r.value("name"), "name", "expected a name of letters, digits, '.', '_' or '-', got \"\(name)\"")
        }
        // Each stage's `resources:` is read here, not by the section, so it stays out of the cache key.
        var resources: [String: StageResources] = [:]
        func stage(_ kind: StageKind) -> YAMLReader? {
            let reader = r.object(kind.rawValue)
            if let res = reader?.object("resources") { resources[kind.rawValue] = StageResources(res) }
            return reader
        }
        var spec = PipelineSpec(
            name: name,
            base: r.string("base", required: true) ?? "",
            seed: UInt64(r.int("seed", default: Int(TrainRecipe.defaultSeed), min: 0)),
            registry: r.string("registry"),
            executor: r.choice("executor", ["local", "slurm"], default: "local"),
            slurm: r.object("slurm").map(SlurmSection.init),
            prepare: stage(.prepare).map(PrepareSection.init),
            train: stage(.train).map(TrainSection.init),
            merge: stage(.merge).map(MergeSection.init),
            eval: stage(.eval).map(EvalSection.init),
            register: stage(.register).map(RegisterSection.init),
            schedule: r.object("schedule").map(ScheduleSection.init),
            notify: r.object("notify").map(NotifySection.init),
            baseDirectory: baseDirectory)
        spec.resources = resources
        spec.overrides = applied
        ScheduleSection.check(spec, r)
        r.finish()
        if spec.stages.isEmpty, node.mapping != nil {
            r.report(node, nil, "no stages: add at least one of \(StageKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try sink.throwIfAny()
        return spec
    }

    static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }

    static func diagnostic(for e: YamlError, file: String) -> Diagnostic {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return Diagnostic(file: file, line: mark.line, column: mark.column, path: "", message: "YAML syntax: \(problem)", hint: nil)
        default:
            return Diagnostic(file: file, line: 1, column: 1, path: "", message: "YAML: \(e)", hint: nil)
        }
    }
}

/// The pipeline stages, in flow order (the list of stages, written once).
public enum StageKind: String, CaseIterable, Codable, Sendable {
    case prepare, train, merge, eval, register
}
