// RouterRuntime — a registered router answering requests (`tune serve --router`): the routed model
// computes its confidence for the request exactly as the eval computed it for each example (the same
// RowRenderer prompt, the same scored options or greedy answer, the same stop tokens: router.json's
// `prompt`), answers when confidence ≥ τ, and escalates to the reference otherwise. A reference that
// fails (down, slow past the timeout, 429 beyond the deadline, a refused key) never fails the request:
// the local answer is served and flagged `local_fallback` with the reason, which names no secret.
//
//     let r = try RouterRuntime.load(ref: "shipping-docs-router@staging", registry: reg, base: base, environment: env)
//     let a = try r.answer([ChatMessage(role: "user", content: "Classify this document: …")])
//     // a.route == .local, a.confidence == 2.7, a.text == "packing_list"

import Engine
import Foundation

public final class RouterRuntime: @unchecked Sendable {
    public enum Route: String, Codable, Sendable {
        case local, reference
        /// Escalated, but the reference failed: the local answer, flagged.
        case localFallback = "local_fallback"
    }

    public struct Answer: Sendable {
        public var text: String
        public var route: Route
        /// The routed model's confidence (nil under "always reference" when the reference answered).
        public var confidence: Double?
        /// Why the reference was not used after an escalation (a `local_fallback`).
        public var reason: String?
        public var promptTokens: Int
        public var completionTokens: Int
        /// Whether the answer ended by a stop token (false: cut at the length limit).
        public var stopped: Bool
    }

    public let artifact: Artifact
    public let spec: RouterSpec
    public let local: LlamaModel
    let prompt: RouterPrompt
    let renderer: RowRenderer
    let client: OpenAIClient

    init(artifact: Artifact, spec: RouterSpec, local: LlamaModel, client: OpenAIClient) throws {
        guard let prompt = spec.prompt else {
            throw TuneError(.invalidArgument, "router \(artifact.ref): its router.json (schema \(spec.schemaVersion)) does not record how the "
                            + "routed model was asked; re-run the pipeline's eval stage (tune run --force eval) to register a schema-\(RouterSpec.schemaVersion) router")
        }
        if spec.confidence == "choice_margin", prompt.choices.count < 2 {
            throw TuneError(.invalidArgument, "router \(artifact.ref): a choice_margin router needs at least two choices in router.json")
        }
        self.artifact = artifact
        self.spec = spec
        self.local = local
        self.prompt = prompt
        self.client = client
        do { renderer = try RowRenderer(setting: prompt.template, tokenizer: local.tokenizer, systemPrompt: prompt.systemPrompt) } catch let e as TuneError {
            throw TuneError(e.kind, "router \(artifact.ref): \(e.message)")
        }
    }

    /// The router `ref` names in `registry`, its routed model (a merged model file or directory, an adapter
    /// over `base`, or `base` itself) and a client for its reference. `referenceURL` overrides the URL the
    /// router recorded (a provider that moved); the key is read from the router's `api_key_env` in
    /// `environment` (a clear error naming the variable when unset). The reference gets `timeout` seconds
    /// per request and the same total deadline, with at most `attempts` tries.
    public static func load(ref: String, registry: Registry, base: LlamaModel, baseFile: String,
                            environment: [String: String], referenceURL: String? = nil, timeout: Double = 30, attempts: Int = 2,
                            transport: any HTTPTransport = CurlHTTPTransport()) throws -> RouterRuntime {
        let a = try registry.resolve(ref)
        guard a.kind == .router else {
            throw TuneError(.invalidArgument, "--router \(ref): \(a.ref) is a \(a.kind.rawValue), not a router (eval.routing registers PIPELINE-router)")
        }
        guard let path = registry.path(of: a) else { throw TuneError(.notFound, "router \(a.ref): its blob is missing from the store") }
        let file = FileManager.default.fileExists(atPath: path + "/router.json") ? path + "/router.json" : path
        let spec: RouterSpec
        do { spec = try JSONDecoder().decode(RouterSpec.self, from: Data(contentsOf: URL(fileURLWithPath: file))) } catch {
            throw TuneError(.badData, "router \(a.ref): \(file) is not a router.json (\(error))")
        }
        let local = try loadLocal(spec, router: a, registry: registry, base: base, baseFile: baseFile)
        // The reference as the eval reached it, with the server's patience (its key check names the variable).
        var ref = ReferenceModel(name: spec.reference, model: spec.referenceModel, baseURL: referenceURL ?? spec.referenceBaseURL)
        ref.apiKeyEnv = spec.apiKeyEnv
        ref.maxAttempts = max(1, attempts)
        ref.retryDeadline = timeout
        ref.requestTimeout = timeout
        let client: OpenAIClient
        do { client = try ref.client(environment: environment, transport: transport) } catch let e as TuneError {
            throw TuneError(e.kind, "router \(a.ref): \(e.message)")
        }
        return try RouterRuntime(artifact: a, spec: spec, local: local, client: client)
    }

    /// The routed model: the router's `local` input in the registry.
    static func loadLocal(_ spec: RouterSpec, router: Artifact, registry: Registry, base: LlamaModel, baseFile: String) throws -> LlamaModel {
        if spec.local == .base { return base }
        let m: Artifact
        do { m = try registry.resolve(spec.localRef) } catch {
            throw TuneError(.notFound, "router \(router.ref): its routed model \(spec.localRef) is not in the registry")
        }
        guard let path = registry.path(of: m) else { throw TuneError(.notFound, "router \(router.ref): the blob of \(m.ref) is missing from the store") }
        let isAdapter = FileManager.default.fileExists(atPath: path + "/adapter_config.json")
        if isAdapter {
            if case .string(let b)? = m.metadata["base_model"], b != baseFile {
                throw TuneError(.invalidArgument, "router \(router.ref): its routed adapter \(m.ref) was trained on \(b), but the server's base is \(baseFile)")
            }
            return try base.loadingAdapter(directory: path)
        }
        return try LlamaModel.load(path: Stages.Merge.modelPath(in: path))
    }

    /// The ids the eval's prompt had for this conversation: rendered as the dataset was (system prompt
    /// added when the request has none), up to where the answer starts. The last message must be the user's.
    public func promptIDs(_ messages: [ChatMessage]) throws -> [Int32] {
        guard let last = messages.last, last.role == "user" else {
            throw TuneError(.invalidArgument, "messages: a routed request ends with a user message")
        }
        let row: DatasetRow
        if renderer.template == nil {
            guard messages.count == 1 else {
                throw TuneError(.invalidArgument, "messages: the routed model was tuned without a chat template; send one user message")
            }
            row = .completion(prompt: last.content, completion: "")
        } else {
            var m = messages
            if let s = prompt.systemPrompt, !m.contains(where: { $0.role == "system" }) { m.insert(ChatMessage(role: "system", content: s), at: 0) }
            row = .chat(m + [ChatMessage(role: "assistant", content: "")])
        }
        let spans = try renderer.spans(for: row)
        guard let answer = spans.lastIndex(where: \.trainable) else {
            throw TuneError(.internal, "router \(artifact.ref): the rendered request has no answer position")
        }
        return renderer.encode(spans: Array(spans[..<answer])).ids
    }

    /// The routed model's answer and confidence for `ids`, as the Evaluator computes them: the best
    /// option and the margin to the second (choice_margin), or the greedy answer and its mean token
    /// log-probability, stop token included (mean_token_logprob).
    public func localAnswer(promptIDs ids: [Int32]) throws -> (text: String, confidence: Double, tokens: Int, stopped: Bool) {
        let tok = local.tokenizer, stops = Set(prompt.stopIDs)
        guard ids.count + max(prompt.maxNewTokens, 1) < local.config.contextLength else {
            throw TuneError(.invalidArgument, "messages: \(ids.count) prompt tokens leave no room in the routed model's \(local.config.contextLength)-token context")
        }
        if spec.confidence == "choice_margin" {
            let conts = prompt.choices.map { o in let c = tok.encode(o) + prompt.choiceSuffixIDs; return (ids: c, targets: Array(c.indices)) }
            let r = try local.evaluate(prompts: [PromptTask(prompt: ids, continuations: conts, maxNewTokens: 0)], stopTokens: stops)[0]
            let (best, margin) = Evaluator.bestChoice(r.scores.map { $0.logprobs.reduce(0, +) })
            return (prompt.choices[best], margin!, conts[best].ids.count - prompt.choiceSuffixIDs.count, true)   // ≥ 2 choices: init
        }
        let r = try local.evaluate(prompts: [PromptTask(prompt: ids, continuations: [], maxNewTokens: prompt.maxNewTokens)], stopTokens: stops)[0]
        guard let confidence = r.meanGeneratedLogprob else { throw TuneError(.internal, "router \(artifact.ref): the routed model generated nothing") }
        return (tok.decode(r.generated), confidence, r.generated.count, r.generatedLogprobs.count > r.generated.count)
    }

    /// Routes one conversation. Throws only for a request the routed model cannot take (bad messages, too
    /// long); a failing reference falls back to the local answer.
    public func answer(_ messages: [ChatMessage]) throws -> Answer {
        let ids = try promptIDs(messages)
        var local: (text: String, confidence: Double, tokens: Int, stopped: Bool)? = nil
        if spec.policy != .alwaysReference { local = try localAnswer(promptIDs: ids) }
        if let l = local, !Routing.escalates(l.confidence, spec.policy, tau: spec.tau) {
            return Answer(text: l.text, route: .local, confidence: l.confidence, promptTokens: ids.count, completionTokens: l.tokens, stopped: l.stopped)
        }
        do {
            let body = messages.map { ChatMessageBody(role: $0.role, content: $0.content) }
            let r = try client.chatCompletion(ChatCompletionRequest(model: spec.referenceModel, messages: body,
                                                                    maxTokens: prompt.maxNewTokens, temperature: 0, seed: nil))
            return Answer(text: r.text, route: .reference, confidence: local?.confidence, promptTokens: r.usage?.promptTokens ?? 0,
                          completionTokens: r.usage?.completionTokens ?? 0, stopped: true)
        } catch {
            let why = (error as? TuneError)?.message ?? "\(error)"
            let l = try local ?? localAnswer(promptIDs: ids)
            return Answer(text: l.text, route: .localFallback, confidence: l.confidence, reason: "reference \(spec.reference) failed: \(why)",
                          promptTokens: ids.count, completionTokens: l.tokens, stopped: l.stopped)
        }
    }
}
