// TrainingOptions — the hyperparameters of a LoRA / QLoRA run, validated before any work starts.

import Foundation

/// How the frozen base weights are held during training.
public enum BaseWeightMode: String, Codable, Sendable, CaseIterable {
    /// QLoRA: keep the model file's own quantized blocks (Q4_1/Q4_0/Q8_0 …); GEMMs dequantize in-kernel.
    /// A float base (f32/f16/bf16 safetensors or GGUF) is quantized to NF4 first, as QLoRA does.
    case quantized
    /// QLoRA over NF4 blocks (bitsandbytes' 4-bit NormalFloat, 64 weights per f32 absmax), whatever the
    /// file holds (a quantized GGUF is dequantized and re-quantized: a second rounding).
    case nf4
    /// LoRA over an f32 copy of the base.
    case f32
    /// LoRA over a bf16 copy of the base (half the weight traffic of f32).
    case bf16
}

/// Learning-rate schedule after warmup (HF `get_*_schedule_with_warmup` semantics).
public enum LRSchedule: String, Codable, Sendable, CaseIterable { case constant, linear, cosine }

public struct TrainingOptions: Codable, Sendable, Equatable {
    public var lora: LoRAConfig
    public var baseWeights: BaseWeightMode = .quantized
    public var learningRate: Double = 2e-4
    public var schedule: LRSchedule = .cosine
    public var warmupSteps: Int = 0
    /// Optimizer steps; nil: derived from `epochs`.
    public var steps: Int? = nil
    public var epochs: Double = 1
    /// Sequences per micro-batch.
    public var batchSize: Int = 4
    public var gradAccum: Int = 1
    /// Longest sequence (tokens); longer sequences are truncated.
    public var seqLen: Int = 512
    public var weightDecay: Double = 0
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    /// Gradient-norm clipping threshold; 0 disables.
    public var maxGradNorm: Double = 1
    public var seed: UInt64 = 42
    /// Shuffle the training sequences every epoch (seeded).
    public var shuffle: Bool = true
    /// Evaluate the eval split every N optimizer steps (0: only at the end, when there is an eval split).
    public var evalEvery: Int = 0
    /// Stop when the eval loss has not improved for this many evaluations (nil: never).
    public var earlyStopPatience: Int? = nil
    /// Write a checkpoint every N optimizer steps (0: only at the end).
    public var checkpointEvery: Int = 0
    /// Checkpoints kept on disk (oldest removed first).
    public var keepCheckpoints: Int = 2
    /// Frozen-base GEMMs (forward, input gradient, LM head) with bf16 products and f32 accumulation
    /// (`ck_matmul_forward_bf16`; activations rounded to bf16): about twice the f32 rate where the CPU
    /// has AVX-512 BF16, a no-op elsewhere. nil: on for the bf16 base only; true: also for the f32 and
    /// quantized bases (changes their numerics: ~2^-8 relative per product); false: never.
    public var bf16Products: Bool? = nil

    /// Whether this run's base GEMMs use bf16 products (see `bf16Products`).
    public var usesBF16Products: Bool { bf16Products ?? (baseWeights == .bf16) }

    public init(lora: LoRAConfig = LoRAConfig()) { self.lora = lora }

    /// Throws a clear error for any value no run can use.
    public func validate(model c: LlamaConfig) throws {
        try lora.validate(model: c)
        func bad(_ what: String) -> EngineError { EngineError(.invalidArgument, what) }
        guard learningRate.isFinite, learningRate > 0 else { throw bad("learning rate must be > 0, got \(learningRate)") }
        guard warmupSteps >= 0 else { throw bad("warmup steps must be >= 0, got \(warmupSteps)") }
        if let steps { guard steps > 0 else { throw bad("steps must be a positive integer, got \(steps)") } }
        else { guard epochs.isFinite, epochs > 0 else { throw bad("epochs must be > 0, got \(epochs)") } }
        guard batchSize > 0 else { throw bad("batch size must be a positive integer, got \(batchSize)") }
        guard gradAccum > 0 else { throw bad("gradient accumulation must be a positive integer, got \(gradAccum)") }
        guard seqLen >= 2 else { throw bad("seq-len must be at least 2, got \(seqLen)") }
        guard seqLen <= c.contextLength else {
            throw bad("seq-len \(seqLen) exceeds the model's context length \(c.contextLength)")
        }
        guard weightDecay >= 0 else { throw bad("weight decay must be >= 0, got \(weightDecay)") }
        guard beta1 >= 0, beta1 < 1, beta2 >= 0, beta2 < 1 else { throw bad("adam betas must be in [0, 1), got \(beta1), \(beta2)") }
        guard eps > 0 else { throw bad("adam epsilon must be > 0, got \(eps)") }
        guard maxGradNorm >= 0 else { throw bad("max grad norm must be >= 0, got \(maxGradNorm)") }
        guard evalEvery >= 0, checkpointEvery >= 0 else { throw bad("eval-every and checkpoint-every must be >= 0") }
        guard keepCheckpoints >= 1 else { throw bad("keep-checkpoints must be >= 1, got \(keepCheckpoints)") }
        if let p = earlyStopPatience { guard p > 0 else { throw bad("early-stop patience must be > 0, got \(p)") } }
    }

    /// The learning rate at optimizer step `step` (0-based) of `total`, like transformers' schedulers.
    public func learningRate(at step: Int, total: Int) -> Double {
        if step < warmupSteps { return learningRate * Double(step + 1) / Double(warmupSteps + 1) }
        let span = max(1, total - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        switch schedule {
        case .constant: return learningRate
        case .linear: return learningRate * (1 - progress)
        case .cosine: return learningRate * 0.5 * (1 + cos(Double.pi * progress))
        }
    }
}
