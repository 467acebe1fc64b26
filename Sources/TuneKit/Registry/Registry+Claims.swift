// Registry+Claims — stage claims: at most one process runs a stage with a given cache key at a time,
// across processes and hosts that share a registry (schema v4, table `stage_claims`).
//
// A claim is one row keyed by the cache key: who holds it (pid, host, a random token per claim) and
// when it was taken and last refreshed. Every operation here is one write transaction, so two
// processes cannot both take a free key or both take over a stale one. The policy — when to wait,
// how often to refresh, when a holder counts as gone — lives in Pipeline/StageClaim.swift.
//
// ```swift
// let me = StageClaimOwner.current()
// switch try reg.claimStage(cacheKey: key, stage: "train", pipeline: "p", owner: me, staleBefore: Date() - 120) {
// case .claimed: …run…; try reg.releaseStageClaim(cacheKey: key, token: me.token)
// case .held(let h): print("held by pid \(h.pid) on \(h.host) since \(h.startedAt)")
// }
// ```

import Foundation

/// Who takes a claim: this process on this host, with a token unique to this claim attempt.
public struct StageClaimOwner: Sendable, Hashable {
    public var pid: Int32
    public var host: String
    public var token: String

    public init(pid: Int32, host: String, token: String = UUID().uuidString.lowercased()) {
        self.pid = pid
        self.host = host
        self.token = token
    }

    /// This process: its pid, its host name (`TUNE_CLAIM_HOST` overrides it, for containers that share
    /// a host name or a pid namespace's view), and a fresh random token.
    public static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> StageClaimOwner {
        StageClaimOwner(pid: getpid(), host: environment["TUNE_CLAIM_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? localHostName)
    }

    /// The host name as gethostname(2) reports it.
    public static var localHostName: String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "localhost" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether process `pid` exists on this host and has not exited (a zombie counts as exited).
    public static func processIsAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        if kill(pid, 0) != 0, errno == ESRCH { return false }
        #if os(Linux)
        // /proc/PID/stat: "pid (comm) S …"; the state letter follows the last ')'.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            let state = stat[stat.index(after: close)...].drop { $0 == " " }.first
            if state == "Z" || state == "X" { return false }
        }
        #endif
        return true
    }
}

/// One claim row.
public struct StageClaimRecord: Codable, Sendable, Hashable {
    public var cacheKey: String
    public var stage: String
    public var pipeline: String
    public var pid: Int32
    public var host: String
    public var token: String
    public var startedAt: String
    public var heartbeatAt: String

    /// "pid 123 on node7 since 2026-11-23T13:02:27.819Z"
    public var holderDescription: String { "pid \(pid) on \(host) since \(startedAt)" }

    enum CodingKeys: String, CodingKey {
        case stage, pipeline, pid, host, token
        case cacheKey = "cache_key", startedAt = "started_at", heartbeatAt = "heartbeat_at"
    }
}

/// What `claimStage` found.
public enum StageClaimOutcome: Sendable, Hashable {
    /// The caller now holds the claim; `replaced` is the stale or dead holder it took over from, if any.
    case claimed(StageClaimRecord, replaced: StageClaimRecord?)
    /// Another live holder has it.
    case held(StageClaimRecord)
}

extension Registry {
    /// Takes the claim on `cacheKey` for `owner` in one write transaction. A free key is taken; a key
    /// held by `owner`'s own token is refreshed; a key whose heartbeat is older than `staleBefore`, or
    /// whose holder is on `owner.host` and `isAlive` says its pid is gone, is taken over; otherwise the
    /// holder is returned.
    public func claimStage(cacheKey: String, stage: String, pipeline: String, owner: StageClaimOwner, staleBefore: Date,
                           isAlive: (Int32) -> Bool = StageClaimOwner.processIsAlive) throws -> StageClaimOutcome {
        guard !cacheKey.isEmpty else { throw TuneError(.invalidArgument, "claiming stage '\(stage)': empty cache key") }
        return try write { db in
            let now = Stamp.string(Date())
            var replaced: StageClaimRecord?
            if let row = try db.queryOne("SELECT * FROM stage_claims WHERE cache_key = ?", [cacheKey]) {
                let held = try Self.decodeClaim(row)
                if held.token == owner.token {
                    try db.execute("UPDATE stage_claims SET heartbeat_at = ? WHERE cache_key = ? AND owner_token = ?",
                                   [now, cacheKey, owner.token])
                    var r = held
                    r.heartbeatAt = now
                    return .claimed(r, replaced: nil)
                }
                let stale = held.heartbeatAt < Stamp.string(staleBefore)
                let dead = held.host == owner.host && !isAlive(held.pid)
                guard stale || dead else { return .held(held) }
                try db.execute("DELETE FROM stage_claims WHERE cache_key = ? AND owner_token = ?", [cacheKey, held.token])
                replaced = held
            }
            try db.execute("""
                INSERT INTO stage_claims (cache_key, stage, pipeline, owner_pid, owner_host, owner_token, started_at, heartbeat_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, [cacheKey, stage, pipeline, Int(owner.pid), owner.host, owner.token, now, now])
            let mine = StageClaimRecord(cacheKey: cacheKey, stage: stage, pipeline: pipeline, pid: owner.pid, host: owner.host,
                                        token: owner.token, startedAt: now, heartbeatAt: now)
            return .claimed(mine, replaced: replaced)
        }
    }

    /// Moves the heartbeat of the claim on `cacheKey` to now; false when `token` no longer holds it
    /// (it was released, or taken over as stale).
    @discardableResult
    public func refreshStageClaim(cacheKey: String, token: String) throws -> Bool {
        try write { db in
            try db.execute("UPDATE stage_claims SET heartbeat_at = ? WHERE cache_key = ? AND owner_token = ?",
                           [Stamp.string(Date()), cacheKey, token]) == 1
        }
    }

    /// Deletes the claim on `cacheKey` if `token` holds it; false when it did not (nothing changes).
    @discardableResult
    public func releaseStageClaim(cacheKey: String, token: String) throws -> Bool {
        try write { db in
            try db.execute("DELETE FROM stage_claims WHERE cache_key = ? AND owner_token = ?", [cacheKey, token]) == 1
        }
    }

    /// The claim on `cacheKey`, if any.
    public func stageClaim(cacheKey: String) throws -> StageClaimRecord? {
        try read { db in try db.queryOne("SELECT * FROM stage_claims WHERE cache_key = ?", [cacheKey]).map(Self.decodeClaim) }
    }

    /// Every claim, oldest first.
    public func stageClaims() throws -> [StageClaimRecord] {
        try read { db in try db.query("SELECT * FROM stage_claims ORDER BY started_at, cache_key", []).map(Self.decodeClaim) }
    }

    static func decodeClaim(_ r: SQLRow) throws -> StageClaimRecord {
        let pid: Int64 = try r["owner_pid"]
        return try StageClaimRecord(cacheKey: r["cache_key"], stage: r["stage"], pipeline: r["pipeline"], pid: Int32(truncatingIfNeeded: pid),
                                    host: r["owner_host"], token: r["owner_token"], startedAt: r["started_at"],
                                    heartbeatAt: r["heartbeat_at"])
    }
}
