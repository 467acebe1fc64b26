// Scheduler — `tune schedule tick`: enqueue what is due, in one transaction, idempotently.
//   • on_base_upgrade: a job for the family's latest version unless the pipeline already has one for
//     it (trigger key `base_upgrade`). Several versions registered between ticks give one job, on the
//     newest; the first tick after `schedule add` runs the pipeline on the current version.
//   • cron: the last fire time in (cron_checked_at, now], if any, gives one job (trigger key
//     `cron:<fire time>`) on the followed version, and cron_checked_at moves to now: a week of missed
//     ticks catches up once, not once per missed time.
//   • recheck (the pipeline file's `schedule.recheck`): the same, with trigger key `recheck:<fire time>`;
//     the worker re-evaluates production instead of re-tuning (Recheck.swift).
// A tick run twice (or by two processes at once) enqueues nothing new: the unique index and the
// IMMEDIATE transaction see to it.

import Foundation

/// What one tick enqueued.
public struct TickReport: Codable, Sendable {
    public var at: String
    public var enqueued: [Job]
    /// Schedules that had nothing due, with why.
    public var idle: [String: String]
}

public enum Scheduler {
    public static func tick(registry: Registry, clock: any ScheduleClock = SystemClock()) throws -> TickReport {
        let queue = JobQueue(registry: registry, clock: clock)
        return try registry.write { db in
            let now = clock.now(), t = Stamp.string(now)
            var report = TickReport(at: t, enqueued: [], idle: [:])
            for s in try registry.schedules(db) {
                let base: BaseModel
                do { base = try registry.base(db, family: s.baseFamily, version: s.basePin) } catch let e as TuneError {
                    report.idle[s.pipeline] = e.message
                    continue
                }
                var why: [String] = []
                if s.onBaseUpgrade {
                    if let j = try queue.enqueue(db, pipeline: s.pipeline, base: base.ref, trigger: .baseUpgrade, key: "base_upgrade",
                                                 maxAttempts: s.maxAttempts, now: now) {
                        report.enqueued.append(j)
                    } else { why.append("\(base.ref) already has its base-upgrade job") }
                }
                // `cron` re-tunes; `recheck` (read from the pipeline file at each tick) re-evaluates production
                // (Recheck.swift): a cron job whose key is `recheck:<fire time>`. Both share cron_checked_at.
                var crons: [(kind: String, expression: String, timeZone: String?)] = []
                if let c = s.cron { crons.append(("cron", c, s.timeZone)) }
                do {
                    if let r = try Recheck.scheduled(s) { crons.append(("recheck", r.expression, r.timeZone)) }
                } catch {
                    why.append("recheck: \((error as? TuneError)?.message ?? "\(error)")")
                }
                let since = Stamp.date(s.cronCheckedAt) ?? now
                for (kind, expression, zone) in crons {
                    let cron = try CronExpression(parsing: expression, timeZone: zone)
                    if let fire = cron.lastFire(after: since, upTo: now) {
                        if let j = try queue.enqueue(db, pipeline: s.pipeline, base: base.ref, trigger: .cron, key: "\(kind):\(Stamp.string(fire))",
                                                     maxAttempts: s.maxAttempts, now: now) {
                            report.enqueued.append(j)
                        }
                    } else {
                        why.append("next \(kind) time \(cron.next(after: now).map(Stamp.string) ?? "never")")
                    }
                }
                if !crons.isEmpty, now > since {
                    try db.execute("UPDATE schedules SET cron_checked_at = ? WHERE pipeline = ?", [t, s.pipeline])
                }
                if !why.isEmpty, !report.enqueued.contains(where: { $0.pipeline == s.pipeline }) {
                    report.idle[s.pipeline] = why.joined(separator: "; ")
                }
            }
            return report
        }
    }
}
