// ChatEngine — one chat completion: the model's chat template, the prompt checked against the context,
// sampling options mapped onto the engine's generation, stop strings, and the text as a stream of pieces
// produced on a thread of its own (generation is synchronous and CPU-bound).

import Engine
import Foundation
import TuneKit

struct ChatPlan: Sendable {
    let model: LlamaModel
    let modelID: String
    let promptIDs: [Int32]
    let options: GenerationOptions
    let stops: [String]
}

enum ChatPiece: Sendable {
    case text(String)
    case done(finishReason: String, usage: Usage)
    case failed(String)
}

enum ChatEngine {
    /// The request's messages as the engine's (developer → system), each checked (400s name the message).
    static func messages(_ r: ChatRequest) throws -> [ChatMessage] {
        if let n = r.n, n != 1 { throw APIError.invalid("n=\(n) is not supported by tune serve; only n=1.", param: "n") }
        guard !r.messages.isEmpty else { throw APIError.invalid("'messages' must contain at least one message.", param: "messages") }
        var messages: [ChatMessage] = []
        for (i, m) in r.messages.enumerated() {
            let role = m.role == "developer" ? "system" : m.role
            guard ["system", "user", "assistant"].contains(role) else {
                throw APIError.invalid("messages[\(i)].role '\(m.role)' is not supported; use system, developer, user or assistant.",
                                       param: "messages[\(i)].role")
            }
            let text: String
            switch m.content {
            case .text(let s): text = s
            case .parts(let parts):
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw APIError.invalid("messages[\(i)].content: only 'text' parts are supported.", param: "messages[\(i)].content")
                }
                text = parts.compactMap(\.text).joined()
            case nil: text = ""
            }
            messages.append(ChatMessage(role: role, content: text))
        }
        return messages
    }

    /// Validates the request and turns it into a generation plan (400s name the parameter).
    static func plan(_ r: ChatRequest, host: ModelHost, defaultMaxTokens: Int, fast: Bool = false) throws -> ChatPlan {
        guard let model = try host.model(r.model) else {
            throw APIError(.notFound, "The model '\(r.model)' does not exist or you do not have access to it.", param: "model",
                           code: "model_not_found")
        }
        let messages = try Self.messages(r)
        let temperature = r.temperature ?? 1, topP = r.topP ?? 1
        guard (0...2).contains(temperature) else { throw APIError.invalid("temperature must be in [0, 2], got \(temperature).", param: "temperature") }
        guard topP > 0, topP <= 1 else { throw APIError.invalid("top_p must be in (0, 1], got \(topP).", param: "top_p") }
        let stops = r.stop?.strings ?? []
        guard stops.count <= 4 else { throw APIError.invalid("stop: at most 4 sequences.", param: "stop") }

        let template: ChatTemplate
        do { template = try ChatTemplate.forModel(model.tokenizer) } catch {
            throw APIError.invalid("The model '\(r.model)' has no chat template tune understands.", param: "model")
        }
        let rendered: String
        do { rendered = try template.render(messages, addGenerationPrompt: true) } catch let e as EngineError {
            throw APIError.invalid("messages: \(e.message)", param: "messages")
        }
        let ids = template.rendersBOS ? model.tokenizer.encode(rendered) : model.tokenizer.encodeAddingBOS(rendered)
        let context = model.config.contextLength
        guard ids.count < context else {
            throw APIError.invalid("This model's maximum context length is \(context) tokens; the messages are \(ids.count) tokens.",
                                   param: "messages", code: "context_length_exceeded")
        }
        let requested = r.maxCompletionTokens ?? r.maxTokens
        if let m = requested, m < 1 { throw APIError.invalid("max_tokens must be >= 1, got \(m).", param: "max_tokens") }
        let room = context - ids.count
        if let m = requested, m > room {
            throw APIError.invalid("This model's maximum context length is \(context) tokens; the messages (\(ids.count)) plus max_tokens (\(m)) exceed it.",
                                   param: "max_tokens", code: "context_length_exceeded")
        }
        var stopIDs = Set<Int32>()
        stopIDs.formUnion(template.stopStrings.compactMap { model.tokenizer.id(of: $0) })
        let seed = r.seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 0...UInt64.max)
        let options = GenerationOptions(maxTokens: requested ?? min(defaultMaxTokens, room), temperature: Float(temperature),
                                        topP: Float(topP), seed: seed, stopTokens: stopIDs,
                                        logitBias: try LogitBias.parse(r.logitBias, vocabSize: model.config.vocabSize), fast: fast)
        return ChatPlan(model: model, modelID: r.model, promptIDs: ids, options: options, stops: stops)
    }

    /// Runs the plan: through `batcher` (continuous batching) when given, else on a new thread; pieces
    /// arrive on the stream. Stops early once `cancelled()` is true.
    static func run(_ plan: ChatPlan, batcher: ContinuousBatcher?, cancelled: @escaping @Sendable () -> Bool) -> AsyncStream<ChatPiece> {
        AsyncStream { continuation in
            let matcher = MatcherBox(StopMatcher(stops: plan.stops))
            @Sendable func piece(_ p: String) -> Bool {
                let out = matcher.value.feed(p)
                if !out.isEmpty { continuation.yield(.text(out)) }
                return !matcher.value.stopped && !cancelled()
            }
            @Sendable func done(_ result: Result<Generation, any Error>) {
                switch result {
                case .success(let g):
                    let tail = matcher.value.finish()
                    if !tail.isEmpty { continuation.yield(.text(tail)) }
                    let reason = matcher.value.stopped || g.finishReason == .stop ? "stop" : "length"
                    continuation.yield(.done(finishReason: reason, usage: Usage(promptTokens: plan.promptIDs.count, completionTokens: g.ids.count,
                                                                                totalTokens: plan.promptIDs.count + g.ids.count)))
                case .failure(let error):
                    continuation.yield(.failed((error as? EngineError)?.message ?? "\(error)"))
                }
                continuation.finish()
            }
            // A batcher shut down meanwhile (its adapter was evicted): this one generates on its own thread.
            if let batcher, batcher.submit(BatchPrompt(promptIDs: plan.promptIDs, options: plan.options), onText: piece, onDone: done) {
                return
            }
            let t = Thread { done(Result { try plan.model.generate(promptIDs: plan.promptIDs, options: plan.options, onText: piece) }) }
            t.stackSize = 8 << 20
            t.start()
        }
    }
}

/// The stop matcher of one generation, fed from whichever thread decodes it (one at a time).
private final class MatcherBox: @unchecked Sendable {
    var value: StopMatcher
    init(_ value: StopMatcher) { self.value = value }
}
