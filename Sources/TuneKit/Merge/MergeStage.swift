// Runner+Merge — the pipeline's merge stage: inputs are registry refs, paths, or `train` (this run's
// trained adapter); MergeJob (the same code as `tune merge`) writes a merged adapter or a full model,
// registered as kind adapter or merged-model with its inputs as lineage.

import Foundation

extension PipelineRunner {
    /// One resolved merge input: where its files are, their content hash, the artifact if it is one.
    struct MergeInputRef {
        var path: String
        var sha256: String
        var artifact: Artifact?
    }

    /// Resolves `merge.adapters[].adapter`: `train` (upstream adapter), an existing path, or a registry ref.
    func resolveMergeInputs(upstream: [Artifact], registry: Registry) throws -> [MergeInputRef] {
        let m = spec.merge!
        guard !m.inputs.isEmpty else {
            throw TuneError(.invalidArgument, "\(spec.name): merge.adapters is empty (list adapters, or `adapter: train` for this pipeline's trained one)")
        }
        let refs: [MergeInputRef] = try m.inputs.enumerated().map { i, input in
            if input.adapter == "train" {
                guard let a = upstream.last(where: { $0.kind == .adapter }), let p = registry.path(of: a) else {
                    throw TuneError(.invalidArgument, "\(spec.name): merge.adapters[\(i)]: `train` needs a train stage before merge")
                }
                return MergeInputRef(path: p, sha256: a.sha256, artifact: a)
            }
            let path = resolve(input.adapter)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                return MergeInputRef(path: path, sha256: try Self.contentHash(path, isDirectory: isDir.boolValue), artifact: nil)
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

    /// sha256 of a file, or of a directory's sorted (name, file sha256) list.
    static func contentHash(_ path: String, isDirectory: Bool) throws -> String {
        guard isDirectory else { return try SHA256.hashFile(path) }
        let files = try FileBlobStore.regularFiles(in: URL(fileURLWithPath: path)).sorted()
        let lines = try files.map { "\($0)\t\(try SHA256.hashFile((path as NSString).appendingPathComponent($0)))" }
        return SHA256.hash(Array(lines.joined(separator: "\n").utf8)).hex
    }

    func mergeSpec(_ inputs: [MergeInputRef]) throws -> MergeSpec {
        let m = spec.merge!
        guard let method = MergeMethods.named(m.method) else { throw TuneError(.internal, "merge.method \(m.method) not in the table") }
        var s = MergeSpec(method: method, base: basePath, inputs: zip(inputs, m.inputs).map {
            .init(path: $0.0.path, parameters: .init(weight: $0.1.weight, density: $0.1.density))
        })
        s.options = MergeOptions(normalize: m.normalize, lambda: m.lambda)
        s.seed = spec.seed
        s.output = m.output == "model" ? .model : .adapter
        s.format = basePath.hasSuffix(".gguf") ? .gguf : .safetensors
        s.dtype = m.dtype
        s.rank = m.rank
        return s
    }

    func executeMerge(key: String, upstream: [Artifact], registry: Registry, run: RunID,
                      onEvent: (RunEvent) -> Void) throws -> Artifact {
        let inputs = try resolveMergeInputs(upstream: upstream, registry: registry)
        let s = try mergeSpec(inputs)
        let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-merge-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let report = try MergeJob.run(s, outputDirectory: work.path, progress: { onEvent(.progress(stage: .merge, message: $0)) },
                                      measured: { onEvent(.measured(stage: .merge, progress: $0)) })
        onEvent(.progress(stage: .merge, message: MergeCLI.summary(report).split(separator: "\n").prefix(4).joined(separator: "; ")))
        var meta: [String: JSONValue] = [
            "pipeline": .string(spec.name), "cache_key": .string(key), "method": .string(s.method.name),
            "inputs": .array(inputs.map { .string($0.artifact?.ref ?? $0.path) }),
            "base_model": .string((basePath as NSString).lastPathComponent),
        ]
        if let r = report.rank { meta["rank"] = .number(Double(r)) }
        if let e = report.energyKept { meta["energy_kept"] = .number(e) }
        if let d = report.dtype { meta["dtype"] = .string(d) }
        let new = NewArtifact(kind: s.output == .model ? .mergedModel : .adapter, name: outputName(.merge), source: work,
                              metadata: meta, governance: Governance(baseFamily: baseFamily, baseVersion: self.options.base?.version))
        var lineage: [ArtifactID: String] = [:]
        for i in inputs { if let a = i.artifact { lineage[a.id] = "merged" } }
        return try registry.register(new, inputs: lineage, run: run)
    }
}
