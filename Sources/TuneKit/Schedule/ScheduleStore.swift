// ScheduleStore — scheduled pipelines in the registry (schema v3 `schedules`): what `tune schedule add`
// records from a pipeline's `base:` and `schedule:` sections, and what `tick` reads.

import Foundation

/// One scheduled pipeline.
public struct ScheduleRecord: Codable, Hashable, Sendable {
    public var pipeline: String
    /// Absolute path of the pipeline file; each job re-reads it.
    public var specPath: String
    public var baseFamily: String
    /// nil: follow `latest`.
    public var basePin: String?
    public var onBaseUpgrade: Bool
    public var cron: String?
    public var timeZone: String?
    public var maxAttempts: Int
    /// Cron fire times up to this instant have been enqueued (or were before the schedule existed).
    public var cronCheckedAt: String
    public var createdAt: String
    public var updatedAt: String

    enum CodingKeys: String, CodingKey {
        case pipeline, cron
        case specPath = "spec_path", baseFamily = "base_family", basePin = "base_pin", onBaseUpgrade = "on_base_upgrade"
        case timeZone = "time_zone", maxAttempts = "max_attempts", cronCheckedAt = "cron_checked_at"
        case createdAt = "created_at", updatedAt = "updated_at"
    }
}

extension Registry {
    /// Records (or updates) the schedule of the pipeline at `path`. The base family must be registered, so
    /// a typo is caught now rather than at the first tick. Cron times before `now` are never back-filled.
    @discardableResult
    public func addSchedule(path: String, now: Date = Date()) throws -> ScheduleRecord {
        let abs = URL(fileURLWithPath: path).standardized.path
        let spec = try PipelineSpec.load(path: abs)
        guard let s = spec.schedule else {
            throw TuneError(.invalidArgument, "\(path): no schedule: section (add schedule: {on_base_upgrade: true} or schedule: {cron: \"0 3 * * 1\"})")
        }
        guard let ref = spec.baseReference else {
            throw TuneError(.invalidArgument, "\(path): base \"\(spec.base)\" is not a registered base reference (FAMILY@latest or FAMILY@VERSION)")
        }
        let stamp = Stamp.string(now)
        return try write { db in
            _ = try base(db, family: ref.family, version: ref.version)
            let old = try db.queryOne("SELECT cron_checked_at, created_at FROM schedules WHERE pipeline = ?", [spec.name])
            let rec = try ScheduleRecord(pipeline: spec.name, specPath: abs, baseFamily: ref.family, basePin: ref.version,
                                     onBaseUpgrade: s.onBaseUpgrade, cron: s.cron, timeZone: s.timeZone, maxAttempts: s.maxAttempts,
                                     cronCheckedAt: old.map { try $0["cron_checked_at"] as String } ?? stamp,
                                         createdAt: old.map { try $0["created_at"] as String } ?? stamp, updatedAt: stamp)
            try db.execute("""
                INSERT INTO schedules (pipeline, spec_path, base_family, base_pin, on_base_upgrade, cron, time_zone,
                    max_attempts, cron_checked_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (pipeline) DO UPDATE SET spec_path = excluded.spec_path, base_family = excluded.base_family,
                    base_pin = excluded.base_pin, on_base_upgrade = excluded.on_base_upgrade, cron = excluded.cron,
                    time_zone = excluded.time_zone, max_attempts = excluded.max_attempts,
                    cron_checked_at = excluded.cron_checked_at, created_at = excluded.created_at, updated_at = excluded.updated_at
                """, [rec.pipeline, rec.specPath, rec.baseFamily, rec.basePin, rec.onBaseUpgrade, rec.cron, rec.timeZone,
                                 rec.maxAttempts, rec.cronCheckedAt, rec.createdAt, rec.updatedAt])
            return rec
        }
    }

    /// Every schedule, by pipeline name.
    public func schedules() throws -> [ScheduleRecord] {
        try read { db in try schedules(db) }
    }

    func schedules(_ db: any SQLConnection) throws -> [ScheduleRecord] {
        try db.query("SELECT * FROM schedules ORDER BY pipeline", []).map {
            try ScheduleRecord(pipeline: $0["pipeline"], specPath: $0["spec_path"], baseFamily: $0["base_family"], basePin: $0["base_pin"],
                           onBaseUpgrade: $0["on_base_upgrade"], cron: $0["cron"], timeZone: $0["time_zone"],
                           maxAttempts: $0["max_attempts"], cronCheckedAt: $0["cron_checked_at"], createdAt: $0["created_at"],
                           updatedAt: $0["updated_at"])
        }
    }
}
