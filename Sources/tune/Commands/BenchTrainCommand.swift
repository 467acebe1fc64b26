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
    @Flag(help: "Time every kernel call of the timed steps and print where each mode's step goes, op by op (with GFLOP/s and the share of this machine's f32 GEMM rate).")
    var profile = false
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
            bench.profile = profile
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
            for m in r.results { if let p = m.profile { Self.print(profile: p, of: m.name) } }
        }
    }

    static func print(profile p: TrainBench.Profile, of name: String) {
        let n = Double(max(1, p.steps)), step = p.stepSeconds / n
        Output.text("")
        Output.text("profile of \(name): \(p.steps) timed steps, \(String(format: "%.3f", step)) s/step"
                    + (p.gemmRate.map { String(format: "; f32 GEMM rate here %.1f GFLOP/s", $0) + " (\(p.gemmShape))" } ?? ""))
        Output.text("op                                   calls/step    ms/step   share   GFLOP/s   of GEMM rate")
        var inOps = 0.0
        for o in p.ops {
            inOps += o.seconds
            var line = o.op.padding(toLength: 36, withPad: " ", startingAt: 0)
                + String(format: "%11.0f %10.1f %6.1f%%", Double(o.calls) / n, 1000 * o.seconds / n, 100 * o.seconds / max(p.stepSeconds, 1e-12))
            if let g = o.gflops {
                line += String(format: " %9.1f", g)
                if let rate = p.gemmRate { line += String(format: "   %5.0f%%", 100 * g / rate) }
            }
            Output.text(line)
        }
        let rest = max(0, p.stepSeconds - inOps)
        Output.text("outside the kernel table".padding(toLength: 48, withPad: " ", startingAt: 0)
                    + String(format: "%10.1f %6.1f%%", 1000 * rest / n, 100 * rest / max(p.stepSeconds, 1e-12)))
    }
}
