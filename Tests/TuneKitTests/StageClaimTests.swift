// StageClaimTests — stage claims on both backends: claim / refresh / release by token, stale and
// dead-process takeover, one winner among racing claimers, and `withStageClaim`'s wait / --no-wait /
// heartbeat / release policy. The cross-process behaviour through `tune run` is in tuneTests.
import Engine
import Foundation
import Testing
import TuneKit

private let key = String(repeating: "ab", count: 32)

private func owner(_ host: String, pid: Int32 = getpid()) -> StageClaimOwner { StageClaimOwner(pid: pid, host: host) }

private func claim(_ r: Registry, _ o: StageClaimOwner, staleAfter: TimeInterval = 60, key k: String = key,
                   alive: @escaping (Int32) -> Bool = { _ in true }) throws -> StageClaimOutcome {
    try r.claimStage(cacheKey: k, stage: "train", pipeline: "p", owner: o, staleBefore: Date().addingTimeInterval(-staleAfter), isAlive: alive)
}

@Suite("StageClaims")
struct StageClaimTests {
    @Test(arguments: RegistryBackend.allCases) func claimRefreshRelease(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let a = owner("node-a"), b = owner("node-b")
        guard case .claimed(let mine, let replaced) = try claim(t.registry, a) else { Issue.record("a free key was not claimed"); return }
        #expect(replaced == nil)
        #expect(mine.token == a.token && mine.pid == getpid() && mine.host == "node-a" && mine.stage == "train")
        // Someone else (another handle, as another process) finds it held, with who and since when.
        let other = try t.reopen()
        guard case .held(let h) = try claim(other, b) else { Issue.record("a held key was claimed twice"); return }
        #expect(h.token == a.token && h.host == "node-a" && h.startedAt == mine.startedAt)
        #expect(h.holderDescription == "pid \(getpid()) on node-a since \(mine.startedAt)")
        // Only the token's holder refreshes or releases.
        Thread.sleep(forTimeInterval: 0.01)
        #expect(try t.registry.refreshStageClaim(cacheKey: key, token: a.token))
        #expect(try other.stageClaim(cacheKey: key)!.heartbeatAt > mine.heartbeatAt)
        #expect(try !other.refreshStageClaim(cacheKey: key, token: b.token))
        #expect(try !other.releaseStageClaim(cacheKey: key, token: b.token))
        #expect(try other.stageClaim(cacheKey: key)?.token == a.token)
        // Claiming again with the same token is a refresh, not a conflict.
        guard case .claimed = try claim(t.registry, a) else { Issue.record("re-claim by the holder failed"); return }
        #expect(try t.registry.stageClaims().count == 1)
        #expect(try t.registry.releaseStageClaim(cacheKey: key, token: a.token))
        #expect(try t.registry.stageClaim(cacheKey: key) == nil)
        #expect(try !t.registry.releaseStageClaim(cacheKey: key, token: a.token))
        guard case .claimed(let theirs, nil) = try claim(other, b) else { Issue.record("a released key was not claimable"); return }
        #expect(theirs.host == "node-b")
        // Claims are per cache key.
        guard case .claimed = try claim(t.registry, a, key: String(repeating: "cd", count: 32)) else { Issue.record("another key was held"); return }
        #expect(try t.registry.stageClaims().count == 2)
    }

    @Test(arguments: RegistryBackend.allCases) func staleAndDeadHoldersAreTakenOver(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let a = owner("node-a", pid: 4_000_001), b = owner("node-b")
        guard case .claimed = try claim(t.registry, a) else { Issue.record("not claimed"); return }
        // Another host: the pid cannot be checked; only a heartbeat older than the stale timeout counts.
        guard case .held = try claim(t.registry, b, staleAfter: 60, alive: { _ in false }) else { Issue.record("fresh claim taken over"); return }
        Thread.sleep(forTimeInterval: 0.05)
        guard case .claimed(let mine, let replaced) = try claim(t.registry, b, staleAfter: 0.02) else { Issue.record("stale claim not taken over"); return }
        #expect(replaced?.token == a.token && replaced?.host == "node-a")
        #expect(mine.token == b.token)
        // The old holder has lost it: its heartbeat and release say so and change nothing.
        #expect(try !t.registry.refreshStageClaim(cacheKey: key, token: a.token))
        #expect(try !t.registry.releaseStageClaim(cacheKey: key, token: a.token))
        #expect(try t.registry.stageClaim(cacheKey: key)?.token == b.token)

        // Same host: a holder whose process is gone is taken over at once; a live one is not.
        let c = owner("node-b", pid: 4_000_002)
        guard case .held = try claim(t.registry, c, alive: { _ in true }) else { Issue.record("live same-host holder taken over"); return }
        guard case .claimed(_, let gone) = try claim(t.registry, c, alive: { $0 != getpid() }) else {
            Issue.record("dead same-host holder not taken over"); return
        }
        #expect(gone?.token == b.token)
    }

    @Test func processLiveness() throws {
        #expect(StageClaimOwner.processIsAlive(getpid()))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run()
        p.waitUntilExit()
        #expect(!StageClaimOwner.processIsAlive(p.processIdentifier))
        #expect(!StageClaimOwner.processIsAlive(0))
        #expect(StageClaimOwner.current(environment: ["TUNE_CLAIM_HOST": "node-x"]).host == "node-x")
        #expect(StageClaimOwner.current(environment: [:]).host == StageClaimOwner.localHostName)
        #expect(StageClaimOwner.current().token != StageClaimOwner.current().token)
    }

    @Test(arguments: RegistryBackend.allCases) func racingClaimersHaveOneWinner(_ backend: RegistryBackend) async throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let handles = try (0..<6).map { _ in try t.reopen() }
        let won = try await withThrowingTaskGroup(of: Bool.self) { group in
            for (i, r) in handles.enumerated() {
                group.addTask {
                    if case .claimed = try claim(r, owner("node-\(i)")) { return true }
                    return false
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(won == 1)
        #expect(try t.registry.stageClaims().count == 1)
    }

    @Test(arguments: RegistryBackend.allCases) func withStageClaimWaitsHeartbeatsAndReleases(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let policy = StageClaimPolicy(staleAfter: 5, heartbeatInterval: 0.1, pollInterval: 0.05)
        let holder = owner("node-a"), waiter = owner("node-b")
        let inside = DispatchSemaphore(value: 0), leave = DispatchSemaphore(value: 0)
        let firstBeat = ClaimBox<String?>(nil), lastBeat = ClaimBox<String?>(nil)
        let reg = t.registry
        let thread = Thread {
            _ = try? withStageClaim(stage: .train, key: key, pipeline: "p", registry: reg, policy: policy, owner: holder) {
                firstBeat.set(try? reg.stageClaim(cacheKey: key)?.heartbeatAt)
                inside.signal()
                leave.wait()
                lastBeat.set(try? reg.stageClaim(cacheKey: key)?.heartbeatAt)
            }
            inside.signal()
        }
        thread.start()
        inside.wait()
        let other = try t.reopen()
        // --no-wait: a conflict naming the holder.
        var noWait = policy
        noWait.wait = false
        let e = tuneError { _ = try withStageClaim(stage: .train, key: key, pipeline: "p", registry: other, policy: noWait, owner: waiter) { 1 } }
        #expect(e?.kind == .conflict)
        #expect(e?.message.contains("the train stage is being run by another process: pid \(getpid()) on node-a since ") == true, "\(e?.message ?? "")")
        // Waiting: one line naming the holder, then the body runs once the holder is done.
        Thread.sleep(forTimeInterval: 0.35)   // a few heartbeats
        let events = ClaimBox<[RunEvent]>([])
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { leave.signal() }
        let ran = try withStageClaim(stage: .train, key: key, pipeline: "p", registry: other, policy: policy, owner: waiter,
                                     onEvent: { ev in events.update { $0.append(ev) } }) {
            try other.stageClaim(cacheKey: key)?.token
        }
        inside.wait()
        #expect(ran == waiter.token)
        let waits = events.get().compactMap { ev -> String? in if case .waiting(_, let m) = ev { return m }; return nil }
        #expect(waits.count == 1)
        #expect(waits.first?.hasPrefix("waiting for train: held by pid \(getpid()) on node-a since ") == true, "\(waits)")
        #expect(lastBeat.get()! > firstBeat.get()!, "the heartbeat thread refreshed the claim while the body ran")
        #expect(try t.registry.stageClaim(cacheKey: key) == nil, "released after the body")

        // A throwing body releases too.
        struct Boom: Error {}
        #expect(throws: Boom.self) { try withStageClaim(stage: .eval, key: key, pipeline: "p", registry: reg, policy: policy) { () throws -> Int in throw Boom() } }
        #expect(try t.registry.stageClaim(cacheKey: key) == nil)
    }

    @Test func policyFromEnvironment() throws {
        let d = try StageClaimPolicy.fromEnvironment([:])
        #expect(d.staleAfter == 120 && d.heartbeatInterval == 15 && d.pollInterval == 1 && d.wait)
        let p = try StageClaimPolicy.fromEnvironment(["TUNE_CLAIM_STALE_SECONDS": "3", "TUNE_CLAIM_HEARTBEAT_SECONDS": "0.5",
                                                      "TUNE_CLAIM_POLL_SECONDS": "0.1"])
        #expect(p.staleAfter == 3 && p.heartbeatInterval == 0.5 && p.pollInterval == 0.1)
        let bad = tuneError { _ = try StageClaimPolicy.fromEnvironment(["TUNE_CLAIM_STALE_SECONDS": "soon"]) }
        #expect(bad?.message == "TUNE_CLAIM_STALE_SECONDS=soon: expected a positive number of seconds")
        let tight = tuneError { _ = try StageClaimPolicy.fromEnvironment(["TUNE_CLAIM_STALE_SECONDS": "10"]) }
        #expect(tight?.kind == .invalidArgument)
        #expect(tight?.message.contains("must be at least twice the heartbeat interval (15.0 s") == true, "\(tight?.message ?? "")")
        var o = RunOptions()
        o.environment = ["TUNE_CLAIM_STALE_SECONDS": "4", "TUNE_CLAIM_HEARTBEAT_SECONDS": "1"]
        o.noWait = true
        o.claimPollInterval = 0.2
        let fromOptions = try o.claimPolicy()
        #expect(fromOptions == StageClaimPolicy(wait: false, staleAfter: 4, heartbeatInterval: 1, pollInterval: 0.2))
    }

    @Test(arguments: RegistryBackend.allCases) func version3RegistryGainsClaims(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let a = try t.add(.dataset, "d", "hello")
        try rewindSchema(t.registry, to: 3, dropping: ["stage_claims"])
        #expect(try schemaVersion(t.registry) == 3)
        let reopened = try t.reopen()
        #expect(try schemaVersion(reopened) == 7)
        #expect(try reopened.resolve("d@1").sha256 == a.sha256)
        guard case .claimed = try claim(reopened, owner("n")) else { Issue.record("not claimed after migrating"); return }
    }
}

/// A value shared with another thread.
final class ClaimBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
    func update(_ f: (inout T) -> Void) { lock.withLock { f(&value) } }
}
