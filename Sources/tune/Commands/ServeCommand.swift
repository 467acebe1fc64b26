// tune serve — the OpenAI fine-tuning + chat API over HTTP, backed by the local trainer and engine.
import ArgumentParser
import Foundation
import TuneKit
import TuneServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve OpenAI's files, fine-tuning, models and chat-completions API (see docs/serve.md).")
    @Option(help: "Base model to serve and fine-tune (.gguf or HF directory).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(name: .customLong("model-id"), help: "Model id clients use (default: the file name without .gguf).") var modelID: String?
    @Option(name: .customLong("state-dir"), help: "Database, uploaded files and job outputs.") var stateDir = ".tune/serve"
    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port).") var port = 8080
    @Option(name: .customLong("api-keys-file"), help: "API keys, one per line (also TUNE_SERVE_API_KEYS, comma-separated).")
    var apiKeysFile: String?
    @Flag(name: .customLong("allow-no-auth"), help: "Serve without API keys on a non-loopback address.") var allowNoAuth = false
    @Option(name: .customLong("max-upload-bytes"), help: "Largest request body; larger ones get 413.") var maxUploadBytes = 64 << 20
    @Option(name: .customLong("rate-limit"), help: "Requests per second per key (0: off).") var rateLimit = 20.0
    @Option(name: .customLong("rate-burst"), help: "Requests a key may send in a burst.") var rateBurst = 40.0
    @Option(name: .customLong("access-log"), help: "JSON access log file (default: stderr).") var accessLog: String?
    @Flag(name: .customLong("no-access-log"), help: "Do not write an access log.") var noAccessLog = false
    @Option(name: .customLong("checkpoint-every"), help: "Training steps between checkpoints.") var checkpointEvery = 10
    @Option(help: "Chat completions decoded together per model (continuous batching; 0: off, each on its own thread).") var batch = 16
    @Option(name: .customLong("packed-weights-mb"), help: "With --batch: MiB of weights kept packed for the batched GEMM (f32, 4 bytes a weight; 0: none).")
    var packedWeightsMB = 1024
    @Option(name: .customLong("prefix-cache"), help: "With --batch: finished chat sequences kept per model so prompts that begin alike reuse their KV rows (prefix caching; 0: off).")
    var prefixCache = 16
    @Flag(help: "Chat completions on the exact float32 path (as `tune score`) instead of the fast one (int8 decode steps; bf16-product prefill where the CPU gains from it). /v1/completions is always exact.")
    var exact = false
    @Option(help: "Generations on their own threads at once: legacy completions and routed chat (all chat with --batch 0).") var parallel = 1
    @Option(help: "Also serve this registry's adapters trained on the base model (as NAME@VERSION).") var registry: String?
    @Option(help: "The registry's blob root (default: TUNE_BLOBS or adapters).") var blobs: String?
    @Option(name: .customLong("router"), help: "Serve this registered router (NAME, NAME@VERSION, NAME@ALIAS; repeatable; needs --registry) as a chat model.")
    var routers: [String] = []
    @Option(name: .customLong("router-reference-url"), help: "Reach the routers' reference here instead of the URL each recorded.")
    var routerReferenceURL: String?
    @Option(name: .customLong("router-timeout"), help: "Seconds to wait for a router's reference before answering locally (flagged local_fallback).")
    var routerTimeout = 30.0
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        do {
            try global.apply()
            var config = ServeConfig(modelPath: model, stateDirectory: stateDir, modelID: modelID)
            config.host = host
            config.port = port
            config.apiKeys = try ServeConfig.loadKeys(file: apiKeysFile, environment: ProcessInfo.processInfo.environment["TUNE_SERVE_API_KEYS"])
            config.allowNoAuth = allowNoAuth
            config.maxUploadBytes = maxUploadBytes
            config.rateLimit = rateLimit
            config.rateBurst = rateBurst
            config.accessLogPath = accessLog
            config.accessLogEnabled = !noAccessLog
            config.checkpointEvery = checkpointEvery
            config.parallelGenerations = parallel
            config.batchSize = batch
            config.exact = exact
            config.prefixCache = prefixCache
            config.packedWeightBytes = packedWeightsMB << 20
            config.registryPath = registry
            config.blobRoot = blobs ?? ProcessInfo.processInfo.environment["TUNE_BLOBS"] ?? config.blobRoot
            config.routers = routers
            config.routerReferenceURL = routerReferenceURL
            config.routerTimeout = routerTimeout
            let json = global.json, keys = config.apiKeys.count, id = config.modelID, host = self.host
            let app = try ServeApp.make(config: config) { port in
                let url = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
                let line = json ? #"{"event":"listening","port":\#(port),"url":"\#(url)","model":"\#(id)"}"#
                    : "tune serve: listening on \(url) (model \(id), \(keys == 0 ? "no auth" : "\(keys) API key(s)"))"
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            }
            try await app.runService()
        } catch {
            try reportingErrors { throw error }
        }
    }
}
