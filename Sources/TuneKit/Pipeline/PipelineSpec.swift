// PipelineSpec — `pipeline.yaml` as typed, validated values (schema: docs/pipeline.md).
//
//     let spec = try PipelineSpec.load(path: "pipelines/sample.yaml")   // throws ConfigError listing every problem
//     for stage in spec.stages { … }                                     // prepare → train → merge → eval → register

import Foundation
import Yams

/// A whole pipeline: identity, base model, and the optional stage sections.
public struct PipelineSpec: Encodable, Hashable, Sendable {
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
    /// Each configured stage's section, by stage (typed accessors: `spec.train`, `spec.eval`, … beside each stage).
    public var sections: [StageKind: AnyStageSection] = [:]
    /// When the scheduler re-runs the pipeline (docs/schedule.md).
    public var schedule: ScheduleSection?
    /// Who hears about scheduled runs.
    public var notify: NotifySection?
    /// When a recheck counts as drift (docs/governance.md, "Drift").
    public var drift: DriftSection?
    /// Problems that do not make the file invalid (e.g. a managed model id not pinned to a snapshot), said by validate and run.
    public var warnings: [Diagnostic] = []

    /// Directory the pipeline file lives in; relative paths in the spec resolve against it.
    public var baseDirectory: String
    /// `--set KEY=VALUE` overrides applied to the file (already part of the values above; kept to be
    /// recorded with the run, shown by `--dry-run`, and passed on to Slurm stage jobs).
    public var overrides: [PipelineOverride] = []

    /// The stages present, in flow order.
    public var stages: [StageKind] { StageKind.allCases.filter { has($0) } }

    public func has(_ stage: StageKind) -> Bool { sections[stage] != nil }

    /// The section of stage `S`, if the pipeline has one.
    public func section<S: Stage>(_ stage: S.Type) -> S.Section? { sections[S.kind]?.value as? S.Section }

    /// Sets (or with nil removes) the section of stage `S`.
    public mutating func setSection<S: Stage>(_ stage: S.Type, _ section: S.Section?) {
        sections[S.kind] = section.map(AnyStageSection.init)
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
            throw ConfigError(diagnostics: [Diagnostic(yaml: e, file: file)])
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
        var spec = PipelineSpec(
            name: name,
            base: r.string("base", required: true) ?? "",
            seed: UInt64(r.int("seed", default: Int(TrainRecipe.defaultSeed), min: 0)),
            registry: r.string("registry"),
            executor: r.choice("executor", ["local", "slurm"], default: "local"),
            slurm: r.object("slurm").map(SlurmSection.init),
            baseDirectory: baseDirectory)
        // Each stage's section, in flow order. Its `resources:` is read here, not by the section, so it
        // stays out of the cache key.
        var resources: [String: StageResources] = [:]
        func read<S: Stage>(_ stage: S.Type) {
            guard let reader = r.object(S.kind.rawValue) else { return }
            if let res = reader.object("resources") { resources[S.kind.rawValue] = StageResources(res) }
            spec.setSection(S.self, S.readSection(reader))
        }
        for stage in Stages.all { read(stage) }
        spec.schedule = r.object("schedule").map(ScheduleSection.init)
        spec.notify = r.object("notify").map(NotifySection.init)
        spec.drift = r.object("drift").map(DriftSection.init)
        spec.resources = resources
        spec.overrides = applied
        ScheduleSection.check(spec, r)
        DriftSection.check(spec, r)
        r.finish()
        if spec.stages.isEmpty, node.mapping != nil {
            r.report(node, nil, "no stages: add at least one of \(StageKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        try sink.throwIfAny()
        spec.warnings = sink.warnings
        return spec
    }

    static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)) }
    }
}

extension PipelineSpec {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// The pipeline as JSON (recorded with each run): its fields, and each stage's section under the stage's name.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(name, forKey: Key("name"))
        try c.encode(base, forKey: Key("base"))
        try c.encode(seed, forKey: Key("seed"))
        try c.encodeIfPresent(registry, forKey: Key("registry"))
        try c.encode(executor, forKey: Key("executor"))
        try c.encodeIfPresent(slurm, forKey: Key("slurm"))
        try c.encode(resources, forKey: Key("resources"))
        for (kind, section) in sections { try c.encode(section, forKey: Key(kind.rawValue)) }
        try c.encodeIfPresent(schedule, forKey: Key("schedule"))
        try c.encodeIfPresent(notify, forKey: Key("notify"))
        try c.encodeIfPresent(drift, forKey: Key("drift"))
        try c.encode(baseDirectory, forKey: Key("baseDirectory"))
        try c.encode(overrides, forKey: Key("overrides"))
    }
}
