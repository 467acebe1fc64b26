// JobQueue — the durable job queue in the registry's database (schema v3 `jobs`, `job_history`).
//
//   queued ──lease──► leased ──start──► running ──complete──► succeeded
//     ▲                  │                 │ ──fail (attempts left)──► queued (not_before = now + backoff)
//     └──────────────────┴─ lease expired ─┘ ──fail (no attempts left)──► failed
//   queued/leased/running ──cancel──► cancelled
//
// • Leasing is one serialized write transaction (SQLite IMMEDIATE; PostgreSQL advisory lock) that picks the oldest due job — queued and past its backoff,
//   or leased/running with an expired lease (its worker died) — and stamps owner + expiry: two workers
//   can never hold the same job. A holder extends its lease by heartbeat; completion and failure only
//   apply while the caller still owns the lease, so a worker that lost its lease cannot finish a job
//   another worker has taken over (exactly-once effects: see Retune).
// • Idempotency: UNIQUE (pipeline, base family, base version, trigger key); enqueueing twice is a no-op.
// • Every transition appends a `job_history` row (the full history; never updated).

import Foundation

public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued, leased, running, succeeded, failed, cancelled
}

public enum JobTrigger: String, Codable, Sendable {
    case baseUpgrade = "base_upgrade", cron
}

/// One job.
public struct Job: Codable, Hashable, Sendable {
    public var id: Int64
    public var pipeline: String
    public var baseFamily: String
    public var baseVersion: String
    public var trigger: JobTrigger
    public var triggerKey: String
    public var state: JobState
    public var attempts: Int
    public var maxAttempts: Int
    public var notBefore: String
    public var leaseOwner: String?
    public var leaseExpiresAt: String?
    public var heartbeatAt: String?
    public var result: JSONValue?
    public var error: String?
    public var createdAt: String
    public var updatedAt: String

    public var base: BaseRef { BaseRef(family: baseFamily, version: baseVersion) }

    enum CodingKeys: String, CodingKey {
        case id, pipeline, trigger, state, attempts, result, error
        case baseFamily = "base_family", baseVersion = "base_version", triggerKey = "trigger_key", maxAttempts = "max_attempts"
        case notBefore = "not_before", leaseOwner = "lease_owner", leaseExpiresAt = "lease_expires_at", heartbeatAt = "heartbeat_at"
        case createdAt = "created_at", updatedAt = "updated_at"
    }
}

/// One recorded transition of a job.
public struct JobTransition: Codable, Hashable, Sendable {
    public var jobID: Int64
    public var from: JobState?
    public var to: JobState
    public var owner: String?
    public var attempt: Int
    public var detail: String?
    public var at: String

    enum CodingKeys: String, CodingKey { case from, to, owner, attempt, detail, at, jobID = "job_id" }
}

public struct JobQueue: Sendable {
    public let registry: Registry
    public let clock: any ScheduleClock
    /// Delay before retry n (1-based) is `backoff · 2^(n-1)`, capped at `maxBackoff`.
    public var backoff: TimeInterval = 30
    public var maxBackoff: TimeInterval = 3600

    public init(registry: Registry, clock: any ScheduleClock = SystemClock()) {
        self.registry = registry
        self.clock = clock
    }

    // MARK: - Enqueue

    /// Inserts a job unless one with the same (pipeline, base, trigger key) exists; returns it when new.
    func enqueue(_ db: any SQLConnection, pipeline: String, base: BaseRef, trigger: JobTrigger, key: String, maxAttempts: Int, now: Date) throws -> Job? {
        let t = Stamp.string(now)
        guard let id = try db.insertReturningID("""
            INSERT INTO jobs (pipeline, base_family, base_version, trigger, trigger_key, state, attempts, max_attempts,
                not_before, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)
            ON CONFLICT DO NOTHING RETURNING id
            """, [pipeline, base.family, base.version, trigger.rawValue, key, maxAttempts, t, t, t]) else { return nil }
        try record(db, id, from: nil, to: .queued, owner: nil, attempt: 0, detail: "\(trigger.rawValue) \(key) on \(base)", at: t)
        return try job(db, id)
    }

    // MARK: - Lease, heartbeat, finish

    /// Leases the oldest due job for `owner` until now + `duration`; nil when nothing is due. Jobs whose lease
    /// expired with no attempts left are failed on the way.
    public func lease(owner: String, duration: TimeInterval) throws -> Job? {
        try registry.write { db in
            while true {
                let now = clock.now(), t = Stamp.string(now)
                guard let row = try db.queryOne("""
                    SELECT id, state, attempts, max_attempts, lease_owner FROM jobs
                    WHERE (state = 'queued' AND not_before <= ?) OR (state IN ('leased', 'running') AND lease_expires_at < ?)
                    ORDER BY id LIMIT 1
                    """, [t, t]) else { return nil }
                let id: Int64 = try row["id"], attempts: Int = try row["attempts"], maxAttempts: Int = try row["max_attempts"]
                let from = JobState(rawValue: try row["state"]) ?? .queued
                let previous: String? = try row["lease_owner"]
                let expired = from != .queued
                if expired, attempts >= maxAttempts {
                    let why = "lease of \(previous ?? "?") expired on attempt \(attempts) of \(maxAttempts)"
                    try db.execute("UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL, error = ?, updated_at = ? WHERE id = ?",
                               [why, t, id])
                    try record(db, id, from: from, to: .failed, owner: nil, attempt: attempts, detail: why, at: t)
                    continue
                }
                let until = Stamp.string(now.addingTimeInterval(duration))
                try db.execute("""
                    UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires_at = ?, heartbeat_at = ?, attempts = attempts + 1,
                        updated_at = ? WHERE id = ?
                    """, [owner, until, t, t, id])
                try record(db, id, from: from, to: .leased, owner: owner, attempt: attempts + 1,
                           detail: expired ? "previous lease of \(previous ?? "?") expired" : nil, at: t)
                return try job(db, id)
            }
        }
    }

    /// leased → running (by the lease holder).
    public func start(_ id: Int64, owner: String) throws {
        try transition(id, owner: owner, from: [.leased], to: .running, detail: nil) { _, _ in }
    }

    /// Extends the lease to now + `duration`; false when `owner` no longer holds it.
    public func heartbeat(_ id: Int64, owner: String, duration: TimeInterval) throws -> Bool {
        try registry.write { db in
            let now = clock.now()
            return try db.execute("""
                UPDATE jobs SET lease_expires_at = ?, heartbeat_at = ? WHERE id = ? AND lease_owner = ? AND state IN ('leased', 'running')
                """, [Stamp.string(now.addingTimeInterval(duration)), Stamp.string(now), id, owner]) > 0
        }
    }

    /// running → succeeded with `result`, running `also` in the same transaction (the alias move). Throws
    /// `conflict` and changes nothing when `owner` lost the lease.
    public func complete(_ id: Int64, owner: String, result: JSONValue, detail: String?,
                         also: (any SQLConnection) throws -> Void = { _ in }) throws {
        try transition(id, owner: owner, from: [.running, .leased], to: .succeeded, detail: detail) { db, t in
            try also(db)
            try db.execute("UPDATE jobs SET result = ?, error = NULL WHERE id = ?", [try result.canonicalJSON(), id])
            _ = t
        }
    }

    /// Records a failed attempt: back to queued after a backoff while attempts remain, else failed.
    @discardableResult
    public func fail(_ id: Int64, owner: String, error: String, retry: Bool = true) throws -> JobState {
        try registry.write { db in
            guard let j = try job(db, id), j.leaseOwner == owner, [.leased, .running].contains(j.state) else {
                throw TuneError(.conflict, "job \(id): \(owner) no longer holds its lease")
            }
            let now = clock.now(), t = Stamp.string(now)
            let again = retry && j.attempts < j.maxAttempts
            let delay = min(maxBackoff, backoff * pow(2, Double(max(0, j.attempts - 1))))
            try db.execute("""
                UPDATE jobs SET state = ?, lease_owner = NULL, lease_expires_at = NULL, not_before = ?, error = ?, updated_at = ? WHERE id = ?
                """, [again ? "queued" : "failed", Stamp.string(now.addingTimeInterval(again ? delay : 0)), error, t, id])
            let to: JobState = again ? .queued : .failed
            try record(db, id, from: j.state, to: to, owner: owner, attempt: j.attempts,
                       detail: again ? "\(error) (retry in \(Int(delay)) s)" : error, at: t)
            return to
        }
    }

    /// Cancels a job that has not finished.
    public func cancel(_ id: Int64, by who: String = Governance.currentUser) throws {
        try registry.write { db in
            guard let j = try job(db, id) else { throw TuneError(.notFound, "no job \(id)") }
            guard [.queued, .leased, .running].contains(j.state) else {
                throw TuneError(.conflict, "job \(id) is \(j.state.rawValue); only queued, leased or running jobs can be cancelled")
            }
            let t = Stamp.string(clock.now())
            try db.execute("UPDATE jobs SET state = 'cancelled', lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?",
                           [t, id])
            try record(db, id, from: j.state, to: .cancelled, owner: who, attempt: j.attempts, detail: nil, at: t)
        }
    }

    private func transition(_ id: Int64, owner: String, from: [JobState], to: JobState, detail: String?,
                            _ body: (any SQLConnection, String) throws -> Void) throws {
        try registry.write { db in
            guard let j = try job(db, id) else { throw TuneError(.notFound, "no job \(id)") }
            guard j.leaseOwner == owner, from.contains(j.state) else {
                throw TuneError(.conflict, "job \(id): \(owner) no longer holds its lease (state \(j.state.rawValue), holder \(j.leaseOwner ?? "none"))")
            }
            let t = Stamp.string(clock.now())
            try body(db, t)
            let clear = to == .succeeded ? ", lease_owner = NULL, lease_expires_at = NULL" : ""
            try db.execute("UPDATE jobs SET state = ?, updated_at = ?\(clear) WHERE id = ?", [to.rawValue, t, id])
            try record(db, id, from: j.state, to: to, owner: owner, attempt: j.attempts, detail: detail, at: t)
        }
    }

    /// Adds detail to a finished job's result (the notification outcome), recorded in the history too.
    public func annotate(_ id: Int64, key: String, value: JSONValue, detail: String) throws {
        try registry.write { db in
            guard let j = try job(db, id) else { throw TuneError(.notFound, "no job \(id)") }
            var r: [String: JSONValue] = [:]
            if case .object(let o)? = j.result { r = o }
            r[key] = value
            try db.execute("UPDATE jobs SET result = ? WHERE id = ?", [try JSONValue.object(r).canonicalJSON(), id])
            try record(db, id, from: j.state, to: j.state, owner: nil, attempt: j.attempts, detail: detail, at: Stamp.string(clock.now()))
        }
    }

    private func record(_ db: any SQLConnection, _ id: Int64, from: JobState?, to: JobState, owner: String?, attempt: Int, detail: String?, at: String) throws {
        try db.execute("INSERT INTO job_history (job_id, from_state, to_state, owner, attempt, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [id, from?.rawValue, to.rawValue, owner, attempt, detail, at])
    }

    // MARK: - Reading

    public func job(_ id: Int64) throws -> Job? { try registry.read { db in try job(db, id) } }

    func job(_ db: any SQLConnection, _ id: Int64) throws -> Job? {
        try db.queryOne("SELECT * FROM jobs WHERE id = ?", [id]).map(Self.decode)
    }

    /// Jobs, newest first, optionally only in some states.
    public func jobs(states: [JobState]? = nil, limit: Int = 100) throws -> [Job] {
        try registry.read { db in
            let filter = states.map { "WHERE state IN (\($0.map { "'\($0.rawValue)'" }.joined(separator: ",")))" } ?? ""
            return try db.query("SELECT * FROM jobs \(filter) ORDER BY id DESC LIMIT \(max(0, limit))", []).map(Self.decode)
        }
    }

    /// Transitions of one job (or all), oldest first.
    public func history(job id: Int64? = nil, limit: Int = 1000) throws -> [JobTransition] {
        try registry.read { db in
            try db.query("SELECT * FROM job_history \(id == nil ? "" : "WHERE job_id = ?") ORDER BY id LIMIT \(max(0, limit))",
                         id.map { [$0 as (any SQLBindable)?] } ?? []).map {
                try JobTransition(jobID: $0["job_id"], from: ($0["from_state"] as String?).flatMap(JobState.init), to: JobState(rawValue: $0["to_state"]) ?? .queued,
                              owner: $0["owner"], attempt: $0["attempt"], detail: $0["detail"], at: $0["at"])
            }
        }
    }

    static func decode(_ r: SQLRow) throws -> Job {
        let resultText: String? = try r["result"]
        return try Job(id: r["id"], pipeline: r["pipeline"], baseFamily: r["base_family"], baseVersion: r["base_version"],
                   trigger: JobTrigger(rawValue: r["trigger"]) ?? .cron, triggerKey: r["trigger_key"],
                   state: JobState(rawValue: r["state"]) ?? .queued, attempts: r["attempts"], maxAttempts: r["max_attempts"],
                   notBefore: r["not_before"], leaseOwner: r["lease_owner"], leaseExpiresAt: r["lease_expires_at"],
                   heartbeatAt: r["heartbeat_at"],
                   result: resultText.flatMap { try? JSONValue.decoder.decode(JSONValue.self, from: Data($0.utf8)) },
                   error: r["error"], createdAt: r["created_at"], updatedAt: r["updated_at"])
    }
}
