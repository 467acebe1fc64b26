// ScheduleQueueTests — the durable queue and the tick with an injected clock: idempotent enqueueing
// per base version, cron catch-up once, lease expiry and takeover, heartbeats and lost leases,
// retries with exponential backoff up to max attempts, concurrent leasers never sharing a job, the
// append-only history, and the in-place v2 → v3 migration.
import Engine
import Foundation
import Testing
import TuneKit

private let t0 = Stamp.date("2026-11-23T12:00:00Z")!

@Suite struct ScheduleQueueTests {
    @Test(arguments: RegistryBackend.allCases) func tickEnqueuesOnePerPipelineAndBaseVersion(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let clock = ManualClock(t0)
        try f.base("tiny", "1", seed: 1)
        try f.registry.addSchedule(path: try f.pipeline("a"), now: t0)
        try f.registry.addSchedule(path: try f.pipeline("b"), now: t0)
        let first = try Scheduler.tick(registry: f.registry, clock: clock)
        #expect(first.enqueued.map { "\($0.pipeline) \($0.base)" }.sorted() == ["a tiny@1", "b tiny@1"])
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.isEmpty, "a second tick enqueues nothing")
        try f.base("tiny", "2", seed: 2)
        try f.base("tiny", "3", seed: 3)
        let upgrade = try Scheduler.tick(registry: f.registry, clock: clock)
        #expect(upgrade.enqueued.map { "\($0.pipeline) \($0.base)" }.sorted() == ["a tiny@3", "b tiny@3"], "only the newest version")
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.isEmpty)
        #expect(try JobQueue(registry: f.registry).jobs().count == 4)
    }

    @Test(arguments: RegistryBackend.allCases) func cronCatchesUpOnceAfterDowntime(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        try f.base("tiny", "1", seed: 1)
        try f.registry.addSchedule(path: try f.pipeline("nightly", schedule: "{cron: \"0 3 * * *\"}"), now: t0)
        let clock = ManualClock(t0.addingTimeInterval(5 * 86_400))   // five nightly times missed
        let r = try Scheduler.tick(registry: f.registry, clock: clock)
        #expect(r.enqueued.map(\.triggerKey) == ["cron:2026-11-28T03:00:00.000Z"])
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.isEmpty)
        clock.advance(3600)
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.isEmpty, "next time is tomorrow 03:00")
        clock.advance(86_400)
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.map(\.triggerKey) == ["cron:2026-11-29T03:00:00.000Z"])
    }

    @Test(arguments: RegistryBackend.allCases) func expiredLeaseIsTakenOverAndTheOldHolderCannotFinish(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let clock = ManualClock(t0)
        try f.base("tiny", "1", seed: 1)
        try f.registry.addSchedule(path: try f.pipeline("a"), now: t0)
        _ = try Scheduler.tick(registry: f.registry, clock: clock)
        let q = JobQueue(registry: f.registry, clock: clock)
        let a = try #require(try q.lease(owner: "A", duration: 60))
        try q.start(a.id, owner: "A")
        #expect(try q.lease(owner: "B", duration: 60) == nil, "a live lease is not shared")
        clock.advance(30)
        #expect(try q.heartbeat(a.id, owner: "A", duration: 60), "the holder extends its lease")
        clock.advance(61)
        let b = try #require(try q.lease(owner: "B", duration: 60))
        #expect(b.id == a.id && b.attempts == 2 && b.leaseOwner == "B")
        #expect(try q.heartbeat(a.id, owner: "A", duration: 60) == false, "A learns it lost the lease")
        #expect(tuneError { try q.complete(a.id, owner: "A", result: .object([:]), detail: nil) }?.kind == .conflict)
        try q.start(b.id, owner: "B")
        try q.complete(b.id, owner: "B", result: .object(["ok": .bool(true)]), detail: "done")
        #expect(try q.job(a.id)?.state == .succeeded)
        let h = try q.history(job: a.id).map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue):\($0.owner ?? "")" }
        #expect(h == ["->queued:", "queued>leased:A", "leased>running:A", "running>leased:B", "leased>running:B", "running>succeeded:B"])
    }

    @Test(arguments: RegistryBackend.allCases) func failuresRetryWithBackoffUntilMaxAttempts(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let clock = ManualClock(t0)
        try f.base("tiny", "1", seed: 1)
        try f.registry.addSchedule(path: try f.pipeline("a", schedule: "{on_base_upgrade: true, max_attempts: 3}"), now: t0)
        _ = try Scheduler.tick(registry: f.registry, clock: clock)
        let q = JobQueue(registry: f.registry, clock: clock)
        for (attempt, delay) in [(1, 30.0), (2, 60.0)] {
            let j = try #require(try q.lease(owner: "W", duration: 60))
            #expect(j.attempts == attempt)
            #expect(try q.fail(j.id, owner: "W", error: "boom \(attempt)") == .queued)
            clock.advance(delay - 1)
            #expect(try q.lease(owner: "W", duration: 60) == nil, "still backing off after attempt \(attempt)")
            clock.advance(1)
        }
        let last = try #require(try q.lease(owner: "W", duration: 60))
        #expect(try q.fail(last.id, owner: "W", error: "boom 3") == .failed)
        #expect(try q.job(last.id)?.error == "boom 3")
        #expect(try q.lease(owner: "W", duration: 60) == nil)
    }

    @Test(arguments: RegistryBackend.allCases) func expiredLeaseWithoutAttemptsLeftFails(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let clock = ManualClock(t0)
        try f.base("tiny", "1", seed: 1)
        try f.registry.addSchedule(path: try f.pipeline("a", schedule: "{on_base_upgrade: true, max_attempts: 1}"), now: t0)
        _ = try Scheduler.tick(registry: f.registry, clock: clock)
        let q = JobQueue(registry: f.registry, clock: clock)
        let j = try #require(try q.lease(owner: "A", duration: 10))
        clock.advance(11)
        #expect(try q.lease(owner: "B", duration: 10) == nil)
        #expect(try q.job(j.id)?.state == .failed)
        #expect(try q.job(j.id)?.error?.contains("expired on attempt 1 of 1") == true)
    }

    @Test(arguments: RegistryBackend.allCases) func concurrentLeasersNeverShareAJob(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        try f.base("tiny", "1", seed: 1)
        for i in 0..<12 { try f.registry.addSchedule(path: try f.pipeline("p\(i)"), now: t0) }
        #expect(try Scheduler.tick(registry: f.registry).enqueued.count == 12)
        final class Taken: @unchecked Sendable {
            let lock = NSLock()
            var ids: [Int64] = []
        }
        let got = Taken()
        let registries = try (0..<4).map { _ in try f.reopen() }   // separate connection pools, like processes
        DispatchQueue.concurrentPerform(iterations: 4) { w in
            let q = JobQueue(registry: registries[w])
            while let j = try? q.lease(owner: "w\(w)", duration: 600) {
                got.lock.withLock { got.ids.append(j.id) }
            }
        }
        #expect(got.ids.count == 12 && Set(got.ids).count == 12, "\(got.ids.sorted())")
    }

    @Test(arguments: RegistryBackend.allCases) func version2RegistryMigratesInPlace(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let src = f.dir.appendingPathComponent("x.txt")
        try Data("hello".utf8).write(to: src)
        let a = try f.registry.register(NewArtifact(kind: .dataset, name: "d", source: src))
        try rewindSchema(f.registry, to: 2, dropping: ["job_history", "jobs", "schedules", "bases"])
        let reopened = try f.reopen()
        #expect(try reopened.resolve("d@1").sha256 == a.sha256)
        #expect(try reopened.bases().isEmpty && reopened.schedules().isEmpty)
        #expect(try schemaVersion(reopened) == 7)
    }
}

@Suite struct ScheduleProductionGateTests {
    @Test func comparesTheGateMetricsInTheirDirection() throws {
        var config = EvalConfig()
        config.metrics = ["loss", "choice"]
        config.choices = ["a", "b"]
        config.gate = [GateRule(metric: "accuracy", minDeltaVsBase: 0.1), GateRule(metric: "perplexity", maxRatioVsBase: 1)]
        #expect(ProductionGate.metrics(config) == ["choice", "perplexity"])
        let prod = ["choice": 0.80, "perplexity": 3.0, "loss": 1.1]
        let better = try ProductionGate.compare(candidate: ["choice": 0.80, "perplexity": 2.9, "loss": 1.0], production: prod, config: config)
        #expect(better.allSatisfy { $0.passed }, "a tie on accuracy and a lower perplexity pass")
        let worse = try ProductionGate.compare(candidate: ["choice": 0.85, "perplexity": 3.2, "loss": 1.0], production: prod, config: config)
        #expect(worse.map(\.passed) == [true, false])
        #expect(ProductionGate.summary(worse).contains("perplexity 3.2000 vs production 3.0000 (+0.2000) worse (higher)"))
        config.gate = []
        #expect(ProductionGate.metrics(config) == ["loss"], "no gate rules: loss decides")
        #expect(try ProductionGate.compare(candidate: ["loss": 1.2], production: ["loss": 1.1], config: config).first?.passed == false)
    }
}
