// Registry — the artifact registry: a SQL database for records (SQLite through GRDB, or PostgreSQL
// through libpq; see SQL/), a BlobStore for content.
// This file: opening, registering, resolving and listing. Aliases, lineage, runs and maintenance
// live in Registry+*.swift.
//
// ```swift
// let reg = try Registry.open(path: ".tune/registry.sqlite", blobRoot: "adapters")
// let data = try reg.register(NewArtifact(kind: .dataset, name: "chat", source: jsonl))
// let lora = try reg.register(NewArtifact(kind: .adapter, name: "chat-lora", source: adapterDir,
//                                         governance: Governance(baseFamily: "SmolLM2-135M", baseVersion: "1")),
//                             inputs: [data.id: "train-data"])
// try reg.setAlias("production", to: lora.id)
// let live = try reg.resolve("chat-lora@production")
// let exposed = try reg.exposure(base: BaseRef(family: "SmolLM2-135M", version: "1"))
// ```

import Foundation

/// An artifact registry. Safe to share between threads; several processes may use one registry at once
/// (writers are serialized — SQLite: IMMEDIATE transactions with a busy timeout; PostgreSQL: an
/// advisory lock — and every write is one transaction).
public final class Registry: Sendable {
    /// The SQLite file or the PostgreSQL URL, as given (a URL may hold a password: print `location`).
    public let path: String
    /// `path` safe to print (a URL's password redacted).
    public var location: String { database.location }
    /// Where artifact content lives.
    public let blobs: any BlobStore
    /// The records.
    public let database: any SQLDatabase

    /// Default locations, relative to the current directory.
    public static let defaultPath = ".tune/registry.sqlite"
    public static let defaultBlobRoot = "adapters"

    /// Opens (creating and migrating if needed) the registry at `path` (a file path or a `postgres://`
    /// URL) with blobs under `blobRoot`.
    public static func open(path: String = defaultPath, blobRoot: String = defaultBlobRoot) throws -> Registry {
        try Registry(path: path, blobs: FileBlobStore(root: blobRoot))
    }

    /// Opens the registry at `path` (a file path or a `postgres://` URL) with any blob store.
    /// - Parameter busyTimeout: how long an SQLite write waits for another process's write to finish.
    public init(path: String, blobs: any BlobStore, busyTimeout: TimeInterval = 30) throws {
        self.path = path
        self.blobs = blobs
        database = try RegistryLocation.open(path, busyTimeout: busyTimeout)
        try runPendingBackfills()   // once per registry, after an upgrade's migration (Registry+Backfill.swift)
    }

    // MARK: - Database access

    /// Runs `body` in one write transaction; writers are serialized (the lock is taken up front, so a
    /// read followed by a write inside `body` cannot interleave with another writer).
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T { try database.write(body) }

    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T { try database.read(body) }

    /// A read outside an explicit transaction, for lookups that are one SELECT on the success path (a single
    /// statement sees one consistent snapshot by itself); saves the BEGIN/COMMIT round trip on hot paths.
    func readStatement<T>(_ body: (any SQLConnection) throws -> T) throws -> T { try database.readStatement(body) }

    // MARK: - Registering

    /// Stores `new.source` in the blob store, then records the artifact, its lineage edges and its run in
    /// one transaction. The version is the name's highest version + 1, assigned inside that transaction.
    /// A crash before the commit leaves at most an unreferenced blob (removed by `gc`).
    /// - Parameters:
    ///   - inputs: parent artifacts and the role each played (`train-data`, `base`, `adapter`…).
    ///   - run: the pipeline run that produced it.
    public func register(_ new: NewArtifact, inputs: [ArtifactID: String] = [:], run: RunID? = nil) throws -> Artifact {
        try ArtifactRef.validateName(new.name)
        let blob = try blobs.ingest(new.source)
        FaultPoint.hit("registry.after-blob")
        return try write { db in
            // gc holds this same lock while deleting, so once we have it the blob cannot vanish before commit.
            if !blobs.contains(blob) {
                guard try blobs.ingest(new.source) == blob else {
                    throw TuneError(.conflict, "\(new.source.path): content changed while it was being registered")
                }
            }
            let a = try insert(db, kind: new.kind, name: new.name, blob: blob, metadata: new.metadata,
                               governance: new.governance, inputs: inputs, run: run)
            FaultPoint.hit("registry.before-commit")
            return a
        }
    }

    /// Inserts one artifact row and its lineage edges; the caller holds a write transaction.
    /// Data governance (where the training data came from, its terms, the per-file `data` metadata) is
    /// inherited from the inputs when the new artifact does not state its own, so it reaches every
    /// descendant (adapter, merged model, eval report, registered version).
    /// - Parameter uri: where the content is, for a `reference` blob (`file:///…`); default the store's address.
    func insert(_ db: any SQLConnection, kind: ArtifactKind, name: String, blob: Blob, metadata: [String: JSONValue],
                governance: Governance, inputs: [ArtifactID: String], run: RunID?, uri: String? = nil) throws -> Artifact {
        var metadata = metadata
        let last = try db.queryOne("SELECT kind, version FROM artifacts WHERE name = ? ORDER BY version DESC LIMIT 1", [name])
        if let last, let k: String = try last["kind"], k != kind.rawValue {
            throw TuneError(.conflict, "'\(name)' is registered as \(k); cannot add a version of kind \(kind.rawValue)")
        }
        let version = (try last.map { try $0["version"] as Int } ?? 0) + 1
        var gov = governance
        if gov.baseFamily == nil, gov.baseVersion == nil {
            if kind == .baseModel {
                (gov.baseFamily, gov.baseVersion) = (name, "\(version)")
            } else if case let ids = inputs.filter({ $0.value != "reference" }).keys.map(\.rawValue), !ids.isEmpty {
                // A model compared with (role `reference`) is not what this artifact was made from.
                let bases = try db.query("""
                    SELECT DISTINCT base_family, base_version FROM artifacts
                    WHERE id IN (\(sqlPlaceholders(ids.count))) AND base_family IS NOT NULL
                    """, ids.map { $0 as (any SQLBindable)? })
                if bases.count == 1 { (gov.baseFamily, gov.baseVersion) = (try bases[0][0], try bases[0][1]) }
            }
        }
        if !inputs.isEmpty, gov.datasetSource == nil || gov.dataTerms == nil || metadata["data"] == nil {
            let ids = inputs.keys.map(\.rawValue).sorted()
            let rows = try db.query("SELECT dataset_source, data_terms, metadata FROM artifacts WHERE id IN (\(sqlPlaceholders(ids.count))) ORDER BY id",
                                    ids.map { $0 as (any SQLBindable)? })
            var sources: [String] = [], terms: [String] = [], data: [JSONValue] = []
            for r in rows {
                if let v: String = try r[0], !sources.contains(v) { sources.append(v) }
                if let v: String = try r[1], !terms.contains(v) { terms.append(v) }
                let text: String = try r[2]
                if text.contains("\"data\""), let m = try? JSONValue.decoder.decode([String: JSONValue].self, from: Data(text.utf8)),
                   case .array(let items)? = m["data"] {
                    for i in items where !data.contains(i) { data.append(i) }
                }
            }
            if gov.datasetSource == nil, !sources.isEmpty { gov.datasetSource = sources.joined(separator: "; ") }
            if gov.dataTerms == nil, !terms.isEmpty { gov.dataTerms = terms.joined(separator: "; ") }
            if metadata["data"] == nil, !data.isEmpty { metadata["data"] = .array(data) }
        }
        if let run, try db.scalar(Int.self, "SELECT 1 FROM runs WHERE id = ?", [run.rawValue]) == nil {
            throw TuneError(.notFound, "registering '\(name)': no run \(run)")
        }
        let createdAt = Timestamp.now()
        let meta = try JSONValue.canonicalText(metadata)
        guard let rowID = try db.insertReturningID("""
            INSERT INTO artifacts (kind, name, version, sha256, size, layout, uri, metadata, base_family, base_version,
                license, dataset_source, data_terms, created_by, created_with, run_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
            """, [kind.rawValue, name, version, blob.sha256, blob.size, blob.layout.rawValue, uri ?? blob.uri, meta,
                  gov.baseFamily, gov.baseVersion, gov.license, gov.datasetSource, gov.dataTerms,
                  gov.createdBy, gov.createdWith, run?.rawValue, createdAt]) else {
            throw TuneError(.internal, "registering '\(name)': INSERT returned no id")
        }
        let id = ArtifactID(rowID)
        for (parent, role) in inputs.sorted(by: { $0.key < $1.key }) {
            guard try db.scalar(Int.self, "SELECT 1 FROM artifacts WHERE id = ?", [parent.rawValue]) != nil else {
                throw TuneError(.notFound, "registering '\(name)': input artifact \(parent) does not exist")
            }
            try db.execute("INSERT INTO lineage (parent_id, child_id, role) VALUES (?, ?, ?)", [parent.rawValue, id.rawValue, role])
        }
        // Exposure index (schema v2): the artifact's own base, then every base its inputs are exposed to.
        if let family = gov.baseFamily, let version = gov.baseVersion {
            try db.execute("INSERT INTO artifact_bases (base_family, base_version, artifact_id, direct) VALUES (?, ?, ?, 1)",
                           [family, version, id.rawValue])
        }
        if !inputs.isEmpty {
            let parents = inputs.keys.map(\.rawValue)
            try db.execute("""
                INSERT INTO artifact_bases (base_family, base_version, artifact_id, direct)
                SELECT DISTINCT base_family, base_version, CAST(? AS BIGINT), 0 FROM artifact_bases
                WHERE artifact_id IN (\(sqlPlaceholders(parents.count)))
                ON CONFLICT DO NOTHING
                """, ([id.rawValue] + parents).map { $0 as (any SQLBindable)? })
        }
        return Artifact(id: id, kind: kind, name: name, version: version, sha256: blob.sha256, size: blob.size,
                        layout: blob.layout, uri: uri ?? blob.uri, metadata: metadata, governance: gov, runID: run,
                        createdAt: createdAt)
    }

    // MARK: - Resolving

    static let columns = """
        id, kind, name, version, sha256, size, layout, uri, metadata, base_family, base_version, license,
        dataset_source, data_terms, created_by, created_with, run_id, created_at
        """

    /// Decodes a row of `columns` by position (name lookups cost a lowercased copy per column per row).
    static func decode(_ row: SQLRow) throws -> Artifact {
        let kindText: String = try row[1]
        guard let kind = ArtifactKind(rawValue: kindText) else {
            throw TuneError(.database, "artifact \(try row[0] as Int64): unknown kind '\(kindText)'")
        }
        let metaText: String = try row[8]
        let meta = metaText == "{}" ? [:] : (try? JSONValue.decoder.decode([String: JSONValue].self, from: Data(metaText.utf8))) ?? [:]
        return try Artifact(
            id: ArtifactID(row[0] as Int64), kind: kind, name: row[2], version: row[3], sha256: row[4],
            size: row[5], layout: BlobLayout(rawValue: row[6]) ?? .file, uri: row[7], metadata: meta,
            governance: Governance(baseFamily: row[9], baseVersion: row[10], license: row[11],
                                   datasetSource: row[12], dataTerms: row[13], createdBy: row[14], createdWith: row[15]),
            runID: (row[16] as Int64?).map { RunID($0) }, createdAt: row[17])
    }

    /// Parses and resolves a reference (`NAME`, `NAME@7`, `NAME@latest`, `NAME@production`, `sha256:…`).
    public func resolve(_ text: String) throws -> Artifact { try resolve(ArtifactRef(parsing: text)) }

    /// The artifact a reference points at; `notFound` says what exists instead.
    public func resolve(_ ref: ArtifactRef) throws -> Artifact {
        try readStatement { db in try resolve(db, ref) }
    }

    func resolve(_ db: any SQLConnection, _ ref: ArtifactRef) throws -> Artifact {
        let c = Registry.columns
        switch ref {
        case .latest(let name):
            if let r = try db.queryOne("SELECT \(c) FROM artifacts WHERE name = ? ORDER BY version DESC LIMIT 1", [name]) {
                return try Registry.decode(r)
            }
            throw TuneError(.notFound, "no artifact named '\(name)'")
        case .version(let name, let v):
            if let r = try db.queryOne("SELECT \(c) FROM artifacts WHERE name = ? AND version = ?", [name, v]) {
                return try Registry.decode(r)
            }
            guard let latest = try db.scalar(Int.self, "SELECT max(version) FROM artifacts WHERE name = ?", [name]) else {
                throw TuneError(.notFound, "no artifact named '\(name)'")
            }
            throw TuneError(.notFound, "no artifact '\(name)@\(v)' (latest version is \(latest))")
        case .alias(let name, let alias):
            if let r = try db.queryOne("""
                SELECT \(c) FROM artifacts WHERE id = (SELECT artifact_id FROM aliases WHERE name = ? AND alias = ?)
                """, [name, alias]) { return try Registry.decode(r) }
            guard try db.scalar(Int.self, "SELECT 1 FROM artifacts WHERE name = ? LIMIT 1", [name]) != nil else {
                throw TuneError(.notFound, "no artifact named '\(name)'")
            }
            let have = try db.column(String.self, "SELECT alias FROM aliases WHERE name = ? ORDER BY alias", [name])
            throw TuneError(.notFound, "no alias '\(alias)' on '\(name)' (\(have.isEmpty ? "it has no aliases" : "aliases: " + have.joined(separator: ", ")))")
        case .digest(let prefix):
            let rows = try db.query("SELECT \(c) FROM artifacts WHERE sha256 >= ? AND sha256 < ? ORDER BY id LIMIT 4",
                                    [prefix, prefix + "g"])
            if rows.count == 1 { return try Registry.decode(rows[0]) }
            if rows.isEmpty { throw TuneError(.notFound, "no artifact with sha256:\(prefix)") }
            let names = try rows.map { try Registry.decode($0).ref }
            throw TuneError(.invalidArgument,
                            "sha256:\(prefix) matches \(rows.count == 4 ? "4 or more" : "\(rows.count)") artifacts (\(names.joined(separator: ", "))); use NAME@VERSION or a longer prefix")
        }
    }

    /// The artifact with row id `id`.
    public func artifact(_ id: ArtifactID) throws -> Artifact {
        try read { db in try artifact(db, id) }
    }

    func artifact(_ db: any SQLConnection, _ id: ArtifactID) throws -> Artifact {
        guard let r = try db.queryOne("SELECT \(Registry.columns) FROM artifacts WHERE id = ?", [id.rawValue]) else {
            throw TuneError(.notFound, "no artifact with id \(id)")
        }
        return try Registry.decode(r)
    }

    // MARK: - Listing

    /// Artifacts ordered by name then version, optionally filtered.
    /// - Parameters:
    ///   - name: only this name; `kind`: only this kind; `latestOnly`: only each name's highest version.
    public func list(name: String? = nil, kind: ArtifactKind? = nil, latestOnly: Bool = false, limit: Int? = nil) throws -> [Artifact] {
        var clauses: [String] = []
        var args: SQLArguments = []
        if let name { clauses.append("name = ?"); args.append(name) }
        if let kind { clauses.append("kind = ?"); args.append(kind.rawValue) }
        if latestOnly { clauses.append("version = (SELECT max(version) FROM artifacts b WHERE b.name = artifacts.name)") }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let limitSQL = limit.map { " LIMIT \(max(0, $0))" } ?? ""
        return try read { db in
            try db.query("SELECT \(Registry.columns) FROM artifacts \(whereSQL) ORDER BY name, version\(limitSQL)", args)
                .map(Registry.decode)
        }
    }
}
