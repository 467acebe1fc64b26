// MetricHistory — a model's metrics over time (`tune artifacts history NAME@production`): every eval
// report with an `evaluated` edge from an artifact whose content is the model's (the same sha256: a
// registered version NAME@N and the pipeline artifact it was registered from are the same model), oldest
// first, each with the model's own metrics and the reference models' from the same report. Pipeline evals
// and drift rechecks (Recheck.swift) both count; a recheck is marked as one.

import Foundation

/// One eval report of a model.
public struct MetricHistoryPoint: Codable, Sendable, Equatable {
    /// The eval report (`PIPELINE-eval@N`).
    public var report: String
    public var reportID: ArtifactID
    public var createdAt: String
    /// `eval` (a pipeline run's eval stage) or `recheck`.
    public var kind: String
    /// The pipeline gate's verdict (nil for a recheck, which runs no gate).
    public var gatePassed: Bool?
    /// What started a recheck: `manual`, `recheck:<fire time>`.
    public var trigger: String?
    /// The artifact the report names (same content as the model asked about).
    public var evaluated: String?
    /// The model's role in the report: `adapter` or `merged`.
    public var role: String?
    /// The eval split's dataset (`PIPELINE-dataset@N`).
    public var dataset: String?
    public var metrics: [String: Double]
    /// Reference models in the same report, by reference name.
    public var references: [String: [String: Double]]
    /// A recheck that found drift.
    public var drifted: Bool?

    /// Accepted: a pipeline eval whose gate passed (or had none) — what rechecks compare with.
    public var accepted: Bool { kind == "eval" && gatePassed != false }

    enum CodingKeys: String, CodingKey {
        case report, kind, trigger, evaluated, role, dataset, metrics, references, drifted
        case reportID = "report_id", createdAt = "created_at", gatePassed = "gate_passed"
    }
}

/// The history of one model.
public struct MetricHistory: Codable, Sendable {
    /// The model asked about (`NAME@N`).
    public var artifact: String
    public var sha256: String
    public var points: [MetricHistoryPoint]

    /// Every metric seen, production's first then the references' (`reference:NAME metric`), in first-seen order.
    public var columns: [String] {
        var seen = Set<String>(), out: [String] = []
        for p in points { for m in p.metrics.keys.sorted() where seen.insert(m).inserted { out.append(m) } }
        for p in points {
            for (r, ms) in p.references.sorted(by: { $0.key < $1.key }) {
                for m in ms.keys.sorted() where seen.insert("reference:\(r) \(m)").inserted { out.append("reference:\(r) \(m)") }
            }
        }
        return out
    }

    /// The value of `column` (as in `columns`) at `p`.
    public static func value(_ p: MetricHistoryPoint, _ column: String) -> Double? {
        guard column.hasPrefix("reference:"), let space = column.firstIndex(of: " ") else { return p.metrics[column] }
        let name = String(column[column.index(column.startIndex, offsetBy: 10)..<space])
        return p.references[name]?[String(column[column.index(after: space)...])]
    }

    /// The last accepted pipeline eval: the baseline of drift checks.
    public var accepted: MetricHistoryPoint? { points.last { $0.accepted } }
}

extension Registry {
    /// The eval reports of `model` (and of every artifact with its content), oldest first.
    public func evalHistory(of model: Artifact) throws -> MetricHistory {
        let (reports, refs) = try read { db in
            let reports = try db.query("""
                SELECT \(Registry.columns) FROM artifacts WHERE kind = 'eval-report' AND id IN (
                    SELECT l.child_id FROM lineage l JOIN artifacts m ON m.id = l.parent_id
                    WHERE l.role = 'evaluated' AND m.sha256 = ?)
                ORDER BY id
                """, [model.sha256]).map(Registry.decode)
            let refs = try db.query("SELECT name, version FROM artifacts WHERE sha256 = ?", [model.sha256]).map { r -> String in
                let n: String = try r[0], v: Int = try r[1]
                return "\(n)@\(v)"
            }
            return (reports, Set(refs))
        }
        var points: [MetricHistoryPoint] = []
        for a in reports {
            var p = MetricHistoryPoint(report: a.ref, reportID: a.id, createdAt: a.createdAt,
                                       kind: a.metadata["recheck"] == .bool(true) ? "recheck" : "eval",
                                       gatePassed: Self.bool(a.metadata["gate_passed"]), trigger: Self.string(a.metadata["trigger"]),
                                       evaluated: nil, role: nil, dataset: nil, metrics: [:], references: [:],
                                       drifted: Self.bool(a.metadata["drifted"]))
            guard let dir = path(of: a) else { throw TuneError(.notFound, "\(a.ref): eval report blob missing (run `tune artifacts verify`)") }
            let stored = try StoredEvalReport.load(directory: dir, ref: a.ref)
            p.dataset = stored.dataset
            for role in ["merged", "adapter"] where p.role == nil {
                if let s = stored.subjects?[role], refs.contains(s) { p.role = role; p.evaluated = s }
            }
            for m in stored.models {
                if m.role == p.role { p.metrics = m.finiteMetrics }
                if m.role == ModelRole.reference.rawValue { p.references[m.model] = m.finiteMetrics }
            }
            points.append(p)
        }
        return MetricHistory(artifact: model.ref, sha256: model.sha256, points: points)
    }

    private static func bool(_ v: JSONValue?) -> Bool? {
        guard case .bool(let b)? = v else { return nil }
        return b
    }

    private static func string(_ v: JSONValue?) -> String? {
        guard case .string(let s)? = v else { return nil }
        return s
    }
}

/// The parts of a stored report.json a history needs (a lenient read: metrics may be "nan").
struct StoredEvalReport: Decodable {
    struct Model: Decodable {
        var role: String
        var model: String
        var metrics: [String: JSONValue]?
        var finiteMetrics: [String: Double] {
            (metrics ?? [:]).compactMapValues { (v: JSONValue) -> Double? in
                guard case .number(let d) = v, d.isFinite else { return nil }
                return d
            }
        }
    }
    var subjects: [String: String]?
    var dataset: String?
    var models: [Model]

    static func load(directory: String, ref: String) throws -> StoredEvalReport {
        let p = (directory as NSString).appendingPathComponent("report.json")
        guard let d = FileManager.default.contents(atPath: p) else { throw TuneError(.fileAccess, "\(ref): cannot read \(p)") }
        do { return try JSONDecoder().decode(Self.self, from: d) } catch {
            throw TuneError(.badData, "\(ref): \(p) is not an eval report (\(error))")
        }
    }
}
