// tune bench prepare — prepare-stage rows/s and tokens/s, with HF tokenizers beside tune's BPE.
import ArgumentParser
import Foundation
import TuneKit

struct BenchPrepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Prepare-stage rows/s and tokens/s; tokenizer speed vs HF tokenizers on the same texts when installed.")
    @Option(help: "Model whose tokenizer to use.") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "JSONL input(s) (repeatable).") var input: [String] = []
    @Option(help: "Runs per measurement (best is reported).") var repeats = 3
    @Option(help: "Python with HF tokenizers for the reference (default: TUNE_PYTHON or python3).") var python: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            var bench = PrepareBench()
            if !input.isEmpty { bench.inputs = input }
            bench.repeats = max(1, repeats)
            if let python { bench.python = python }
            let r = try bench.run(modelPath: model) { msg in
                if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) }
            }
            if global.json { try Output.json(r); return }
            Output.text("model \(r.model), inputs \(r.inputs.joined(separator: ", "))")
            Output.text(String(format: "prepare stage: %d rows, %d tokens in %.3f s: %.0f rows/s, %.0f tokens/s",
                               r.rows, r.tokens, r.stageSeconds, r.rowsPerSecond, r.tokensPerSecond))
            Output.text("tokenizer only                  seconds      tokens/s")
            for t in r.tokenizers {
                Output.text(t.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                    + String(format: "%9.4f %13.0f", t.seconds, t.tokensPerSecond))
            }
            if let s = r.speedupVsReference, let m = r.referenceIDsMatch {
                Output.text(String(format: "reference: %@; tune vs HF (single-thread loop): %.2f×; ids identical on %d of %d texts",
                                   r.reference, s, m, r.rows))
            } else {
                Output.text(r.reference)
            }
        }
    }
}
