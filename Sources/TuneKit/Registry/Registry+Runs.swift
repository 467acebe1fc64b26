// Registry+Runs — pipeline runs and their stage runs, keyed by cache key so the runner can skip a
// stage whose (config, input hashes, format version) already produced outputs.

import Foundation

/// The state of a pipeline run.
public enum RunStatus: String, Codable, Sendable { case running, succeeded, failed, cancelled }
/// The state of one stage within a run.
public enum StageStatus: String, Codable, Sendable { case running, succeeded, failed, skipped }

/// A pipeline run and its configuration.
public struct Run: Codable, Hashable, Sendable {
    public var id: RunID
    public var pipeline: String
    public var config: JSONValue
    public var status: RunStatus
    public var createdBy: String
    public var startedAt: String
    public var finishedAt: String?

    enum CodingKeys: String, CodingKey {
        case id, pipeline, config, status, createdBy = "created_by", startedAt = "started_at", finishedAt = "finished_at"
    }
}

/// One stage of a run: its cache key, its config and the artifacts it produced.
public struct StageRun: Codable, Hashable, Sendable {
    public var id: Int64
    public var runID: RunID
    public var stage: String
    public var cacheKey: String
    public var status: StageStatus
    public var config: JSONValue
    public var outputs: [ArtifactID]
    public var recordedAt: String

    enum CodingKeys: String, CodingKey {
        case id, stage, status, config, outputs
        case runID = "run_id", cacheKey = "cache_key", recordedAt = "recorded_at"
    }
}

extension Registry {
    // MARK: - Runs

    /// Records the start of a pipeline run.
    public func startRun(pipeline: String, config: JSONValue = .object([:]), by who: String = Governance.currentUser) throws -> RunID {
        let text = try JSONValue.canonicalText(config)
        return try write { db in
            guard let id = try db.insertReturningID("INSERT INTO runs (pipeline, config, created_by, started_at) VALUES (?, ?, ?, ?) RETURNING id",
                                                    [pipeline, text, who, Timestamp.now()]) else {
                throw TuneError(.internal, "starting a run of \(pipeline): INSERT returned no id")
            }
            return RunID(id)
        }
    }

    /// Marks a run finished with `status`.
    public func finishRun(_ id: RunID, status: RunStatus) throws {
        try write { db in
            guard try db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                                 [status.rawValue, Timestamp.now(), id.rawValue]) == 1 else { throw TuneError(.notFound, "no run \(id)") }
        }
    }

    /// The run with id `id`.
    public func run(_ id: RunID) throws -> Run {
        try read { db in
            guard let r = try db.queryOne("SELECT * FROM runs WHERE id = ?", [id.rawValue]) else {
                throw TuneError(.notFound, "no run \(id)")
            }
            return try Run(id: id, pipeline: r["pipeline"], config: Registry.json(r["config"]),
                       status: RunStatus(rawValue: r["status"]) ?? .failed, createdBy: r["created_by"],
                       startedAt: r["started_at"], finishedAt: r["finished_at"])
        }
    }

    // MARK: - Stage runs

    /// Records one stage of a run with the artifacts it produced (or reused).
    @discardableResult
    public func recordStageRun(runID: RunID, stage: String, cacheKey: String, status: StageStatus,
                               outputs: [ArtifactID] = [], config: JSONValue = .object([:])) throws -> StageRun {
        let text = try JSONValue.canonicalText(config)
        return try write { db in
            guard try db.scalar(Int.self, "SELECT 1 FROM runs WHERE id = ?", [runID.rawValue]) != nil else {
                throw TuneError(.notFound, "recording stage '\(stage)': no run \(runID)")
            }
            let now = Timestamp.now()
            guard let id = try db.insertReturningID("""
                INSERT INTO stage_runs (run_id, stage, cache_key, status, config, recorded_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id
                """, [runID.rawValue, stage, cacheKey, status.rawValue, text, now]) else {
                throw TuneError(.internal, "recording stage '\(stage)': INSERT returned no id")
            }
            for out in Set(outputs).sorted() {
                _ = try artifact(db, out)
                try db.execute("INSERT INTO stage_outputs (stage_run_id, artifact_id) VALUES (?, ?)", [id, out.rawValue])
            }
            return StageRun(id: id, runID: runID, stage: stage, cacheKey: cacheKey, status: status, config: config,
                            outputs: Set(outputs).sorted(), recordedAt: now)
        }
    }

    /// The most recent succeeded stage run with `cacheKey`, or nil: the runner skips the stage when this
    /// returns a value, and reuses its outputs.
    public func findStageRun(cacheKey: String) throws -> StageRun? {
        try read { db in
            guard let r = try db.queryOne("""
                SELECT * FROM stage_runs WHERE cache_key = ? AND status = 'succeeded' ORDER BY id DESC LIMIT 1
                """, [cacheKey]) else { return nil }
            return try Registry.decodeStageRun(db, r)
        }
    }

    /// Stage runs of one run, in the order recorded.
    public func stageRuns(of runID: RunID) throws -> [StageRun] {
        try read { db in
            try db.query("SELECT * FROM stage_runs WHERE run_id = ? ORDER BY id", [runID.rawValue])
                .map { try Registry.decodeStageRun(db, $0) }
        }
    }

    static func decodeStageRun(_ db: any SQLConnection, _ r: SQLRow) throws -> StageRun {
        let id: Int64 = try r["id"]
        let outs = try db.column(Int64.self, "SELECT artifact_id FROM stage_outputs WHERE stage_run_id = ? ORDER BY artifact_id",
                                 [id]).map { ArtifactID($0) }
        return try StageRun(id: id, runID: RunID(r["run_id"]), stage: r["stage"], cacheKey: r["cache_key"],
                        status: StageStatus(rawValue: r["status"]) ?? .failed, config: json(r["config"]), outputs: outs,
                        recordedAt: r["recorded_at"])
    }

    static func json(_ text: String) -> JSONValue {
        (try? JSONValue.decoder.decode(JSONValue.self, from: Data(text.utf8))) ?? .null
    }
}
