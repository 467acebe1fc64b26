// tune bench train — LoRA / QLoRA training tokens/s and peak RSS, PyTorch + PEFT side by side.
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training tokens/s and peak RSS: LoRA (f32, bf16 base) and QLoRA vs PyTorch + PEFT in the same run.")
    @Option(help: "Model to train on.") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Sequences per step.") var batch = 4
    @Option(help: "Tokens per sequence (with --data: the cap a longer row is truncated to).") var seqLen = 256
    @Option(help: "Train on this dataset's rows (JSONL, prepared with the defaults, or a prepared dataset directory): its train split in order, each row its own length; tokens/s counts real tokens.")
    var data: String?
    @Option(help: "LoRA dropout (default 0).") var loraDropout = 0.0
    @Option(help: "LoRA rank (alpha = 2·rank), all 7 targets.") var rank = 8
    @Option(help: "Timed optimizer steps.") var steps = 3
    @Option(help: "Untimed warmup steps.") var warmup = 1
    @Option(help: "Modes to measure, comma-separated: f32, bf16, quantized, nf4.") var modes = "f32,bf16,quantized"
    @Option(help: "Python with torch + peft for the reference; must work (default: the first of TUNE_PYTHON, scripts/reference/.venv, python3 that does).")
    var python: String?
    @Flag(inversion: .prefixedNo, help: "Base GEMMs with bf16 products in every mode (default: bf16 base only).") var bf16Products: Bool?
    @Option(help: .hidden) var worker: BaseWeightMode?
    @OptionGroup var kernels: BackendOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            if worker == nil { try kernels.resolveForTraining() } // the notice once, here; workers resolve again
            var bench = TrainBench()
            bench.modelPath = model
            bench.batch = batch
            bench.seqLen = seqLen
            bench.dataPath = data
            bench.dropout = loraDropout
            bench.rank = rank
            bench.steps = max(1, steps)
            bench.warmup = max(0, warmup)
            bench.threads = global.threads ?? Kernels.threads
            if let python { bench.python = python }
            bench.bf16Products = bf16Products
            bench.backend = kernels.backend
            if let worker {
                try Output.json(try bench.work(mode: worker))
                return
            }
            bench.modes = try modes.split(separator: ",").map {
                guard let m = BaseWeightMode(rawValue: String($0)) else {
                    throw EngineError(.invalidArgument, "--modes: unknown mode '\($0)' (expected f32, bf16, quantized, nf4)")
                }
                return m
            }
            let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let r = try bench.run(executable: exe) { msg in
                if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) }
            }
            if global.json { try Output.json(r); return }
            let shape = r.data.map { "\(r.batch) rows of \($0) per step (real tokens, cap \(r.seqLen))" } ?? "batch \(r.batch)×\(r.seqLen)"
            Output.text("model \(r.model), \(shape), LoRA r=\(r.rank) on 7 targets\((r.dropout ?? 0) > 0 ? ", dropout \(r.dropout!)" : ""), \(r.threads) threads, kernels \(r.isa)")
            Output.text("config                                   tokens/s   peak RSS   vs reference (speed, RSS)")
            for m in r.results + (r.reference.map { [$0] } ?? []) {
                var line = m.name.padding(toLength: 40, withPad: " ", startingAt: 0)
                    + String(format: "%9.1f %8.2f GiB", m.tokensPerSecond, Double(m.peakRSSBytes) / 1_073_741_824)
                if let s = m.ratioVsReference, let q = m.rssVsReference { line += String(format: "   %.2f×, %.0f%%", s, 100 * q) }
                if r.data != nil, let t = m.tokensPerStep { line += String(format: "   (%.0f tokens/step)", t) }
                Output.text(line)
            }
            Output.text(r.referenceNote)
        }
    }
}
