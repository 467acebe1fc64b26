// Routes+Chat — `POST /v1/chat/completions`, whole or streamed as server-sent events
// (`data: {chunk}` … `data: [DONE]`), for the base model and finished fine-tunes.

import Foundation
import Hummingbird

extension ServeRoutes {
    func addChatRoutes(to router: Router<ServeContext>) {
        router.post("/v1/chat/completions") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: state.config.maxUploadBytes)
            let r = try decodeBody(ChatRequest.self, from: body)
            let plan = try ChatEngine.plan(r, host: state.host, defaultMaxTokens: state.config.defaultMaxTokens)
            let id = ServeStore.newID("chatcmpl-"), created = ServeStore.now()
            if r.stream == true { return stream(plan, id: id, created: created, includeUsage: r.streamOptions?.includeUsage == true) }

            await state.generations.acquire()
            var text = "", finish = "stop", usage: Usage?
            for await piece in ChatEngine.run(plan, cancelled: { false }) {
                switch piece {
                case .text(let t): text += t
                case .done(let f, let u): finish = f; usage = u
                case .failed(let m):
                    await state.generations.release()
                    throw APIError.server("Generation failed: \(m)")
                }
            }
            await state.generations.release()
            let u = usage ?? Usage(promptTokens: plan.promptIDs.count, completionTokens: 0, totalTokens: plan.promptIDs.count)
            state.metrics.addChat(prompt: u.promptTokens, completion: u.completionTokens)
            return try jsonResponse(ChatCompletion(id: id, created: created, model: plan.modelID,
                                                   choices: [.init(message: .init(content: text), finishReason: finish)], usage: u))
        }
    }

    /// The completion as server-sent events; a client that goes away stops the generation.
    private func stream(_ plan: ChatPlan, id: String, created: Int, includeUsage: Bool) -> Response {
        let state = self.state
        let body = ResponseBody { writer in
            let gone = Flag()
            let enc = JSONEncoder()
            enc.outputFormatting = .withoutEscapingSlashes
            func event(_ chunk: ChatChunk) throws -> ByteBuffer {
                ByteBuffer(string: "data: " + String(decoding: try enc.encode(chunk), as: UTF8.self) + "\n\n")
            }
            func chunk(_ delta: ChatChunk.Delta, finish: String? = nil) -> ChatChunk {
                ChatChunk(id: id, created: created, model: plan.modelID, choices: [.init(delta: delta, finishReason: finish)])
            }
            await state.generations.acquire()
            do {
                try await writer.write(try event(chunk(.init(role: "assistant", content: ""))))
                for await piece in ChatEngine.run(plan, cancelled: { gone.isSet }) {
                    switch piece {
                    case .text(let t):
                        do { try await writer.write(try event(chunk(.init(content: t)))) } catch {
                            gone.set()
                        }
                    case .done(let f, let u):
                        state.metrics.addChat(prompt: u.promptTokens, completion: u.completionTokens)
                        try await writer.write(try event(chunk(.init(), finish: f)))
                        if includeUsage {
                            try await writer.write(try event(ChatChunk(id: id, created: created, model: plan.modelID, choices: [], usage: u)))
                        }
                    case .failed(let m):
                        let err = APIError.server("Generation failed: \(m)")
                        let data = try JSONSerialization.data(withJSONObject: err.body)
                        try await writer.write(ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n"))
                    }
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                await state.generations.release()
                try await writer.finish(nil)
            } catch {
                gone.set()
                await state.generations.release()
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}

/// A one-way flag shared between the response writer and the generation thread.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
