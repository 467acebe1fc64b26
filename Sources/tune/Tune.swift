// tune — the CLI's table of contents. One file per command under Commands/.
import ArgumentParser
import TuneKit

@main
struct Tune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Fine-tuning pipeline orchestrator: prepare, train, merge, evaluate, register.",
        version: TuneKitInfo.version,
        subcommands: [
            RunCommand.self, ValidateCommand.self, PrepareCommand.self, TrainCommand.self, MergeCommand.self, EvalCommand.self, ArtifactsCommand.self,
            GenerateCommand.self, ScoreCommand.self, TokenizeCommand.self, ModelCommand.self, BaseCommand.self, ScheduleCommand.self,
            JobsCommand.self, ServeCommand.self, BenchCommand.self, ExportCommand.self,
        ]
    )
}
