// ServerSentEvents — the one shape of every streamed reply (chat and legacy completions): `data: {json}`
// events written while a generation slot is held, then `data: [DONE]`; a client that goes away sets
// `gone`, which the generation polls to stop.

import Foundation
import Hummingbird

/// What a streaming route writes with: its events as bytes (one encoder for the whole stream, used by
/// the writing task only), and the flag that says the client left (also read by the generation thread).
final class SSEEvents: @unchecked Sendable {
    let gone = Flag()
    private let encoder: JSONEncoder = {
        let enc = JSONEncoder()
        enc.outputFormatting = .withoutEscapingSlashes
        return enc
    }()

    func event(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(string: "data: " + String(decoding: try encoder.encode(value), as: UTF8.self) + "\n\n")
    }

    /// A generation that failed mid-stream, as OpenAI's error object in an event.
    func error(_ e: APIError) throws -> ByteBuffer {
        let data = try JSONSerialization.data(withJSONObject: e.body)
        return ByteBuffer(string: "data: " + String(decoding: data, as: UTF8.self) + "\n\n")
    }
}

extension ServeRoutes {
    /// A `text/event-stream` response: `produce` writes its events while holding one of the server's
    /// generation slots (unless `slot` is false: a continuous batcher queues instead); then `data: [DONE]`.
    /// Whatever ends it, the slot is released.
    func sseResponse(slot: Bool = true, _ produce: @escaping @Sendable (inout any ResponseBodyWriter, SSEEvents) async throws -> Void) -> Response {
        let state = self.state
        let body = ResponseBody { writer in
            let sse = SSEEvents()
            if slot { await state.generations.acquire() }
            do {
                try await produce(&writer, sse)
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                if slot { await state.generations.release() }
                try await writer.finish(nil)
            } catch {
                sse.gone.set()
                if slot { await state.generations.release() }
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}
