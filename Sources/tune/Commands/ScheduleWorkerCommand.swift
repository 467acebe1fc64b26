// tune schedule worker — lease and run due jobs (one with --once, until none is due with --drain, else forever).
import ArgumentParser
import Foundation
import TuneKit

struct ScheduleWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Lease and run scheduled jobs.")
    @Flag(help: "Run at most one job, then exit.") var once = false
    @Flag(help: "Run jobs until none is due, then exit.") var drain = false
    @Flag(help: "Run `schedule tick` before looking for a job (one process instead of cron + worker).") var tick = false
    @Option(help: "Lease duration in seconds (default: TUNE_LEASE_SECONDS or 300); heartbeats renew it every third.") var lease: Double?
    @Option(help: "Seconds between polls when idle (default 30).") var poll: Double = 30
    @Option(help: "Worker id recorded on leases (default host:pid:random).") var owner: String?
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let seconds = lease ?? ProcessInfo.processInfo.environment["TUNE_LEASE_SECONDS"].flatMap(Double.init) ?? 300
            guard seconds > 0, poll > 0 else { throw TuneError(.invalidArgument, "--lease and --poll must be positive") }
            let registry = try location.open()
            let worker = Worker(registry: registry, owner: owner ?? Worker.defaultOwner, leaseDuration: seconds)
            var failures = 0, ran = 0
            while true {
                if tick { _ = try Scheduler.tick(registry: registry) }
                let outcome = try worker.runOnce { event in
                    if case .progress(let s, let m) = event, !global.json {
                        FileHandle.standardError.write(Data("      \(s.rawValue): \(m)\n".utf8))
                    }
                }
                if let o = outcome {
                    ran += 1
                    if o.status != "succeeded" { failures += 1 }
                    if global.json { try Output.json(o) } else {
                        Output.text("job \(o.job) \(o.pipeline) on \(o.base): \(o.status)\(o.promoted ? ", promoted" : "") — \(o.message)")
                    }
                } else if once || drain {
                    if !global.json && ran == 0 { Output.text("no job due") }
                    break
                } else {
                    Thread.sleep(forTimeInterval: poll)
                }
                if once { break }
            }
            if failures > 0 { throw ExitCode(1) }
        }
    }
}
