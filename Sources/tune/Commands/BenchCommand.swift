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
        @Option(name: .customLong("llama-bench"), help: "llama.cpp's llama-bench to compare with in the same run (default: TUNE_LLAMA_BENCH, else scripts/llama-cpp's build).")
        var llamaBench: String?
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                try global.apply()
                var bench = ForwardBench()
                bench.batch = batch
                bench.length = length
                bench.generate = generate
                let say = { (msg: String) in if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) } }
                var r = try bench.run(modelPath: model, progress: say)
                if let explicit = llamaBench, !FileManager.default.isExecutableFile(atPath: explicit) {
                    throw TuneError(.notFound, "--llama-bench \(explicit): not an executable file")
                }
                let binary = LlamaBench.locate(explicit: llamaBench)
                if let binary { r.llamaCpp = try bench.compare(modelPath: model, llamaBench: binary, progress: say) }
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
                guard let l = r.llamaCpp else {
                    Output.text("llama.cpp: no llama-bench found (build one with scripts/llama-cpp, or pass --llama-bench / TUNE_LLAMA_BENCH)")
                    return
                }
                Output.text("llama.cpp llama-bench (\(l.build): \(l.binary)), same model, \(l.threads) threads (cpu: \(l.cpu)), measured in this run:")
                Output.text(String(format: "  pp256: llama.cpp %.1f tok/s, tune %.1f tok/s exact → %.2f×, %.1f tok/s fast (%@) → %.2f×",
                                   l.llamaPromptTokensPerSecond, l.tunePromptTokensPerSecond, l.promptRatio,
                                   l.tuneFastPromptTokensPerSecond, l.fastGEMM, l.fastPromptRatio))
                Output.text(String(format: "  tg64:  llama.cpp %.2f tok/s, tune %.2f tok/s exact → %.2f×, %.2f tok/s int8 → %.2f×",
                                   l.llamaGenerateTokensPerSecond, l.tuneGenerateTokensPerSecond, l.generateRatio,
                                   l.tuneInt8GenerateTokensPerSecond, l.int8GenerateRatio))
            }
        }
    }
}
