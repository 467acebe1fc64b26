// TrainSection — the pipeline's `train:` section, read from YAML with defaults (docs/pipeline.md).

import Engine
import Foundation

/// `train:` — fit a LoRA / QLoRA adapter. The local settings live in `recipe` (TrainRecipe: one set
/// of defaults for every door); `section.rank` etc. read through to it.
@dynamicMemberLookup
public struct TrainSection: Codable, Hashable, Sendable {
    public var backend: String
    /// Every local-training setting except the seed (the pipeline's top-level `seed:`).
    public var recipe: TrainRecipe
    /// Managed fine-tuning (`backend: openai`): provider, model, hyperparameters (docs/managed.md).
    public var openai: ManagedTrainConfig?

    public static let allTargets = TrainRecipe.allTargets

    public subscript<T>(dynamicMember key: WritableKeyPath<TrainRecipe, T>) -> T {
        get { recipe[keyPath: key] }
        set { recipe[keyPath: key] = newValue }
    }

    /// The recipe the train stage runs: this section's settings with the pipeline's seed.
    public func recipe(seed: UInt64) -> TrainRecipe {
        var r = recipe
        r.seed = seed
        return r
    }

    init(_ r: YAMLReader) {
        var t = TrainRecipe()
        backend = r.choice("backend", ["local", "openai"], default: "local")
        t.method = TrainMethod(rawValue: r.choice("method", TrainMethod.allCases.map(\.rawValue), default: t.method.rawValue)) ?? t.method
        if let lora = r.object("lora") {
            t.rank = lora.int("rank", default: t.rank, min: 1, max: 1024)
            t.alpha = lora.has("alpha") ? lora.double("alpha", default: t.resolvedAlpha, range: 0...1e6, exclusiveLower: true) : nil
            t.dropout = lora.double("dropout", default: t.dropout, range: 0...0.99)
            t.targets = lora.strings("targets", default: t.targets)
            for name in t.targets where !Self.allTargets.contains(name) {
                let hint = didYouMean(name, among: Self.allTargets).map { "did you mean \"\($0)\"?" }
                lora.report(lora.value("targets"), "targets", "unknown LoRA target \"\(name)\"; expected some of \(Self.allTargets.joined(separator: ", "))", hint: hint)
            }
            t.rsLoRA = lora.bool("rslora", default: t.rsLoRA)
            lora.finish()
        }
        t.epochs = Double(r.int("epochs", default: Int(t.epochs), min: 1))
        t.maxSteps = r.has("max_steps") ? r.int("max_steps", default: 1, min: 1) : nil
        t.batchSize = r.int("batch_size", default: t.batchSize, min: 1)
        t.gradAccum = r.int("grad_accum", default: t.gradAccum, min: 1)
        t.learningRate = r.double("lr", default: t.learningRate, range: 0...1, exclusiveLower: true)
        t.schedule = LRSchedule(rawValue: r.choice("schedule", ["cosine", "linear", "constant"], default: t.schedule.rawValue)) ?? t.schedule
        t.warmupSteps = r.int("warmup_steps", default: t.warmupSteps, min: 0)
        t.weightDecay = r.double("weight_decay", default: t.weightDecay, range: 0...1)
        t.maxGradNorm = r.double("max_grad_norm", default: t.maxGradNorm, range: 0...1e6)
        t.evalEvery = r.int("eval_every", default: t.evalEvery, min: 1)
        t.checkpointEvery = r.int("checkpoint_every", default: t.checkpointEvery, min: 1)
        t.seqLen = r.has("seq_len") ? r.int("seq_len", default: TrainRecipe.defaultSeqLen, min: 2) : nil
        t.earlyStopPatience = r.has("early_stop") ? r.int("early_stop", default: 3, min: 1) : nil
        recipe = t
        let remote = r.object("openai")
        openai = remote.map(Self.managed)
        if backend == "openai", remote == nil {
            r.report(r.value("backend"), "openai", "backend openai needs an `openai:` section with `model:`",
                     hint: "openai: {model: gpt-4o-mini-2024-07-18}")
        }
        r.finish()
    }

    // MARK: - Codable: the flat layout this section has always had, so train cache keys (which hash
    // this encoding) stay what they were. Resolved alpha and seq_len are written, the seed is not.

    enum Key: String, CodingKey {
        case backend, method, rank, alpha, dropout, targets, rsLoRA, epochs, maxSteps, batchSize, gradAccum, learningRate
        case schedule, warmupSteps, weightDecay, maxGradNorm, evalEvery, checkpointEvery, seqLen, earlyStopPatience, openai
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        let t = recipe
        try c.encode(backend, forKey: .backend)
        try c.encode(t.method, forKey: .method)
        try c.encode(t.rank, forKey: .rank)
        try c.encode(t.resolvedAlpha, forKey: .alpha)
        try c.encode(t.dropout, forKey: .dropout)
        try c.encode(t.targets, forKey: .targets)
        try c.encode(t.rsLoRA, forKey: .rsLoRA)
        try c.encode(t.epochs, forKey: .epochs)
        try c.encodeIfPresent(t.maxSteps, forKey: .maxSteps)
        try c.encode(t.batchSize, forKey: .batchSize)
        try c.encode(t.gradAccum, forKey: .gradAccum)
        try c.encode(t.learningRate, forKey: .learningRate)
        try c.encode(t.schedule, forKey: .schedule)
        try c.encode(t.warmupSteps, forKey: .warmupSteps)
        try c.encode(t.weightDecay, forKey: .weightDecay)
        try c.encode(t.maxGradNorm, forKey: .maxGradNorm)
        try c.encode(t.evalEvery, forKey: .evalEvery)
        try c.encode(t.checkpointEvery, forKey: .checkpointEvery)
        try c.encode(t.seqLen ?? TrainRecipe.defaultSeqLen, forKey: .seqLen)
        try c.encodeIfPresent(t.earlyStopPatience, forKey: .earlyStopPatience)
        try c.encodeIfPresent(openai, forKey: .openai)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        var t = TrainRecipe()
        backend = try c.decode(String.self, forKey: .backend)
        t.method = try c.decode(TrainMethod.self, forKey: .method)
        t.rank = try c.decode(Int.self, forKey: .rank)
        let alpha = try c.decode(Double.self, forKey: .alpha)
        t.alpha = alpha == Double(t.rank * 2) ? nil : alpha
        t.dropout = try c.decode(Double.self, forKey: .dropout)
        t.targets = try c.decode([String].self, forKey: .targets)
        t.rsLoRA = try c.decode(Bool.self, forKey: .rsLoRA)
        t.epochs = try c.decode(Double.self, forKey: .epochs)
        t.maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps)
        t.batchSize = try c.decode(Int.self, forKey: .batchSize)
        t.gradAccum = try c.decode(Int.self, forKey: .gradAccum)
        t.learningRate = try c.decode(Double.self, forKey: .learningRate)
        t.schedule = try c.decode(LRSchedule.self, forKey: .schedule)
        t.warmupSteps = try c.decode(Int.self, forKey: .warmupSteps)
        t.weightDecay = try c.decode(Double.self, forKey: .weightDecay)
        t.maxGradNorm = try c.decode(Double.self, forKey: .maxGradNorm)
        t.evalEvery = try c.decode(Int.self, forKey: .evalEvery)
        t.checkpointEvery = try c.decode(Int.self, forKey: .checkpointEvery)
        t.seqLen = try c.decodeIfPresent(Int.self, forKey: .seqLen).flatMap { $0 == TrainRecipe.defaultSeqLen ? nil : $0 }
        t.earlyStopPatience = try c.decodeIfPresent(Int.self, forKey: .earlyStopPatience)
        recipe = t
        openai = try c.decodeIfPresent(ManagedTrainConfig.self, forKey: .openai)
    }

    /// `train.openai:` (ManagedTrainConfig).
    static func managed(_ r: YAMLReader) -> ManagedTrainConfig {
        var m = ManagedTrainConfig(model: r.string("model", required: true) ?? "")
        if let w = ManagedModelID.unpinnedWarning(m.model) { r.warn(r.value("model"), "model", w.message, hint: w.hint) }
        m.baseURL = r.string("base_url")
        if let u = m.baseURL, (try? OpenAIClient.apiRoot(u)) == nil {
            r.report(r.value("base_url"), "base_url", "expected an http(s) URL such as https://api.openai.com/v1, got \"\(redactedURL(u))\"")
        }
        if r.has("api_key") {
            r.report(r.value("api_key"), "api_key", "the API key is never written in a pipeline file",
                     hint: "export it (e.g. OPENAI_API_KEY) and name the variable with api_key_env")
        }
        m.baseURLEnv = r.string("base_url_env", default: m.baseURLEnv) ?? m.baseURLEnv
        m.apiKeyEnv = r.string("api_key_env", default: m.apiKeyEnv) ?? m.apiKeyEnv
        m.suffix = r.string("suffix")
        if let s = m.suffix, s.isEmpty || s.count > 40 {
            r.report(r.value("suffix"), "suffix", "expected 1 to 40 characters, got \(s.count)")
        }
        m.seed = r.has("seed") ? r.int("seed", default: 0, min: 0, max: Int(Int32.max)) : nil
        if let h = r.object("hyperparameters") {
            m.nEpochs = h.has("n_epochs") ? h.int("n_epochs", default: 1, min: 1, max: 50) : nil
            m.batchSize = h.has("batch_size") ? h.int("batch_size", default: 1, min: 1, max: 256) : nil
            m.learningRateMultiplier = h.has("learning_rate_multiplier")
                ? h.double("learning_rate_multiplier", default: 1, range: 0...100, exclusiveLower: true) : nil
            h.finish()
        }
        m.pollInterval = r.double("poll_interval", default: m.pollInterval, range: 0...3600, exclusiveLower: true)
        m.timeout = r.double("timeout", default: m.timeout, range: 0...2_592_000, exclusiveLower: true)
        m.requestTimeout = r.double("request_timeout", default: m.requestTimeout, range: 0...3600, exclusiveLower: true)
        m.connectTimeout = r.double("connect_timeout", default: m.connectTimeout, range: 0...600, exclusiveLower: true)
        m.maxAttempts = r.int("max_attempts", default: m.maxAttempts, min: 1, max: 20)
        m.retryDeadline = r.double("retry_deadline", default: m.retryDeadline, range: 0...86_400, exclusiveLower: true)
        m.evalConcurrency = r.int("eval_concurrency", default: m.evalConcurrency, min: 1, max: 64)
        r.finish()
        return m
    }
}

