// TrainSection — the pipeline's `train:` section, read from YAML with defaults (docs/pipeline.md).

import Foundation

/// `train:` — fit a LoRA / QLoRA adapter.
public struct TrainSection: Codable, Hashable, Sendable {
    public var backend: String
    public var method: String
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    public var targets: [String]
    public var rsLoRA: Bool
    public var epochs: Int
    public var maxSteps: Int?
    public var batchSize: Int
    public var gradAccum: Int
    public var learningRate: Double
    public var schedule: String
    public var warmupSteps: Int
    public var weightDecay: Double
    public var maxGradNorm: Double
    public var evalEvery: Int
    public var checkpointEvery: Int
    /// Longest training sequence in tokens (longer ones are truncated).
    public var seqLen: Int
    /// Stop after this many evaluations without improvement of the eval loss.
    public var earlyStopPatience: Int?
    /// Managed fine-tuning (`backend: openai`): provider, model, hyperparameters (docs/managed.md).
    public var openai: ManagedTrainConfig?

    public static let allTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

    init(_ r: YAMLReader) {
        backend = r.choice("backend", ["local", "openai"], default: "local")
        method = r.choice("method", ["lora", "qlora"], default: "qlora")
        let lora = r.object("lora")
        rank = lora?.int("rank", default: 8, min: 1, max: 1024) ?? 8
        alpha = lora?.double("alpha", default: Double(rank * 2), range: 0...1e6, exclusiveLower: true) ?? Double(rank * 2)
        dropout = lora?.double("dropout", default: 0.05, range: 0...0.99) ?? 0.05
        targets = lora?.strings("targets", default: Self.allTargets) ?? Self.allTargets
        for t in targets where !Self.allTargets.contains(t) {
            let hint = didYouMean(t, among: Self.allTargets).map { "did you mean \"\($0)\"?" }
            lora?.report(lora?.value("targets"), "targets", "unknown LoRA target \"\(t)\"; expected some of \(Self.allTargets.joined(separator: ", "))", hint: hint)
        }
        rsLoRA = lora?.bool("rslora", default: false) ?? false
        lora?.finish()
        epochs = r.int("epochs", default: 1, min: 1)
        maxSteps = r.has("max_steps") ? r.int("max_steps", default: 1, min: 1) : nil
        batchSize = r.int("batch_size", default: 4, min: 1)
        gradAccum = r.int("grad_accum", default: 1, min: 1)
        learningRate = r.double("lr", default: 2e-4, range: 0...1, exclusiveLower: true)
        schedule = r.choice("schedule", ["cosine", "linear", "constant"], default: "cosine")
        warmupSteps = r.int("warmup_steps", default: 0, min: 0)
        weightDecay = r.double("weight_decay", default: 0, range: 0...1)
        maxGradNorm = r.double("max_grad_norm", default: 1, range: 0...1e6)
        evalEvery = r.int("eval_every", default: 50, min: 1)
        checkpointEvery = r.int("checkpoint_every", default: 50, min: 1)
        seqLen = r.int("seq_len", default: 512, min: 2)
        earlyStopPatience = r.has("early_stop") ? r.int("early_stop", default: 3, min: 1) : nil
        let remote = r.object("openai")
        openai = remote.map(Self.managed)
        if backend == "openai", remote == nil {
            r.report(r.value("backend"), "openai", "backend openai needs an `openai:` section with `model:`",
                     hint: "openai: {model: gpt-4o-mini-2024-07-18}")
        }
        r.finish()
    }

    /// `train.openai:` (ManagedTrainConfig).
    static func managed(_ r: YAMLReader) -> ManagedTrainConfig {
        var m = ManagedTrainConfig(model: r.string("model", required: true) ?? "")
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

