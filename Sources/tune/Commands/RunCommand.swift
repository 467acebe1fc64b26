// tune run — run a pipeline: each finished stage is skipped by its cache key, a crashed run resumes.
import ArgumentParser
import Foundation
import TuneKit

extension StageKind: ExpressibleByArgument {}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run a pipeline (prepare → train → merge → eval → register), skipping cached stages.")
    @Argument(help: "The pipeline YAML file.") var pipeline: String
    @Flag(name: .customLong("dry-run"), help: "Print the plan (what would run and why) without running.") var dryRun = false
    @Option(help: "Re-run this stage even if cached (repeatable).") var force: [StageKind] = []
    @Option(help: "Start at this stage.") var from: StageKind?
    @Option(help: "Stop after this stage.") var until: StageKind?
    @Option(help: "Registry database: a path or a postgres:// URL (default: the pipeline's, else TUNE_REGISTRY, else .tune/registry.sqlite).") var registry: String?
    @Option(help: "Blob store directory.") var blobs = "adapters"
    @Option(help: "Where stages run: local, or slurm (one batch job per stage). Default: the pipeline's executor.")
    var executor: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a pipeline field, as if written in the file (repeatable).",
                                                         valueName: "key.path=yaml-value"))
    var overrides: [String] = []
    @Flag(name: .customLong("no-wait"),
          help: "When another process is running a stage this run needs, fail naming it (pid, host, since) instead of waiting.")
    var noWait = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let spec = try PipelineSpec.load(path: pipeline, overrides: try overrides.map(PipelineOverride.init(argument:)))
            Output.warnings(spec.warnings, json: global.json)
            if dryRun, !global.json {
                for o in spec.overrides {
                    let was = o.previous.map { " (file: \($0))" } ?? " (not in the file)"
                    FileHandle.standardError.write(Data("set   \(o.key) = \(o.value)\(was)\n".utf8))
                }
            }
            var opts = RunOptions()
            opts.dryRun = dryRun
            opts.force = Set(force)
            opts.from = from
            opts.until = until
            opts.registryPath = registry
            opts.blobRoot = blobs
            opts.noWait = noWait
            opts.shouldStop = { StopSignal.requested }
            StopSignal.install()
            // Progress goes to stderr: lines for a person, or NDJSON events with --json (stdout keeps only the summary).
            let stream = RunEventStream(json: global.json)
            let render: (RunEvent) -> Void = { stream.write($0) }
            stream.begin(pipeline: spec.name, overrides: spec.overrides.map { "\($0.key)=\($0.value)" }, dryRun: dryRun)
            let summary: RunSummary
            do {
                // Work the runner does without a callback (hashing a base, the prepare stage) reports here.
                summary = try ProgressSink.withSink({ stage, update in stream.write(.measured(stage: stage, progress: update)) }) {
                    switch executor ?? spec.executor {
                    case "local": return try PipelineRunner(spec: spec, options: opts).run(render)
                    case "slurm":
                        try SlurmCLI.checkInstalled()
                        return try SlurmExecutor(spec: spec, pipelinePath: pipeline, options: opts, control: SlurmCLI(),
                                                 tuneExecutable: Bundle.main.executablePath ?? CommandLine.arguments[0]).run(render)
                    case let other: throw ValidationError("--executor: expected local or slurm, got \"\(other)\"")
                    }
                }
            } catch {
                stream.end(pipeline: spec.name, error: (error as? TuneError)?.message ?? "\(error)")
                throw error
            }
            stream.end(pipeline: spec.name, error: nil)
            if global.json { try Output.json(summary) } else if !dryRun {
                Output.text("\(spec.name): \(summary.stages.map { "\($0.stage.rawValue) \($0.status)" }.joined(separator: ", "))")
            }
        }
    }
}
