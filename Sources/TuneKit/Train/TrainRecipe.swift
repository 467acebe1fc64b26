// TrainRecipe — every setting of a local LoRA / QLoRA run in one value, with tune's one set of
// defaults (docs/training.md, "Defaults"), its validation into the Engine's `TrainingOptions`, and the
// human lines for the trainer's events. The recipe/config split of torchtune: the three doors — the
// pipeline's `train:` section (TrainSection), `tune train` flags (TrainCommand) and `tune serve`'s
// OpenAI hyperparameters (`init(openAIHyperparameters:…)`) — only translate their input into a recipe.

import Engine
import Foundation

/// `train.method`: LoRA over a float copy of the base, or QLoRA over quantized base weights.
public enum TrainMethod: String, Codable, Hashable, Sendable, CaseIterable { case lora, qlora }

public struct TrainRecipe: Codable, Hashable, Sendable {
    /// QLoRA (`quantized` base weights) unless `baseWeights` says otherwise.
    public var method: TrainMethod = .qlora
    /// nil: `quantized` for QLoRA, `f32` for LoRA. Must agree with `method` when set.
    public var baseWeights: BaseWeightMode? = nil
    /// nil: bf16 products for the bf16 base only (TrainingOptions.bf16Products).
    public var bf16Products: Bool? = nil
    public var rank: Int = 8
    /// nil: 2·rank.
    public var alpha: Double? = nil
    public var dropout: Double = 0.05
    public var targets: [String] = TrainRecipe.allTargets
    public var rsLoRA: Bool = false
    public var learningRate: Double = 2e-4
    public var schedule: LRSchedule = .cosine
    public var warmupSteps: Int = 0
    /// Optimizer steps; nil: `epochs` over the training split.
    public var maxSteps: Int? = nil
    public var epochs: Double = 1
    public var batchSize: Int = 4
    public var gradAccum: Int = 1
    /// nil: 512, or the model's context length when that is shorter. An explicit value must fit the context.
    public var seqLen: Int? = nil
    public var weightDecay: Double = 0
    public var maxGradNorm: Double = 1
    /// Init, data order and dropout. The pipeline passes its top-level `seed:` (default 0, the same).
    public var seed: UInt64 = TrainRecipe.defaultSeed
    /// 0: evaluate at the end only.
    public var evalEvery: Int = 50
    public var earlyStopPatience: Int? = nil
    /// 0: checkpoint at the end only.
    public var checkpointEvery: Int = 50

    public static let allTargets = LoRATarget.allCases.map(\.rawValue)
    public static let defaultSeed: UInt64 = 0
    public static let defaultSeqLen = 512

    public init() {}

    /// 2·rank unless set.
    public var resolvedAlpha: Double { alpha ?? Double(rank * 2) }
    /// The base weights this recipe trains on.
    public var resolvedBaseWeights: BaseWeightMode { baseWeights ?? (method == .qlora ? .quantized : .f32) }
    /// The sequence length used with a model of context `contextLength`.
    public func resolvedSeqLen(contextLength: Int) -> Int { seqLen ?? min(Self.defaultSeqLen, contextLength) }

    // MARK: - Validation

    /// The Engine's options for `model`; a bad value throws `invalidArgument` naming its YAML key
    /// (`lora.rank: …`), prefixed with `keyPrefix` (the pipeline passes `train.`).
    public func options(model c: LlamaConfig, keyPrefix: String = "") throws -> TrainingOptions {
        func bad(_ key: String, _ message: String) -> TuneError { TuneError(.invalidArgument, "\(keyPrefix)\(key): \(message)") }
        guard rank >= 1 else { throw bad("lora.rank", "expected a positive integer, got \(rank)") }
        let alpha = resolvedAlpha
        guard alpha.isFinite, alpha > 0 else { throw bad("lora.alpha", "expected a number > 0, got \(alpha)") }
        guard dropout.isFinite, dropout >= 0, dropout < 1 else { throw bad("lora.dropout", "expected a number in [0, 1), got \(dropout)") }
        guard !targets.isEmpty else { throw bad("lora.targets", "name at least one module") }
        var modules: [LoRATarget] = []
        for name in targets {
            guard let expanded = LoRATarget.expand(name: name) else {
                throw bad("lora.targets", "unknown module '\(name)' (expected some of \(Self.allTargets.joined(separator: ", ")); Phi-3's fused qkv_proj, gate_up_proj)")
            }
            for t in expanded {
                guard !modules.contains(t) else { throw bad("lora.targets", "\(t.rawValue) is named twice") }
                let s = t.shape(c)
                guard rank <= min(s.in, s.out) else {
                    throw bad("lora.rank", "\(rank) exceeds \(t.rawValue)'s smaller dimension \(min(s.in, s.out))")
                }
                modules.append(t)
            }
        }
        if let t = LoRATarget.partOfFusedModule(in: modules, architecture: c.architecture) {
            let fused = t.peftModuleName(c.architecture)
            throw bad("lora.targets", "\(c.architecture.rawValue) fuses \(t.fusedGroup(c.architecture).map(\.rawValue).joined(separator: ", ")) into one module: name \(fused) (or all of them) or none")
        }
        let base = resolvedBaseWeights
        switch (method, base) {
        case (.qlora, .f32), (.qlora, .bf16), (.lora, .quantized), (.lora, .nf4):
            throw bad("base_weights", "\(base.rawValue) conflicts with method \(method.rawValue) (qlora: quantized or nf4; lora: f32 or bf16)")
        default: break
        }
        guard learningRate.isFinite, learningRate > 0 else { throw bad("lr", "expected a learning rate > 0, got \(learningRate)") }
        guard warmupSteps >= 0 else { throw bad("warmup_steps", "expected a non-negative integer, got \(warmupSteps)") }
        if let maxSteps, maxSteps < 1 { throw bad("max_steps", "expected a positive integer, got \(maxSteps)") }
        guard epochs.isFinite, epochs > 0 else { throw bad("epochs", "expected a number > 0, got \(epochs)") }
        guard batchSize >= 1 else { throw bad("batch_size", "expected a positive integer, got \(batchSize)") }
        guard gradAccum >= 1 else { throw bad("grad_accum", "expected a positive integer, got \(gradAccum)") }
        let seqLen = resolvedSeqLen(contextLength: c.contextLength)
        guard seqLen >= 2 else { throw bad("seq_len", "expected at least 2, got \(seqLen)") }
        guard seqLen <= c.contextLength else { throw bad("seq_len", "\(seqLen) exceeds the model's context length \(c.contextLength)") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw bad("weight_decay", "expected a number >= 0, got \(weightDecay)") }
        guard maxGradNorm.isFinite, maxGradNorm >= 0 else { throw bad("max_grad_norm", "expected a number >= 0 (0: off), got \(maxGradNorm)") }
        guard evalEvery >= 0 else { throw bad("eval_every", "expected a non-negative integer (0: at the end only), got \(evalEvery)") }
        guard checkpointEvery >= 0 else {
            throw bad("checkpoint_every", "expected a non-negative integer (0: at the end only), got \(checkpointEvery)")
        }
        if let p = earlyStopPatience, p < 1 { throw bad("early_stop", "expected a positive integer, got \(p)") }

        var o = TrainingOptions(lora: LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, useRSLoRA: rsLoRA, targets: modules))
        o.baseWeights = base
        o.bf16Products = bf16Products
        o.learningRate = learningRate
        o.schedule = schedule
        o.warmupSteps = warmupSteps
        o.steps = maxSteps
        o.epochs = epochs
        o.batchSize = batchSize
        o.gradAccum = gradAccum
        o.seqLen = seqLen
        o.weightDecay = weightDecay
        o.maxGradNorm = maxGradNorm
        o.seed = seed
        o.evalEvery = evalEvery
        o.earlyStopPatience = earlyStopPatience
        o.checkpointEvery = checkpointEvery
        do { try o.validate(model: c) } catch let e as EngineError {   // anything the checks above missed
            throw TuneError(.invalidArgument, "\(keyPrefix.isEmpty ? "" : String(keyPrefix.dropLast()) + ": ")\(e.message)")
        }
        return o
    }

    // MARK: - The serve door

    /// An OpenAI fine-tuning job's hyperparameters on this recipe's defaults: `n_epochs`, `batch_size`,
    /// `learning_rate_multiplier` × the default lr, the job's seed; checkpoints (and evaluations, when
    /// the job has a validation file) every `checkpointEvery` steps. Everything else keeps its default.
    public init(openAIHyperparameters nEpochs: Int, batchSize: Int, learningRateMultiplier: Double, seed: Int, checkpointEvery: Int) {
        self.init()
        epochs = Double(nEpochs)
        self.batchSize = batchSize
        learningRate *= learningRateMultiplier
        self.seed = UInt64(truncatingIfNeeded: seed)
        self.checkpointEvery = checkpointEvery
        evalEvery = checkpointEvery
    }

    // MARK: - Codable (the YAML layout: `lora:` nested, snake_case keys; absent keys take the defaults)

    enum Key: String, CodingKey {
        case method, baseWeights = "base_weights", bf16Products = "bf16_products", lora, lr, schedule
        case warmupSteps = "warmup_steps", maxSteps = "max_steps", epochs, batchSize = "batch_size", gradAccum = "grad_accum"
        case seqLen = "seq_len", weightDecay = "weight_decay", maxGradNorm = "max_grad_norm", seed
        case evalEvery = "eval_every", earlyStop = "early_stop", checkpointEvery = "checkpoint_every"
    }
    enum LoRAKey: String, CodingKey { case rank, alpha, dropout, targets, rslora }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: Key.self)
        method = try c.decodeIfPresent(TrainMethod.self, forKey: .method) ?? method
        baseWeights = try c.decodeIfPresent(BaseWeightMode.self, forKey: .baseWeights)
        bf16Products = try c.decodeIfPresent(Bool.self, forKey: .bf16Products)
        if c.contains(.lora) {
            let l = try c.nestedContainer(keyedBy: LoRAKey.self, forKey: .lora)
            rank = try l.decodeIfPresent(Int.self, forKey: .rank) ?? rank
            alpha = try l.decodeIfPresent(Double.self, forKey: .alpha)
            dropout = try l.decodeIfPresent(Double.self, forKey: .dropout) ?? dropout
            targets = try l.decodeIfPresent([String].self, forKey: .targets) ?? targets
            rsLoRA = try l.decodeIfPresent(Bool.self, forKey: .rslora) ?? rsLoRA
        }
        learningRate = try c.decodeIfPresent(Double.self, forKey: .lr) ?? learningRate
        schedule = try c.decodeIfPresent(LRSchedule.self, forKey: .schedule) ?? schedule
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? warmupSteps
        maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps)
        epochs = try c.decodeIfPresent(Double.self, forKey: .epochs) ?? epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? batchSize
        gradAccum = try c.decodeIfPresent(Int.self, forKey: .gradAccum) ?? gradAccum
        seqLen = try c.decodeIfPresent(Int.self, forKey: .seqLen)
        weightDecay = try c.decodeIfPresent(Double.self, forKey: .weightDecay) ?? weightDecay
        maxGradNorm = try c.decodeIfPresent(Double.self, forKey: .maxGradNorm) ?? maxGradNorm
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        evalEvery = try c.decodeIfPresent(Int.self, forKey: .evalEvery) ?? evalEvery
        earlyStopPatience = try c.decodeIfPresent(Int.self, forKey: .earlyStop)
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: .checkpointEvery) ?? checkpointEvery
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(method, forKey: .method)
        try c.encodeIfPresent(baseWeights, forKey: .baseWeights)
        try c.encodeIfPresent(bf16Products, forKey: .bf16Products)
        var l = c.nestedContainer(keyedBy: LoRAKey.self, forKey: .lora)
        try l.encode(rank, forKey: .rank)
        try l.encodeIfPresent(alpha, forKey: .alpha)
        try l.encode(dropout, forKey: .dropout)
        try l.encode(targets, forKey: .targets)
        try l.encode(rsLoRA, forKey: .rslora)
        try c.encode(learningRate, forKey: .lr)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(warmupSteps, forKey: .warmupSteps)
        try c.encodeIfPresent(maxSteps, forKey: .maxSteps)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(gradAccum, forKey: .gradAccum)
        try c.encodeIfPresent(seqLen, forKey: .seqLen)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(maxGradNorm, forKey: .maxGradNorm)
        try c.encode(seed, forKey: .seed)
        try c.encode(evalEvery, forKey: .evalEvery)
        try c.encodeIfPresent(earlyStopPatience, forKey: .earlyStop)
        try c.encode(checkpointEvery, forKey: .checkpointEvery)
    }

    // MARK: - Human rendering

    /// The resolved settings as `key: value` lines in the YAML's names (`tune train --dry-run`).
    public static func lines(_ o: TrainingOptions, method: TrainMethod) -> [String] {
        func g(_ d: Double) -> String { String(format: "%g", d) }
        return [
            "method: \(method.rawValue)", "base_weights: \(o.baseWeights.rawValue)",
            "bf16_products: \(o.usesBF16Products)",
            "lora.rank: \(o.lora.rank)", "lora.alpha: \(g(o.lora.alpha))", "lora.dropout: \(g(o.lora.dropout))",
            "lora.targets: \(o.lora.targets.map(\.rawValue).joined(separator: ", "))", "lora.rslora: \(o.lora.useRSLoRA)",
            "lr: \(g(o.learningRate))", "schedule: \(o.schedule.rawValue)", "warmup_steps: \(o.warmupSteps)",
            "max_steps: \(o.steps.map(String.init) ?? "none (epochs)")", "epochs: \(g(o.epochs))",
            "batch_size: \(o.batchSize)", "grad_accum: \(o.gradAccum)", "seq_len: \(o.seqLen)",
            "weight_decay: \(g(o.weightDecay))", "max_grad_norm: \(g(o.maxGradNorm))", "seed: \(o.seed)",
            "eval_every: \(o.evalEvery)", "early_stop: \(o.earlyStopPatience.map(String.init) ?? "off")",
            "checkpoint_every: \(o.checkpointEvery)",
        ]
    }

    /// Human lines for the trainer's events, shared by `tune train`'s progress bar, the pipeline's
    /// train-stage progress and `tune serve`'s job events.
    public enum Text {
        /// `24 sequences (3072 tokens), 6 eval, 40 steps, 460800 trainable parameters, base q4_1, activations 12 MiB`.
        public static func started(_ s: TrainStart) -> String {
            "\(s.trainSequences) sequences (\(s.trainTokens) tokens), \(s.evalSequences) eval, \(s.totalSteps) steps, "
                + "\(s.trainableParameters) trainable parameters, base \(s.baseWeights), activations \(s.activationBytes / (1 << 20)) MiB"
                + (s.truncatedSequences > 0 ? ", \(s.truncatedSequences) sequences truncated to seq_len" : "")
        }

        public static func resumed(step: Int) -> String { "resumed at step \(step)" }

        /// `loss 1.2345  lr 2.00e-04  950 tok/s  epoch 0.50  ETA 4m10s` (the progress bar's detail).
        public static func stepDetail(_ p: TrainProgress) -> String {
            String(format: "loss %.4f  lr %.2e  %.0f tok/s  epoch %.2f  ETA ", p.record.loss, p.record.learningRate,
                   p.tokensPerSecond, p.epoch) + humanDuration(p.etaSeconds)
        }

        /// `step 12/40  ` + `stepDetail`.
        public static func step(_ p: TrainProgress) -> String { "step \(p.record.step)/\(p.totalSteps)  " + stepDetail(p) }

        public static func eval(_ e: EvalRecord) -> String {
            String(format: "step %d: eval loss %.4f (%d tokens)", e.step, e.loss, e.targetTokens)
        }

        public static func earlyStop(step: Int, bestEvalLoss: Double) -> String {
            String(format: "early stop at step %d (best eval loss %.4f)", step, bestEvalLoss)
        }

        public static func interrupted(step: Int) -> String { "interrupted at step \(step); checkpoint written" }

        /// `steps 40  loss 0.1234  eval loss 0.2345  950 tok/s`.
        public static func finished(_ r: TrainResult) -> String {
            var line = "steps \(r.steps)"
            if let l = r.finalLoss { line += String(format: "  loss %.4f", l) }
            if let e = r.finalEvalLoss { line += String(format: "  eval loss %.4f", e) }
            return line + String(format: "  %.0f tok/s", r.tokensPerSecond)
        }

        /// One line per event where there is one to say (checkpoints are silent).
        public static func line(_ e: TrainEvent) -> String? {
            switch e {
            case .started(let s): started(s)
            case .resumed(let step, _): resumed(step: step)
            case .step(let p): step(p)
            case .eval(let r): eval(r)
            case .checkpoint: nil
            case .earlyStop(let step, let best): earlyStop(step: step, bestEvalLoss: best)
            case .interrupted(let step, _): interrupted(step: step)
            case .finished(let r): finished(r)
            }
        }
    }
}

