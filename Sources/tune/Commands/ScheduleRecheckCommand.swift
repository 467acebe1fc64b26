// tune schedule recheck PIPELINE — one drift recheck now: re-evaluate production and the references on the
// pinned eval split (no cache, no training), record the eval, compare with the last accepted one, notify on drift.
import ArgumentParser
import Foundation
import TuneKit

struct ScheduleRecheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recheck", abstract: "Re-evaluate the pipeline's production model and references now; notify when a metric drifted.")
    @Argument(help: "The pipeline YAML file.") var pipeline: String
    @Flag(help: "Do not run the notify: hooks, even on drift.") var noNotify = false
    @Flag(help: "Exit 1 when a metric drifted beyond drift.max_drop.") var failOnDrift = false
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let spec = try PipelineSpec.load(path: pipeline)
            Output.warnings(spec.warnings, json: global.json)
            let env = ProcessInfo.processInfo.environment
            let registry = try Recheck.openRegistry(spec: spec, registry: location.registry,
                                                    blobs: location.blobs ?? env["TUNE_BLOBS"] ?? Registry.defaultBlobRoot)
            var options = RecheckOptions()
            options.notify = !noNotify
            let r = try Recheck.run(spec: spec, registry: registry, options: options) { line in
                if !global.json { FileHandle.standardError.write(Data("      recheck: \(line)\n".utf8)) }
            }
            if global.json { try Output.json(r) } else {
                Output.text("\(r.production): rechecked on \(r.dataset), recorded as \(r.report) (baseline \(r.baseline))")
                for line in r.lines { Output.text("  \(line)") }
                Output.text(r.drifted ? "drift beyond \(r.maxDrop)" + (r.notify == nil ? " (no notification sent)" : "; notified")
                                      : "no drift beyond \(r.maxDrop)")
            }
            if failOnDrift, r.drifted { throw ExitCode(1) }
        }
    }
}
