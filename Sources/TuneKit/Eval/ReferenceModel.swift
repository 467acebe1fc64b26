// ReferenceModel — `eval.reference:`: models reached through an OpenAI-compatible chat-completions
// API (a closed model, another provider's open model, or a managed fine-tune's `ft:` id), evaluated
// on the same prepared eval split as base/adapter/merged with the generation metrics
// (ManagedEvaluator), their token usage from the API's `usage`, latency p50/p95, and priced per 1M
// input/output tokens. The API key is only ever read from the environment variable the config names
// (a literal `api_key` is refused, as in train.openai); it never enters the config, the report, the
// registry or a log line. A reference that fails (a 4xx, or 5xx past the retries) fails the eval
// stage with an error naming it (docs/eval.md, "Reference models").

import Foundation

public struct ReferenceModel: Codable, Hashable, Sendable {
    /// How the reference is named in the report and in gate bounds (`min_delta_vs_NAME`).
    public var name: String
    /// Provider URL; nil → `$<baseURLEnv>`, else `https://api.openai.com/v1`.
    public var baseURL: String?
    public var baseURLEnv = "OPENAI_BASE_URL"
    /// The environment variable holding the API key (never the key itself).
    public var apiKeyEnv = "OPENAI_API_KEY"
    /// The provider's model id (e.g. `gpt-4o-mini`, or a managed fine-tune's `ft:…`).
    public var model: String
    /// $ per 1M prompt / completion tokens (from the API's `usage`); nil → no cost figures for it.
    public var inputPerMillion: Double?
    public var outputPerMillion: Double?
    /// Chat completions in flight at once.
    public var concurrency = 4
    /// Tries per request (the first included), total retry deadline and per-request timeout, seconds.
    public var maxAttempts = 6
    public var retryDeadline = 600.0
    public var requestTimeout = 120.0
    public var seed: Int?

    public init(name: String, model: String, baseURL: String? = nil) {
        self.name = name
        self.model = model
        self.baseURL = baseURL
    }

    enum CodingKeys: String, CodingKey {
        case name, model, seed, concurrency
        case baseURL = "base_url", baseURLEnv = "base_url_env", apiKeyEnv = "api_key_env"
        case inputPerMillion = "input_per_million", outputPerMillion = "output_per_million"
        case maxAttempts = "max_attempts", retryDeadline = "retry_deadline", requestTimeout = "request_timeout"
    }

    /// Reference names: letters, digits, `.`, `_`, `-` (they appear in gate bound names).
    public static func isValidName(_ s: String) -> Bool {
        guard let f = s.first, f.isLetter || f.isNumber else { return false }
        return s.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || "._-".contains($0) }
    }

    /// The managed client settings this reference shares with train.openai (retries, timeouts, URL resolution).
    var managed: ManagedTrainConfig {
        var m = ManagedTrainConfig(model: model)
        m.baseURL = baseURL
        m.baseURLEnv = baseURLEnv
        m.apiKeyEnv = apiKeyEnv
        m.maxAttempts = maxAttempts
        m.retryDeadline = retryDeadline
        m.requestTimeout = requestTimeout
        m.evalConcurrency = concurrency
        return m
    }

    /// The provider URL, redacted (what reports and the registry show).
    public func shownURL(environment: [String: String]) -> String {
        let u = managed.resolvedBaseURL(environment: environment)
        return redactedURL((try? OpenAIClient.apiRoot(u)) ?? u)
    }

    /// A client for this reference; the key comes from `$apiKeyEnv` (a clear error naming the variable when unset).
    public func client(environment: [String: String], transport: any HTTPTransport = CurlHTTPTransport(),
                       jitterSeed: UInt64 = 0) throws -> OpenAIClient {
        guard let k = environment[apiKeyEnv]?.trimmingCharacters(in: .whitespacesAndNewlines), !k.isEmpty else {
            throw TuneError(.invalidArgument, "eval reference \"\(name)\": the API key is not set: export \(apiKeyEnv)=… "
                            + "(or name another variable with eval.reference[].api_key_env)")
        }
        _ = k
        return try managed.client(environment: environment, transport: transport, jitterSeed: jitterSeed)
    }

    /// Evaluates this reference on `conversations` with the generation metrics of `config`; latency p50/p95
    /// and usage are recorded. Any failure is rethrown naming the reference.
    public func evaluate(conversations: [[ChatMessageBody]], config: EvalConfig, environment: [String: String],
                         transport: any HTTPTransport = CurlHTTPTransport(), shouldStop: @escaping @Sendable () -> Bool = { false },
                         onRetry: @escaping @Sendable (String) -> Void = { _ in }) throws -> ModelEvaluation {
        var c = try client(environment: environment, transport: transport)   // its error already names the reference
        do {
            c.shouldStop = shouldStop
            c.onRetry = { onRetry("reference \(name): \($0)") }
            return try ManagedEvaluator.evaluate(client: c, model: model, role: .reference, name: name, conversations: conversations,
                                                 config: config, concurrency: concurrency, seed: seed)
        } catch let e as TuneError {
            throw TuneError(e.kind, "eval reference \"\(name)\" (\(model) at \(shownURL(environment: environment))) failed: \(e.message)")
        }
    }
}

extension ReferenceModel {
    init(_ r: YAMLReader) {
        self.init(name: r.string("name", required: true) ?? "", model: r.string("model", required: true) ?? "")
        if let w = ManagedModelID.unpinnedWarning(model) { r.warn(r.value("model"), "model", w.message, hint: w.hint) }
        if !name.isEmpty, !Self.isValidName(name) {
            r.report(r.value("name"), "name", "expected letters, digits, \".\", \"_\" or \"-\" (it names the reference in gate bounds), got \"\(name)\"")
        }
        baseURL = r.string("base_url")
        if let u = baseURL, (try? OpenAIClient.apiRoot(u)) == nil {
            r.report(r.value("base_url"), "base_url", "expected an http(s) URL such as https://api.openai.com/v1, got \"\(redactedURL(u))\"")
        }
        if r.has("api_key") {
            r.report(r.value("api_key"), "api_key", "the API key is never written in a pipeline file",
                     hint: "export it (e.g. OPENAI_API_KEY) and name the variable with api_key_env")
        }
        baseURLEnv = r.string("base_url_env", default: baseURLEnv) ?? baseURLEnv
        apiKeyEnv = r.string("api_key_env", default: apiKeyEnv) ?? apiKeyEnv
        inputPerMillion = r.has("input_per_million") ? r.double("input_per_million", default: 0, range: 0...1e9) : nil
        outputPerMillion = r.has("output_per_million") ? r.double("output_per_million", default: 0, range: 0...1e9) : nil
        concurrency = r.int("concurrency", default: 4, min: 1, max: 256)
        maxAttempts = r.int("max_attempts", default: 6, min: 1, max: 100)
        retryDeadline = r.double("retry_deadline", default: 600, range: 0...86_400, exclusiveLower: true)
        requestTimeout = r.double("request_timeout", default: 120, range: 0...86_400, exclusiveLower: true)
        seed = r.has("seed") ? r.int("seed", default: 0, min: 0, max: Int(Int32.max)) : nil
        r.finish()
    }
}
