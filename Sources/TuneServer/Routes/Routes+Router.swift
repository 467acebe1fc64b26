// Routes+Router — a chat completion whose `model` names a `--router`: RouterRuntime answers with the
// routed model when its confidence reaches τ and escalates to the reference otherwise (a failing
// reference → the local answer, flagged). The reply is OpenAI's chat completion plus `tune_route`
// (router, route, confidence, τ, and the reason of a fallback) and the `x-tune-route` header; streamed,
// the whole answer comes as one delta and `tune_route` rides on the final chunk. Routed answers are
// greedy and at most the eval's max_new_tokens long: the decisions are the ones the eval measured.

import Engine
import Foundation
import HTTPTypes
import Hummingbird
import TuneKit

extension ServeRoutes {
    func routedChat(_ r: ChatRequest, router: RouterRuntime) async throws -> Response {
        let messages = try ChatEngine.messages(r)
        let id = ServeStore.newID("chatcmpl-"), created = ServeStore.now()
        let state = self.state
        @Sendable func info(_ a: RouterRuntime.Answer) -> RouteInfo {
            RouteInfo(router: router.artifact.ref, route: a.route.rawValue, confidence: a.confidence, tau: router.spec.tau,
                      policy: router.spec.policy.rawValue, local: router.spec.localRef, reference: router.spec.referenceModel, reason: a.reason)
        }
        @Sendable func usage(_ a: RouterRuntime.Answer) -> Usage {
            Usage(promptTokens: a.promptTokens, completionTokens: a.completionTokens, totalTokens: a.promptTokens + a.completionTokens)
        }
        if r.stream == true {
            let includeUsage = r.streamOptions?.includeUsage == true
            return sseResponse { writer, sse in
                let a: RouterRuntime.Answer
                do { a = try await Self.route(router, messages).get() } catch {
                    try await writer.write(try sse.error(Self.apiError(error)))
                    return
                }
                state.metrics.addRouted(router: router.artifact.name, route: a.route.rawValue)
                func chunk(_ delta: ChatChunk.Delta, finish: String? = nil) -> ChatChunk {
                    ChatChunk(id: id, created: created, model: r.model, choices: [.init(delta: delta, finishReason: finish)])
                }
                try await writer.write(try sse.event(chunk(.init(role: "assistant", content: ""))))
                try await writer.write(try sse.event(chunk(.init(content: a.text))))
                var last = chunk(.init(), finish: a.stopped ? "stop" : "length")
                last.tuneRoute = info(a)
                try await writer.write(try sse.event(last))
                if includeUsage { try await writer.write(try sse.event(ChatChunk(id: id, created: created, model: r.model, choices: [], usage: usage(a)))) }
            }
        }
        await state.generations.acquire()
        let result = await Self.route(router, messages)
        await state.generations.release()
        let a: RouterRuntime.Answer
        do { a = try result.get() } catch { throw Self.apiError(error) }
        state.metrics.addRouted(router: router.artifact.name, route: a.route.rawValue)
        var response = try jsonResponse(ChatCompletion(id: id, created: created, model: r.model,
                                                       choices: [.init(message: .init(content: a.text), finishReason: a.stopped ? "stop" : "length")],
                                                       usage: usage(a), tuneRoute: info(a)))
        response.headers[Self.routeHeader] = a.route.rawValue
        return response
    }

    static let routeHeader = HTTPField.Name("x-tune-route")!

    /// Runs the (blocking) routing on a thread of its own: the routed model's forward passes and the reference call.
    static func route(_ router: RouterRuntime, _ messages: [ChatMessage]) async -> Result<RouterRuntime.Answer, any Error> {
        await withCheckedContinuation { continuation in
            let t = Thread { continuation.resume(returning: Result { try router.answer(messages) }) }
            t.stackSize = 8 << 20
            t.start()
        }
    }

    /// A request the routed model cannot take is the client's error (400); anything else is the server's.
    static func apiError(_ error: any Error) -> APIError {
        if let e = error as? APIError { return e }
        if let e = error as? TuneError, e.kind == .invalidArgument { return APIError.invalid(e.message, param: "messages") }
        return APIError.server("Routing failed: \((error as? TuneError)?.message ?? "\(error)")")
    }
}
