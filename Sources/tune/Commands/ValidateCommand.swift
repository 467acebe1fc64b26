// tune validate — check a pipeline file and report every problem at once.
import ArgumentParser
import TuneKit

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Validate a pipeline file; every problem is reported as FILE:LINE:COL: FIELD: MESSAGE.")
    @Argument(help: "The pipeline YAML file.") var pipeline: String
    @OptionGroup var global: GlobalOptions

    struct Result: Encodable { var name: String; var base: String; var stages: [StageKind]; var warnings: [String] }

    func run() throws {
        try reportingErrors {
            let spec = try PipelineSpec.load(path: pipeline)
            if !global.json { Output.warnings(spec.warnings) }
            let result = Result(name: spec.name, base: spec.base, stages: spec.stages, warnings: spec.warnings.map(\.description))
            if global.json { try Output.json(result) } else {
                Output.text("\(pipeline): ok — \(spec.name): \(spec.stages.map(\.rawValue).joined(separator: " → "))")
            }
        }
    }
}
