// tune bench — benchmarks that print ratios against a reference measured in the same run.
import ArgumentParser
import Foundation
import TuneKit

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (each prints its reference, measured in the same run).",
        subcommands: [Forward.self, BenchGemm.self, BenchOps.self, BenchPrepare.self, BenchRegistryCommand.self, BenchTrain.self, BenchMerge.self, BenchServe.self])

    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prompt processing (4×256 tokens) and generation tokens/s: fast kernels vs the naive reference, plus generation on the opt-in int8 decode path.")
        @Option(help: "Model to run.") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
        @Option(help: "Prompt length per sequence.") var length = 256
        @Option(help: "Sequences in the prompt batch.") var batch = 4
        @Option(help: "Tokens to generate.") var generate = 32
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                try global.apply()
                var bench = ForwardBench()
                bench.batch = batch
                bench.length = length
                bench.generate = generate
                let r = try bench.run(modelPath: model) { msg in
                    if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) }
                }
                if global.json { try Output.json(r); return }
                Output.text("model \(r.model), cpu \(r.cpuISA), \(r.rows[0].threads) threads")
                Output.text("kernels  prompt B×T   prompt tok/s   generate tok/s")
                for row in r.rows {
                    let shape = "\(row.promptBatch)×\(row.promptLength)"
                    Output.text(row.kernels.padding(toLength: 9, withPad: " ", startingAt: 0)
                        + shape.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + String(format: "%13.1f %16.2f", row.promptTokensPerSecond, row.generateTokensPerSecond))
                }
                Output.text(String(format: "speed-up vs ref: prompt %.1f×, generate %.1f×", r.promptSpeedup, r.generateSpeedup))
                let f = r.fastDecode
                Output.text(String(format: "generate, exact %@ vs opt-in int8 decode (%@, not exact), best of %d alternating rounds: %.2f vs %.2f tok/s, %.2f×",
                                   r.rows[0].kernels, f.kernels, f.rounds, f.exactGenerateTokensPerSecond, f.generateTokensPerSecond, f.speedupVsExact))
            }
        }
    }
}
