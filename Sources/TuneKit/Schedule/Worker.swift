// Worker — `tune schedule worker`: lease a due job, keep its lease alive from a heartbeat thread while
// the re-tune (or drift recheck: Recheck.swift) runs, then complete it (moving `production` in the same transaction when the decision
// says so) or record the failure for a retry with backoff. A worker that loses its lease (it stalled
// past expiry and another worker took the job) stops training and commits nothing.
//
//     let w = Worker(registry: reg, owner: "host:1234", leaseDuration: 300)
//     while let outcome = try w.runOnce() { print(outcome.summary) }

import Foundation

/// What one worker iteration did.
public struct WorkerOutcome: Codable, Sendable {
    public var job: Int64
    public var pipeline: String
    public var base: String
    /// succeeded | retry | failed | lease-lost
    public var status: String
    public var promoted: Bool
    public var message: String
}

public struct Worker: Sendable {
    public let registry: Registry
    public let queue: JobQueue
    public let owner: String
    public let leaseDuration: TimeInterval
    public var notifier: Notifier
    /// Environment and transport of drift rechecks (reference models' API keys and URLs).
    public var recheck = RecheckOptions()

    public init(registry: Registry, clock: any ScheduleClock = SystemClock(), owner: String = Worker.defaultOwner,
                leaseDuration: TimeInterval = 300, notifier: Notifier = Notifier()) {
        self.registry = registry
        self.queue = JobQueue(registry: registry, clock: clock)
        self.owner = owner
        self.leaseDuration = leaseDuration
        self.notifier = notifier
    }

    /// `hostname:pid:random`, unique per worker process.
    public static var defaultOwner: String {
        "\(ProcessInfo.processInfo.hostName):\(getpid()):\(UUID().uuidString.prefix(8))"
    }

    /// Leases and runs one due job; nil when none is due.
    public func runOnce(onEvent: (RunEvent) -> Void = { _ in }) throws -> WorkerOutcome? {
        guard let job = try queue.lease(owner: owner, duration: leaseDuration) else { return nil }
        try queue.start(job.id, owner: owner)
        let beat = Heartbeat(queue: queue, job: job.id, owner: owner, duration: leaseDuration)
        beat.start()
        var outcome = WorkerOutcome(job: job.id, pipeline: job.pipeline, base: job.base.description, status: "", promoted: false, message: "")
        let decision: RetuneDecision
        do {
            if Recheck.isRecheck(job) {
                var options = recheck
                options.shouldStop = { beat.lost }
                decision = try Recheck.decision(job, registry: registry, options: options, onEvent: onEvent)
            } else {
                decision = try Retune.run(job, registry: registry, shouldStop: { beat.lost }, onEvent: onEvent)
            }
            beat.stop()
        } catch {
            beat.stop()
            let message = (error as? TuneError)?.message ?? "\(error)"
            if beat.lost { return finish(&outcome, "lease-lost", "lease lost while running: \(message)") }
            let permanent = (error as? TuneError).map { [.invalidArgument, .badData, .notFound, .fileAccess, .integrity].contains($0.kind) } ?? false
            let state = try queue.fail(job.id, owner: owner, error: message, retry: !permanent)
            return finish(&outcome, state == .queued ? "retry" : "failed", message)
        }
        FaultPoint.hit("schedule.before-complete")
        do {
            try queue.complete(job.id, owner: owner, result: .object(decision.summary), detail: decision.reason) { db in
                if let a = decision.promote { _ = try registry.setAlias(db, Registry.productionAlias, to: a.id, by: "tune schedule worker \(owner)") }
            }
        } catch let e as TuneError where e.kind == .conflict {
            return finish(&outcome, "lease-lost", e.message)
        }
        outcome.promoted = decision.promote != nil
        if decision.notify, let spec = try? PipelineSpec.load(path: try registry.schedules().first { $0.pipeline == job.pipeline }?.specPath ?? ""),
           let n = spec.notify {
            let r = notifier.send(.object(decision.summary), notify: n, directory: spec.baseDirectory)
            try queue.annotate(job.id, key: "notify", value: r, detail: "notified: \((try? r.canonicalJSON()) ?? "")")
        }
        return finish(&outcome, "succeeded", decision.reason)
    }

    private func finish(_ o: inout WorkerOutcome, _ status: String, _ message: String) -> WorkerOutcome {
        o.status = status
        o.message = message
        return o
    }
}

/// Extends a job's lease every third of its duration until stopped; `lost` turns true when it cannot.
final class Heartbeat: @unchecked Sendable {
    private let queue: JobQueue, job: Int64, owner: String, duration: TimeInterval
    private let done = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var isLost = false
    var lost: Bool { lock.withLock { isLost } }

    init(queue: JobQueue, job: Int64, owner: String, duration: TimeInterval) {
        self.queue = queue; self.job = job; self.owner = owner; self.duration = duration
    }

    func start() {
        let t = Thread { [self] in
            while done.wait(timeout: .now() + max(0.05, duration / 3)) == .timedOut {
                let ok = (try? queue.heartbeat(job, owner: owner, duration: duration)) ?? true  // a busy database is retried next beat
                if !ok { lock.withLock { isLost = true }; break }
            }
            finished.signal()
        }
        t.start()
    }

    func stop() {
        done.signal()
        finished.wait()
    }
}
