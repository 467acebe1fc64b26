// tune schedule tick — enqueue what is due (new base versions, missed cron times once).
import ArgumentParser
import Foundation
import TuneKit

struct ScheduleTickCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tick", abstract: "Enqueue due re-tunes; safe to run any number of times.")
    @Option(help: "Act as if it were this time (ISO 8601, UTC); default now.") var now: String?
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            let report = try Scheduler.tick(registry: location.open(), clock: scheduleClock(now))
            if global.json { try Output.json(report); return }
            for j in report.enqueued { Output.text("enqueued job \(j.id): \(j.pipeline) on \(j.base) (\(j.triggerKey))") }
            for (p, why) in report.idle.sorted(by: { $0.key < $1.key }) { Output.text("idle     \(p): \(why)") }
            if report.enqueued.isEmpty { Output.text("nothing enqueued") }
        }
    }
}
