// Routes+Chat — `POST /v1/chat/completions`, whole or streamed as server-sent events
// (`data: {chunk}` … `data: [DONE]`), for the base model and finished fine-tunes (routers: Routes+Router).

import Engine
import Foundation
import Hummingbird

extension ServeRoutes {
    func addChatRoutes(to router: Router<ServeContext>) {
        router.post("/v1/chat/completions") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: state.config.maxUploadBytes)
            let r = try decodeBody(ChatRequest.self, from: body)
            if let routed = state.host.router(r.model) { return try await routedChat(r, router: routed) }
            let plan = try ChatEngine.plan(r, host: state.host, defaultMaxTokens: state.config.defaultMaxTokens, fast: !state.config.exact)
            let id = ServeStore.newID("chatcmpl-"), created = ServeStore.now()
            // With continuous batching the model's batcher queues the request; without, it waits for a slot.
            let batcher = state.host.batcher(for: plan.model)
            if r.stream == true {
                return stream(plan, batcher: batcher, id: id, created: created, includeUsage: r.streamOptions?.includeUsage == true)
            }

            if batcher == nil { await state.generations.acquire() }
            var text = "", finish = "stop", usage: Usage?, failure: String?
            for await piece in ChatEngine.run(plan, batcher: batcher, cancelled: { false }) {
                switch piece {
                case .text(let t): text += t
                case .done(let f, let u): finish = f; usage = u
                case .failed(let m): failure = m
                }
            }
            if batcher == nil { await state.generations.release() }
            if let failure { throw APIError.server("Generation failed: \(failure)") }
            let u = usage ?? Usage(promptTokens: plan.promptIDs.count, completionTokens: 0, totalTokens: plan.promptIDs.count)
            state.metrics.addChat(prompt: u.promptTokens, completion: u.completionTokens)
            return try jsonResponse(ChatCompletion(id: id, created: created, model: plan.modelID,
                                                   choices: [.init(message: .init(content: text), finishReason: finish)], usage: u))
        }
    }

    /// The completion as server-sent events; a client that goes away stops the generation.
    private func stream(_ plan: ChatPlan, batcher: ContinuousBatcher?, id: String, created: Int, includeUsage: Bool) -> Response {
        let state = self.state
        return sseResponse(slot: batcher == nil) { writer, sse in
            func chunk(_ delta: ChatChunk.Delta, finish: String? = nil) -> ChatChunk {
                ChatChunk(id: id, created: created, model: plan.modelID, choices: [.init(delta: delta, finishReason: finish)])
            }
            try await writer.write(try sse.event(chunk(.init(role: "assistant", content: ""))))
            for await piece in ChatEngine.run(plan, batcher: batcher, cancelled: { sse.gone.isSet }) {
                switch piece {
                case .text(let t):
                    do { try await writer.write(try sse.event(chunk(.init(content: t)))) } catch {
                        sse.gone.set()
                    }
                case .done(let f, let u):
                    state.metrics.addChat(prompt: u.promptTokens, completion: u.completionTokens)
                    try await writer.write(try sse.event(chunk(.init(), finish: f)))
                    if includeUsage {
                        try await writer.write(try sse.event(ChatChunk(id: id, created: created, model: plan.modelID, choices: [], usage: u)))
                    }
                case .failed(let m):
                    try await writer.write(try sse.error(APIError.server("Generation failed: \(m)")))
                }
            }
        }
    }
}

/// A one-way flag shared between the response writer and the generation thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
