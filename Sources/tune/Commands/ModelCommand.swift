// tune model inspect|export-tensor — look inside a model file or directory.
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Inspect a model (GGUF file or HF directory).",
        subcommands: [Inspect.self, ExportTensor.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Architecture, hyperparameters, tokenizer facts and the tensor table.")
        @Argument(help: "A .gguf file or an HF model directory.") var model: String
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let info = try ModelInfo.inspect(path: model)
                if global.json { try Output.json(info) } else { Output.text(info.summary) }
            }
        }
    }

    struct ExportTensor: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-tensor", abstract: "Write one tensor, dequantized to float32, as a row-major .npy file.")
        @Argument(help: "A .gguf file or an HF model directory.") var model: String
        @Argument(help: "Tensor name as stored in the file.") var name: String
        @Option(help: "Output .npy path.") var out: String
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (values, shape) = try ModelInfo.tensorValues(path: model, name: name)
                try NPY.write(values, shape: shape, to: out)
                if global.json {
                    try Output.json(["name": name, "out": out, "shape": shape.map(String.init).joined(separator: ",")])
                } else {
                    Output.text("wrote \(name) \(shape) float32 to \(out)")
                }
            }
        }
    }
}
