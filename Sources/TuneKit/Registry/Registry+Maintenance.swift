// Registry+Maintenance — keeping content honest: verify (re-hash blobs), gc (remove unreferenced blobs
// and stale temporaries), export (copy content out, verified) and path.

import Foundation

/// The outcome of re-hashing one artifact's content.
public struct VerifyResult: Codable, Hashable, Sendable {
    public enum Status: String, Codable, Sendable { case ok, missing, mismatch }
    public var artifact: String
    public var id: ArtifactID
    public var sha256: String
    public var status: Status
    /// What the content hashes to now, on a mismatch.
    public var actual: String?
}

/// What gc removed (or, with dry run, would remove).
public struct GCReport: Codable, Sendable {
    public struct Removed: Codable, Hashable, Sendable {
        public var sha256: String
        public var size: Int64
        public var layout: BlobLayout
    }
    public var dryRun: Bool
    public var blobs: [Removed]
    /// Leftovers of interrupted writes (`tmp/…`).
    public var temporaries: [String]
    public var bytes: Int64

    enum CodingKeys: String, CodingKey { case dryRun = "dry_run", blobs, temporaries, bytes }
}

extension Registry {
    /// The blob address of an artifact.
    public func blob(of a: Artifact) -> Blob { Blob(sha256: a.sha256, size: a.size, layout: a.layout) }

    /// Filesystem path of an artifact's content (nil for stores without paths).
    /// For a `reference` artifact (a base model recorded where it is), the referenced path.
    public func path(of a: Artifact) -> String? {
        if a.layout == .reference { return Registry.referencedPath(a) }
        return blobs.path(of: blob(of: a))
    }

    /// The path of a `reference` artifact's `file://` uri.
    static func referencedPath(_ a: Artifact) -> String? {
        a.uri.hasPrefix("file://") ? String(a.uri.dropFirst(7)) : nil
    }

    /// Re-hashes a referenced file or directory where it is.
    func checkReference(_ a: Artifact) throws -> BlobCheck {
        guard let p = Registry.referencedPath(a) else { return .missing }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { return .missing }
        let actual = try FileBlobStore.address(of: p, directory: isDir.boolValue).sha256
        return actual == a.sha256 ? .ok : .mismatch(actual: actual)
    }

    // MARK: - Verify

    /// Re-hashes the content of the given artifacts (all when nil); each distinct blob is hashed once.
    public func verify(_ ids: [ArtifactID]? = nil) throws -> [VerifyResult] {
        let artifacts = try ids.map { try $0.map(artifact) } ?? list()
        var checked: [String: BlobCheck] = [:]
        return try artifacts.map { a in
            let result = try checked[a.sha256] ?? (a.layout == .reference ? checkReference(a) : blobs.check(blob(of: a)))
            checked[a.sha256] = result
            switch result {
            case .ok: return VerifyResult(artifact: a.ref, id: a.id, sha256: a.sha256, status: .ok)
            case .missing: return VerifyResult(artifact: a.ref, id: a.id, sha256: a.sha256, status: .missing)
            case .mismatch(let actual):
                return VerifyResult(artifact: a.ref, id: a.id, sha256: a.sha256, status: .mismatch, actual: actual)
            }
        }
    }

    // MARK: - GC

    /// Removes blobs no artifact references, and temporaries older than `temporaryGrace` seconds (an
    /// in-flight write's temporary is younger). Runs under the registry's write lock, so a registration
    /// cannot commit a reference to a blob while it is being removed. With `dryRun`, removes nothing.
    public func gc(dryRun: Bool = false, temporaryGrace: TimeInterval = 3600) throws -> GCReport {
        let body = { (db: any SQLConnection) throws -> GCReport in
            let referenced = Set(try db.column(String.self, "SELECT DISTINCT sha256 FROM artifacts"))
            let garbage = try self.blobs.storedBlobs().filter { !referenced.contains($0.sha256) }
            let temps = try self.blobs.staleTemporaries(olderThan: temporaryGrace)
            if !dryRun {
                for b in garbage { try self.blobs.remove(b.sha256) }
                for t in temps { try self.blobs.removeTemporary(t) }
            }
            return GCReport(dryRun: dryRun, blobs: garbage.map { .init(sha256: $0.sha256, size: $0.size, layout: $0.layout) },
                            temporaries: temps, bytes: garbage.reduce(0) { $0 + $1.size })
        }
        return dryRun ? try read(body) : try write(body)
    }

    // MARK: - Export

    /// Copies an artifact's content to `destination` (a new file or directory), verifying its hash.
    public func export(_ a: Artifact, to destination: URL) throws {
        if a.layout == .reference {
            guard let p = Registry.referencedPath(a), try checkReference(a) == .ok else {
                throw TuneError(.integrity, "\(a.ref): the referenced content at \(a.uri) is missing or no longer hashes to \(a.sha256)")
            }
            try FileManager.default.copyItem(atPath: p, toPath: destination.path)
            return
        }
        try blobs.export(blob(of: a), to: destination)
    }
}
