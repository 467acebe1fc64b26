// Registry+Models — the models everything else is made from, as artifacts (docs/governance.md): a base
// model found by its sha256, else recorded by reference (path + sha256, nothing copied; `tune artifacts
// verify` re-hashes the file where it is), and a managed provider's model as a small record found again by
// content. The pipeline's stages, drift rechecks and the registry backfill (Registry+Backfill.swift) all
// make them here, inside their own write transaction.

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

/// A managed model's record, written to the blob store (before the transaction that registers it).
struct ManagedModelRef {
    var name: String
    var blob: Blob
    var record: [String: JSONValue]
    var family: String
    var snapshot: String?
}

extension Registry {
    /// The base model at `path` as a `base-model` artifact: the one whose sha256 is `sha256`, else a new one.
    /// Family and version: `family`/`version` when given (a registered base), else the model's metadata
    /// (version `sha256-<12 hex>` when it has none); license: `license`, else the metadata's, else `fallbackLicense`.
    func baseModelArtifact(_ db: any SQLConnection, path: String, info: BaseModelInfo, sha256 sha: String, size: Int64,
                           family: String?, version: String?, license: String?, fallbackLicense: String?,
                           createdWith: String) throws -> Artifact {
        let family = family ?? info.family
        let gov = Governance(baseFamily: family, baseVersion: version ?? info.version ?? "sha256-\(sha.prefix(12))",
                             license: license ?? info.license ?? fallbackLicense, createdWith: createdWith)
        let name = try Self.freeName(db, Registry.artifactName(family, fallback: "base"), kind: .baseModel, prefix: "base/")
        return try referenceArtifact(db, kind: .baseModel, name: name, path: path, sha256: sha, size: size,
                                     metadata: info.metadata, governance: gov)
    }

    /// `name`, or `prefix + name` when `name` is taken by an artifact of another kind.
    static func freeName(_ db: any SQLConnection, _ name: String, kind: ArtifactKind, prefix: String) throws -> String {
        guard let k = try db.scalar(String.self, "SELECT kind FROM artifacts WHERE name = ? ORDER BY version DESC LIMIT 1", [name]),
              k != kind.rawValue else { return name }
        return prefix + name
    }

    /// The sha256 and size of a base model file, or of a directory (its manifest digest, as the blob store addresses it).
    static func baseModelDigest(_ path: String, isDirectory: Bool) throws -> (sha256: String, size: Int64) {
        if isDirectory { return try FileBlobStore.address(of: path, directory: true) }
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        return (try SHA256.hashFile(path), size)
    }

    /// The record of `model` at `provider` (the API root, redacted): provider, model id, family, and the
    /// snapshot when the id pins one; stored in the blob store.
    func managedModelRef(model: String, provider: String) throws -> ManagedModelRef {
        let (family, snapshot) = ManagedModelID.split(model)
        var record: [String: JSONValue] = ["provider": .string(provider), "model": .string(model), "family": .string(family)]
        if let snapshot { record["snapshot"] = .string(snapshot) }
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-managed-ref-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("managed_model_ref.json")
        try Data(try JSONValue.object(record).canonicalJSON().utf8).write(to: file)
        return ManagedModelRef(name: ManagedModelID.artifactName(model), blob: try blobs.ingest(file), record: record,
                               family: family, snapshot: snapshot)
    }

    /// The `managed-model` artifact of `m`: the version of its name with the same content, else a new version.
    func managedModelArtifact(_ db: any SQLConnection, _ m: ManagedModelRef, createdWith: String) throws -> Artifact {
        let name = try Self.freeName(db, m.name, kind: .managedModel, prefix: "managed/")
        if let r = try db.queryOne("SELECT \(Registry.columns) FROM artifacts WHERE name = ? AND sha256 = ? ORDER BY id LIMIT 1",
                                   [name, m.blob.sha256]) {
            return try Registry.decode(r)
        }
        // gc holds this same lock while deleting: once here, the blob cannot vanish before the commit.
        if !blobs.contains(m.blob) { throw TuneError(.conflict, "managed model \(m.name): its record left the blob store; try again") }
        let gov = Governance(baseFamily: m.family, baseVersion: m.snapshot ?? "unpinned", license: nil, createdWith: createdWith)
        return try insert(db, kind: .managedModel, name: name, blob: m.blob, metadata: m.record, governance: gov, inputs: [:], run: nil)
    }

    /// A managed provider's model (trained on, or an `eval.reference`) as a `managed-model` artifact.
    public func managedModelArtifact(model: String, provider: String, createdWith: String) throws -> Artifact {
        let m = try managedModelRef(model: model, provider: provider)
        return try write { db in try managedModelArtifact(db, m, createdWith: createdWith) }
    }
}
