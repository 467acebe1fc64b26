// tune jobs — managed fine-tuning jobs at an OpenAI-compatible provider: list, show, events, cancel.
// (`tune run` with `train.backend: openai` creates them; Ctrl-C there leaves the job running.)
import ArgumentParser
import Foundation
import TuneKit

struct JobsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jobs", abstract: "List, inspect and cancel managed fine-tuning jobs (OpenAI-compatible API).",
        subcommands: [List.self, Show.self, Events.self, Cancel.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
        @Option(help: "How many jobs.") var limit = 20
        @OptionGroup var provider: ProviderOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try reportingErrors {
                let page = try provider.client().listJobs(limit: limit)
                if global.json { return try Output.json(page.data) }
                for j in page.data { Output.text(JobsCommand.line(j)) }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job.")
        @Argument(help: "Job id.") var id: String
        @OptionGroup var provider: ProviderOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try reportingErrors {
                let j = try provider.client().job(id)
                if global.json { return try Output.json(j) }
                Output.text(JobsCommand.line(j))
                if let e = j.error, e.message != nil { Output.text("error: \(e.code ?? "") \(e.message ?? "")") }
                if let files = j.resultFiles, !files.isEmpty { Output.text("result files: \(files.joined(separator: ", "))") }
                if let meta = j.metadata, !meta.isEmpty { Output.text("metadata: \(meta.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))") }
            }
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A job's events, oldest first.")
        @Argument(help: "Job id.") var id: String
        @Option(help: "How many of the newest events.") var limit = 50
        @OptionGroup var provider: ProviderOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try reportingErrors {
                let events = Array(try provider.client().events(job: id, limit: limit).data.reversed())
                if global.json { return try Output.json(events) }
                for e in events { Output.text("\(e.createdAt.map(String.init) ?? "-")  \(e.level ?? "info")  \(e.message ?? "")") }
            }
        }
    }

    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a job at the provider.")
        @Argument(help: "Job id.") var id: String
        @OptionGroup var provider: ProviderOptions
        @OptionGroup var global: GlobalOptions
        func run() throws {
            try reportingErrors {
                let j = try provider.client().cancelJob(id)
                if global.json { return try Output.json(j) }
                Output.text(JobsCommand.line(j))
            }
        }
    }

    static func line(_ j: FineTuningJob) -> String {
        "\(j.id)  \(j.status)  \(j.model ?? "-") → \(j.fineTunedModel ?? "-")"
            + (j.trainedTokens.map { "  \($0) tokens" } ?? "")
    }
}
