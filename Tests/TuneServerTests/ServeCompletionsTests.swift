// ServeCompletionsTests — `POST /v1/completions` driven with lm-evaluation-harness's `local-completions`
// log-likelihood request (token-id prompts, `echo: true`, `logprobs: 1`, `max_tokens` 1 as lm-eval sends
// it, and 0), read back the way lm-eval's `parse_logprobs` reads it, against the engine's exact
// log-probs (`score(ids:)`, what `tune score` prints); text prompts, generation, stop strings,
// streaming, a registered adapter named in `model`, and OpenAI-shaped 400s.
import Engine
import Foundation
import Hummingbird
import Testing
@testable import TuneServer
import TuneKit

private let smolLMPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
private let smolLMAvailable = FileManager.default.fileExists(atPath: smolLMPath)

/// The reply as lm-eval reads it. Decoded with JSONDecoder: Foundation's JSONSerialization on Linux can
/// miss a Double's last bit, JSONDecoder (like Python's json) reads the printed value exactly.
private struct Wire: Decodable {
    var choices: [Choice]
    struct Choice: Decodable {
        var index: Int
        var text: String
        var logprobs: Logprobs?
        var finish_reason: String?
    }
    struct Logprobs: Decodable {
        var tokens: [String]
        var token_logprobs: [Double?]
        var top_logprobs: [[String: Double]?]
        var text_offset: [Int]
    }
    /// Choices in `index` order, as lm-eval sorts them.
    var sorted: [Choice] { choices.sorted { $0.index < $1.index } }
}

/// lm-eval's `parse_logprobs` on one choice: (Σ token_logprobs[ctxlen:-1], every one the top alternative).
private func lmEvalParse(_ choice: Wire.Choice, ctxlen: Int) -> (Double, Bool)? {
    guard let lp = choice.logprobs, lp.token_logprobs.count == lp.top_logprobs.count, ctxlen < lp.token_logprobs.count else { return nil }
    let toks = lp.token_logprobs[ctxlen..<(lp.token_logprobs.count - 1)].compactMap { $0 }
    let tops = lp.top_logprobs[ctxlen..<(lp.top_logprobs.count - 1)].compactMap { $0 }
    guard toks.count == lp.token_logprobs.count - 1 - ctxlen, tops.count == toks.count else { return nil }
    var greedy = true
    for (t, d) in zip(toks, tops) where t != d.values.max() { greedy = false; break }
    return (toks.reduce(0, +), greedy)
}

/// POSTs `body` to /v1/completions; the reply as a JSON object and, when it has choices, as `Wire`.
private func post(_ client: some TestClientProtocol, _ f: ServeFixture, _ body: [String: Any],
                  status: HTTPResponse.Status = .ok) async throws -> ([String: Any], Wire?) {
    var h = f.auth
    h[.contentType] = "application/json"
    return try await client.execute(uri: "/v1/completions", method: .post, headers: h, body: try jsonBody(body)) { r in
        #expect(r.status == status, "\(String(buffer: r.body))")
        return (try json(r), try? JSONDecoder().decode(Wire.self, from: Data(r.body.readableBytesView)))
    }
}

private func choices(_ o: [String: Any]) -> [[String: Any]] {
    ((o["choices"] as? [[String: Any]]) ?? []).sorted { ($0["index"] as? Int ?? 0) < ($1["index"] as? Int ?? 0) }
}

/// The log-likelihood requests of lm-eval against `model` served by `f`: each (context, continuation) as
/// one token-id prompt; checks every echoed log-prob against `score(ids:)` (equal, bit for bit) and
/// lm-eval's parse against the engine's teacher-forced scores.
private func checkLoglikelihood(_ client: some TestClientProtocol, _ f: ServeFixture, model: String, engine m: LlamaModel,
                                requests: [(ctx: [Int32], cont: [Int32])]) async throws {
    for maxTokens in [1, 0] {
        let body: [String: Any] = ["model": model, "prompt": requests.map { ($0.ctx + $0.cont).map(Int.init) },
                                   "temperature": 0, "max_tokens": maxTokens, "logprobs": 1, "seed": 1234, "echo": true]
        let (o, wire) = try await post(client, f, body)
        #expect(o["object"] as? String == "text_completion")
        #expect(o["model"] as? String == model)
        let cs = wire?.sorted ?? []
        #expect(cs.count == requests.count)
        for (i, (ctx, cont)) in requests.enumerated() {
            let ids = ctx + cont
            guard i < cs.count, let lp = cs[i].logprobs else { Issue.record("choice \(i): no logprobs object: \(o)"); continue }
            let n = lp.token_logprobs.count
            #expect(n == ids.count + maxTokens && lp.tokens.count == n && lp.text_offset.count == n && lp.top_logprobs.count == n)
            #expect(lp.token_logprobs.first == .some(nil), "the first token has nothing to condition on")
            #expect(lp.top_logprobs.first == .some(nil))
            #expect(lp.text_offset.first == 0 && zip(lp.text_offset, lp.text_offset.dropFirst()).allSatisfy { $0 <= $1 })
            #expect(Array(lp.tokens.prefix(ids.count)) == ids.map { CompletionEngine.tokenString(m.tokenizer, $0) })
            let exact = try m.score(ids: ids).tokenLogprobs
            let served = lp.token_logprobs[1..<ids.count].compactMap { $0 }
            #expect(served == exact, "prompt \(i): the served log-probs are score(ids:)'s")
            for t in lp.top_logprobs.dropFirst() { #expect(t?.count == 1, "logprobs: 1 → one alternative") }
            if maxTokens == 1 {
                // lm-eval's reading: the continuation's summed log-prob and whether greedy decoding would produce it.
                let got = lmEvalParse(cs[i], ctxlen: ctx.count)
                #expect(got != nil)
                if let got {
                    #expect(got.0 == exact[(ctx.count - 1)...].reduce(0, +), "prompt \(i)")
                    // scoreTargets (the evaluator's path) runs the LM head over other row groups: equal within 1e-4.
                    let want = try m.scoreTargets([(ids, Array(ctx.count..<ids.count))])[0]
                    #expect(abs(got.0 - want.logprobs.reduce(0, +)) < 1e-4, "prompt \(i): \(got.0) vs \(want.logprobs.reduce(0, +))")
                    #expect(got.1 == want.greedyHits.allSatisfy { $0 }, "prompt \(i): is_greedy")
                }
                // The one generated token is greedy generate's first.
                let g = try m.generate(promptIDs: ids, options: GenerationOptions(maxTokens: 1, stopAtEOS: false))
                if let gid = g.ids.first { #expect(lp.tokens.last == CompletionEngine.tokenString(m.tokenizer, gid)) }
            } else {
                #expect(cs[i].finish_reason == "length")
                #expect(cs[i].text == m.tokenizer.decode(ids), "echo returns the prompt")
            }
        }
        let usage = o["usage"] as? [String: Any]
        #expect(usage?["prompt_tokens"] as? Int == requests.map { $0.ctx.count + $0.cont.count }.reduce(0, +))
    }
}

@Suite struct ServeCompletionsTests {
    @Test func lmEvalLoglikelihoodRequestsGetTheEnginesExactLogprobs() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        let m = try LlamaModel.load(path: f.config.modelPath)
        let V = Int32(m.config.vocabSize)
        let reqs: [(ctx: [Int32], cont: [Int32])] = [([1, 5, 9, 12], [6, 7]), ([3], [4]), ([7, 8, 2, 30, 31, 40, 11, 50, 60], [20, 21, 22])]
            .map { ($0.0.map { $0 % V }, $0.1.map { $0 % V }) }
        try await f.live { client in
            try await checkLoglikelihood(client, f, model: "tiny", engine: m, requests: reqs)
        }
    }

    @Test(.enabled(if: smolLMAvailable, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)"))
    func smolLM2LogprobsEqualTuneScore() async throws {
        let f = try ServeFixture { c, dir in
            let keys = c.apiKeys
            c = ServeConfig(modelPath: smolLMPath, stateDirectory: dir.appendingPathComponent("state").path)
            c.apiKeys = keys
            c.rateLimit = 0
        }
        defer { f.cleanUp() }
        let m = try LlamaModel.load(path: smolLMPath)
        let tok = m.tokenizer
        let reqs: [(ctx: [Int32], cont: [Int32])] = [("Question: What is the capital of France?\nAnswer:", " Paris"),
                                                     ("The bill of lading is issued by the", " carrier to the shipper.")]
            .map { (tok.encodeAddingBOS($0.0), tok.encode($0.1)) }
        try await f.live { client in
            try await checkLoglikelihood(client, f, model: f.config.modelID, engine: m, requests: reqs)
            // A text prompt is tokenized as `tune score --text` tokenizes it: the same numbers.
            let text = "Shipping documents: a packing list and a commercial invoice."
            let (_, wire) = try await post(client, f, ["model": f.config.modelID, "prompt": text, "echo": true, "logprobs": 3, "max_tokens": 0])
            let c = wire?.sorted.first
            #expect(c?.text == text)
            let served = (c?.logprobs?.token_logprobs ?? []).dropFirst().compactMap { $0 }
            let exact = try m.score(ids: tok.encodeAddingBOS(text)).tokenLogprobs
            #expect(served == exact && !exact.isEmpty)
            #expect((c?.logprobs?.top_logprobs ?? []).dropFirst().allSatisfy { $0?.count == 3 })
            #expect((c?.logprobs?.text_offset.last ?? .max) < text.unicodeScalars.count)
        }
    }

    @Test func textPromptsGenerateEchoStopAndStream() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        let m = try LlamaModel.load(path: f.config.modelPath)
        let tok = m.tokenizer
        let prompt = "hello world"
        let ids = tok.encodeAddingBOS(prompt)
        let g = try m.generate(promptIDs: ids, options: GenerationOptions(maxTokens: 6))
        try await f.live { client in
            // Plain greedy completion: generate's text; logprobs of the generated tokens only.
            var o = try await post(client, f, ["model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 2]).0
            var c = choices(o).first ?? [:]
            #expect(c["text"] as? String == g.text)
            #expect(c["finish_reason"] as? String == (g.finishReason == .stop ? "stop" : "length"))
            let lp = c["logprobs"] as? [String: Any]
            #expect((lp?["token_logprobs"] as? [Any])?.count == g.ids.count)
            #expect((lp?["token_logprobs"] as? [Any] ?? []).allSatisfy { $0 is Double })
            #expect((lp?["tokens"] as? [String]) == g.ids.map { CompletionEngine.tokenString(tok, $0) })
            #expect((o["usage"] as? [String: Any])?["completion_tokens"] as? Int == g.ids.count)
            // Echo without logprobs: prompt + completion, logprobs null.
            o = try await post(client, f, ["model": "tiny", "prompt": [prompt, "x"], "max_tokens": 6, "temperature": 0, "echo": true]).0
            c = choices(o).first ?? [:]
            #expect(choices(o).count == 2)
            #expect(c["text"] as? String == prompt + g.text)
            #expect(c["logprobs"] is NSNull)
            // A stop string cuts the text before it.
            if g.text.count >= 3 {
                let cut = String(g.text.dropFirst(1).prefix(2))
                o = try await post(client, f, ["model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0, "stop": [cut]]).0
                c = choices(o).first ?? [:]
                let text = c["text"] as? String ?? "?"
                #expect(g.text.hasPrefix(text) && !text.contains(cut), "\(text) vs \(g.text), stop \(cut)")
                #expect(c["finish_reason"] as? String == "stop")
            }
            // Streamed: the same text as server-sent events.
            var h = f.auth
            h[.contentType] = "application/json"
            let body: [String: Any] = ["model": "tiny", "prompt": prompt, "max_tokens": 6, "temperature": 0, "stream": true,
                                       "stream_options": ["include_usage": true]]
            try await client.execute(uri: "/v1/completions", method: .post, headers: h, body: try jsonBody(body)) { r in
                #expect(r.headers[.contentType] == "text/event-stream")
                let events = String(buffer: r.body).components(separatedBy: "\n\n").filter { !$0.isEmpty }
                #expect(events.last == "data: [DONE]")
                var text = "", finish: String?, usage: [String: Any]?
                for e in events.dropLast() {
                    let o = try JSONSerialization.jsonObject(with: Data(e.dropFirst(6).utf8)) as? [String: Any]
                    #expect(o?["object"] as? String == "text_completion")
                    if let u = o?["usage"] as? [String: Any] { usage = u }
                    for c in o?["choices"] as? [[String: Any]] ?? [] {
                        text += c["text"] as? String ?? ""
                        if let fr = c["finish_reason"] as? String { finish = fr }
                    }
                }
                #expect(text == g.text)
                #expect(finish != nil)
                #expect(usage?["completion_tokens"] as? Int == g.ids.count)
            }
        }
    }

    @Test func registeredAdapterNamedInModelIsHonoured() async throws {
        let f = try ServeFixture { c, dir in
            c.registryPath = dir.appendingPathComponent("registry.sqlite").path
            c.blobRoot = dir.appendingPathComponent("blobs").path
        }
        defer { f.cleanUp() }
        // An adapter that changes the model: PEFT init (A random) and a nonzero B.
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, targets: [.q, .v, .down]), model: LlamaConfig.tiny, seed: 5)
        for l in 0..<LlamaConfig.tiny.numLayers {
            for (ti, t) in [LoRATarget.q, .v, .down].enumerated() {
                guard let s = lora.slot(layer: l, target: t) else { continue }
                for k in 0..<(s.outFeatures * lora.rank) { lora.b(s)[k] = Float(0.5 * sin(Double(k * 7 + l * 13 + ti * 29))) }
            }
        }
        let dir = f.dir.appendingPathComponent("adapter-helper")
        try lora.save(directory: dir.path, baseModel: "tiny.gguf")
        let registry = try Registry.open(path: f.config.registryPath!, blobRoot: f.config.blobRoot)
        _ = try registry.register(NewArtifact(kind: .adapter, name: "helper", source: dir, metadata: ["base_model": .string("tiny.gguf")]))
        let base = try LlamaModel.load(path: f.config.modelPath)
        let tuned = try base.loadingAdapter(directory: dir.path)
        let ids: [Int32] = [2, 9, 14, 3, 27, 8]
        let want = try tuned.score(ids: ids).tokenLogprobs, baseLP = try base.score(ids: ids).tokenLogprobs
        #expect(zip(want, baseLP).contains { abs($0 - $1) > 1e-3 }, "the adapter changes the log-probs")
        try await f.live { client in
            for (model, engine) in [("helper", want), ("tiny", baseLP)] {
                let (_, wire) = try await post(client, f, ["model": model, "prompt": ids.map(Int.init), "echo": true, "logprobs": 1, "max_tokens": 0])
                let served = (wire?.sorted.first?.logprobs?.token_logprobs ?? []).dropFirst().compactMap { $0 }
                #expect(served == engine, "\(model)")
            }
        }
    }

    @Test func badRequestsGetOpenAIErrors() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        try await f.live { client in
            func expectError(_ body: [String: Any], status: HTTPResponse.Status = .badRequest, param: String?, code: String? = nil) async throws {
                let o = try await post(client, f, body, status: status).0
                let e = o["error"] as? [String: Any]
                #expect(e?["message"] is String && e?["type"] is String)
                if let param { #expect(e?["param"] as? String == param, "\(o)") }
                if let code { #expect(e?["code"] as? String == code, "\(o)") }
            }
            try await expectError(["model": "tiny"], param: "prompt", code: "missing_required_parameter")
            try await expectError(["model": "nope", "prompt": "x"], status: .notFound, param: "model", code: "model_not_found")
            try await expectError(["model": "tiny", "prompt": "x", "logprobs": 6], param: "logprobs")
            try await expectError(["model": "tiny", "prompt": "x", "max_tokens": -1], param: "max_tokens")
            try await expectError(["model": "tiny", "prompt": "x", "max_tokens": 1_000_000], param: "max_tokens", code: "context_length_exceeded")
            try await expectError(["model": "tiny", "prompt": [1, 2, 999_999]], param: "prompt")
            try await expectError(["model": "tiny", "prompt": [[1, 2], [Int]()]], param: "prompt")
            try await expectError(["model": "tiny", "prompt": [Int]()], param: "prompt")
            try await expectError(["model": "tiny", "prompt": ["a", [1]] as [Any]], param: "prompt")
            try await expectError(["model": "tiny", "prompt": "x", "n": 2], param: "n")
            try await expectError(["model": "tiny", "prompt": "x", "temperature": 5], param: "temperature")
            try await expectError(["model": "tiny", "prompt": "x", "stream": true, "logprobs": 1], param: "logprobs")
            try await expectError(["model": "tiny", "prompt": "x", "logit_bias": ["abc": 1]], param: "logit_bias")
            try await expectError(["model": "tiny", "prompt": "x", "logit_bias": ["999999": 1]], param: "logit_bias")
            try await expectError(["model": "tiny", "prompt": "x", "logit_bias": ["3": 101]], param: "logit_bias")
        }
    }

    /// lm-eval's request when the model's one generated token is end-of-text (forced here with
    /// `logit_bias`): the token is still reported, with the model's own (unbiased) log-prob, so
    /// `[ctxlen:-1]` is the continuation; no text is added. A −100 bias bans the greedy token.
    @Test func endOfTextIsReportedAndLogitBiasSteersSampling() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        let m = try LlamaModel.load(path: f.config.modelPath)
        let tok = m.tokenizer
        let eos = try #require(tok.eosID)
        let ctx: [Int32] = [3, 5, 7, 9], cont: [Int32] = [4, 6]
        let ids = ctx + cont
        let greedy = try #require(try m.generate(promptIDs: ids, options: GenerationOptions(maxTokens: 1, stopAtEOS: false)).ids.first)
        try #require(greedy != eos, "the tiny model's greedy token is EOS already; pick another context")
        try await f.live { client in
            let body: [String: Any] = ["model": "tiny", "prompt": [ids.map(Int.init)], "echo": true, "logprobs": 1, "max_tokens": 1,
                                       "temperature": 0, "logit_bias": [String(eos): 100]]
            let (o, wire) = try await post(client, f, body)
            let c = try #require(wire?.sorted.first)
            let lp = try #require(c.logprobs)
            #expect(c.finish_reason == "stop")
            #expect(c.text == tok.decode(ids), "end-of-text adds no text")
            #expect(lp.tokens.count == ids.count + 1 && lp.token_logprobs.count == ids.count + 1 && lp.text_offset.count == ids.count + 1)
            #expect(lp.tokens.last == CompletionEngine.tokenString(tok, eos))
            #expect(lp.text_offset.last == c.text.unicodeScalars.count)
            let unbiased = try m.score(ids: ids + [eos]).tokenLogprobs.last
            #expect(lp.token_logprobs.last == .some(unbiased), "the model's own log-prob of EOS, not the biased one")
            let parsed = lmEvalParse(c, ctxlen: ctx.count)
            #expect(parsed?.0 == (try m.score(ids: ids).tokenLogprobs.suffix(cont.count).reduce(0, +)))
            #expect((o["usage"] as? [String: Any])?["completion_tokens"] as? Int == 0)

            // −100 on the greedy token: the first generated token is another one.
            let banned = try await post(client, f, ["model": "tiny", "prompt": [ids.map(Int.init)], "max_tokens": 1, "temperature": 0,
                                                     "logprobs": 1, "logit_bias": [String(greedy): -100, String(eos): -100]]).1
            let first = banned?.sorted.first?.logprobs?.tokens.first
            #expect(first != nil && first != CompletionEngine.tokenString(tok, greedy))

            // Chat honours logit_bias too: forcing EOS ends the reply at once.
            var h = f.auth
            h[.contentType] = "application/json"
            let chat: [String: Any] = ["model": "tiny", "messages": [["role": "user", "content": "hi"]], "max_tokens": 4, "temperature": 0,
                                       "logit_bias": [String(eos): 100]]
            try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(chat)) { r in
                #expect(r.status == .ok, "\(String(buffer: r.body))")
                let o = try json(r)
                let choice = (o["choices"] as? [[String: Any]])?.first
                #expect(choice?["finish_reason"] as? String == "stop")
                #expect((choice?["message"] as? [String: Any])?["content"] as? String == "")
            }
        }
    }
}
