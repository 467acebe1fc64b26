// ServeBench — `tune bench serve`: chat-completions throughput and latency through the HTTP server at
// 1, 4 and 16 concurrent clients, against the engine's direct generation of the same prompt measured
// in the same run (the reference). The server batches chat continuously (`batch` sequences per step;
// 0: one thread per request, `parallel` at once), so throughput should grow with the clients.

import Engine
import Foundation
import TuneKit

public struct ServeBench: Sendable {
    public var modelPath = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    public var concurrency = [1, 4, 16]
    /// Requests per concurrency level (at least the level itself).
    public var requests = 16
    public var maxTokens = 32
    public var parallel = 1
    public var batch = 16
    public var packedWeightBytes = 1 << 30
    public var prompt = "Write one sentence about the sea."
    public init() {}

    public struct Row: Codable, Sendable {
        public var concurrency: Int
        public var requests: Int
        public var requestsPerSecond: Double
        public var p50Seconds: Double
        public var p95Seconds: Double
        public var p99Seconds: Double
        public var completionTokensPerSecond: Double
        enum CodingKeys: String, CodingKey {
            case concurrency, requests, requestsPerSecond = "requests_per_second", p50Seconds = "p50_seconds", p95Seconds = "p95_seconds"
            case p99Seconds = "p99_seconds", completionTokensPerSecond = "completion_tokens_per_second"
        }
    }

    public struct Result: Codable, Sendable {
        public var model: String
        public var maxTokens: Int
        public var parallel: Int
        public var batch: Int
        /// Direct engine generation, one request at a time, same prompt and options (the reference).
        public var directSecondsPerRequest: Double
        public var directTokensPerSecond: Double
        public var rows: [Row]
        enum CodingKeys: String, CodingKey {
            case model, maxTokens = "max_tokens", parallel, batch, directSecondsPerRequest = "direct_seconds_per_request"
            case directTokensPerSecond = "direct_tokens_per_second", rows
        }
    }

    public func run(progress: (String) -> Void = { _ in }) async throws -> Result {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-serve-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: state) }
        var config = ServeConfig(modelPath: modelPath, stateDirectory: state)
        config.port = 0
        config.rateLimit = 0
        config.accessLogEnabled = false
        config.parallelGenerations = parallel
        config.batchSize = batch
        config.packedWeightBytes = packedWeightBytes
        progress("starting the server on 127.0.0.1 with \(modelPath)")
        let server = try await RunningServer.start(config: config)

        // Reference: the engine directly, same chat-templated prompt, greedy, no stop at EOS (fixed length).
        let model = try LlamaModel.load(path: modelPath)
        let template = try ChatTemplate.forModel(model.tokenizer)
        let ids = model.tokenizer.encodeAddingBOS(try template.render([ChatMessage(role: "user", content: prompt)], addGenerationPrompt: true))
        let stops = Set(template.stopStrings.compactMap { model.tokenizer.id(of: $0) })
        var directSeconds = 0.0, directTokens = 0
        let reps = 4
        progress("reference: \(reps) direct generations")
        for _ in 0..<reps {
            let t0 = Date()
            let g = try model.generate(promptIDs: ids, options: GenerationOptions(maxTokens: maxTokens, temperature: 0, stopTokens: stops))
            directSeconds += Date().timeIntervalSince(t0)
            directTokens += g.ids.count
        }

        let url = "http://127.0.0.1:\(server.port)/v1/chat/completions"
        let body = try JSONSerialization.data(withJSONObject: [
            "model": config.modelID, "messages": [["role": "user", "content": prompt]], "max_tokens": maxTokens, "temperature": 0,
        ])
        var rows: [Row] = []
        for c in concurrency {
            let n = max(requests, c)
            progress("\(n) requests at concurrency \(c)")
            rows.append(try await Self.load(url: url, body: body, requests: n, concurrency: c))
        }
        await server.stop()
        return Result(model: (modelPath as NSString).lastPathComponent, maxTokens: maxTokens, parallel: parallel, batch: batch,
                      directSecondsPerRequest: directSeconds / Double(reps),
                      directTokensPerSecond: Double(directTokens) / max(directSeconds, 1e-9), rows: rows)
    }

    /// `requests` POSTs from `concurrency` threads over libcurl; every response must be a 200 completion.
    static func load(url: String, body: Data, requests: Int, concurrency: Int) async throws -> Row {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Row, any Error>) in
            Thread { c.resume(with: Swift.Result { try loadBlocking(url: url, body: body, requests: requests, concurrency: concurrency) }) }.start()
        }
    }

    private final class Tally: @unchecked Sendable {
        let lock = NSLock()
        var next = 0, latencies: [Double] = [], tokens = 0, failure: String?
    }

    private static func loadBlocking(url: String, body: Data, requests: Int, concurrency: Int) throws -> Row {
        let tally = Tally()
        let group = DispatchGroup()
        let t0 = Date()
        for _ in 0..<concurrency {
            group.enter()
            Thread {
                defer { group.leave() }
                let transport = CurlHTTPTransport()
                while true {
                    tally.lock.lock()
                    let mine = tally.next < requests && tally.failure == nil
                    tally.next += 1
                    tally.lock.unlock()
                    guard mine else { return }
                    let s = Date()
                    do {
                        let r = try transport.send(HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")],
                                                               body: .bytes(body), timeout: 600))
                        let d = Date().timeIntervalSince(s)
                        guard r.status == 200, let obj = try JSONSerialization.jsonObject(with: r.body) as? [String: Any],
                              let usage = obj["usage"] as? [String: Any], let ct = usage["completion_tokens"] as? Int else {
                            throw TuneError(.internal, "HTTP \(r.status): \(r.bodyText.prefix(200))")
                        }
                        tally.lock.lock(); tally.latencies.append(d); tally.tokens += ct; tally.lock.unlock()
                    } catch {
                        tally.lock.lock(); tally.failure = "\(error)"; tally.lock.unlock()
                    }
                }
            }.start()
        }
        group.wait()
        let wall = Date().timeIntervalSince(t0)
        if let failure = tally.failure { throw TuneError(.internal, "bench serve: a request failed: \(failure)") }
        let sorted = tally.latencies.sorted()
        func pct(_ p: Double) -> Double { sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))] }
        return Row(concurrency: concurrency, requests: requests, requestsPerSecond: Double(requests) / wall,
                   p50Seconds: pct(0.5), p95Seconds: pct(0.95), p99Seconds: pct(0.99), completionTokensPerSecond: Double(tally.tokens) / wall)
    }
}
