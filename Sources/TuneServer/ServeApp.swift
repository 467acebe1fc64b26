// ServeApp — `tune serve` assembled: the state directory's store (recovering jobs a stopped server
// left running), the model host, the trainer service and the router with its middleware, as one
// Hummingbird application whose service group stops it gracefully on SIGTERM/SIGINT.
//
//     var config = ServeConfig(modelPath: "models/SmolLM2-135M-Instruct.Q4_1.gguf", stateDirectory: ".tune/serve")
//     config.apiKeys = try ServeConfig.loadKeys(file: "keys.txt", environment: nil)
//     let app = try ServeApp.make(config: config) { port in print("listening on \(port)") }
//     try await app.runService()        // SIGTERM: stop accepting, finish requests, checkpoint + requeue training

import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import TuneKit

public enum ServeApp {
    /// Builds the application (loads the model, opens and recovers the store); `onListening` gets the bound port.
    public static func make(config: ServeConfig, logLevel: Logger.Level = .warning,
                            onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws -> some ApplicationProtocol {
        try config.validate()
        let store = try ServeStore(directory: config.stateDirectory)
        let host = try ModelHost(config: config, store: store)
        let metrics = ServeMetrics()
        let worker = JobWorker(store: store, host: host, config: config, metrics: metrics)
        try worker.recover()
        let state = ServeState(config: config, store: store, host: host, worker: worker, metrics: metrics)

        let router = Router(context: ServeContext.self)
        router.add(middleware: AccessLogMiddleware(metrics: metrics,
                                                   log: config.accessLogEnabled ? try AccessLog(path: config.accessLogPath) : nil))
        router.add(middleware: AuthMiddleware(keys: config.apiKeys))
        router.add(middleware: SizeLimitMiddleware(maxBytes: config.maxUploadBytes))
        router.add(middleware: RateLimitMiddleware(buckets: TokenBuckets(rate: config.rateLimit, burst: config.rateBurst), metrics: metrics))
        ServeRoutes(state: state).register(on: router)

        var logger = Logger(label: "tune-serve")
        logger.logLevel = logLevel
        return Application(
            router: router,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "tune-serve"),
            services: [worker, BatcherShutdown(host: host)],
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? config.port) },
            logger: logger)
    }
}

/// Ends the chat batchers' decoding threads when the server shuts down (gracefully or cancelled).
struct BatcherShutdown: Service {
    let host: ModelHost
    func run() async throws {
        try? await gracefulShutdown()   // returns on shutdown, or throws when cancelled
        host.shutdownBatchers()
    }
}

/// A server started in-process (benchmarks, tests): its port, and `stop()` for a graceful shutdown.
public final class RunningServer: Sendable {
    public let port: Int
    private let task: Task<Void, any Error>

    init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    /// Starts the server for `config` (use port 0 for any free port) and returns once it listens.
    public static func start(config: ServeConfig) async throws -> RunningServer {
        let (ports, portIn) = AsyncStream<Int>.makeStream()
        // .critical: stop() cancels the service group, which Hummingbird logs as an error.
        let app = try ServeApp.make(config: config, logLevel: .critical) { port in
            portIn.yield(port)
            portIn.finish()
        }
        let task = Task { try await app.run() }
        for await port in ports { return RunningServer(port: port, task: task) }
        task.cancel()
        _ = try await task.value
        throw TuneError(.internal, "tune serve: the server stopped before it was listening")
    }

    /// Cancels the service group (the server stops and the trainer checkpoints) and waits for it.
    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}
