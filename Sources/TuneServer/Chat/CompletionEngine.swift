// CompletionEngine — one legacy completion request: each prompt tokenized as `tune score` does (text:
// BOS when the model asks for it; token ids: exactly as given), its echoed log-probs from the exact
// float path (`LlamaModel.scorePrompt`, the numbers `tune score` prints), then up to `max_tokens`
// generated from the same KV cache with OpenAI's stop strings. Synchronous and CPU-bound: the route
// runs it on a thread of its own.

import Engine
import Foundation
import TuneKit

struct CompletionPlan: Sendable {
    let model: LlamaModel
    let modelID: String
    /// Per prompt: its ids and the text `echo` returns for it (the string given, or the ids decoded).
    let prompts: [(ids: [Int32], text: String, addedBOS: Bool)]
    let maxTokens: Int
    let options: GenerationOptions
    let stops: [String]
    /// Top-k alternatives per token (nil: no logprobs).
    let logprobs: Int?
    let echo: Bool
}

/// What one prompt produced.
struct CompletionResult: Sendable {
    var text: String
    var logprobs: CompletionLogprobs?
    var finishReason: String
    var promptTokens: Int
    var completionTokens: Int
}

enum CompletionEngine {
    /// OpenAI's default for the legacy endpoint.
    static let defaultMaxTokens = 16

    /// Validates the request and turns it into a plan (400s name the parameter).
    static func plan(_ r: CompletionRequest, host: ModelHost) throws -> CompletionPlan {
        if host.router(r.model) != nil {
            throw APIError.invalid("The model '\(r.model)' is a router; routers answer /v1/chat/completions only.", param: "model")
        }
        guard let model = try host.model(r.model) else {
            throw APIError(.notFound, "The model '\(r.model)' does not exist or you do not have access to it.", param: "model",
                           code: "model_not_found")
        }
        if let n = r.n, n != 1 { throw APIError.invalid("n=\(n) is not supported by tune serve; only n=1.", param: "n") }
        if let b = r.bestOf, b != 1 { throw APIError.invalid("best_of=\(b) is not supported by tune serve; only best_of=1.", param: "best_of") }
        if let s = r.suffix, !s.isEmpty { throw APIError.invalid("suffix is not supported by tune serve.", param: "suffix") }
        if let p = r.presencePenalty, p != 0 { throw APIError.invalid("presence_penalty is not supported by tune serve; only 0.", param: "presence_penalty") }
        if let p = r.frequencyPenalty, p != 0 { throw APIError.invalid("frequency_penalty is not supported by tune serve; only 0.", param: "frequency_penalty") }
        let temperature = r.temperature ?? 1, topP = r.topP ?? 1
        guard (0...2).contains(temperature) else { throw APIError.invalid("temperature must be in [0, 2], got \(temperature).", param: "temperature") }
        guard topP > 0, topP <= 1 else { throw APIError.invalid("top_p must be in (0, 1], got \(topP).", param: "top_p") }
        if let k = r.logprobs, !(0...5).contains(k) {
            throw APIError.invalid("logprobs must be an integer in [0, 5], got \(k).", param: "logprobs")
        }
        let maxTokens = r.maxTokens ?? defaultMaxTokens
        guard maxTokens >= 0 else { throw APIError.invalid("max_tokens must be >= 0, got \(maxTokens).", param: "max_tokens") }
        let stops = r.stop?.strings ?? []
        guard stops.count <= 4 else { throw APIError.invalid("stop: at most 4 sequences.", param: "stop") }
        if r.stream == true, r.logprobs != nil {
            throw APIError.invalid("logprobs with stream is not supported by tune serve; request the whole completion.", param: "logprobs")
        }

        guard r.prompt.count > 0 else { throw APIError.invalid("'prompt' must not be an empty list.", param: "prompt") }
        let tok = model.tokenizer, V = model.config.vocabSize, context = model.config.contextLength
        var prompts: [(ids: [Int32], text: String, addedBOS: Bool)] = []
        switch r.prompt {
        case .texts(let texts):
            for (i, t) in texts.enumerated() {
                let ids = tok.encodeAddingBOS(t)
                prompts.append((ids, t, ids.count == tok.encode(t).count + 1))
                guard !ids.isEmpty else { throw APIError.invalid("prompt[\(i)] is empty (no tokens).", param: "prompt") }
            }
        case .tokens(let lists):
            for (i, l) in lists.enumerated() {
                guard !l.isEmpty else { throw APIError.invalid("prompt[\(i)] is an empty token list.", param: "prompt") }
                if let bad = l.first(where: { $0 < 0 || $0 >= V }) {
                    throw APIError.invalid("prompt[\(i)]: token id \(bad) is outside the vocabulary [0, \(V)).", param: "prompt")
                }
                let ids = l.map { Int32($0) }
                prompts.append((ids, String(decoding: tok.decodeBytes(ids), as: UTF8.self), false))
            }
        }
        for (i, p) in prompts.enumerated() where p.ids.count + maxTokens > context {
            let which = prompts.count == 1 ? "the prompt" : "prompt[\(i)]"
            throw APIError.invalid("This model's maximum context length is \(context) tokens; \(which) (\(p.ids.count)) plus max_tokens (\(maxTokens)) exceed it.",
                                   param: maxTokens > 0 ? "max_tokens" : "prompt", code: "context_length_exceeded")
        }
        let seed = r.seed.map { UInt64(bitPattern: Int64($0)) } ?? UInt64.random(in: 0...UInt64.max)
        let options = GenerationOptions(maxTokens: maxTokens, temperature: Float(temperature), topP: Float(topP), seed: seed,
                                        logitBias: try LogitBias.parse(r.logitBias, vocabSize: V))
        return CompletionPlan(model: model, modelID: r.model, prompts: prompts, maxTokens: maxTokens, options: options,
                              stops: stops, logprobs: r.logprobs, echo: r.echo ?? false)
    }

    /// Runs prompt `i` of the plan. `onText` receives the completion's text as it is released (after stop
    /// strings are ruled out); return false to stop.
    static func run(_ plan: CompletionPlan, prompt i: Int, onText: (String) -> Bool = { _ in true }) throws -> CompletionResult {
        let model = plan.model, tok = model.tokenizer, p = plan.prompts[i]
        let k = plan.logprobs
        var lp: CompletionLogprobs? = k == nil ? nil : CompletionLogprobs()
        var offsets = OffsetCounter()

        // Prefill (scoring every prompt position when the echo carries log-probs).
        let session: LlamaSession, first: [Float]
        if plan.echo, let k {
            let scored = try model.scorePrompt(ids: p.ids, topK: k, extra: plan.maxTokens)
            for (j, id) in p.ids.enumerated() {
                lp!.tokens.append(tokenString(tok, id))
                // A BOS tune added is not part of the echoed text: it sits at offset 0 and spans nothing.
                lp!.textOffset.append(j == 0 && p.addedBOS ? 0 : offsets.add(tok.decodeBytes([id])))
                lp!.tokenLogprobs.append(j == 0 ? nil : scored.logprobs[j - 1])
                lp!.topLogprobs.append(j == 0 ? nil : topDict(tok, scored.top[j - 1]))
            }
            session = scored.session
            first = scored.lastLogits
        } else if plan.maxTokens > 0 {
            session = model.makeSession(contextLength: p.ids.count + plan.maxTokens + 1)
            first = try session.logits(for: p.ids)
        } else {
            return CompletionResult(text: plan.echo ? p.text : "", logprobs: lp, finishReason: "length",
                                    promptTokens: p.ids.count, completionTokens: 0)
        }
        // The echoed text's length in code points is where the completion starts.
        var completionOffsets = OffsetCounter(start: plan.echo ? p.text.unicodeScalars.count : 0)

        var matcher = StopMatcher(stops: plan.stops)
        var text = ""
        var generated: [(id: Int32, offset: Int, logprob: Double, top: [TokenLogprob])] = []
        var stopEntry: (id: Int32, offset: Int, logprob: Double, top: [TokenLogprob])?
        var g: Generation?
        if plan.maxTokens > 0 {
            g = try model.generate(continuing: session, logits: first, promptIDs: p.ids, options: plan.options, onToken: { id, logits in
                let off = completionOffsets.add(tok.decodeBytes([id]))
                if let k {
                    let (l, top) = LlamaModel.logprobs(logits, want: id, topK: k)
                    generated.append((id, off, l, top))
                }
            }, onStop: { id, logits in
                // The end-of-text token that ended the completion is reported with its log-prob, as
                // OpenAI and vLLM do: lm-eval's parse takes `token_logprobs[ctxlen:-1]` and needs one
                // generated entry at the end whatever the model chose. It adds no text.
                if let k {
                    let (l, top) = LlamaModel.logprobs(logits, want: id, topK: k)
                    stopEntry = (id, completionOffsets.add([]), l, top)
                }
            }, onText: { piece in
                let out = matcher.feed(piece)
                if !out.isEmpty {
                    text += out
                    if !onText(out) { return false }
                }
                return !matcher.stopped
            })
            let tail = matcher.finish()
            if !tail.isEmpty { text += tail; _ = onText(tail) }
        }
        // Tokens past a stop string are not part of the text, nor of its log-probs.
        let end = (plan.echo ? p.text.unicodeScalars.count : 0) + text.unicodeScalars.count
        if lp != nil {
            for t in generated + (stopEntry.map { [$0] } ?? []) where !matcher.stopped || t.offset < end {
                lp!.tokens.append(tokenString(tok, t.id))
                lp!.tokenLogprobs.append(t.logprob)
                lp!.topLogprobs.append(topDict(tok, t.top))
                lp!.textOffset.append(t.offset)
            }
        }
        let reason = matcher.stopped || g?.finishReason == .stop ? "stop" : "length"
        return CompletionResult(text: (plan.echo ? p.text : "") + text, logprobs: lp, finishReason: reason,
                                promptTokens: p.ids.count, completionTokens: g?.ids.count ?? 0)
    }

    /// A token as OpenAI spells it: its text, or `bytes:\xNN…` when its bytes are not UTF-8 on their own.
    static func tokenString(_ tok: BPETokenizer, _ id: Int32) -> String {
        let bytes = tok.decodeBytes([id])
        if let s = String(validating: bytes, as: UTF8.self) { return s }
        return "bytes:" + bytes.map { String(format: "\\x%02x", $0) }.joined()
    }

    /// `{token: logprob}` of the top alternatives; the most likely wins when two share a spelling.
    static func topDict(_ tok: BPETokenizer, _ top: [TokenLogprob]) -> [String: Double] {
        var d: [String: Double] = [:]
        for t in top where d[tokenString(tok, t.id)] == nil { d[tokenString(tok, t.id)] = t.logprob }
        return d
    }
}

/// Offsets in Unicode code points of a byte stream fed token by token: each token starts where the
/// complete characters before it end.
struct OffsetCounter {
    private var count: Int
    private var pending: [UInt8] = []
    init(start: Int = 0) { count = start }

    /// Returns the offset of a token with `bytes`, then adds them.
    mutating func add(_ bytes: [UInt8]) -> Int {
        let at = count
        pending += bytes
        let (done, rest) = UTF8Stream.split(pending)
        count += done.unicodeScalars.count
        pending = rest
        return at
    }
}
