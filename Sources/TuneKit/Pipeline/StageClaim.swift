// StageClaim — one run per stage cache key, across processes and hosts sharing a registry
// (docs/concurrency.md). The runner wraps each stage it is about to execute in `withStageClaim`:
//
//     let outs = try withStageClaim(stage: .train, key: key, pipeline: spec.name, registry: registry,
//                                   policy: options.claimPolicy, onEvent: onEvent) {
//         // holding the claim: re-check the registry (another run may have just finished the stage),
//         // else run the stage and record it
//     }
//
// Protocol:
// 1. Claim: one write transaction inserts the row (cache key, pid, host, random token, started,
//    heartbeat) — or takes over a row whose heartbeat is older than `staleAfter`, or whose holder is on
//    this host and its pid is gone (then at once).
// 2. Held by someone alive: with `wait` (the default) print one line "waiting for <stage>: held by pid P
//    on HOST since T" and poll every `pollInterval` until the claim is free or stale; without it
//    (`tune run --no-wait`) throw a conflict naming the holder.
// 3. Holding it: a background thread refreshes the heartbeat every `heartbeatInterval`; `body` runs;
//    the row is deleted when `body` returns or throws. `body` always re-checks the registry first, so
//    a run that waited adopts the finished stage's outputs instead of running it again.

import Foundation

/// How a run waits for, holds and takes over stage claims.
public struct StageClaimPolicy: Sendable, Hashable {
    /// Wait for a claimed stage (true), or fail at once naming the holder (`--no-wait`).
    public var wait = true
    /// A claim whose heartbeat is older than this is taken over (the holder is presumed dead).
    public var staleAfter: TimeInterval = 120
    /// How often the holder refreshes its heartbeat.
    public var heartbeatInterval: TimeInterval = 15
    /// How often a waiting run looks at the claim again.
    public var pollInterval: TimeInterval = 1

    public init(wait: Bool = true, staleAfter: TimeInterval = 120, heartbeatInterval: TimeInterval = 15, pollInterval: TimeInterval = 1) {
        self.wait = wait
        self.staleAfter = staleAfter
        self.heartbeatInterval = heartbeatInterval
        self.pollInterval = pollInterval
    }

    /// Environment variables that override the defaults (seconds, decimals allowed).
    public static let environmentKeys = (stale: "TUNE_CLAIM_STALE_SECONDS", heartbeat: "TUNE_CLAIM_HEARTBEAT_SECONDS",
                                         poll: "TUNE_CLAIM_POLL_SECONDS")

    /// The defaults with `TUNE_CLAIM_STALE_SECONDS`, `TUNE_CLAIM_HEARTBEAT_SECONDS` and `TUNE_CLAIM_POLL_SECONDS`
    /// applied; a malformed value is an error naming the variable.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> StageClaimPolicy {
        var p = StageClaimPolicy()
        func seconds(_ key: String) throws -> TimeInterval? {
            guard let raw = env[key], !raw.isEmpty else { return nil }
            guard let v = Double(raw.trimmingCharacters(in: .whitespaces)), v.isFinite, v > 0 else {
                throw TuneError(.invalidArgument, "\(key)=\(raw): expected a positive number of seconds")
            }
            return v
        }
        if let v = try seconds(environmentKeys.stale) { p.staleAfter = v }
        if let v = try seconds(environmentKeys.heartbeat) { p.heartbeatInterval = v }
        if let v = try seconds(environmentKeys.poll) { p.pollInterval = v }
        try p.validate()
        return p
    }

    /// A holder must refresh at least twice within the stale timeout, or a live, busy holder could be
    /// taken over between two heartbeats.
    public func validate() throws {
        for (name, v) in [("stale timeout", staleAfter), ("heartbeat interval", heartbeatInterval), ("poll interval", pollInterval)]
        where !(v.isFinite && v > 0) {
            throw TuneError(.invalidArgument, "stage claims: the \(name) must be a positive number of seconds, got \(v)")
        }
        guard staleAfter >= 2 * heartbeatInterval else {
            throw TuneError(.invalidArgument, "stage claims: the stale timeout (\(staleAfter) s, \(Self.environmentKeys.stale)) must be at least "
                                + "twice the heartbeat interval (\(heartbeatInterval) s, \(Self.environmentKeys.heartbeat))")
        }
    }
}

/// Runs `body` holding the claim on `key` for `stage`: claims it (waiting while another live run holds it,
/// or failing at once when `policy.wait` is false), refreshes the heartbeat from a background thread while
/// `body` runs, and releases the claim when `body` returns or throws. `body` must re-check the registry
/// for a finished stage with this key before running it: the claim only says nobody else is running it.
/// - Parameters:
///   - onEvent: gets `.waiting` (one line per holder waited for) and `.progress` (a takeover, a lost claim).
///   - shouldStop: polled while waiting; true throws `interrupted`.
public func withStageClaim<T>(stage: StageKind, key: String, pipeline: String, registry: Registry, policy: StageClaimPolicy,
                              owner: StageClaimOwner = .current(), shouldStop: () -> Bool = { false },
                              onEvent: (RunEvent) -> Void = { _ in }, body: () throws -> T) throws -> T {
    try policy.validate()
    var announced: String?   // the token of the holder we said we are waiting for
    while true {
        let outcome = try registry.claimStage(cacheKey: key, stage: stage.rawValue, pipeline: pipeline, owner: owner,
                                              staleBefore: Date().addingTimeInterval(-policy.staleAfter))
        if case .claimed(_, let replaced) = outcome {
            if let r = replaced {
                let why = r.host == owner.host && !StageClaimOwner.processIsAlive(r.pid)
                    ? "its process is gone" : "no heartbeat since \(r.heartbeatAt)"
                onEvent(.progress(stage: stage, message: "took over the claim of pid \(r.pid) on \(r.host) (\(why))"))
            }
            break
        }
        guard case .held(let holder) = outcome else { continue }
        guard policy.wait else {
            throw TuneError(.conflict, "\(pipeline): the \(stage.rawValue) stage is being run by another process: \(holder.holderDescription) "
                                + "(cache key \(key.prefix(12))…); wait for it, or run again without --no-wait")
        }
        if announced != holder.token {
            onEvent(.waiting(stage: stage, message: "waiting for \(stage.rawValue): held by \(holder.holderDescription)"))
            announced = holder.token
        }
        let until = Date().addingTimeInterval(policy.pollInterval)
        while Date() < until {
            if shouldStop() { throw TuneError(.interrupted, "\(pipeline): stopped while waiting for the \(stage.rawValue) stage (\(holder.holderDescription))") }
            Thread.sleep(forTimeInterval: min(0.05, policy.pollInterval))
        }
    }
    let beat = ClaimHeartbeat(registry: registry, key: key, token: owner.token, interval: policy.heartbeatInterval)
    beat.start()
    defer {
        beat.stop()
        _ = try? registry.releaseStageClaim(cacheKey: key, token: owner.token)
    }
    let out = try body()
    if beat.lost {
        onEvent(.progress(stage: stage, message: "warning: the claim was taken over while this run held it "
                            + "(no heartbeat reached the registry for \(Int(policy.staleAfter)) s)"))
    }
    return out
}

/// Refreshes a claim's heartbeat every `interval` on its own thread until stopped; `lost` turns true when
/// the claim is no longer this run's. A failed refresh (a busy database) is retried at the next beat.
final class ClaimHeartbeat: @unchecked Sendable {
    private let registry: Registry, key: String, token: String, interval: TimeInterval
    private let done = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var isLost = false
    var lost: Bool { lock.withLock { isLost } }

    init(registry: Registry, key: String, token: String, interval: TimeInterval) {
        self.registry = registry; self.key = key; self.token = token; self.interval = interval
    }

    func start() {
        let t = Thread { [self] in
            while done.wait(timeout: .now() + interval) == .timedOut {
                if let ok = try? registry.refreshStageClaim(cacheKey: key, token: token), !ok {
                    lock.withLock { isLost = true }
                    break
                }
            }
            finished.signal()
        }
        t.name = "tune-claim-heartbeat"
        t.start()
    }

    func stop() {
        done.signal()
        finished.wait()
    }
}
