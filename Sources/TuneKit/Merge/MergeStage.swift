// MergeStage — the pipeline's merge stage: inputs are registry refs, paths, or `train` (this run's
// trained adapter); MergeJob (the same code as `tune merge`) writes a merged adapter or a full model,
// registered as kind adapter or merged-model with its inputs as lineage.

import Foundation

extension StageKind {
    public static let merge = StageKind(known: "merge")
}

extension PipelineSpec {
    /// `merge:`
    public var merge: MergeSection? {
        get { section(Stages.Merge.self) }
        set { setSection(Stages.Merge.self, newValue) }
    }
}

extension MergeSection: StageSection {}

/// The merge stage's output: a merged adapter (PEFT directory) or a full model (GGUF or HF directory).
public struct MergedArtifact: Sendable {
    public let artifact: Artifact
    public let path: String
    public var isAdapter: Bool { artifact.kind == .adapter }
    /// The model file or directory to load (a GGUF inside the blob directory, or the HF directory).
    public var modelPath: String { Stages.Merge.modelPath(in: path) }
}

extension Stages.Merge {
    public static func readSection(_ r: YAMLReader) -> MergeSection { MergeSection(r) }

    public static func keyParts(_ m: MergeSection, _ c: StagePlan) throws -> [String: JSONValue] {
        [
            "config": try JSONValue(encoding: m),
            "base": .string(try c.sha256(c.basePath)),
            "inputs": .array(try resolveInputs(m, c).map { .string($0.sha256) }),
        ]
    }

    public static func output(_ artifacts: [Artifact], registry: Registry) throws -> MergedArtifact? {
        guard let a = artifacts.last(where: { $0.kind == .mergedModel || $0.kind == .adapter }) else { return nil }
        return MergedArtifact(artifact: a, path: try StoredArtifact.resolve(a, registry: registry).path)
    }

    /// A merged model blob: a GGUF file, an HF directory, or a directory holding one `.gguf`.
    public static func modelPath(in path: String) -> String {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: path + "/config.json"),
              let gguf = (try? fm.contentsOfDirectory(atPath: path))?.filter({ $0.hasSuffix(".gguf") }).sorted().first else { return path }
        return path + "/" + gguf
    }

    /// One resolved merge input: where its files are, their content hash, the artifact if it is one.
    struct MergeInputRef {
        var path: String
        var sha256: String
        var artifact: Artifact?
    }

    /// Resolves `merge.adapters[].adapter`: `train` (upstream adapter), an existing path, or a registry ref.
    static func resolveInputs(_ m: MergeSection, _ c: StagePlan) throws -> [MergeInputRef] {
        let spec = c.spec, registry = c.registry
        guard !m.inputs.isEmpty else {
            throw TuneError(.invalidArgument, "\(spec.name): merge.adapters is empty (list adapters, or `adapter: train` for this pipeline's trained one)")
        }
        let refs: [MergeInputRef] = try m.inputs.enumerated().map { i, input in
            if input.adapter == "train" {
                guard let a = c.outputs.of(Stages.Train.self) else {
                    throw TuneError(.invalidArgument, "\(spec.name): merge.adapters[\(i)]: `train` needs a train stage before merge")
                }
                return MergeInputRef(path: a.directory, sha256: a.artifact.sha256, artifact: a.artifact)
            }
            let path = c.resolve(input.adapter)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                return MergeInputRef(path: path, sha256: try contentSHA256(path, isDirectory: isDir.boolValue), artifact: nil)
            }
            let a: Artifact
            do { a = try registry.resolve(input.adapter) } catch let e as TuneError {
                throw TuneError(e.kind == .invalidArgument ? .notFound : e.kind,
                                "\(spec.name): merge.adapters[\(i)]: \"\(input.adapter)\" is neither a file (\(path)) nor a registry artifact (\(e.message))")
            }
            guard let p = registry.path(of: a) else { throw TuneError(.notFound, "\(spec.name): \(a.ref): blob missing") }
            return MergeInputRef(path: p, sha256: a.sha256, artifact: a)
        }
        if let managed = refs.compactMap(\.artifact).first(where: { ManagedModelRecord.isManaged($0) }) {
            throw TuneError(.invalidArgument, "\(spec.name): merge: \(managed.ref) is a model at a managed provider (backend openai); "
                            + "its weights are not available to merge")
        }
        return refs
    }

    static func mergeSpec(_ m: MergeSection, _ inputs: [MergeInputRef], _ c: StageContext) throws -> MergeSpec {
        let basePath = c.basePath
        guard let method = MergeMethods.named(m.method) else { throw TuneError(.internal, "merge.method \(m.method) not in the table") }
        var s = MergeSpec(method: method, base: basePath, inputs: zip(inputs, m.inputs).map {
            .init(path: $0.0.path, parameters: .init(weight: $0.1.weight, density: $0.1.density))
        })
        s.options = MergeOptions(normalize: m.normalize, lambda: m.lambda)
        s.seed = c.spec.seed
        s.output = m.output == "model" ? .model : .adapter
        if m.output == "model", let f = m.format {
            s.format = f == "gguf" ? .gguf : .safetensors
        } else {
            s.format = basePath.hasSuffix(".gguf") ? .gguf : .safetensors
        }
        s.dtype = m.dtype
        s.rank = m.rank
        return s
    }

    public static func run(_ m: MergeSection, _ c: StageContext) throws -> [Artifact] {
        let inputs = try resolveInputs(m, c.plan)
        let s = try mergeSpec(m, inputs, c)
        let spec = c.spec, basePath = c.basePath
        let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-merge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = try MergeJob.run(s, outputDirectory: work.path, progress: { c.progress($0) },
                                      measured: { c.event(.measured(stage: .merge, progress: $0)) })
        c.progress(MergeCLI.summary(report).split(separator: "\n").prefix(4).joined(separator: "; "))
        if s.output == .adapter, m.format == "gguf" {
            // llama.cpp's LoRA GGUF beside the PEFT files: `llama-server -m BASE.gguf --lora adapter_model.gguf`.
            let r = try AdapterExport.run(.init(source: .init(directory: work.path), format: .gguf,
                                                out: work.appendingPathComponent(Stages.Merge.ggufAdapterFile).path,
                                                base: basePath, name: c.outputName))
            c.progress("wrote \(Stages.Merge.ggufAdapterFile) (llama.cpp LoRA GGUF, \(r.architecture ?? "?"), \(r.tensors) tensors)")
        }
        var meta: [String: JSONValue] = [
            "pipeline": .string(spec.name), "cache_key": .string(c.key), "method": .string(s.method.name),
            "inputs": .array(inputs.map { .string($0.artifact?.ref ?? $0.path) }),
            "base_model": .string((basePath as NSString).lastPathComponent),
        ]
        if let r = report.rank { meta["rank"] = .number(Double(r)) }
        if let e = report.energyKept { meta["energy_kept"] = .number(e) }
        if let d = report.dtype { meta["dtype"] = .string(d) }
        if let notes = c.spec.register?.notes, c.spec.register?.name == nil { meta["notes"] = .string(notes) }
        let base = try c.baseArtifact()
        let new = NewArtifact(kind: s.output == .model ? .mergedModel : .adapter, name: c.outputName, source: work,
                              metadata: meta, governance: c.modelGovernance(base: base))
        var lineage: [ArtifactID: String] = [base.id: "base"]
        for i in inputs { if let a = i.artifact { lineage[a.id] = "merged" } }
        return [try c.registry.register(new, inputs: lineage, run: c.run)]
    }
}

extension Stages {
    public enum Merge: Stage {
        public static let kind = StageKind.merge
        public static let outputSuffix = "merged"
        /// The LoRA GGUF a `format: gguf` adapter output carries beside its PEFT files.
        public static let ggufAdapterFile = "adapter_model.gguf"
    }
}
