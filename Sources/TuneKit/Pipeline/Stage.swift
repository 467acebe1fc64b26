// Stage — what one pipeline stage is: a name, a YAML section, the parts of its cache key, the typed
// outputs it passes on, and how it runs. The runner knows nothing about any particular stage: it walks
// `Stages.all` (Stages.swift), the one list, in flow order. Adding a stage is one file (its section,
// its `Stage` type, `StageKind.NAME`, a `PipelineSpec` accessor) and one line in that list.
//
//     extension StageKind { public static let train = StageKind(known: "train") }
//     extension Stages {
//         public enum Train: Stage {
//             public static let kind = StageKind.train
//             public static func readSection(_ r: YAMLReader) -> TrainSection { TrainSection(r) }
//             public static func run(_ t: TrainSection, _ c: StageContext) throws -> [Artifact] { … }
//             public static func output(_ a: [Artifact], registry: Registry) throws -> AdapterArtifact? { … }
//         }
//     }

import Foundation

/// A stage's name: its `pipeline.yaml` section, `--from`/`--until`/`--force`, stage runs in the registry.
/// Only names of stages in `Stages.all` exist (`init(rawValue:)` refuses the others).
public struct StageKind: RawRepresentable, Hashable, Codable, Sendable, CaseIterable, CustomStringConvertible {
    public let rawValue: String

    /// A stage's own name, declared once beside its `Stage` type.
    init(known name: String) { rawValue = name }

    public init?(rawValue: String) {
        guard Stages.kinds.contains(where: { $0.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    /// Every stage, in flow order.
    public static var allCases: [StageKind] { Stages.kinds }
    public var description: String { rawValue }
    /// Position in the flow (prepare = 0).
    public var order: Int { Stages.kinds.firstIndex(of: self) ?? Int.max }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let k = StageKind(rawValue: s) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unknown stage \"\(s)\"; expected one of "
                                                   + StageKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self = k
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// A stage's typed config, read from its YAML section; its JSON encoding enters the cache key.
public protocol StageSection: Encodable, Hashable, Sendable {}

/// One pipeline stage. Stateless: everything it needs arrives in its section and its context.
public protocol Stage: Sendable {
    associatedtype Section: StageSection
    /// What the stage hands to later stages (e.g. `AdapterArtifact`), rebuilt from its registered
    /// artifacts whether it ran now, was cached, or was adopted after a crash.
    associatedtype Output: Sendable

    static var kind: StageKind { get }
    /// The registered output is named `PIPELINE-SUFFIX` (`shipping-docs-adapter`).
    static var outputSuffix: String { get }
    /// Reads the stage's section (`r` reads its mapping; problems go to `r.report`).
    static func readSection(_ r: YAMLReader) -> Section
    /// Cache-key parts besides {stage, format_version, seed, upstream}: `config` (default: the section
    /// as written) and the hashes of whatever else it reads (files, the base, the tokenizer).
    static func keyParts(_ section: Section, _ c: StagePlan) throws -> [String: JSONValue]
    /// Produces and registers the stage's outputs.
    static func run(_ section: Section, _ c: StageContext) throws -> [Artifact]
    /// The typed output of registered artifacts (nil when the stage produced none).
    static func output(_ artifacts: [Artifact], registry: Registry) throws -> Output?
    /// Called when a crashed run's registered outputs were adopted instead of running again.
    static func adopted(_ section: Section, _ c: StageContext)
}

extension Stage {
    public static func keyParts(_ section: Section, _ c: StagePlan) throws -> [String: JSONValue] {
        ["config": try JSONValue(encoding: section)]
    }
    public static func adopted(_ section: Section, _ c: StageContext) {}
}

/// A section of some stage, kept by `PipelineSpec` under its stage's name.
public struct AnyStageSection: Hashable, Sendable, Encodable {
    public let value: any StageSection
    public init(_ value: any StageSection) { self.value = value }
    public static func == (a: Self, b: Self) -> Bool { AnyHashable(a.value) == AnyHashable(b.value) }
    public func hash(into h: inout Hasher) { h.combine(AnyHashable(value)) }
    public func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
}

/// The outputs of the stages so far: typed per stage, plus the artifact lists the runner keys on.
public struct StageOutputs: Sendable {
    var typed: [StageKind: any Sendable] = [:]
    /// The outputs of the nearest earlier stage that produced any: their hashes enter the next key.
    public private(set) var latest: [Artifact] = []
    /// Every output so far, in flow order.
    public private(set) var all: [Artifact] = []

    public init() {}

    /// The typed output of stage `S`, if it is in this pipeline and produced one.
    public func of<S: Stage>(_ stage: S.Type) -> S.Output? { typed[S.kind] as? S.Output }

    mutating func record<S: Stage>(_ stage: S.Type, _ artifacts: [Artifact], registry: Registry) throws {
        guard !artifacts.isEmpty else { return }
        latest = artifacts
        all += artifacts
        if let o = try S.output(artifacts, registry: registry) { typed[S.kind] = o }
    }
}

/// What a stage sees when its cache key is computed (before it runs, also in a dry run).
public struct StagePlan {
    public let runner: PipelineRunner
    public let registry: Registry
    /// Typed outputs of the stages before it.
    public let outputs: StageOutputs
    public var spec: PipelineSpec { runner.spec }
    public var options: RunOptions { runner.options }
    /// The base model file.
    public var basePath: String { runner.basePath }
    /// sha256 of a file, cached beside the registry.
    public func sha256(_ path: String) throws -> String { try runner.hashes.sha256(path) }
    /// A path from the pipeline file, resolved against its directory.
    public func resolve(_ path: String) -> String { runner.resolve(path) }
}

/// What a stage sees when it runs.
public struct StageContext {
    public let plan: StagePlan
    public let kind: StageKind
    /// The stage's cache key (recorded on its outputs as `cache_key`).
    public let key: String
    public let run: RunID
    let emit: (RunEvent) -> Void

    public var runner: PipelineRunner { plan.runner }
    public var registry: Registry { plan.registry }
    public var outputs: StageOutputs { plan.outputs }
    public var spec: PipelineSpec { plan.spec }
    public var options: RunOptions { plan.options }
    public var basePath: String { plan.basePath }
    /// The base family recorded on outputs: the registered family, else the model's file name.
    public var baseFamily: String { runner.baseFamily }
    public var registryPath: String { runner.registryPath }
    public func resolve(_ path: String) -> String { plan.resolve(path) }
    /// The name this stage registers its output under.
    public var outputName: String { runner.outputName(kind) }
    /// A progress line of this stage.
    public func progress(_ message: String) { emit(.progress(stage: kind, message: message)) }
    public func event(_ e: RunEvent) { emit(e) }
    /// Lineage edges from `artifacts` to a new output, all with one role.
    public func lineage(_ artifacts: [Artifact], role: String) -> [ArtifactID: String] {
        Dictionary(artifacts.map { ($0.id, role) }, uniquingKeysWith: { a, _ in a })
    }
}

/// A registered artifact and where its blob is.
public struct StoredArtifact: Sendable {
    public let artifact: Artifact
    /// The blob: a directory, or a file for single-file outputs.
    public let path: String

    static func resolve(_ a: Artifact, registry: Registry) throws -> StoredArtifact {
        guard let p = registry.path(of: a) else { throw TuneError(.notFound, "\(a.ref): blob missing from the artifact store") }
        return StoredArtifact(artifact: a, path: p)
    }
}
