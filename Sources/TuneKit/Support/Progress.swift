// Progress — structured progress of a long step (hashing a base, preparing rows, merging tensors,
// evaluating a model): done of total units, rate and ETA. Stages that get `onEvent` emit it as
// `RunEvent.measured`; code the runner calls without a callback (base hashing, the prepare stage)
// reports to `ProgressSink.current`, which `tune run` binds for the duration of a run.
//
//     let meter = ProgressMeter(task: "eval", subject: "base", total: 80, unit: "examples")
//     if let u = meter.tick(40) { onEvent(.measured(stage: .eval, progress: u)) }   // first, ≤ 1/s, last
//     u.text   // "base: 40/80 examples, 2.1 examples/s, ETA 19s"

import Foundation

/// `done` of `total` `unit`s of one task after `elapsed` seconds.
public struct ProgressUpdate: Codable, Hashable, Sendable {
    /// What is measured: `hash`, `prepare`, `merge`, `eval`.
    public var task: String
    /// What it is measured on: the model (`base`, `adapter`, `merged`) for eval, the file for hash/prepare.
    public var subject: String?
    public var done: Double
    /// nil when unknown.
    public var total: Double?
    /// `examples`, `rows`, `tensors`, `bytes`.
    public var unit: String
    public var elapsed: Double

    public init(task: String, subject: String? = nil, done: Double, total: Double?, unit: String, elapsed: Double) {
        self.task = task
        self.subject = subject
        self.done = done
        self.total = total
        self.unit = unit
        self.elapsed = elapsed
    }

    /// Units per second so far: nil before anything is done, and in the first quarter second of an
    /// unfinished task (one row in a few microseconds is not a rate anyone can plan with).
    public var rate: Double? { elapsed > 0 && done > 0 && (elapsed >= 0.25 || finished) ? done / elapsed : nil }

    /// Seconds left at the rate so far (nil when the total or the rate is unknown).
    public var eta: Double? {
        guard let total, let rate, rate > 0 else { return nil }
        return max(0, total - done) / rate
    }

    public var finished: Bool { total.map { done >= $0 } ?? false }

    /// `base: 40/80 examples, 2.1 examples/s, ETA 19s`; bytes as MB; the last one `… in 4m10s`.
    public var text: String {
        let mb = unit == "bytes"
        func amount(_ v: Double) -> String { mb ? String(format: "%.0f", v / 1e6) : String(format: "%.0f", v) }
        let u = mb ? "MB" : unit
        var s = subject.map { "\($0): " } ?? ""
        s += total.map { "\(amount(done))/\(amount($0)) \(u)" } ?? "\(amount(done)) \(u)"
        if let r = rate { s += mb ? String(format: ", %.0f MB/s", r / 1e6) : String(format: r >= 10 ? ", %.0f %@/s" : ", %.2f %@/s", r, u) }
        if finished { s += " in \(humanDuration(elapsed))" } else if let e = eta { s += ", ETA \(humanDuration(e))" }
        return s
    }
}

/// Where progress goes when no `onEvent` reaches the code (base hashing, the prepare stage): bound by
/// the caller of `PipelineRunner.run` (`ProgressSink.$current.withValue(…) { … }`); nil drops it.
public enum ProgressSink {
    public typealias Sink = @Sendable (StageKind?, ProgressUpdate) -> Void
    private static let key = "tune.progress-sink"
    private final class Box: @unchecked Sendable { let sink: Sink?; init(_ s: Sink?) { sink = s } }

    /// The sink bound on this thread, if any.
    public static var current: Sink? { (Thread.current.threadDictionary[key] as? Box)?.sink }

    /// Runs `body` with `sink` receiving the progress reported on this thread (the runner's work is
    /// synchronous on the caller's thread); the previous sink is restored afterwards. A thread-local
    /// rather than a `@TaskLocal`: the synchronous `TaskLocal.withValue` crashed (SIGSEGV in
    /// swift_task_localValuePush) when `tune run` called it from ArgumentParser's async main.
    public static func withSink<T>(_ sink: Sink?, _ body: () throws -> T) rethrows -> T {
        let dict = Thread.current.threadDictionary
        let previous = dict[key]
        dict[key] = Box(sink)
        defer { dict[key] = previous }
        return try body()
    }

    public static func report(_ stage: StageKind?, _ update: ProgressUpdate) { current?(stage, update) }
}

/// Measures one task and decides which updates are worth emitting: the first, then at most one per
/// `interval` seconds, then the last (done == total) — so a progress line is neither silent for minutes
/// nor a flood.
public final class ProgressMeter {
    public let task: String
    public let subject: String?
    public let total: Double?
    public let unit: String
    let interval: Double
    let start = Date()
    private var last: Date?
    private var finishedEmitted = false

    public init(task: String, subject: String? = nil, total: Double?, unit: String, interval: Double = 1) {
        self.task = task
        self.subject = subject
        self.total = total
        self.unit = unit
        self.interval = interval
    }

    /// The update for `done` units now.
    public func update(at done: Double) -> ProgressUpdate {
        ProgressUpdate(task: task, subject: subject, done: done, total: total, unit: unit, elapsed: Date().timeIntervalSince(start))
    }

    /// Records `done`; returns the update when it should be emitted (first, last — once —, or `interval`
    /// since the last one).
    public func tick(_ done: Double) -> ProgressUpdate? {
        let now = Date()
        let isLast = total.map { done >= $0 } ?? false
        if finishedEmitted { return nil }
        if isLast { finishedEmitted = true }
        if let l = last, !isLast, now.timeIntervalSince(l) < interval { return nil }
        last = now
        return update(at: done)
    }
}
