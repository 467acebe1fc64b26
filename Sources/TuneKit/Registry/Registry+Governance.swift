// Registry+Governance — the compliance questions (docs/governance.md): base models recorded where they
// are (a `reference` artifact: path + sha256, never copied), deprecations, exposure for any question
// (a base by name/version/sha256, a dataset, a license, a managed model, everything deprecated) as one
// recursive walk of `lineage` in SQL, and the governance view `tune artifacts export --format` writes.

import Foundation

/// Why and since when an artifact should no longer be used (schema v5 `deprecations`).
public struct Deprecation: Codable, Hashable, Sendable {
    public var artifactID: ArtifactID
    public var reason: String
    /// When it takes effect, as given (default: the day it was recorded).
    public var effective: String
    public var deprecatedBy: String
    public var deprecatedAt: String

    enum CodingKeys: String, CodingKey {
        case reason, effective, artifactID = "artifact_id", deprecatedBy = "deprecated_by", deprecatedAt = "deprecated_at"
    }
}

/// What an exposure question asks about: the seeds of the walk.
public enum ExposureQuestion: Sendable, Hashable, CustomStringConvertible {
    /// A base model: its artifact name, family, version, `FAMILY@VERSION`, or a sha256 prefix (6+ hex digits).
    case base(String)
    /// A dataset: artifact name, `NAME@VERSION`, sha256 prefix, or a data file named in its source.
    case dataset(String)
    /// A license id (case-insensitive), on the artifact or in its data terms.
    case license(String)
    /// A managed model id (`gpt-4o-mini-2024-07-18`) or family (`gpt-4o-mini`).
    case managedModel(String)
    /// Every deprecated artifact.
    case deprecated

    public var description: String {
        switch self {
        case .base(let s): "base \(s)"
        case .dataset(let s): "dataset \(s)"
        case .license(let s): "license \(s)"
        case .managedModel(let s): "managed model \(s)"
        case .deprecated: "deprecated"
        }
    }

    /// The WHERE clause over `artifacts` selecting the seeds, and its arguments.
    func seed() -> (sql: String, args: SQLArguments) {
        func digest(_ s: String) -> (String, SQLArguments)? {
            let hex = s.hasPrefix("sha256:") ? String(s.dropFirst(7)) : s
            guard hex.count >= 6, hex.count <= 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
            return ("(sha256 >= ? AND sha256 < ?)", [hex, hex + "g"])
        }
        switch self {
        case .base(let s):
            var clauses = ["(kind = 'base-model' AND name = ?)", "(base_family = ? AND kind IN ('base-model', 'managed-model'))",
                           "(base_version = ? AND kind IN ('base-model', 'managed-model'))"]
            var args: SQLArguments = [s, s, s]
            if let at = s.lastIndex(of: "@"), at != s.startIndex {
                clauses.append("(base_family = ? AND base_version = ?)")
                args += [String(s[..<at]), String(s[s.index(after: at)...])]
            }
            if let (d, a) = digest(s) { clauses.append("(kind IN ('base-model', 'managed-model') AND \(d))"); args += a }
            return (clauses.joined(separator: " OR "), args)
        case .dataset(let s):
            var clauses = ["(kind = 'dataset' AND (name = ? OR dataset_source LIKE '%' || ? || '%'))"]
            var args: SQLArguments = [s, s]
            if let at = s.lastIndex(of: "@"), let v = Int(s[s.index(after: at)...]) {
                clauses.append("(kind = 'dataset' AND name = ? AND version = ?)")
                args += [String(s[..<at]), v]
            }
            if let (d, a) = digest(s) { clauses.append("(kind = 'dataset' AND \(d))"); args += a }
            return (clauses.joined(separator: " OR "), args)
        case .license(let s):
            return ("lower(license) = lower(?) OR lower(data_terms) LIKE '%' || lower(?) || '%'", [s, s])
        case .managedModel(let s):
            return ("kind = 'managed-model' AND (name = ? OR base_family = ? OR name = ?)", [s, s, ManagedModelID.artifactName(s)])
        case .deprecated:
            return ("id IN (SELECT artifact_id FROM deprecations)", [])
        }
    }
}

/// One artifact in an exposure answer.
public struct ExposureNode: Codable, Hashable, Sendable {
    public var id: ArtifactID
    public var kind: ArtifactKind
    public var name: String
    public var version: Int
    public var sha256: String
    public var license: String?
    public var dataTerms: String?
    /// True when it matched the question itself (a seed of the walk).
    public var matched: Bool
    /// Refs from a matched artifact down to this one (`base@1 → data@1 → adapter@1`).
    public var chain: [String]
    /// Aliases pointing at it (`NAME@production`).
    public var aliases: [String]
    /// Set when this artifact itself is deprecated.
    public var deprecation: Deprecation?

    public var ref: String { "\(name)@\(version)" }

    enum CodingKeys: String, CodingKey {
        case id, kind, name, version, sha256, license, matched, chain, aliases, deprecation, dataTerms = "data_terms"
    }
}

/// The answer to an exposure question: every artifact matching it and everything derived from them.
public struct GovernanceExposure: Codable, Sendable {
    public var question: String
    public var artifacts: [ExposureNode]
    /// Every alias (deployment) pointing at an affected artifact.
    public var aliases: [Alias]
    public var edges: [LineageEdge]
}

/// One row of the governance view (`tune artifacts export --format json|csv`).
public struct GovernanceRow: Codable, Sendable {
    public var artifact: String
    public var id: ArtifactID
    public var kind: ArtifactKind
    public var name: String
    public var version: Int
    public var sha256: String
    /// `FAMILY@VERSION` of the base it was made from.
    public var base: String?
    public var license: String?
    public var dataSource: String?
    public var dataTerms: String?
    public var createdAt: String
    public var createdBy: String
    public var aliases: [String]
    /// Deprecated itself, or depends on a deprecated artifact.
    public var deprecated: Bool
    /// The deprecated artifacts it is, or depends on, with their reasons (`base@1: license withdrawn`).
    public var deprecatedBecause: [String]

    enum CodingKeys: String, CodingKey {
        case artifact, id, kind, name, version, sha256, base, license, aliases, deprecated
        case dataSource = "data_source", dataTerms = "data_terms", createdAt = "created_at", createdBy = "created_by"
        case deprecatedBecause = "deprecated_because"
    }

    public static let csvHeader = ["artifact", "kind", "name", "version", "sha256", "base", "license", "data_source", "data_terms",
                                   "created_at", "created_by", "aliases", "deprecated", "deprecated_because"]

    public var csvFields: [String] {
        [artifact, kind.rawValue, name, "\(version)", sha256, base ?? "", license ?? "", dataSource ?? "", dataTerms ?? "",
         createdAt, createdBy, aliases.joined(separator: " "), deprecated ? "true" : "false", deprecatedBecause.joined(separator: "; ")]
    }

    /// RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled.
    public static func csv(_ rows: [GovernanceRow]) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        return ([csvHeader] + rows.map(\.csvFields)).map { $0.map(field).joined(separator: ",") }.joined(separator: "\r\n") + "\r\n"
    }
}

/// Managed model ids: `gpt-4o-mini-2024-07-18` = family `gpt-4o-mini`, snapshot `2024-07-18`.
public enum ManagedModelID {
    /// (family, snapshot) of a model id; snapshot nil when the id pins none (`YYYY-MM-DD` or a 4-digit `MMDD` suffix).
    public static func split(_ id: String) -> (family: String, snapshot: String?) {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        if parts.count >= 4, parts.suffix(3).enumerated().allSatisfy({ $0.element.count == [4, 2, 2][$0.offset] && $0.element.allSatisfy(\.isNumber) }) {
            return (parts.dropLast(3).joined(separator: "-"), parts.suffix(3).joined(separator: "-"))
        }
        if parts.count >= 2, let last = parts.last, last.count == 4, last.allSatisfy(\.isNumber) {
            return (parts.dropLast().joined(separator: "-"), last)
        }
        return (id, nil)
    }

    /// An artifact name for a model id (characters names do not allow become `-`).
    public static func artifactName(_ id: String) -> String { Registry.artifactName(id) }

    /// Whether the id names one fixed model: a dated snapshot (`gpt-4o-mini-2024-07-18`, `gpt-4-0613`) or a
    /// fine-tune (`ft:…`, which the provider never retrains). An alias such as `gpt-4o-mini` can move to a new snapshot.
    public static func isPinned(_ id: String) -> Bool { id.hasPrefix("ft:") || split(id).snapshot != nil }

    /// The validation warning for an id that is not pinned (nil when it is).
    static func unpinnedWarning(_ id: String) -> (message: String, hint: String)? {
        guard !id.isEmpty, !isPinned(id) else { return nil }
        return ("model id \"\(id)\" is not pinned to a snapshot: the provider can change the model behind it, so results drift without any change here",
                "name a dated snapshot (e.g. \(id)-2024-07-18); schedule: {recheck: \"0 6 * * 1\"} re-evaluates it and notifies on drift")
    }
}

extension Registry {
    /// `text` as an artifact name: characters names do not allow become `-`, runs collapse, ends trimmed.
    public static func artifactName(_ text: String, fallback: String = "model") -> String {
        var out = ""
        for c in text.unicodeScalars {
            let ok = c.isASCII && (CharacterSet.alphanumerics.contains(c) || c == "." || c == "_" || c == "-")
            if ok { out.unicodeScalars.append(c) } else if !out.hasSuffix("-") { out += "-" }
        }
        while let f = out.first, !(f.isASCII && (f.isLetter || f.isNumber)) { out.removeFirst() }
        while out.hasSuffix("-") || out.hasSuffix(".") { out.removeLast() }
        return out.isEmpty ? fallback : String(out.prefix(200))
    }

    // MARK: - Registering what is not copied

    /// The `kind` artifact whose content hashes to `sha256`, else a new version of `name` that records
    /// `path` (a file or directory left where it is) by reference: nothing is copied into the blob store;
    /// `verify` re-hashes the path. Found-or-registered in one write transaction.
    public func registerReference(kind: ArtifactKind, name: String, path: String, sha256: String, size: Int64,
                                  metadata: [String: JSONValue], governance: Governance) throws -> Artifact {
        try ArtifactRef.validateName(name)
        return try write { db in
            try referenceArtifact(db, kind: kind, name: name, path: path, sha256: sha256, size: size, metadata: metadata, governance: governance)
        }
    }

    /// `registerReference` inside the caller's write transaction.
    func referenceArtifact(_ db: any SQLConnection, kind: ArtifactKind, name: String, path: String, sha256: String, size: Int64,
                           metadata: [String: JSONValue], governance: Governance) throws -> Artifact {
        if let r = try db.queryOne("SELECT \(Registry.columns) FROM artifacts WHERE sha256 = ? AND kind = ? ORDER BY id LIMIT 1",
                                   [sha256, kind.rawValue]) {
            return try Registry.decode(r)
        }
        return try insert(db, kind: kind, name: name, blob: Blob(sha256: sha256, size: size, layout: .reference),
                          metadata: metadata, governance: governance, inputs: [:], run: nil,
                          uri: "file://" + URL(fileURLWithPath: path).standardized.path)
    }

    /// The artifact of `name` whose content is `source`'s, else a new version of it (a small record, e.g. a
    /// managed model's `managed_model_ref.json`, is stored like any blob).
    public func findOrRegister(_ new: NewArtifact) throws -> Artifact {
        let blob = try blobs.ingest(new.source)
        if let r = try read({ db in try db.queryOne("SELECT \(Registry.columns) FROM artifacts WHERE name = ? AND sha256 = ? ORDER BY id LIMIT 1",
                                                   [new.name, blob.sha256]) }) {
            return try Registry.decode(r)
        }
        return try register(new)
    }

    /// A new version of `name` whose content is `source`'s blob (no copy: the same content address),
    /// derived from `source` (lineage role `registered`). The MLflow "registered model" version.
    public func registerVersion(of source: Artifact, as name: String, metadata: [String: JSONValue], governance: Governance,
                                run: RunID?) throws -> Artifact {
        try ArtifactRef.validateName(name)
        return try write { db in
            try insert(db, kind: source.kind, name: name, blob: blob(of: source), metadata: metadata, governance: governance,
                       inputs: [source.id: "registered"], run: run, uri: source.uri)
        }
    }

    // MARK: - Deprecation

    /// Marks an artifact deprecated (replacing an earlier deprecation of it). `effective`: when it takes effect (default today).
    @discardableResult
    public func deprecate(_ id: ArtifactID, reason: String, effective: String? = nil, by user: String = Governance.currentUser) throws -> Deprecation {
        guard !reason.trimmingCharacters(in: .whitespaces).isEmpty else { throw TuneError(.invalidArgument, "a deprecation needs a reason") }
        let now = Timestamp.now()
        let d = Deprecation(artifactID: id, reason: reason, effective: effective ?? String(now.prefix(10)), deprecatedBy: user, deprecatedAt: now)
        try write { db in
            _ = try artifact(db, id)
            try db.execute("""
                INSERT INTO deprecations (artifact_id, reason, effective, deprecated_by, deprecated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (artifact_id) DO UPDATE SET reason = excluded.reason, effective = excluded.effective,
                    deprecated_by = excluded.deprecated_by, deprecated_at = excluded.deprecated_at
                """, [id.rawValue, d.reason, d.effective, d.deprecatedBy, d.deprecatedAt])
        }
        return d
    }

    /// The artifact's own deprecation, if any.
    public func deprecation(of id: ArtifactID) throws -> Deprecation? {
        try read { db in
            try db.queryOne("SELECT artifact_id, reason, effective, deprecated_by, deprecated_at FROM deprecations WHERE artifact_id = ?",
                            [id.rawValue]).map(Registry.decodeDeprecation)
        }
    }

    static func decodeDeprecation(_ r: SQLRow) throws -> Deprecation {
        try Deprecation(artifactID: ArtifactID(r[0] as Int64), reason: r[1], effective: r[2], deprecatedBy: r[3], deprecatedAt: r[4])
    }

    // MARK: - Exposure for any question

    /// Every artifact matching `question` and everything derived from them through lineage (a recursive
    /// CTE over `lineage`, in the database), with the chain from a matched artifact to each, and the aliases.
    public func exposure(_ question: ExposureQuestion, maxDepth: Int = 64) throws -> GovernanceExposure {
        let (seedSQL, seedArgs) = question.seed()
        let reach = """
            WITH RECURSIVE reach(id, depth) AS (
                SELECT id, 0 FROM artifacts WHERE \(seedSQL)
                UNION SELECT l.child_id, r.depth + 1 FROM lineage l JOIN reach r ON l.parent_id = r.id WHERE r.depth < \(maxDepth))
            """
        return try read { db in try exposureAnswer(db, question, seedSQL: seedSQL, seedArgs: seedArgs, reach: reach) }
    }

    private func exposureAnswer(_ db: any SQLConnection, _ question: ExposureQuestion, seedSQL: String, seedArgs: SQLArguments,
                                reach: String) throws -> GovernanceExposure {
        do {
            let rows = try db.query("""
                \(reach), ids(id) AS (SELECT DISTINCT id FROM reach)
                SELECT a.id, a.kind, a.name, a.version, a.sha256, a.license, a.data_terms,
                    d.reason, d.effective, d.deprecated_by, d.deprecated_at, al.alias, al.updated_at
                FROM ids JOIN artifacts a ON a.id = ids.id LEFT JOIN deprecations d ON d.artifact_id = a.id
                LEFT JOIN aliases al ON al.artifact_id = a.id
                ORDER BY a.id, al.alias
                """, seedArgs)
            let seeds = Set(try db.column(Int64.self, "SELECT id FROM artifacts WHERE \(seedSQL)", seedArgs).map { ArtifactID($0) })
            let edges = try db.query("""
                \(reach), ids(id) AS (SELECT DISTINCT id FROM reach)
                SELECT l.parent_id, l.child_id, l.role FROM lineage l
                WHERE l.child_id IN (SELECT id FROM ids) AND l.parent_id IN (SELECT id FROM ids)
                ORDER BY l.child_id, l.parent_id, l.role
                """, seedArgs).map { try LineageEdge(parent: ArtifactID($0[0] as Int64), child: ArtifactID($0[1] as Int64), role: $0[2]) }
            var nodes: [ExposureNode] = []
            var aliases: [Alias] = []
            for r in rows {
                let id = ArtifactID(try r[0] as Int64)
                if nodes.last?.id != id {
                    var dep: Deprecation?
                    if let reason: String = try r[7] {
                        dep = Deprecation(artifactID: id, reason: reason, effective: try r[8], deprecatedBy: try r[9], deprecatedAt: try r[10])
                    }
                    nodes.append(try ExposureNode(id: id, kind: ArtifactKind(rawValue: r[1]) ?? .dataset, name: r[2], version: r[3],
                                                  sha256: r[4], license: r[5], dataTerms: r[6], matched: seeds.contains(id),
                                                  chain: [], aliases: [], deprecation: dep))
                }
                if let alias: String = try r[11] {
                    let n = nodes[nodes.count - 1]
                    nodes[nodes.count - 1].aliases.append("\(n.name)@\(alias)")
                    aliases.append(try Alias(name: n.name, alias: alias, version: n.version, artifactID: id, updatedAt: r[12]))
                }
            }
            // Chains: the shortest path from a matched artifact, through the edges of the answer.
            let index = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($0.element.id, $0.offset) })
            var parentsOf: [ArtifactID: [ArtifactID]] = [:]
            for e in edges { parentsOf[e.child, default: []].append(e.parent) }
            var chains: [ArtifactID: [String]] = [:]
            for n in nodes where n.matched { chains[n.id] = [n.ref] }
            var frontier = nodes.filter(\.matched).map(\.id)
            var childrenOf: [ArtifactID: [ArtifactID]] = [:]
            for e in edges { childrenOf[e.parent, default: []].append(e.child) }
            while !frontier.isEmpty {
                var next: [ArtifactID] = []
                for p in frontier {
                    for c in childrenOf[p] ?? [] where chains[c] == nil {
                        if let i = index[c] { chains[c] = chains[p]! + [nodes[i].ref]; next.append(c) }
                    }
                }
                frontier = next
            }
            for i in nodes.indices { nodes[i].chain = chains[nodes[i].id] ?? [nodes[i].ref] }
            return GovernanceExposure(question: question.description, artifacts: nodes, aliases: aliases, edges: edges)
        }
    }

    // MARK: - Governance view

    /// One row per artifact (by name, version): the fields an audit asks for, with the deprecations it
    /// depends on (one recursive walk down from every deprecated artifact).
    public func governanceView() throws -> [GovernanceRow] {
        try read { db in
            var aliases: [ArtifactID: [String]] = [:]
            for r in try db.query("SELECT artifact_id, name, alias FROM aliases ORDER BY name, alias", []) {
                aliases[ArtifactID(try r[0] as Int64), default: []].append("\(try r[1] as String)@\(try r[2] as String)")
            }
            var because: [ArtifactID: [String]] = [:]
            for r in try db.query("""
                WITH RECURSIVE down(id, source) AS (
                    SELECT artifact_id, artifact_id FROM deprecations
                    UNION SELECT l.child_id, d.source FROM lineage l JOIN down d ON l.parent_id = d.id)
                SELECT down.id, a.name, a.version, dep.reason FROM down JOIN artifacts a ON a.id = down.source
                JOIN deprecations dep ON dep.artifact_id = down.source ORDER BY down.id, a.name, a.version
                """, []) {
                because[ArtifactID(try r[0] as Int64), default: []].append("\(try r[1] as String)@\(try r[2] as Int): \(try r[3] as String)")
            }
            return try db.query("SELECT \(Registry.columns) FROM artifacts ORDER BY name, version", []).map { row in
                let a = try Registry.decode(row)
                let g = a.governance
                let why = because[a.id] ?? []
                return GovernanceRow(artifact: a.ref, id: a.id, kind: a.kind, name: a.name, version: a.version, sha256: a.sha256,
                                     base: g.baseFamily.map { "\($0)@\(g.baseVersion ?? "?")" }, license: g.license,
                                     dataSource: g.datasetSource, dataTerms: g.dataTerms, createdAt: a.createdAt, createdBy: g.createdBy,
                                     aliases: aliases[a.id] ?? [], deprecated: !why.isEmpty, deprecatedBecause: why)
            }
        }
    }
}
