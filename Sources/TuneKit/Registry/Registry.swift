// Registry — the artifact registry: SQLite (WAL, through GRDB) for records, a BlobStore for content.
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
import GRDB

/// An artifact registry. Safe to share between threads; several processes may use one registry at once
/// (SQLite WAL with a busy timeout serializes writers; every write is one transaction).
public final class Registry: Sendable {
    /// The SQLite file.
    public let path: String
    /// Where artifact content lives.
    public let blobs: any BlobStore
    let pool: DatabasePool

    /// Default locations, relative to the current directory.
    public static let defaultPath = ".tune/registry.sqlite"
    public static let defaultBlobRoot = "adapters"

    /// Opens (creating and migrating if needed) the registry at `path` with blobs under `blobRoot`.
    public static func open(path: String = defaultPath, blobRoot: String = defaultBlobRoot) throws -> Registry {
        try Registry(path: path, blobs: FileBlobStore(root: blobRoot))
    }

    /// Opens the registry at `path` with any blob store.
    /// - Parameter busyTimeout: how long a write waits for another process's write to finish.
    public init(path: String, blobs: any BlobStore, busyTimeout: TimeInterval = 30) throws {
        self.path = path
        self.blobs = blobs
        try AtomicFile.makeDirectory(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try pool.writeWithoutTransaction { db in try Schema.migrate(db, path: path) }
        } catch {
            throw Registry.wrap(error, path)
        }
    }

    // MARK: - Database access

    /// Runs `body` in one IMMEDIATE write transaction (the lock is taken up front, so writers queue on
    /// the busy timeout instead of failing on upgrade).
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try pool.writeWithoutTransaction { db in
                var out: T?
                try db.inTransaction(.immediate) {
                    out = try body(db)
                    return .commit
                }
                return out!
            }
        } catch { throw Registry.wrap(error, path) }
    }

    func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch { throw Registry.wrap(error, path) }
    }

    /// A read outside an explicit transaction, for lookups that are one SELECT on the success path (a single
    /// statement sees one consistent snapshot by itself); saves the BEGIN/COMMIT round trip on hot paths.
    func readStatement<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.unsafeRead(body) } catch { throw Registry.wrap(error, path) }
    }

    static func wrap(_ error: any Error, _ path: String) -> any Error {
        guard let e = error as? DatabaseError else { return error }
        if e.resultCode == .SQLITE_BUSY || e.resultCode == .SQLITE_LOCKED {
            return TuneError(.database, "\(path): registry is locked by another process; try again")
        }
        return TuneError(.database, "\(path): \(e.message ?? "\(e.resultCode)")")
    }

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
    func insert(_ db: Database, kind: ArtifactKind, name: String, blob: Blob, metadata: [String: JSONValue],
                governance: Governance, inputs: [ArtifactID: String], run: RunID?) throws -> Artifact {
        let last = try Row.fetchOne(db, sql: "SELECT kind, version FROM artifacts WHERE name = ? ORDER BY version DESC LIMIT 1",
                                    arguments: [name])
        if let last, let k: String = last["kind"], k != kind.rawValue {
            throw TuneError(.conflict, "'\(name)' is registered as \(k); cannot add a version of kind \(kind.rawValue)")
        }
        let version = (last?["version"] as Int? ?? 0) + 1
        var gov = governance
        if gov.baseFamily == nil, gov.baseVersion == nil {
            if kind == .baseModel {
                (gov.baseFamily, gov.baseVersion) = (name, "\(version)")
            } else if !inputs.isEmpty {
                let ids = inputs.keys.map(\.rawValue)
                let bases = try Row.fetchAll(db, sql: """
                    SELECT DISTINCT base_family, base_version FROM artifacts
                    WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ","))) AND base_family IS NOT NULL
                    """, arguments: StatementArguments(ids))
                if bases.count == 1 { (gov.baseFamily, gov.baseVersion) = (bases[0][0], bases[0][1]) }
            }
        }
        if let run, try Int.fetchOne(db, sql: "SELECT 1 FROM runs WHERE id = ?", arguments: [run.rawValue]) == nil {
            throw TuneError(.notFound, "registering '\(name)': no run \(run)")
        }
        let createdAt = Timestamp.now()
        let meta = try JSONValue.canonicalText(metadata)
        try db.execute(sql: """
            INSERT INTO artifacts (kind, name, version, sha256, size, layout, uri, metadata, base_family, base_version,
                license, dataset_source, data_terms, created_by, created_with, run_id, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [kind.rawValue, name, version, blob.sha256, blob.size, blob.layout.rawValue, blob.uri, meta,
                             gov.baseFamily, gov.baseVersion, gov.license, gov.datasetSource, gov.dataTerms,
                             gov.createdBy, gov.createdWith, run?.rawValue, createdAt])
        let id = ArtifactID(db.lastInsertedRowID)
        for (parent, role) in inputs.sorted(by: { $0.key < $1.key }) {
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM artifacts WHERE id = ?", arguments: [parent.rawValue]) != nil else {
                throw TuneError(.notFound, "registering '\(name)': input artifact \(parent) does not exist")
            }
            try db.execute(sql: "INSERT INTO lineage (parent_id, child_id, role) VALUES (?, ?, ?)",
                           arguments: [parent.rawValue, id.rawValue, role])
        }
        // Exposure index (schema v2): the artifact's own base, then every base its inputs are exposed to.
        if let family = gov.baseFamily, let version = gov.baseVersion {
            try db.execute(sql: "INSERT INTO artifact_bases (base_family, base_version, artifact_id, direct) VALUES (?, ?, ?, 1)",
                           arguments: [family, version, id.rawValue])
        }
        if !inputs.isEmpty {
            let parents = inputs.keys.map(\.rawValue)
            try db.execute(sql: """
                INSERT OR IGNORE INTO artifact_bases (base_family, base_version, artifact_id, direct)
                SELECT DISTINCT base_family, base_version, ?, 0 FROM artifact_bases
                WHERE artifact_id IN (\(parents.map { _ in "?" }.joined(separator: ",")))
                """, arguments: StatementArguments([id.rawValue] + parents))
        }
        return Artifact(id: id, kind: kind, name: name, version: version, sha256: blob.sha256, size: blob.size,
                        layout: blob.layout, uri: blob.uri, metadata: metadata, governance: gov, runID: run,
                        createdAt: createdAt)
    }

    // MARK: - Resolving

    static let columns = """
        id, kind, name, version, sha256, size, layout, uri, metadata, base_family, base_version, license,
        dataset_source, data_terms, created_by, created_with, run_id, created_at
        """

    /// Decodes a row of `columns` by position (name lookups cost a lowercased copy per column per row).
    static func decode(_ row: Row) throws -> Artifact {
        let kindText: String = row[1]
        guard let kind = ArtifactKind(rawValue: kindText) else {
            throw TuneError(.database, "artifact \(row[0] as Int64): unknown kind '\(kindText)'")
        }
        let metaText: String = row[8]
        let meta = metaText == "{}" ? [:] : (try? JSONValue.decoder.decode([String: JSONValue].self, from: Data(metaText.utf8))) ?? [:]
        return Artifact(
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

    func resolve(_ db: Database, _ ref: ArtifactRef) throws -> Artifact {
        let c = Registry.columns
        switch ref {
        case .latest(let name):
            if let r = try Row.fetchOne(db.cachedStatement(sql: "SELECT \(c) FROM artifacts WHERE name = ? ORDER BY version DESC LIMIT 1"),
                                        arguments: [name]) { return try Registry.decode(r) }
            throw TuneError(.notFound, "no artifact named '\(name)'")
        case .version(let name, let v):
            if let r = try Row.fetchOne(db.cachedStatement(sql: "SELECT \(c) FROM artifacts WHERE name = ? AND version = ?"),
                                        arguments: [name, v]) { return try Registry.decode(r) }
            guard let latest = try Int.fetchOne(db, sql: "SELECT max(version) FROM artifacts WHERE name = ?", arguments: [name]) else {
                throw TuneError(.notFound, "no artifact named '\(name)'")
            }
            throw TuneError(.notFound, "no artifact '\(name)@\(v)' (latest version is \(latest))")
        case .alias(let name, let alias):
            if let r = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT \(c) FROM artifacts WHERE id = (SELECT artifact_id FROM aliases WHERE name = ? AND alias = ?)
                """), arguments: [name, alias]) { return try Registry.decode(r) }
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM artifacts WHERE name = ? LIMIT 1", arguments: [name]) != nil else {
                throw TuneError(.notFound, "no artifact named '\(name)'")
            }
            let have = try String.fetchAll(db, sql: "SELECT alias FROM aliases WHERE name = ? ORDER BY alias", arguments: [name])
            throw TuneError(.notFound, "no alias '\(alias)' on '\(name)' (\(have.isEmpty ? "it has no aliases" : "aliases: " + have.joined(separator: ", ")))")
        case .digest(let prefix):
            let rows = try Row.fetchAll(db, sql: "SELECT \(c) FROM artifacts WHERE sha256 >= ? AND sha256 < ? ORDER BY id LIMIT 4",
                                        arguments: [prefix, prefix + "g"])
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

    func artifact(_ db: Database, _ id: ArtifactID) throws -> Artifact {
        guard let r = try Row.fetchOne(db.cachedStatement(sql: "SELECT \(Registry.columns) FROM artifacts WHERE id = ?"),
                                       arguments: [id.rawValue]) else {
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
        var args: [any DatabaseValueConvertible] = []
        if let name { clauses.append("name = ?"); args.append(name) }
        if let kind { clauses.append("kind = ?"); args.append(kind.rawValue) }
        if latestOnly { clauses.append("version = (SELECT max(version) FROM artifacts b WHERE b.name = artifacts.name)") }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        let limitSQL = limit.map { " LIMIT \(max(0, $0))" } ?? ""
        return try read { db in
            try Row.fetchAll(db, sql: "SELECT \(Registry.columns) FROM artifacts \(whereSQL) ORDER BY name, version\(limitSQL)",
                             arguments: StatementArguments(args)).map(Registry.decode)
        }
    }
}
