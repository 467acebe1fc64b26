// ServeStore — the server's durable state: one SQLite database (WAL) in the state directory holding
// files, fine-tuning jobs (the queue), their events and checkpoints; uploaded bytes live beside it as
// files written atomically. Every change is one transaction, so a crash leaves the old state or the new.

import Foundation
import GRDB
import TuneKit

final class ServeStore: @unchecked Sendable {
    let pool: DatabasePool
    let directory: String
    var databasePath: String { (directory as NSString).appendingPathComponent("serve.sqlite") }
    var filesDirectory: String { (directory as NSString).appendingPathComponent("files") }
    var jobsDirectory: String { (directory as NSString).appendingPathComponent("jobs") }

    init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: (directory as NSString).appendingPathComponent("files"), withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: (directory as NSString).appendingPathComponent("jobs"), withIntermediateDirectories: true)
        } catch { throw TuneError(.fileAccess, "\(directory): cannot create the state directory (\(error.localizedDescription))") }
        var config = Configuration()
        config.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: (directory as NSString).appendingPathComponent("serve.sqlite"), configuration: config)
            try pool.writeWithoutTransaction { db in try ServeSchema.migrate(db, path: directory) }
        } catch let e as TuneError { throw e } catch {
            throw TuneError(.database, "\(directory)/serve.sqlite: \(error)")
        }
    }

    private func db<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch let e as TuneError { throw e } catch let e as APIError { throw e } catch {
            throw TuneError(.database, "serve.sqlite: \(error)")
        }
    }
    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch { throw TuneError(.database, "serve.sqlite: \(error)") }
    }

    static func now() -> Int { Int(Date().timeIntervalSince1970) }

    /// `prefix` + 24 random base-62 characters (unguessable, like OpenAI's ids).
    static func newID(_ prefix: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var g = SystemRandomNumberGenerator()
        return prefix + String((0..<24).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
    }

    private static func json<T: Encodable>(_ v: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return String(decoding: try e.encode(v), as: UTF8.self)
    }
    private static func decode<T: Decodable>(_ t: T.Type, _ s: String) throws -> T { try JSONDecoder().decode(T.self, from: Data(s.utf8)) }

    // MARK: - Files

    /// Stores `bytes` atomically under files/ and records the file; the bytes are removed again if the row cannot be written.
    func addFile(filename: String, purpose: String, bytes: Data) throws -> FileObject {
        let id = Self.newID("file-")
        let path = (filesDirectory as NSString).appendingPathComponent(id)
        try AtomicFile.write(bytes, to: path)
        let f = FileObject(id: id, bytes: bytes.count, createdAt: Self.now(), filename: filename, purpose: purpose)
        do {
            try db { db in
                try db.execute(sql: "INSERT INTO files (id, created_at, body) VALUES (?, ?, ?)", arguments: [id, f.createdAt, try Self.json(f)])
            }
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        }
        return f
    }

    func file(_ id: String) throws -> FileObject? {
        try read { db in try String.fetchOne(db, sql: "SELECT body FROM files WHERE id = ?", arguments: [id]) }
            .map { try Self.decode(FileObject.self, $0) }
    }

    func filePath(_ id: String) -> String { (filesDirectory as NSString).appendingPathComponent(id) }

    func files(purpose: String?) throws -> [FileObject] {
        try read { db in try String.fetchAll(db, sql: "SELECT body FROM files ORDER BY created_at DESC, rowid DESC") }
            .map { try Self.decode(FileObject.self, $0) }.filter { purpose == nil || $0.purpose == purpose }
    }

    /// Deletes the row, then the bytes. Returns false when there was no such file.
    func deleteFile(_ id: String) throws -> Bool {
        let n = try db { db in
            try db.execute(sql: "DELETE FROM files WHERE id = ?", arguments: [id])
            return db.changesCount
        }
        if n > 0 { try? FileManager.default.removeItem(atPath: filePath(id)) }
        return n > 0
    }

    // MARK: - Jobs

    func insertJob(_ job: FineTuningJob) throws {
        try db { db in
            try db.execute(sql: "INSERT INTO jobs (id, status, created_at, body) VALUES (?, ?, ?, ?)",
                           arguments: [job.id, job.status.rawValue, job.createdAt, try Self.json(job)])
        }
    }

    func job(_ id: String) throws -> FineTuningJob? {
        try read { db in try String.fetchOne(db, sql: "SELECT body FROM jobs WHERE id = ?", arguments: [id]) }
            .map { try Self.decode(FineTuningJob.self, $0) }
    }

    /// All jobs, newest first.
    func jobs() throws -> [FineTuningJob] {
        try read { db in try String.fetchAll(db, sql: "SELECT body FROM jobs ORDER BY seq DESC") }
            .map { try Self.decode(FineTuningJob.self, $0) }
    }

    /// The oldest queued job (the queue is first come, first served).
    func nextQueued() throws -> FineTuningJob? {
        try read { db in try String.fetchOne(db, sql: "SELECT body FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1") }
            .map { try Self.decode(FineTuningJob.self, $0) }
    }

    func jobs(status: JobStatus) throws -> [FineTuningJob] {
        try read { db in try String.fetchAll(db, sql: "SELECT body FROM jobs WHERE status = ? ORDER BY seq", arguments: [status.rawValue]) }
            .map { try Self.decode(FineTuningJob.self, $0) }
    }

    /// Read-modify-write of one job in one transaction; `change` may throw to abort. Optionally adds an event in the same transaction.
    @discardableResult
    func updateJob(_ id: String, event: (level: String, message: String)? = nil,
                   _ change: (inout FineTuningJob) throws -> Void) throws -> FineTuningJob {
        try db { db in
            guard let body = try String.fetchOne(db, sql: "SELECT body FROM jobs WHERE id = ?", arguments: [id]) else {
                throw APIError.notFound("No fine-tuning job with id '\(id)'.", param: "fine_tuning_job_id")
            }
            var job = try Self.decode(FineTuningJob.self, body)
            try change(&job)
            try db.execute(sql: "UPDATE jobs SET status = ?, body = ? WHERE id = ?", arguments: [job.status.rawValue, try Self.json(job), id])
            if let event { try Self.insertEvent(db, job: id, level: event.level, message: event.message, type: "message", data: nil) }
            return job
        }
    }

    func countsByStatus() throws -> [JobStatus: Int] {
        let rows = try read { db in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") }
        var out: [JobStatus: Int] = [:]
        for r in rows { if let s = JobStatus(rawValue: r["status"]) { out[s] = r["n"] } }
        return out
    }

    // MARK: - Events

    func addEvent(job: String, level: String = "info", message: String, type: String = "message", data: [String: Double]? = nil) throws {
        try db { db in try Self.insertEvent(db, job: job, level: level, message: message, type: type, data: data) }
    }

    private static func insertEvent(_ db: Database, job: String, level: String, message: String, type: String, data: [String: Double]?) throws {
        try db.execute(sql: "INSERT INTO events (job_id, created_at, level, message, type, data) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [job, now(), level, message, type, try data.map { try json($0) }])
    }

    /// Events newest first, older than the event `after` when given; `limit + 1` rows are read to know `has_more`.
    func events(job: String, after: String?, limit: Int) throws -> (events: [JobEvent], hasMore: Bool) {
        let cursor = after.flatMap { Int64($0.replacingOccurrences(of: "ftevent-", with: "")) } ?? Int64.max
        let rows = try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM events WHERE job_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                             arguments: [job, cursor, limit + 1])
        }
        let events = try rows.prefix(limit).map { r in
            JobEvent(id: "ftevent-\(r["seq"] as Int64)", createdAt: r["created_at"], level: r["level"], message: r["message"],
                     type: r["type"], data: try (r["data"] as String?).map { try Self.decode([String: Double].self, $0) })
        }
        return (events, rows.count > limit)
    }

    // MARK: - Checkpoints

    func addCheckpoint(job: String, step: Int, modelID: String, metrics: [String: Double]) throws {
        try db { db in
            try db.execute(sql: "INSERT INTO checkpoints (job_id, step, created_at, model_id, metrics) VALUES (?, ?, ?, ?, ?)",
                           arguments: [job, step, Self.now(), modelID, try Self.json(metrics)])
        }
    }

    func checkpoints(job: String, after: String?, limit: Int) throws -> (checkpoints: [JobCheckpoint], hasMore: Bool) {
        let cursor = after.flatMap { Int64($0.replacingOccurrences(of: "ftckpt-", with: "")) } ?? Int64.max
        let rows = try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE job_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                             arguments: [job, cursor, limit + 1])
        }
        let out = try rows.prefix(limit).map { r in
            JobCheckpoint(id: "ftckpt-\(r["seq"] as Int64)", createdAt: r["created_at"], fineTunedModelCheckpoint: r["model_id"],
                          stepNumber: r["step"], metrics: try Self.decode([String: Double].self, r["metrics"]), fineTuningJobID: job)
        }
        return (out, rows.count > limit)
    }
}

// MARK: - Schema

/// Versioned migrations, applied in one IMMEDIATE transaction that reads and bumps `PRAGMA user_version`
/// (the registry's scheme). Never edit a shipped step; append one.
enum ServeSchema {
    static let migrations: [String] = [
        """
        CREATE TABLE files (
            id TEXT PRIMARY KEY,
            created_at INTEGER NOT NULL,
            body TEXT NOT NULL                      -- FileObject JSON
        );
        CREATE TABLE jobs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order
            id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL CHECK (status IN ('validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
            created_at INTEGER NOT NULL,
            body TEXT NOT NULL                      -- FineTuningJob JSON
        );
        CREATE INDEX jobs_status ON jobs (status, seq);
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES jobs (id),
            created_at INTEGER NOT NULL,
            level TEXT NOT NULL,
            message TEXT NOT NULL,
            type TEXT NOT NULL,
            data TEXT                               -- JSON object of numbers (step, train_loss, …)
        );
        CREATE INDEX events_job ON events (job_id, seq);
        CREATE TABLE checkpoints (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id TEXT NOT NULL REFERENCES jobs (id),
            step INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            model_id TEXT NOT NULL,
            metrics TEXT NOT NULL
        );
        CREATE INDEX checkpoints_job ON checkpoints (job_id, seq);
        """,
    ]

    static func migrate(_ db: Database, path: String) throws {
        try db.inTransaction(.immediate) {
            let have = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            guard have <= migrations.count else {
                throw TuneError(.conflict, "\(path)/serve.sqlite: schema version \(have) is newer than this tune understands (\(migrations.count)); upgrade tune")
            }
            for step in migrations.dropFirst(have) { try db.execute(sql: step) }
            if have < migrations.count { try db.execute(sql: "PRAGMA user_version = \(migrations.count)") }
            return .commit
        }
    }
}
