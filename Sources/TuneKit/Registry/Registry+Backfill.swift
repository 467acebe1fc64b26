// Registry+Backfill — what an upgraded registry learns about its past runs. Runs made before schema v5
// recorded no `base-model` artifact, so `tune artifacts exposure --base` could not see their datasets,
// adapters and merged models; managed adapters had no `managed-model` parent. The first open after the
// migration (schema v7 `backfills`) links each such output to its model where that can be known for sure:
//   • a base registered in `bases` (the output's own base family/version): its file, if it still has the
//     sha256 recorded at registration;
//   • else the run's `base:` path (the run's recorded pipeline, relative to its directory), if the file is
//     still there under the name the output recorded (`base_model`);
//   • a managed adapter (`backend: openai`): the provider's model from its own metadata.
// Anything else is left as it was and listed in the backfill's record, with the reason. Files are hashed
// before the write; the links, the new model artifacts, the exposure index and the record that the
// backfill ran are one transaction, re-checked inside it, so two processes upgrading at once do it once.

import Engine
import Foundation

/// What the base-model backfill did (stored as JSON in `backfills.detail`).
public struct BaseModelBackfill: Codable, Sendable, Equatable {
    /// Past outputs linked to their model (`NAME@VERSION → base NAME@VERSION`).
    public var linked: [String] = []
    /// Past outputs left unlinked, each with the reason.
    public var skipped: [String] = []
}

extension Registry {
    public static let baseModelBackfill = "base-models"

    /// Backfills this registry has not had yet (called on open, after the migration).
    func runPendingBackfills() throws {
        let done = try readStatement { db in
            try db.scalar(Int.self, "SELECT 1 FROM backfills WHERE name = ?", [Self.baseModelBackfill])
        }
        guard done == nil else { return }
        let r = try backfillBaseModels()
        if !r.linked.isEmpty || !r.skipped.isEmpty {   // said once, on the open that upgraded the registry
            var note = "tune: registry \(location) upgraded: \(r.linked.count) past outputs linked to the models they were made from"
            if !r.skipped.isEmpty { note += "; \(r.skipped.count) left unlinked (\(r.skipped.prefix(3).joined(separator: "; "))\(r.skipped.count > 3 ? "; …" : ""))" }
            FileHandle.standardError.write(Data((note + "\n").utf8))
        }
    }

    /// The record of a backfill that ran, nil when it has not.
    public func backfill(_ name: String = baseModelBackfill) throws -> BaseModelBackfill? {
        guard let text = try read({ db in try db.scalar(String.self, "SELECT detail FROM backfills WHERE name = ?", [name]) }) else { return nil }
        return try JSONValue.decoder.decode(BaseModelBackfill.self, from: Data(text.utf8))
    }

    /// One past output and the model it gets as a parent.
    private struct Link {
        var child: Artifact
        var role: String
        var model: Model
        enum Model {
            case base(path: String, info: BaseModelInfo, sha256: String, size: Int64, family: String?, version: String?, license: String?)
            case managed(ManagedModelRef)
        }
    }

    /// Links past runs' outputs to `base-model` / `managed-model` artifacts (see the file comment).
    @discardableResult
    func backfillBaseModels() throws -> BaseModelBackfill {
        // Outputs of prepare/train/merge stages with no model parent, each with its stage and run's pipeline.
        let rows: [(id: ArtifactID, stage: String, config: String)] = try read { db in
            try db.query("""
                SELECT DISTINCT a.id, sr.stage, r.config FROM stage_outputs so
                JOIN stage_runs sr ON sr.id = so.stage_run_id
                JOIN runs r ON r.id = sr.run_id
                JOIN artifacts a ON a.id = so.artifact_id
                WHERE sr.stage IN ('prepare', 'train', 'merge') AND a.kind IN ('dataset', 'adapter', 'merged-model')
                  AND NOT EXISTS (SELECT 1 FROM lineage l JOIN artifacts p ON p.id = l.parent_id
                                  WHERE l.child_id = a.id AND p.kind IN ('base-model', 'managed-model'))
                ORDER BY a.id
                """, []).map { (ArtifactID(try $0[0] as Int64), try $0[1] as String, try $0[2] as String) }
        }
        var result = BaseModelBackfill()
        var links: [Link] = []
        var digests: [String: (String, Int64)] = [:]
        var seen = Set<ArtifactID>()
        for row in rows where seen.insert(row.id).inserted {
            let a = try artifact(row.id)
            let role = row.stage == "prepare" ? "tokenizer" : "base"
            do {
                if let model = try pastModel(of: a, runConfig: row.config, digests: &digests) {
                    links.append(Link(child: a, role: role, model: model))
                }
            } catch let e as TuneError {
                result.skipped.append("\(a.ref): \(e.message)")
            }
        }
        return try write { db in
            if try db.scalar(Int.self, "SELECT 1 FROM backfills WHERE name = ?", [Self.baseModelBackfill]) != nil {
                return try backfill() ?? result   // another process did it meanwhile
            }
            for link in links {
                let model = try modelArtifact(db, link.model)
                try db.execute("INSERT INTO lineage (parent_id, child_id, role) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                               [model.id.rawValue, link.child.id.rawValue, link.role])
                // The exposure index: the child and everything made from it are now exposed to the model's base.
                if let f = model.governance.baseFamily, let v = model.governance.baseVersion {
                    try db.execute("""
                        INSERT INTO artifact_bases (base_family, base_version, artifact_id, direct)
                        WITH RECURSIVE d(id) AS (SELECT CAST(? AS BIGINT) UNION SELECT l.child_id FROM lineage l JOIN d ON l.parent_id = d.id)
                        SELECT ?, ?, id, 0 FROM d WHERE true
                        ON CONFLICT DO NOTHING
                        """, [link.child.id.rawValue, f, v])
                }
                result.linked.append("\(link.child.ref) → \(model.kind.rawValue) \(model.ref)")
            }
            try db.execute("INSERT INTO backfills (name, done_at, detail) VALUES (?, ?, ?)",
                           [Self.baseModelBackfill, Timestamp.now(), try JSONValue.canonicalText(result)])
            return result
        }
    }

    /// The model a past output was made from, as far as the registry and the files still on disk show;
    /// nil for an output with no model to find (a dataset of a managed run). Throws (with the reason) to skip it.
    private func pastModel(of a: Artifact, runConfig: String, digests: inout [String: (String, Int64)]) throws -> Link.Model? {
        func string(_ key: String) -> String? { if case .string(let v)? = a.metadata[key], !v.isEmpty { v } else { nil } }
        if a.kind == .adapter, a.metadata["backend"] == .string("openai") {
            guard let model = string("model"), let provider = string("base_url") else {
                throw TuneError(.notFound, "managed adapter without model/base_url metadata")
            }
            return .managed(try managedModelRef(model: model, provider: provider))
        }
        func digest(_ path: String, _ isDir: Bool) throws -> (String, Int64) {
            if let d = digests[path] { return d }
            let d = try Registry.baseModelDigest(path, isDirectory: isDir)
            digests[path] = d
            return d
        }
        func exists(_ path: String) -> Bool? {
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) ? isDir.boolValue : nil
        }
        // A registered base (`base: FAMILY@VERSION` runs record its family and version on their outputs).
        if let f = a.governance.baseFamily, let v = a.governance.baseVersion, let b = try? base(family: f, version: v) {
            guard let isDir = exists(b.path) else { throw TuneError(.notFound, "base \(f)@\(v): \(b.path) is gone") }
            let (sha, size) = try digest(b.path, isDir)
            guard sha == b.sha256 else { throw TuneError(.conflict, "base \(f)@\(v): \(b.path) changed since it was registered") }
            return .base(path: b.path, info: BaseModelInfo.read(b.path, isDirectory: isDir), sha256: sha, size: size,
                         family: f, version: v, license: b.license)
        }
        // Else the run's `base:` path.
        guard case .object(let cfg)? = try? JSONValue.decoder.decode(JSONValue.self, from: Data(runConfig.utf8)),
              case .string(let base)? = cfg["base"], !base.isEmpty else {
            throw TuneError(.notFound, "its run recorded no base")
        }
        guard case .string(let dir)? = cfg["baseDirectory"] else { throw TuneError(.notFound, "its run recorded no pipeline directory") }
        let path = base.hasPrefix("/") ? base : URL(fileURLWithPath: dir).appendingPathComponent(base).standardized.path
        guard let isDir = exists(path) else { throw TuneError(.notFound, "base \(path) is gone") }
        if let recorded = string("base_model"), recorded != (path as NSString).lastPathComponent {
            throw TuneError(.conflict, "it records base \(recorded), the run's base is now \(path)")
        }
        let (sha, size) = try digest(path, isDir)
        return .base(path: path, info: BaseModelInfo.read(path, isDirectory: isDir), sha256: sha, size: size,
                     family: nil, version: nil, license: nil)
    }

    /// The model artifact of a link inside the write transaction: found by content, else registered.
    private func modelArtifact(_ db: any SQLConnection, _ model: Link.Model) throws -> Artifact {
        let createdWith = "tune \(TuneKitInfo.version) registry backfill"
        switch model {
        case let .base(path, info, sha, size, family, version, license):
            return try baseModelArtifact(db, path: path, info: info, sha256: sha, size: size, family: family, version: version,
                                         license: license, fallbackLicense: nil, createdWith: createdWith)
        case .managed(let m):
            return try managedModelArtifact(db, m, createdWith: createdWith)
        }
    }
}
