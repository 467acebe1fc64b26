// Lineage — what an artifact was made from and what was made from it (recursive queries over the
// lineage edges), and exposure: every adapter, merged model and alias derived from a base version.

/// One edge: `parent` was an input of `child` in role `role`.
public struct LineageEdge: Codable, Hashable, Sendable {
    public var parent: ArtifactID
    public var child: ArtifactID
    public var role: String

    public init(parent: ArtifactID, child: ArtifactID, role: String) {
        self.parent = parent
        self.child = child
        self.role = role
    }
}

/// The neighbourhood of one artifact in the lineage graph.
public struct Lineage: Codable, Sendable {
    public var artifact: Artifact
    /// Inputs, their inputs, … (each once, by id).
    public var ancestors: [Artifact]
    /// Outputs derived from it, transitively.
    public var descendants: [Artifact]
    /// Edges among `artifact`, `ancestors` and `descendants`.
    public var edges: [LineageEdge]
}

/// An artifact exposed to a base model version, in brief.
public struct ExposedArtifact: Codable, Hashable, Sendable {
    public var id: ArtifactID
    public var kind: ArtifactKind
    public var name: String
    public var version: Int
    public var sha256: String
    public var license: String?
    /// True when its own record names the base; false when it is exposed only through lineage.
    public var direct: Bool
}

/// Everything derived from one base version: the answer to "who is affected if this base's license or data changes".
public struct Exposure: Codable, Sendable {
    public var base: BaseRef
    public var artifacts: [ExposedArtifact]
    /// Aliases (deployments) pointing at any exposed artifact.
    public var aliases: [Alias]
}

extension Registry {
    // MARK: - Lineage

    /// Ancestors and descendants of an artifact, up to `depth` edges away in each direction.
    public func lineage(of id: ArtifactID, depth: Int = 64) throws -> Lineage {
        try read { db in
            let root = try artifact(db, id)
            let up = try db.query("""
                WITH RECURSIVE up(id, depth) AS (
                    SELECT CAST(? AS BIGINT), 0 UNION
                    SELECT l.parent_id, up.depth + 1 FROM lineage l JOIN up ON l.child_id = up.id WHERE up.depth < ?)
                SELECT DISTINCT l.parent_id, l.child_id, l.role FROM lineage l
                WHERE l.child_id IN (SELECT id FROM up WHERE depth < ?)
                """, [id.rawValue, depth, depth])
            let down = try db.query("""
                WITH RECURSIVE down(id, depth) AS (
                    SELECT CAST(? AS BIGINT), 0 UNION
                    SELECT l.child_id, down.depth + 1 FROM lineage l JOIN down ON l.parent_id = down.id WHERE down.depth < ?)
                SELECT DISTINCT l.parent_id, l.child_id, l.role FROM lineage l
                WHERE l.parent_id IN (SELECT id FROM down WHERE depth < ?)
                """, [id.rawValue, depth, depth])
            let edge = { (r: SQLRow) in try LineageEdge(parent: ArtifactID(r[0]), child: ArtifactID(r[1]), role: r[2]) }
            let upEdges = try up.map(edge), downEdges = try down.map(edge)
            let ancestorIDs = Set(upEdges.map(\.parent)).subtracting([id])
            let descendantIDs = Set(downEdges.map(\.child)).subtracting([id])
            let fetch = { (ids: Set<ArtifactID>) in try ids.sorted().map { try self.artifact(db, $0) } }
            let edges = Set(upEdges + downEdges).sorted { ($0.child, $0.parent, $0.role) < ($1.child, $1.parent, $1.role) }
            return Lineage(artifact: root, ancestors: try fetch(ancestorIDs), descendants: try fetch(descendantIDs), edges: edges)
        }
    }

    /// Direct inputs of an artifact with their roles.
    public func inputs(of id: ArtifactID) throws -> [(artifact: Artifact, role: String)] {
        try read { db in
            try db.query("SELECT parent_id, role FROM lineage WHERE child_id = ? ORDER BY parent_id, role",
                         [id.rawValue]).map { (try artifact(db, ArtifactID($0[0])), try $0[1]) }
        }
    }

    // MARK: - Exposure

    /// Every artifact of `kinds` whose record names `base`, or that descends (through lineage) from one that
    /// does, plus the aliases pointing at them. A base registered as a `base-model` artifact without base
    /// fields names itself (`NAME@VERSION`). Reads `artifact_bases`, which `insert` keeps as the closure of
    /// that walk, so the cost is one index range scan plus one row per result.
    public func exposure(base: BaseRef, kinds: Set<ArtifactKind> = [.adapter, .mergedModel]) throws -> Exposure {
        let kindList = kinds.map { "'\($0.rawValue)'" }.sorted().joined(separator: ",")
        return try readStatement { db in
            // One statement (exposed artifacts, each joined with its aliases, if any) read through a cursor.
            let rows = try db.query("""
                SELECT a.id, a.kind, a.name, a.version, a.sha256, a.license, x.direct, al.alias, al.updated_at
                FROM artifact_bases x JOIN artifacts a ON a.id = x.artifact_id LEFT JOIN aliases al ON al.artifact_id = a.id
                WHERE x.base_family = ? AND x.base_version = ? AND a.kind IN (\(kindList)) ORDER BY a.name, a.version, al.alias
                """, [base.family, base.version])
            var artifacts: [ExposedArtifact] = []
            var aliases: [Alias] = []
            for r in rows {
                let id = ArtifactID(try r[0] as Int64)
                if artifacts.last?.id != id {
                    artifacts.append(try ExposedArtifact(id: id, kind: ArtifactKind(rawValue: r[1]) ?? .adapter, name: r[2],
                                                     version: r[3], sha256: r[4], license: r[5], direct: r[6]))
                }
                if let alias: String = try r[7], let last = artifacts.last {
                    aliases.append(try Alias(name: last.name, alias: alias, version: last.version, artifactID: id, updatedAt: r[8]))
                }
            }
            return Exposure(base: base, artifacts: artifacts, aliases: aliases)
        }
    }
}
