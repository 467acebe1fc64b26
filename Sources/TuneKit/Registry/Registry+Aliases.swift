// Registry+Aliases — named pointers per artifact name (`staging`, `production`, anything), with history.
// Promoting `production` also moves `previous` to the old production version, so a rollback is
// `setAlias("production", to: resolve("NAME@previous").id)`.

/// An alias and what it points at.
public struct Alias: Codable, Hashable, Sendable {
    public var name: String
    public var alias: String
    public var version: Int
    public var artifactID: ArtifactID
    public var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case name, alias, version, artifactID = "artifact_id", updatedAt = "updated_at"
    }
}

/// One change of an alias, as recorded in `alias_history`.
public struct AliasChange: Codable, Hashable, Sendable {
    public var name: String
    public var alias: String
    /// The version it pointed at before, if any.
    public var fromVersion: Int?
    public var toVersion: Int
    public var changedBy: String
    public var changedAt: String

    enum CodingKeys: String, CodingKey {
        case name, alias, fromVersion = "from_version", toVersion = "to_version"
        case changedBy = "changed_by", changedAt = "changed_at"
    }
}

extension Registry {
    /// The alias `production` moves `previous` along with it.
    public static let productionAlias = "production"
    public static let previousAlias = "previous"

    /// Points `alias` of the artifact's name at the artifact, recording the change (and, for `production`,
    /// moving `previous` to the version production pointed at before). Returns the changes made, `alias` first.
    /// Setting an alias to the version it already points at records nothing and returns no changes.
    @discardableResult
    public func setAlias(_ alias: String, to id: ArtifactID, by who: String = Governance.currentUser) throws -> [AliasChange] {
        try ArtifactRef.validateAlias(alias)
        return try write { db in try setAlias(db, alias, to: id, by: who) }
    }

    /// `setAlias` inside the caller's write transaction (the scheduler moves production and finishes its job at once).
    func setAlias(_ db: any SQLConnection, _ alias: String, to id: ArtifactID, by who: String) throws -> [AliasChange] {
        try ArtifactRef.validateAlias(alias)
        let target = try artifact(db, id)
        let old = try move(db, alias, of: target, by: who)
        guard let old else { return [] }
        var changes = [old]
        if alias == Registry.productionAlias, let from = old.fromVersion {
            let prev = try resolve(db, .version(name: target.name, from))
            if let p = try move(db, Registry.previousAlias, of: prev, by: who) { changes.append(p) }
        }
        return changes
    }

    /// Moves one alias; nil when it already pointed at `target`.
    private func move(_ db: any SQLConnection, _ alias: String, of target: Artifact, by who: String) throws -> AliasChange? {
        let oldID = try db.scalar(Int64.self, "SELECT artifact_id FROM aliases WHERE name = ? AND alias = ?", [target.name, alias])
        if oldID == target.id.rawValue { return nil }
        let now = Timestamp.now()
        try db.execute("""
            INSERT INTO aliases (name, alias, artifact_id, updated_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (name, alias) DO UPDATE SET artifact_id = excluded.artifact_id, updated_at = excluded.updated_at
            """, [target.name, alias, target.id.rawValue, now])
        try db.execute("""
            INSERT INTO alias_history (name, alias, artifact_id, previous_id, changed_by, changed_at) VALUES (?, ?, ?, ?, ?, ?)
            """, [target.name, alias, target.id.rawValue, oldID, who, now])
        let fromVersion = try oldID.flatMap { try db.scalar(Int.self, "SELECT version FROM artifacts WHERE id = ?", [$0]) }
        return AliasChange(name: target.name, alias: alias, fromVersion: fromVersion, toVersion: target.version,
                           changedBy: who, changedAt: now)
    }

    /// Removes an alias (recorded nowhere else; the history keeps its past values).
    public func removeAlias(_ alias: String, name: String) throws {
        try write { db in
            guard try db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", [name, alias]) > 0 else { throw TuneError(.notFound, "no alias '\(alias)' on '\(name)'") }
        }
    }

    /// Aliases of one name, or those pointing at one artifact, sorted by alias.
    public func aliases(name: String? = nil, pointingAt id: ArtifactID? = nil) throws -> [Alias] {
        var clauses: [String] = []
        var args: SQLArguments = []
        if let name { clauses.append("al.name = ?"); args.append(name) }
        if let id { clauses.append("al.artifact_id = ?"); args.append(id.rawValue) }
        let whereSQL = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return try read { db in
            try db.query("""
                SELECT al.name, al.alias, a.version, al.artifact_id, al.updated_at FROM aliases al
                JOIN artifacts a ON a.id = al.artifact_id \(whereSQL) ORDER BY al.name, al.alias
                """, args).map(Registry.decodeAlias)
        }
    }

    static func decodeAlias(_ r: SQLRow) throws -> Alias {
        try Alias(name: r["name"], alias: r["alias"], version: r["version"], artifactID: ArtifactID(r["artifact_id"]),
              updatedAt: r["updated_at"])
    }

    /// Every recorded change of `alias` on `name`, oldest first.
    public func aliasHistory(name: String, alias: String) throws -> [AliasChange] {
        try read { db in
            try db.query("""
                SELECT h.changed_by, h.changed_at, a.version AS to_version, p.version AS from_version FROM alias_history h
                JOIN artifacts a ON a.id = h.artifact_id LEFT JOIN artifacts p ON p.id = h.previous_id
                WHERE h.name = ? AND h.alias = ? ORDER BY h.id
                """, [name, alias]).map {
                try AliasChange(name: name, alias: alias, fromVersion: $0["from_version"], toVersion: $0["to_version"],
                            changedBy: $0["changed_by"], changedAt: $0["changed_at"])
            }
        }
    }
}
