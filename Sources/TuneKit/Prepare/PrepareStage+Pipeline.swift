// The pipeline's prepare stage: the `prepare:` section's JSONL files through PrepareStage (the same
// code as `tune prepare`) into token shards, registered as a `dataset` artifact.

import Foundation

extension StageKind {
    public static let prepare = StageKind(known: "prepare")
}

extension PipelineSpec {
    /// `prepare:`
    public var prepare: PrepareSection? {
        get { section(Stages.Prepare.self) }
        set { setSection(Stages.Prepare.self, newValue) }
    }
}

extension PrepareSection: StageSection {}

/// A prepared dataset in the registry: its manifest and shards live in `directory`.
public struct DatasetArtifact: Sendable {
    public let artifact: Artifact
    public let directory: String
}

extension Stages {
    public enum Prepare: Stage {
        public static let kind = StageKind.prepare
        public static let outputSuffix = "dataset"

        public static func readSection(_ r: YAMLReader) -> PrepareSection { PrepareSection(r) }

        public static func keyParts(_ p: PrepareSection, _ c: StagePlan) throws -> [String: JSONValue] {
            var files = p.train.map(c.resolve)
            if let e = p.config.split.evalFile { files.append(c.resolve(e)) }
            return [
                "config": try JSONValue(encoding: p.config),
                "inputs": .array(try files.map { .string(try c.sha256($0)) }),
                "tokenizer": .string(try DatasetTokenizer.load(modelPath: c.basePath).sha256),
            ]
        }

        public static func run(_ p: PrepareSection, _ c: StageContext) throws -> [Artifact] {
            let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-prepare-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: work) }
            var config = p.config
            config.split.evalFile = config.split.evalFile.map(c.resolve)
            if config.split.seed == 0 { config.split.seed = c.spec.seed }
            let manifest = try PrepareStage.run(inputs: p.train.map(c.resolve), config: config,
                                                tokenizer: try DatasetTokenizer.load(modelPath: c.basePath),
                                                outputDir: work.path)
            FaultPoint.hit("run.after-prepare")
            let counts: [String: JSONValue] = [
                "kept": .number(Double(manifest.counts.kept)),
                "dropped": .number(Double(manifest.counts.droppedTotal)),
            ]
            let new = NewArtifact(kind: .dataset, name: c.outputName, source: work,
                                  metadata: ["counts": .object(counts), "pipeline": .string(c.spec.name), "cache_key": .string(c.key)],
                                  governance: Governance(datasetSource: p.train.joined(separator: ", ")))
            return [try c.registry.register(new, inputs: c.lineage(c.outputs.latest, role: "input"), run: c.run)]
        }

        public static func output(_ artifacts: [Artifact], registry: Registry) throws -> DatasetArtifact? {
            guard let a = artifacts.last(where: { $0.kind == .dataset }) else { return nil }
            return DatasetArtifact(artifact: a, directory: try StoredArtifact.resolve(a, registry: registry).path)
        }
    }
}
