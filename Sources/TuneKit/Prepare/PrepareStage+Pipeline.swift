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
            var parts: [String: JSONValue] = [
                "config": try JSONValue(encoding: p.config),
                "inputs": .array(try files.map { .string(try c.sha256($0)) }),
                "tokenizer": .string(try DatasetTokenizer.load(modelPath: c.basePath).sha256),
            ]
            // Licenses and terms are recorded on the dataset: changing them makes a new one (absent: keys as before).
            if !p.data.isEmpty { parts["data"] = .array(p.data.map(\.json)) }
            return parts
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
            var meta: [String: JSONValue] = ["counts": .object(counts), "pipeline": .string(c.spec.name), "cache_key": .string(c.key)]
            var gov = Governance(datasetSource: p.train.joined(separator: ", "))
            if !p.data.isEmpty {
                // Per file: path, sha256, license, terms, source; the columns summarize them (license when all files agree).
                meta["data"] = .array(try p.data.map { d in
                    guard case .object(var o) = d.json else { return d.json }
                    o["sha256"] = .string(try c.plan.sha256(c.resolve(d.path)))
                    return .object(o)
                })
                let sources = p.data.map { d in d.source.map { "\(d.path) (\($0))" } ?? d.path }
                gov.datasetSource = sources.joined(separator: ", ")
                var terms: [String] = []
                for t in p.data.compactMap(\.summary) where !terms.contains(t) { terms.append(t) }
                gov.dataTerms = terms.isEmpty ? nil : terms.joined(separator: "; ")
                let licenses = Set(p.data.map(\.license))
                if licenses.count == 1, let l = licenses.first ?? nil { gov.license = l }
            }
            // The base's tokenizer and template shaped every row: the dataset descends from the base artifact.
            let base = try c.baseArtifact()
            var inputs = c.lineage(c.outputs.latest, role: "input")
            inputs[base.id] = "tokenizer"
            let new = NewArtifact(kind: .dataset, name: c.outputName, source: work, metadata: meta, governance: gov)
            return [try c.registry.register(new, inputs: inputs, run: c.run)]
        }

        public static func output(_ artifacts: [Artifact], registry: Registry) throws -> DatasetArtifact? {
            guard let a = artifacts.last(where: { $0.kind == .dataset }) else { return nil }
            return DatasetArtifact(artifact: a, directory: try StoredArtifact.resolve(a, registry: registry).path)
        }
    }
}
