// tune train — LoRA / QLoRA training of a PEFT adapter on the local kernels, with a live progress
// bar (or --json event lines), checkpoints, resume, and Ctrl-C that stops after a checkpoint.
import ArgumentParser
import Engine
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
    // Settings: named like the pipeline's `train:` keys (docs/training.md, "Defaults"); unset flags take
    // TrainRecipe's defaults. The old spellings stay as hidden aliases.
    @Option(help: "lora (LoRA over a float copy of the base) or qlora (the base stays quantized). Default: qlora, or what --base-weights implies.") var method: TrainMethod?
    @Option(help: "Base weights during training: quantized (QLoRA on the file's own blocks; NF4 for a float base), nf4 (QLoRA on NF4 blocks), f32 or bf16 (LoRA over a float copy). Default: quantized for qlora, f32 for lora.") var baseWeights: BaseWeightMode?
    @Flag(inversion: .prefixedNo, help: "Base GEMMs with bf16 products (AVX-512 BF16: ~2× faster; activations rounded to bf16). Default: on for --base-weights bf16 only.") var bf16Products: Bool?
    @Option(help: "LoRA rank r (default 8).") var loraRank: Int?
    @Option(help: "LoRA alpha, scale alpha/r (default 2·rank).") var loraAlpha: Double?
    @Option(help: "LoRA dropout on the adapter input (default 0.05).") var loraDropout: Double?
    @Flag(help: "rsLoRA scale alpha/sqrt(r).") var loraRslora = false
    @Option(help: "Target modules, comma-separated (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all; default all).") var loraTargets: String?
    @Option(help: "Peak learning rate (default 2e-4).") var lr: Double?
    @Option(help: "LR schedule after warmup: constant, linear, cosine (default cosine).") var schedule: LRSchedule?
    @Option(help: "Warmup optimizer steps (default 0).") var warmupSteps: Int?
    @Option(help: "Optimizer steps (overrides --epochs).") var maxSteps: Int?
    @Option(help: "Epochs over the training split (default 1).") var epochs: Double?
    @Option(help: "Sequences per micro-batch (default 4).") var batchSize: Int?
    @Option(help: "Micro-batches per optimizer step (default 1).") var gradAccum: Int?
    @Option(help: "Maximum tokens per sequence, longer ones are truncated (default 512, or the model's context if shorter).") var seqLen: Int?
    @Flag(help: "Pack JSONL rows into sequences of --seq-len tokens (attention stays within each row).") var pack = false
    @Option(help: "AdamW weight decay (default 0).") var weightDecay: Double?
    @Option(help: "Gradient-norm clipping, 0: off (default 1).") var maxGradNorm: Double?
    @Option(help: "Seed for init, data order and dropout (default 0).") var seed: UInt64?
    @Option(help: "Evaluate every N steps, 0: at the end only (default 50).") var evalEvery: Int?
    @Option(help: "Stop after N evaluations without improvement (default: off).") var earlyStop: Int?
    @Option(help: "Checkpoint every N steps, 0: at the end only (default 50).") var checkpointEvery: Int?
    @Flag(help: "Print the resolved settings (--json: the recipe and the Engine's options) and exit without training.") var dryRun = false
    // Old spellings (hidden): each merges into its new flag; both with different values is an error.
    @Flag(name: .customLong("qlora"), help: .hidden) var oldQLoRA = false
    @Option(name: .customLong("rank"), help: .hidden) var oldRank: Int?
    @Option(name: .customLong("alpha"), help: .hidden) var oldAlpha: Double?
    @Option(name: .customLong("dropout"), help: .hidden) var oldDropout: Double?
    @Flag(name: .customLong("rslora"), help: .hidden) var oldRSLoRA = false
    @Option(name: .customLong("targets"), help: .hidden) var oldTargets: String?
    @Option(name: .customLong("warmup"), help: .hidden) var oldWarmup: Int?
    @Option(name: .customLong("steps"), help: .hidden) var oldSteps: Int?
    @Option(name: .customLong("batch"), help: .hidden) var oldBatch: Int?
    @Flag(help: "Ignore existing checkpoints and start over.") var noResume = false
    @OptionGroup var kernels: BackendOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let base = try LlamaModel.load(path: model)
            let recipe = try makeRecipe()
            let options = try recipe.options(model: base.config)
            if dryRun {
                if global.json { try Output.json(DryRun(recipe: recipe, options: options)) } else {
                    TrainRecipe.lines(options, method: recipe.method).forEach { Output.text($0) }
                }
                return
            }
            let kernel = try kernels.resolveForTraining()
            let bar = ProgressBar()
            let inputs = data.split(separator: ",").map(String.init)
            let (trainingData, _) = try TrainingDataLoader.load(
                data: inputs, evalFile: eval, modelPath: model, workDir: out, packSeqLen: pack ? options.seqLen : nil) { event in
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

    /// The flags as a TrainRecipe: unset ones keep the recipe's defaults.
    func makeRecipe() throws -> TrainRecipe {
        /// The new flag's value or its old spelling's; both given and different is an error.
        func merged<T: Equatable>(_ new: T?, _ newName: String, _ old: T?, _ oldName: String) throws -> T? {
            if let new, let old, new != old {
                throw TuneError(.invalidArgument, "--\(newName) \(new) and --\(oldName) \(old) disagree (--\(oldName) is the old spelling of --\(newName))")
            }
            return new ?? old
        }
        var r = TrainRecipe()
        var method = self.method
        if oldQLoRA {
            if let m = method, m != .qlora { throw TuneError(.invalidArgument, "--qlora conflicts with --method \(m.rawValue)") }
            method = .qlora
        }
        if method == nil, let b = baseWeights { method = b == .f32 || b == .bf16 ? .lora : .qlora }
        r.method = method ?? r.method
        r.baseWeights = baseWeights
        r.bf16Products = bf16Products
        r.rank = try merged(loraRank, "lora-rank", oldRank, "rank") ?? r.rank
        r.alpha = try merged(loraAlpha, "lora-alpha", oldAlpha, "alpha")
        r.dropout = try merged(loraDropout, "lora-dropout", oldDropout, "dropout") ?? r.dropout
        r.rsLoRA = loraRslora || oldRSLoRA
        if let t = try merged(loraTargets, "lora-targets", oldTargets, "targets") {
            r.targets = t == "all" || t == "all-linear" ? TrainRecipe.allTargets
                : t.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        r.learningRate = lr ?? r.learningRate
        r.schedule = schedule ?? r.schedule
        r.warmupSteps = try merged(warmupSteps, "warmup-steps", oldWarmup, "warmup") ?? r.warmupSteps
        r.maxSteps = try merged(maxSteps, "max-steps", oldSteps, "steps")
        r.epochs = epochs ?? r.epochs
        r.batchSize = try merged(batchSize, "batch-size", oldBatch, "batch") ?? r.batchSize
        r.gradAccum = gradAccum ?? r.gradAccum
        r.seqLen = seqLen
        r.weightDecay = weightDecay ?? r.weightDecay
        r.maxGradNorm = maxGradNorm ?? r.maxGradNorm
        r.seed = seed ?? r.seed
        r.evalEvery = evalEvery ?? r.evalEvery
        r.earlyStopPatience = earlyStop
        r.checkpointEvery = checkpointEvery ?? r.checkpointEvery
        return r
    }

    private func report(_ event: TrainEvent, bar: ProgressBar) {
        if global.json {
            try? Output.json(TrainEventJSON(event))
            return
        }
        switch event {
        case .started(let s):
            bar.note("train: " + TrainRecipe.Text.started(s))
        case .resumed(let step, let path):
            bar.note(TrainRecipe.Text.resumed(step: step) + " from \(path)")
        case .step(let p):
            bar.update(done: p.record.step, total: p.totalSteps, detail: TrainRecipe.Text.stepDetail(p))
        case .interrupted(let step, let path):
            bar.note("interrupted at step \(step); checkpoint \(path). Run the same command to resume.")
        case .finished(let r):
            bar.finishLine()
            Output.text("adapter: \(r.adapterDirectory)  " + TrainRecipe.Text.finished(r))
        case .eval, .earlyStop, .checkpoint:
            if let line = TrainRecipe.Text.line(event) { bar.note(line) }
        }
    }
}

/// `tune train --dry-run --json`: the recipe (YAML names) and the Engine options it resolves to.
struct DryRun: Encodable {
    let recipe: TrainRecipe
    let options: TrainingOptions
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
extension TrainMethod: ExpressibleByArgument {}

