// tune schedule — scheduled re-tunes (docs/schedule.md). This file: the command table and `add`;
// tick, worker and status/history/cancel live in Schedule*Command.swift.
import ArgumentParser
import Foundation
import TuneKit

struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schedule", abstract: "Scheduled re-tunes: on base upgrades and cron times, through a durable job queue.",
        subcommands: [Add.self, ScheduleTickCommand.self, ScheduleWorkerCommand.self, ScheduleStatusCommand.self,
                      ScheduleHistoryCommand.self, ScheduleCancelCommand.self, ScheduleRecheckCommand.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record (or update) a pipeline's schedule: section in the registry.")
        @Argument(help: "The pipeline YAML file (base: FAMILY@latest or FAMILY@VERSION, with a schedule: section).") var pipeline: String
        @OptionGroup var location: ArtifactsCommand.Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let s = try location.open().addSchedule(path: pipeline)
                if global.json { try Output.json(s); return }
                var what: [String] = []
                if s.onBaseUpgrade { what.append("on upgrades of \(s.baseFamily)") }
                if let c = s.cron { what.append("cron \"\(c)\"\(s.timeZone.map { " (\($0))" } ?? "")") }
                Output.text("scheduled \(s.pipeline) on \(s.baseFamily)@\(s.basePin ?? "latest"): \(what.joined(separator: ", "))")
            }
        }
    }
}

/// `--now` for commands that act at a point in time (tests, back-fills); default: the system clock.
func scheduleClock(_ now: String?) throws -> any ScheduleClock {
    guard let now else { return SystemClock() }
    guard let d = Stamp.date(now) else {
        throw TuneError(.invalidArgument, "--now \"\(now)\": expected an ISO 8601 time like 2026-11-23T03:00:00Z")
    }
    return ManualClock(d)
}
