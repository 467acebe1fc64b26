// ServeRoutes — the route table: files, fine-tuning jobs, models, chat and legacy completions, metrics.
// Each group lives in its own `Routes+<Group>.swift`; the handlers only parse, call the store,
// worker or model host, and render OpenAI's shapes.

import Foundation
import Hummingbird

/// What the routes share: configuration, durable store, trainer, models and metrics.
final class ServeState: Sendable {
    let config: ServeConfig
    let store: ServeStore
    let host: ModelHost
    let worker: JobWorker
    let metrics: ServeMetrics
    let generations: AsyncSemaphore

    init(config: ServeConfig, store: ServeStore, host: ModelHost, worker: JobWorker, metrics: ServeMetrics) {
        self.config = config
        self.store = store
        self.host = host
        self.worker = worker
        self.metrics = metrics
        generations = AsyncSemaphore(config.parallelGenerations)
    }
}

struct ServeRoutes {
    let state: ServeState

    func register(on router: Router<ServeContext>) {
        addFileRoutes(to: router)
        addJobRoutes(to: router)
        addModelRoutes(to: router)
        addChatRoutes(to: router)
        addCompletionRoutes(to: router)
        router.get("/metrics") { _, _ in
            let text = state.metrics.render(jobs: try state.store.countsByStatus(), batch: state.host.batchCounters)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
    }

    /// `limit` query parameter in 1...100 (default 20).
    static func limit(_ request: Request) throws -> Int {
        guard let s = request.uri.queryParameters["limit"] else { return 20 }
        guard let n = Int(s), (1...100).contains(n) else {
            throw APIError.invalid("Invalid 'limit': expected an integer in 1...100, got '\(s)'.", param: "limit")
        }
        return n
    }
}

/// A counting semaphore for async code: at most `n` holders; the rest wait in order.
actor AsyncSemaphore {
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []
    init(_ n: Int) { free = n }

    func acquire() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { free += 1 } else { waiters.removeFirst().resume() }
    }
}
