// Routes+Completions — `POST /v1/completions` (OpenAI's legacy text completions): one choice per
// prompt, `echo` and `logprobs` for log-likelihood evaluation (lm-evaluation-harness's
// `local-completions`), whole or streamed as server-sent events (text only) for the base model,
// finished fine-tunes and registered adapters (`model`, as chat completions).

import Foundation
import Hummingbird

extension ServeRoutes {
    func addCompletionRoutes(to router: Router<ServeContext>) {
        router.post("/v1/completions") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: state.config.maxUploadBytes)
            let r = try decodeBody(CompletionRequest.self, from: body)
            let plan = try CompletionEngine.plan(r, host: state.host)
            let id = ServeStore.newID("cmpl-"), created = ServeStore.now()
            if r.stream == true {
                return streamCompletion(plan, id: id, created: created, includeUsage: r.streamOptions?.includeUsage == true)
            }

            await state.generations.acquire()
            let results: [CompletionResult]
            do {
                results = try await onThread { try plan.prompts.indices.map { try CompletionEngine.run(plan, prompt: $0) } }
            } catch {
                await state.generations.release()
                throw APIError.server("Completion failed: \(error)")
            }
            await state.generations.release()
            let prompt = results.reduce(0) { $0 + $1.promptTokens }, completion = results.reduce(0) { $0 + $1.completionTokens }
            state.metrics.addCompletion(prompt: prompt, completion: completion)
            let choices = results.enumerated().map { i, c in
                Completion.Choice(text: c.text, index: i, logprobs: c.logprobs, finishReason: c.finishReason)
            }
            return try jsonResponse(Completion(id: id, created: created, model: plan.modelID, choices: choices,
                                               usage: Usage(promptTokens: prompt, completionTokens: completion, totalTokens: prompt + completion)))
        }
    }

    /// The completion as server-sent events, prompt after prompt (each choice's text, then its finish
    /// reason); a client that goes away stops the generation.
    private func streamCompletion(_ plan: CompletionPlan, id: String, created: Int, includeUsage: Bool) -> Response {
        let state = self.state
        return sseResponse { writer, sse in
            func chunk(_ i: Int, _ text: String, finish: String? = nil) -> CompletionChunk {
                CompletionChunk(id: id, created: created, model: plan.modelID,
                                choices: [.init(text: text, index: i, logprobs: nil, finishReason: finish)])
            }
            var prompt = 0, completion = 0
            for i in plan.prompts.indices where !sse.gone.isSet {
                // Pieces go from the generation thread to this writer through an AsyncStream.
                let (pieces, sink) = AsyncStream<CompletionPiece>.makeStream()
                let th = Thread {
                    do {
                        let r = try CompletionEngine.run(plan, prompt: i) { sink.yield(.text($0)); return !sse.gone.isSet }
                        sink.yield(.done(r))
                    } catch { sink.yield(.failed("\(error)")) }
                    sink.finish()
                }
                th.stackSize = 8 << 20
                th.start()
                if plan.echo { try await writer.write(try sse.event(chunk(i, plan.prompts[i].text))) }
                for await piece in pieces {
                    switch piece {
                    case .text(let t):
                        do { try await writer.write(try sse.event(chunk(i, t))) } catch { sse.gone.set() }
                    case .done(let r):
                        prompt += r.promptTokens
                        completion += r.completionTokens
                        try await writer.write(try sse.event(chunk(i, "", finish: r.finishReason)))
                    case .failed(let m):
                        try await writer.write(try sse.error(APIError.server("Completion failed: \(m)")))
                    }
                }
            }
            state.metrics.addCompletion(prompt: prompt, completion: completion)
            if includeUsage {
                try await writer.write(try sse.event(CompletionChunk(id: id, created: created, model: plan.modelID, choices: [],
                                                                     usage: Usage(promptTokens: prompt, completionTokens: completion,
                                                                                  totalTokens: prompt + completion))))
            }
        }
    }
}

enum CompletionPiece: Sendable {
    case text(String)
    case done(CompletionResult)
    case failed(String)
}

/// Runs CPU-bound `body` on a thread of its own (never on the cooperative pool the server's handlers
/// need) and returns its result.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { k in
        let t = Thread { k.resume(with: Result { try body() }) }
        t.stackSize = 8 << 20
        t.start()
    }
}
