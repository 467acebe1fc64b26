// Registry+Bases — base model versions (schema v3 `bases`): FAMILY@VERSION → a model file referenced
// by absolute path and sha256 (a 100 MB base is not copied into the blob store; every job re-checks
// the hash before using it), its shape, and its governance fields. `latest` = the most recently
// registered version of the family. Registration policy (hashing, compatibility) is in Schedule/BaseCatalog.

import Foundation

/// One registered version of a base model family.
public struct BaseModel: Codable, Hashable, Sendable {
    public var family: String
    public var version: String
    /// Registration order within the family (1, 2, …).
    public var seq: Int
    public var path: String
    public var sha256: String
    public var size: Int64
    /// `gguf` or `huggingface`.
    public var format: String
    public var architecture: String
    public var hiddenSize: Int
    public var numLayers: Int
    public var vocabSize: Int
    public var license: String
    public var notes: String?
    public var createdBy: String
    public var createdAt: String

    public var ref: BaseRef { BaseRef(family: family, version: version) }

    enum CodingKeys: String, CodingKey {
        case family, version, seq, path, sha256, size, format, architecture, license, notes
        case hiddenSize = "hidden_size", numLayers = "num_layers", vocabSize = "vocab_size"
        case createdBy = "created_by", createdAt = "created_at"
    }
}

extension Registry {
    /// Records a new base version; its `seq` is assigned here (family's max + 1). A version that exists
    /// already is a conflict (versions are immutable: register a new one).
    func insertBase(_ db: any SQLConnection, _ b: BaseModel) throws -> BaseModel {
        if try db.scalar(Int.self, "SELECT 1 FROM bases WHERE family = ? AND version = ?", [b.family, b.version]) != nil {
            throw TuneError(.conflict, "base \(b.family)@\(b.version) is already registered; versions are immutable, register a new version")
        }
        var out = b
        out.seq = (try db.scalar(Int.self, "SELECT max(seq) FROM bases WHERE family = ?", [b.family]) ?? 0) + 1
        out.createdAt = Timestamp.now()
        try db.execute("""
            INSERT INTO bases (family, version, seq, path, sha256, size, format, architecture, hidden_size, num_layers,
                vocab_size, license, notes, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [out.family, out.version, out.seq, out.path, out.sha256, out.size, out.format, out.architecture,
                             out.hiddenSize, out.numLayers, out.vocabSize, out.license, out.notes, out.createdBy, out.createdAt])
        return out
    }

    /// Every base version, by family then registration order; optionally one family only.
    public func bases(family: String? = nil) throws -> [BaseModel] {
        try read { db in
            try db.query("SELECT * FROM bases \(family == nil ? "" : "WHERE family = ?") ORDER BY family, seq",
                         family.map { [$0 as (any SQLBindable)?] } ?? []).map(Registry.decodeBase)
        }
    }

    /// `FAMILY@VERSION`, or the family's latest when `version` is nil or `latest`.
    public func base(family: String, version: String?) throws -> BaseModel {
        try read { db in try base(db, family: family, version: version) }
    }

    func base(_ db: any SQLConnection, family: String, version: String?) throws -> BaseModel {
        let latest = version == nil || version == "latest"
        let row = latest
            ? try db.queryOne("SELECT * FROM bases WHERE family = ? ORDER BY seq DESC LIMIT 1", [family])
            : try db.queryOne("SELECT * FROM bases WHERE family = ? AND version = ?", [family, version])
        if let row { return try Registry.decodeBase(row) }
        let have = try db.column(String.self, "SELECT version FROM bases WHERE family = ? ORDER BY seq", [family])
        if have.isEmpty {
            throw TuneError(.notFound, "no base family '\(family)' is registered (add one with `tune base add \(family) --version V --model PATH --license L`)")
        }
        throw TuneError(.notFound, "no base \(family)@\(version!) (registered versions: \(have.joined(separator: ", ")))")
    }

    static func decodeBase(_ r: SQLRow) throws -> BaseModel {
        try BaseModel(family: r["family"], version: r["version"], seq: r["seq"], path: r["path"], sha256: r["sha256"], size: r["size"],
                  format: r["format"], architecture: r["architecture"], hiddenSize: r["hidden_size"], numLayers: r["num_layers"],
                  vocabSize: r["vocab_size"], license: r["license"], notes: r["notes"], createdBy: r["created_by"],
                  createdAt: r["created_at"])
    }
}
