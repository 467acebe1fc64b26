// tune train — LoRA / QLoRA training of a PEFT adapter on the local kernels, with a live progress
// bar (or --json event lines), checkpoints, resume, and Ctrl-C that stops after a checkpoint.
import ArgumentParser
import Foundation
import TuneKit

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a LoRA / QLoRA adapter (PEFT format) on a prepared dataset or JSONL files.",
        discussion: """
        Writes OUT/adapter_config.json + OUT/adapter_model.safetensors (loadable by PEFT), \
        OUT/trainer_state.json (loss curve) and OUT/training_args.json; checkpoints go to OUT/checkpoints. \
        Running the same command again resumes from the last checkpoint (same options required). \
        Ctrl-C writes a checkpoint and exits with 130.
        """)

    @Option(help: "Base model (.gguf or HF directory).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Prepared dataset directory (tune prepare) or JSONL file(s), comma-separated.") var data: String
    @Option(help: "Held-out eval JSONL (JSONL input only; default: a seeded split of --data).") var eval: String?
    @Option(help: "Output directory for the adapter, state and checkpoints.") var out: String
    @Flag(help: "QLoRA: keep the base in its quantized blocks (same as --base-weights quantized).") var qlora = false
    @Option(help: "Base weights during training: quantized (QLoRA on the file's own blocks; NF4 for a float base), nf4 (QLoRA on NF4 blocks), f32 or bf16 (LoRA over a float copy).") var baseWeights: BaseWeightMode?
    @Flag(inversion: .prefixedNo, help: "Base GEMMs with bf16 products (AVX-512 BF16: ~2× faster; activations rounded to bf16). Default: on for --base-weights bf16 only.") var bf16Products: Bool?
    @Option(help: "LoRA rank r.") var rank = 8
    @Option(help: "LoRA alpha (scale alpha/r).") var alpha: Double = 16
    @Option(help: "LoRA dropout on the adapter input.") var dropout: Double = 0
    @Flag(help: "rsLoRA scale alpha/sqrt(r).") var rslora = false
    @Option(help: "Target modules, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all).") var targets = "all"
    @Option(help: "Peak learning rate.") var lr: Double = 2e-4
    @Option(help: "LR schedule after warmup: constant, linear, cosine.") var schedule: LRSchedule = .cosine
    @Option(help: "Warmup optimizer steps.") var warmup = 0
    @Option(help: "Optimizer steps (overrides --epochs).") var steps: Int?
    @Option(help: "Epochs over the training split.") var epochs: Double = 1
    @Option(help: "Sequences per micro-batch.") var batch = 4
    @Option(help: "Micro-batches per optimizer step.") var gradAccum = 1
    @Option(help: "Maximum tokens per sequence (longer ones are truncated).") var seqLen = 512
    @Flag(help: "Pack JSONL rows into sequences of --seq-len tokens (attention stays within each row).") var pack = false
    @Option(help: "AdamW weight decay.") var weightDecay: Double = 0
    @Option(help: "Gradient-norm clipping (0: off).") var maxGradNorm: Double = 1
    @Option(help: "Seed for init, data order and dropout.") var seed: UInt64 = 42
    @Option(help: "Evaluate every N steps (0: at the end only).") var evalEvery = 0
    @Option(help: "Stop after N evaluations without improvement.") var earlyStop: Int?
    @Option(help: "Checkpoint every N steps (0: at the end only).") var checkpointEvery = 0
    @Flag(help: "Ignore existing checkpoints and start over.") var noResume = false
    @OptionGroup var kernels: BackendOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let base = try LlamaModel.load(path: model)
            let options = try makeOptions(model: base.config)
            let kernel = try kernels.resolveForTraining()
            let bar = ProgressBar()
            let inputs = data.split(separator: ",").map(String.init)
            let (trainingData, _) = try TrainingDataLoader.load(
                data: inputs, evalFile: eval, modelPath: model, workDir: out, packSeqLen: pack ? seqLen : nil) { event in
                if !global.json, let line = PrepareReport.line(for: event) { bar.note(line) }
            }
            let trainer = try LoRATrainer(model: base, options: options, data: trainingData, output: out,
                                          backend: kernel.backend, fallbackToCPU: kernel.request == .auto)
            if let notice = trainer.backendNotice { FileHandle.standardError.write(Data("tune: \(notice)\n".utf8)) }
            StopSignal.install()
            let result = try trainer.run(resume: !noResume, shouldStop: { StopSignal.requested }) { event in
                report(event, bar: bar)
            }
            bar.finishLine()
            if result.interrupted { throw ExitCode(130) }
        }
    }

    func makeOptions(model c: LlamaConfig) throws -> TrainingOptions {
        var t: [LoRATarget] = []
        if targets == "all" || targets == "all-linear" { t = LoRATarget.allCases } else {
            for name in targets.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                guard let target = LoRATarget(name: name) else {
                    throw EngineError(.invalidArgument, "--targets: unknown module '\(name)' (expected some of \(LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")) or all)")
                }
                t.append(target)
            }
        }
        var o = TrainingOptions(lora: LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, useRSLoRA: rslora, targets: t))
        o.baseWeights = qlora ? (baseWeights == .nf4 ? .nf4 : .quantized) : (baseWeights ?? .f32)
        if qlora, let b = baseWeights, b != .quantized, b != .nf4 {
            throw EngineError(.invalidArgument, "--qlora conflicts with --base-weights \(b.rawValue)")
        }
        o.bf16Products = bf16Products
        o.learningRate = lr
        o.schedule = schedule
        o.warmupSteps = warmup
        o.steps = steps
        o.epochs = epochs
        o.batchSize = batch
        o.gradAccum = gradAccum
        o.seqLen = seqLen
        o.weightDecay = weightDecay
        o.maxGradNorm = maxGradNorm
        o.seed = seed
        o.evalEvery = evalEvery
        o.earlyStopPatience = earlyStop
        o.checkpointEvery = checkpointEvery
        try o.validate(model: c)
        return o
    }

    private func report(_ event: TrainEvent, bar: ProgressBar) {
        if global.json {
            try? Output.json(TrainEventJSON(event))
            return
        }
        switch event {
        case .started(let s):
            bar.note("train: \(s.trainSequences) sequences (\(s.trainTokens) tokens), \(s.evalSequences) eval, "
                     + "\(s.totalSteps) steps, \(s.trainableParameters) trainable parameters, base \(s.baseWeights), "
                     + "activations \(s.activationBytes / (1 << 20)) MiB"
                     + (s.truncatedSequences > 0 ? ", \(s.truncatedSequences) sequences truncated to --seq-len" : ""))
        case .resumed(let step, let path):
            bar.note("resumed at step \(step) from \(path)")
        case .step(let p):
            bar.update(done: p.record.step, total: p.totalSteps, detail: String(
                format: "loss %.4f  lr %.2e  %.0f tok/s  epoch %.2f  ETA %@", p.record.loss, p.record.learningRate,
                p.tokensPerSecond, p.epoch, ProgressBar.duration(p.etaSeconds)))
        case .eval(let e):
            bar.note(String(format: "step %d: eval loss %.4f (%d tokens)", e.step, e.loss, e.targetTokens))
        case .checkpoint:
            break
        case .earlyStop(let step, let best):
            bar.note(String(format: "early stop at step %d (best eval loss %.4f)", step, best))
        case .interrupted(let step, let path):
            bar.note("interrupted at step \(step); checkpoint \(path). Run the same command to resume.")
        case .finished(let r):
            bar.finishLine()
            var line = "adapter: \(r.adapterDirectory)  steps \(r.steps)"
            if let l = r.finalLoss { line += String(format: "  loss %.4f", l) }
            if let e = r.finalEvalLoss { line += String(format: "  eval loss %.4f", e) }
            line += String(format: "  %.0f tok/s", r.tokensPerSecond)
            Output.text(line)
        }
    }
}

/// One `--json` line per training event: `{"event": "step", ...}`.
struct TrainEventJSON: Encodable {
    let event: TrainEvent
    init(_ e: TrainEvent) { event = e }

    enum Key: String, CodingKey { case event, step, checkpoint, progress, start, eval, result, bestEvalLoss = "best_eval_loss" }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch event {
        case .started(let s): try c.encode("started", forKey: .event); try c.encode(s, forKey: .start)
        case .resumed(let step, let path):
            try c.encode("resumed", forKey: .event); try c.encode(step, forKey: .step); try c.encode(path, forKey: .checkpoint)
        case .step(let p): try c.encode("step", forKey: .event); try c.encode(p, forKey: .progress)
        case .eval(let e): try c.encode("eval", forKey: .event); try c.encode(e, forKey: .eval)
        case .checkpoint(let step, let path):
            try c.encode("checkpoint", forKey: .event); try c.encode(step, forKey: .step); try c.encode(path, forKey: .checkpoint)
        case .earlyStop(let step, let best):
            try c.encode("early_stop", forKey: .event); try c.encode(step, forKey: .step); try c.encode(best, forKey: .bestEvalLoss)
        case .interrupted(let step, let path):
            try c.encode("interrupted", forKey: .event); try c.encode(step, forKey: .step); try c.encode(path, forKey: .checkpoint)
        case .finished(let r): try c.encode("finished", forKey: .event); try c.encode(r, forKey: .result)
        }
    }
}

extension BaseWeightMode: ExpressibleByArgument {}
extension LRSchedule: ExpressibleByArgument {}

