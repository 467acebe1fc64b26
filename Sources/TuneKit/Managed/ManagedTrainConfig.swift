// ManagedTrainConfig — `train.openai:` of a pipeline: which OpenAI-compatible provider, which model,
// the job's hyperparameters, and how patiently to talk to it. The API key itself is never part of
// the config: only the NAME of the environment variable that holds it (docs/managed.md).

import Foundation

public struct ManagedTrainConfig: Codable, Hashable, Sendable {
    /// Provider URL; nil → `$<baseURLEnv>`, else `https://api.openai.com/v1`.
    public var baseURL: String?
    public var baseURLEnv = "OPENAI_BASE_URL"
    public var apiKeyEnv = "OPENAI_API_KEY"
    /// The provider's base model id.
    public var model = ""
    /// Job name suffix; nil → derived from the pipeline name and the cache key (deterministic).
    public var suffix: String?
    /// Job seed; nil → the pipeline's seed.
    public var seed: Int?
    public var nEpochs: Int?
    public var batchSize: Int?
    public var learningRateMultiplier: Double?
    /// Seconds between polls of the job.
    public var pollInterval = 10.0
    /// Seconds to wait for the job to finish before the stage fails (the job keeps running).
    public var timeout = 86_400.0
    /// Per-request timeouts, seconds.
    public var requestTimeout = 120.0
    public var connectTimeout = 10.0
    /// Tries per request (the first included) and the total deadline of one request's retries, seconds.
    public var maxAttempts = 6
    public var retryDeadline = 600.0
    /// Chat completions in flight at once when evaluating the tuned model.
    public var evalConcurrency = 4

    public static let defaultBaseURL = "https://api.openai.com/v1"

    public init(model: String = "") { self.model = model }

    /// The provider URL: the config's, else `$baseURLEnv`, else OpenAI's.
    public func resolvedBaseURL(environment: [String: String]) -> String {
        baseURL ?? environment[baseURLEnv].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultBaseURL
    }

    /// The key from `$apiKeyEnv`; a clear error (naming the variable, never a value) when unset.
    public func apiKey(environment: [String: String]) throws -> String {
        guard let k = environment[apiKeyEnv]?.trimmingCharacters(in: .whitespacesAndNewlines), !k.isEmpty else {
            throw TuneError(.invalidArgument, "the API key for the managed provider is not set: export \(apiKeyEnv)=… "
                            + "(or name another variable: train.openai.api_key_env in a pipeline, --api-key-env for tune jobs)")
        }
        return k
    }

    public var hyperparameters: Hyperparameters {
        Hyperparameters(nEpochs: nEpochs.map { .number(Double($0)) }, batchSize: batchSize.map { .number(Double($0)) },
                        learningRateMultiplier: learningRateMultiplier.map { .number($0) })
    }

    /// The fields that decide what is trained (the cache key's part): model, suffix, seed and
    /// hyperparameters. Patience settings and env var names are left at their defaults; the base URL
    /// enters the key resolved (see the runner), and the key never does.
    public var keyed: ManagedTrainConfig {
        var k = ManagedTrainConfig(model: model)
        k.suffix = suffix; k.seed = seed
        k.nEpochs = nEpochs; k.batchSize = batchSize; k.learningRateMultiplier = learningRateMultiplier
        return k
    }

    /// A client for this provider.
    public func client(environment: [String: String], transport: any HTTPTransport = CurlHTTPTransport(),
                       clock: any RetryClock = SystemRetryClock(), jitterSeed: UInt64 = 0) throws -> OpenAIClient {
        var c = try OpenAIClient(baseURL: resolvedBaseURL(environment: environment), apiKey: try apiKey(environment: environment),
                                 transport: transport, retry: RetryPolicy(maxAttempts: maxAttempts, deadline: retryDeadline),
                                 clock: clock, jitterSeed: jitterSeed)
        c.requestTimeout = requestTimeout
        c.connectTimeout = connectTimeout
        return c
    }

    enum CodingKeys: String, CodingKey {
        case baseURL = "base_url", baseURLEnv = "base_url_env", apiKeyEnv = "api_key_env", model, suffix, seed
        case nEpochs = "n_epochs", batchSize = "batch_size", learningRateMultiplier = "learning_rate_multiplier"
        case pollInterval = "poll_interval", timeout, requestTimeout = "request_timeout", connectTimeout = "connect_timeout"
        case maxAttempts = "max_attempts", retryDeadline = "retry_deadline", evalConcurrency = "eval_concurrency"
    }
}
