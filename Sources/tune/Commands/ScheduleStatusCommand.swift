// tune schedule status / history / cancel — the queue as it is now, and every transition so far.
import ArgumentParser
import Foundation
import TuneKit

struct ScheduleStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Schedules and jobs (newest first).")
    @Option(help: "Show at most this many jobs.") var limit = 50
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    struct Status: Encodable { var schedules: [ScheduleRecord]; var jobs: [Job] }

    func run() throws {
        try reportingErrors {
            let reg = try location.open()
            let status = Status(schedules: try reg.schedules(), jobs: try JobQueue(registry: reg).jobs(limit: limit))
            if global.json { try Output.json(status); return }
            for s in status.schedules {
                let recheck = (try? Recheck.scheduled(s)).flatMap { $0 }.map { ", recheck \"\($0.expression)\"" } ?? ""
                Output.text("schedule \(s.pipeline): \(s.baseFamily)@\(s.basePin ?? "latest")\(s.onBaseUpgrade ? ", on base upgrade" : "")\(s.cron.map { ", cron \"\($0)\"" } ?? "")\(recheck)")
            }
            for j in status.jobs {
                let lease = j.leaseOwner.map { " lease \($0) until \(j.leaseExpiresAt ?? "?")" } ?? ""
                let decision: String
                if case .object(let r)? = j.result, case .object(let d)? = r["decision"], case .string(let why)? = d["reason"] { decision = " — \(why)" } else { decision = j.error.map { " — \($0)" } ?? "" }
                Output.text("job \(j.id) \(j.state.rawValue) \(j.pipeline) on \(j.base) (\(j.triggerKey)) attempt \(j.attempts)/\(j.maxAttempts)\(lease)\(decision)")
            }
        }
    }
}

struct ScheduleHistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "history", abstract: "Every job state transition, oldest first.")
    @Argument(help: "Only this job.") var job: Int64?
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            let h = try JobQueue(registry: location.open()).history(job: job)
            if global.json { try Output.json(h); return }
            for t in h {
                Output.text("\(t.at) job \(t.jobID) \(t.from?.rawValue ?? "-") → \(t.to.rawValue) attempt \(t.attempt)\(t.owner.map { " by \($0)" } ?? "")\(t.detail.map { ": \($0)" } ?? "")")
            }
        }
    }
}

struct ScheduleCancelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a job that has not finished.")
    @Argument(help: "Job id.") var job: Int64
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try JobQueue(registry: location.open()).cancel(job)
            Output.text("cancelled job \(job)")
        }
    }
}
