// StageContext+Governance — what the stages record so compliance questions have answers
// (docs/governance.md): the base model as a `base-model` artifact (found by its sha256, else registered
// by reference: path + sha256, nothing copied), a managed provider's model as a `managed-model` artifact,
// and the governance fields of the models a stage produces.

import Engine
import Foundation

/// Family, version and license of a base model, read from its own metadata.
struct BaseModelInfo {
    var family: String
    var version: String?
    var license: String?
    var metadata: [String: JSONValue]

    /// GGUF: `general.name` (else `general.basename`), `general.version`, `general.license`; a Hugging Face
    /// directory: config.json's `_name_or_path` (else `model_type`) and `license` if present; else the file name.
    static func read(_ path: String, isDirectory: Bool) -> BaseModelInfo {
        let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        var meta: [String: JSONValue] = ["file": .string((path as NSString).lastPathComponent)]
        if isDirectory {
            let cfg = (path as NSString).appendingPathComponent("config.json")
            if let d = FileManager.default.contents(atPath: cfg),
               let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any] {
                let name = (o["_name_or_path"] as? String).map { ($0 as NSString).lastPathComponent } ?? (o["model_type"] as? String)
                if let t = o["model_type"] as? String { meta["architecture"] = .string(t) }
                meta["format"] = .string("huggingface")
                return BaseModelInfo(family: name.flatMap { $0.isEmpty ? nil : $0 } ?? stem, version: nil,
                                     license: o["license"] as? String, metadata: meta)
            }
            return BaseModelInfo(family: stem, version: nil, license: nil, metadata: meta)
        }
        guard let g = try? GGUFFile(path: path) else { return BaseModelInfo(family: stem, version: nil, license: nil, metadata: meta) }
        func s(_ k: String) -> String? { g.metadata[k]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } }
        meta["format"] = .string("gguf")
        for (k, key) in [("name", "general.name"), ("basename", "general.basename"), ("version", "general.version"),
                         ("license", "general.license"), ("architecture", "general.architecture"), ("size_label", "general.size_label")] {
            if let v = s(key) { meta[k] = .string(v) }
        }
        return BaseModelInfo(family: s("general.name") ?? s("general.basename") ?? stem, version: s("general.version"),
                             license: s("general.license"), metadata: meta)
    }
}

extension StageContext {
    /// The run's base model as a `base-model` artifact: the one whose sha256 is the base's, else a new one
    /// recorded by reference (nothing copied; `tune artifacts verify` re-hashes the file where it is).
    /// Family and version: the registered base's (`base: FAMILY@VERSION`), else the model's metadata (version
    /// `sha256-<12 hex>` when it has none); license: the registered base's, else the metadata's, else `register.license`.
    public func baseArtifact() throws -> Artifact {
        let path = basePath
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TuneError(.notFound, "\(path): base model not found")
        }
        let (sha, size): (String, Int64)
        if isDir.boolValue {
            (sha, size) = try FileBlobStore.address(of: path, directory: true)
        } else {
            sha = try plan.sha256(path)
            size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        let info = BaseModelInfo.read(path, isDirectory: isDir.boolValue)
        var license = info.license
        if let f = options.base?.family, let v = options.base?.version, let b = try? registry.base(family: f, version: v) { license = b.license }
        let family = options.base?.family ?? info.family
        let version = options.base?.version ?? info.version ?? "sha256-\(sha.prefix(12))"
        let gov = Governance(baseFamily: family, baseVersion: version, license: license ?? spec.register?.license,
                             createdWith: "tune \(TuneKitInfo.version) run \(run) \(kind.rawValue)")
        let name = Registry.artifactName(family, fallback: "base")
        do {
            return try registry.registerReference(kind: .baseModel, name: name, path: path, sha256: sha, size: size,
                                                  metadata: info.metadata, governance: gov)
        } catch let e as TuneError where e.kind == .conflict {
            // The family's name is taken by an artifact of another kind.
            return try registry.registerReference(kind: .baseModel, name: "base/\(name)", path: path, sha256: sha, size: size,
                                                  metadata: info.metadata, governance: gov)
        }
    }

    /// Governance of a model made from `base`: its family and version; license `register.license`, else the base's.
    public func modelGovernance(base: Artifact) -> Governance {
        Governance(baseFamily: base.governance.baseFamily, baseVersion: base.governance.baseVersion,
                   license: spec.register?.license ?? base.governance.license)
    }

    /// The provider's model trained on (`train.openai.model`) as a `managed-model` artifact: a small record
    /// (provider API root, redacted; model id; family; snapshot when the id pins one) found again by content.
    func managedModelArtifact(model: String, provider: String) throws -> Artifact {
        let (family, snapshot) = ManagedModelID.split(model)
        var record: [String: JSONValue] = ["provider": .string(provider), "model": .string(model), "family": .string(family)]
        if let snapshot { record["snapshot"] = .string(snapshot) }
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-managed-ref-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("managed_model_ref.json")
        try Data(try JSONValue.object(record).canonicalJSON().utf8).write(to: file)
        let gov = Governance(baseFamily: family, baseVersion: snapshot ?? "unpinned", license: nil,
                             createdWith: "tune \(TuneKitInfo.version) run \(run) \(kind.rawValue)")
        return try registry.findOrRegister(NewArtifact(kind: .managedModel, name: ManagedModelID.artifactName(model), source: file,
                                                       metadata: record, governance: gov))
    }
}
