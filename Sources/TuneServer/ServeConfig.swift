// ServeConfig — everything `tune serve` is started with: the base model, where state lives, who may call,
// and the limits. Built by the CLI (or a test) and frozen before the server starts.

import Foundation
import TuneKit

/// How `tune serve` is configured. Every field has a default except the model and the state directory.
public struct ServeConfig: Sendable {
    /// The base model offered for chat and fine-tuning (a .gguf file or an HF directory).
    public var modelPath: String
    /// The id clients use for the base model (default: the file name without `.gguf`).
    public var modelID: String
    /// Directory for the SQLite database, uploaded files and job outputs.
    public var stateDirectory: String
    public var host = "127.0.0.1"
    public var port = 8080
    /// API keys accepted as `Authorization: Bearer <key>`; empty means no auth (loopback only unless allowed).
    public var apiKeys: [String] = []
    /// Run without keys on a non-loopback address.
    public var allowNoAuth = false
    /// Largest request body (uploads and JSON) in bytes; larger requests get 413.
    public var maxUploadBytes = 64 << 20
    /// Requests per second per key (token bucket refill rate); 0 disables rate limiting.
    public var rateLimit: Double = 20
    /// Token bucket size (requests allowed in a burst).
    public var rateBurst: Double = 40
    /// Where the JSON access log goes (nil: stderr).
    public var accessLogPath: String?
    /// Disable the access log entirely (tests, benchmarks).
    public var accessLogEnabled = true
    /// Optimizer steps between training checkpoints (a restart resumes from the last one).
    public var checkpointEvery = 10
    /// Generations run at the same time on their own threads, more requests waiting: legacy completions
    /// and routed chat, and all chat when `batchSize` is 0.
    public var parallelGenerations = 1
    /// Chat completions decoded together (continuous batching): each step of a model is one batched
    /// forward over up to this many requests, which join and leave between steps; more wait in its queue.
    /// 0: no batching (each chat completion on its own thread, at most `parallelGenerations` at once).
    public var batchSize = 16
    /// With batching: bytes of weights each served model may keep packed as f32 tile-GEMM panels, so a
    /// batched step does not dequantize and pack them on every call (the same results; 0: never).
    public var packedWeightBytes = 1 << 30
    /// With batching: finished chat sequences whose KV caches each model's batcher keeps, so a request
    /// that begins like one of them (the template's system turn, a conversation's earlier turns) copies
    /// those rows instead of recomputing them (automatic prefix caching; 0: only live sequences).
    public var prefixCache = 16
    /// Chat completions on the exact float32 path (as `tune score`) instead of the fast one (int8 decode
    /// steps, bf16-product prefill and batched steps where the CPU gains from it; docs/PERFORMANCE.md has
    /// the drift). Legacy completions (`/v1/completions`, log-probs for lm-eval) are always exact.
    public var exact = false
    /// Most tokens a chat completion may generate when the request does not say.
    public var defaultMaxTokens = 256
    /// Fine-tuned adapters kept loaded for chat (least recently used evicted).
    public var adapterCacheSize = 4
    /// A tune registry whose adapters (trained on this base) are served too, as `NAME@VERSION` (nil: none).
    public var registryPath: String?
    /// The registry's blob root.
    public var blobRoot = Registry.defaultBlobRoot
    /// Registered routers (`NAME`, `NAME@3`, `NAME@alias`) served as chat models under those ids
    /// (docs/routing.md, "Serving a router"); they need `registryPath`.
    public var routers: [String] = []
    /// Where the routers' references are reached, overriding the URL each router recorded (nil: recorded).
    public var routerReferenceURL: String?
    /// Seconds a router waits for its reference (per request and in total, retries included) before
    /// answering locally, flagged `local_fallback`.
    public var routerTimeout = 30.0
    /// Where the routers' reference API keys are read from (the variable each router names).
    public var environment: [String: String] = ProcessInfo.processInfo.environment

    public init(modelPath: String, stateDirectory: String, modelID: String? = nil) {
        self.modelPath = modelPath
        self.stateDirectory = stateDirectory
        var name = (modelPath as NSString).lastPathComponent
        if name.hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        self.modelID = modelID ?? name
    }

    /// Whether `host` is a loopback address.
    public var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) || host.hasPrefix("127.") }

    /// Throws for a configuration no server should start with.
    public func validate() throws {
        guard !modelID.isEmpty, !modelID.contains(":") else {
            throw TuneError(.invalidArgument, "--model-id: expected a non-empty id without ':', got \"\(modelID)\"")
        }
        if apiKeys.isEmpty, !isLoopback, !allowNoAuth {
            throw TuneError(.invalidArgument, "refusing to serve on \(host) without API keys; give --api-keys-file or TUNE_SERVE_API_KEYS, or pass --allow-no-auth")
        }
        guard maxUploadBytes > 0 else { throw TuneError(.invalidArgument, "--max-upload-bytes must be > 0, got \(maxUploadBytes)") }
        guard rateLimit >= 0, rateBurst >= 1 || rateLimit == 0 else {
            throw TuneError(.invalidArgument, "--rate-limit must be >= 0 and --rate-burst >= 1")
        }
        guard checkpointEvery >= 1 else { throw TuneError(.invalidArgument, "--checkpoint-every must be >= 1, got \(checkpointEvery)") }
        guard packedWeightBytes >= 0 else { throw TuneError(.invalidArgument, "--packed-weights-mb must be >= 0") }
        guard prefixCache >= 0 else { throw TuneError(.invalidArgument, "--prefix-cache must be >= 0, got \(prefixCache)") }
        guard batchSize >= 0 else { throw TuneError(.invalidArgument, "--batch must be >= 0, got \(batchSize)") }
        guard parallelGenerations >= 1 else { throw TuneError(.invalidArgument, "--parallel must be >= 1, got \(parallelGenerations)") }
        if !routers.isEmpty, registryPath == nil {
            throw TuneError(.invalidArgument, "--router needs --registry: routers are registry artifacts")
        }
        guard routerTimeout > 0 else { throw TuneError(.invalidArgument, "--router-timeout must be > 0, got \(routerTimeout)") }
        guard (0...65535).contains(port) else { throw TuneError(.invalidArgument, "--port must be in 0...65535, got \(port)") }
    }

    /// Reads API keys: one per line from `file` (blank lines and `#` comments skipped) plus the
    /// comma-separated `TUNE_SERVE_API_KEYS` value. Never logs or echoes a key.
    public static func loadKeys(file: String?, environment: String?) throws -> [String] {
        var keys: [String] = []
        if let file {
            guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
                throw TuneError(.fileAccess, "\(file): cannot read the API keys file")
            }
            for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let line = raw.trimmingCharacters(in: .whitespaces)
                if line.isEmpty || line.hasPrefix("#") { continue }
                guard !line.contains(" ") else { throw TuneError(.invalidArgument, "\(file):\(i + 1): expected one key per line (no spaces)") }
                keys.append(line)
            }
        }
        if let environment {
            keys += environment.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return keys
    }
}
