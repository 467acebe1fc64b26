// ServeBench — `tune bench serve`: chat-completions throughput and latency through the HTTP server at
// 1, 4 and 16 concurrent clients, against the engine's direct generation of the same prompt measured
// in the same run (the reference). The server batches chat continuously (`batch` sequences per step;
// 0: one thread per request, `parallel` at once), so throughput should grow with the clients. Request k
// asks about `topics[k % 16]`: prompts share the chat template's head and the instruction, as templated
// traffic does, but no two neighbours are the same prompt (which prefix caching would make free).

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
    /// Chat on the exact path (`tune serve --exact`) instead of the fast one.
    public var exact = false
    /// Finished sequences the batcher keeps for prefix caching (`tune serve --prefix-cache`; 0: off).
    public var prefixCache = 16
    public var prompt = "Write one sentence about"
    public static let topics = ["the sea", "a mountain", "the city at night", "coffee", "a library", "winter", "a train journey", "bees",
                                "the desert", "a lighthouse", "rain", "an old map", "the moon", "a garden", "a violin", "the harbour"]
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
        public var exact: Bool
        /// Prompt tokens the server's batchers took from the prefix cache over the whole run.
        public var reusedPromptTokens: Int
        /// Direct engine generation, one request at a time, same prompt and options (the reference).
        public var directSecondsPerRequest: Double
        public var directTokensPerSecond: Double
        public var rows: [Row]
        enum CodingKeys: String, CodingKey {
            case model, maxTokens = "max_tokens", parallel, batch, exact, reusedPromptTokens = "reused_prompt_tokens", directSecondsPerRequest = "direct_seconds_per_request"
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
        config.exact = exact
        config.prefixCache = prefixCache
        progress("starting the server on 127.0.0.1 with \(modelPath)")
        let server = try await RunningServer.start(config: config)

        // Reference: the engine directly, same chat-templated prompt, greedy, no stop at EOS (fixed length).
        let model = try LlamaModel.load(path: modelPath)
        let template = try ChatTemplate.forModel(model.tokenizer)
        let ids = model.tokenizer.encodeAddingBOS(try template.render([ChatMessage(role: "user", content: "\(prompt) \(Self.topics[0]).")],
                                                                      addGenerationPrompt: true))
        let stops = Set(template.stopStrings.compactMap { model.tokenizer.id(of: $0) })
        var directSeconds = 0.0, directTokens = 0
        let reps = 4
        progress("reference: \(reps) direct generations")
        for _ in 0..<reps {
            let t0 = Date()
            let g = try model.generate(promptIDs: ids, options: GenerationOptions(maxTokens: maxTokens, temperature: 0, stopTokens: stops, fast: !exact))
            directSeconds += Date().timeIntervalSince(t0)
            directTokens += g.ids.count
        }

        let url = "http://127.0.0.1:\(server.port)/v1/chat/completions"
        let bodies = try Self.topics.map { topic in
            try JSONSerialization.data(withJSONObject: [
                "model": config.modelID, "messages": [["role": "user", "content": "\(prompt) \(topic)."]], "max_tokens": maxTokens, "temperature": 0,
            ])
        }
        var rows: [Row] = []
        for c in concurrency {
            let n = max(requests, c)
            progress("\(n) requests at concurrency \(c)")
            rows.append(try await Self.load(url: url, bodies: bodies, requests: n, concurrency: c))
        }
        let reused = (try? Self.metric("tune_prefix_cache_tokens_total", url: "http://127.0.0.1:\(server.port)/metrics")).map { Int($0) } ?? 0
        await server.stop()
        return Result(model: (modelPath as NSString).lastPathComponent, maxTokens: maxTokens, parallel: parallel, batch: batch,
                      exact: exact, reusedPromptTokens: reused,
                      directSecondsPerRequest: directSeconds / Double(reps),
                      directTokensPerSecond: Double(directTokens) / max(directSeconds, 1e-9), rows: rows)
    }

    /// One unlabelled value from the server's Prometheus metrics.
    static func metric(_ name: String, url: String) throws -> Double? {
        let r = try CurlHTTPTransport().send(HTTPRequest(method: "GET", url: url, headers: [], body: .bytes(Data()), timeout: 30))
        for line in r.bodyText.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    /// `requests` POSTs from `concurrency` threads over libcurl (request k sends `bodies[k % count]`); every
    /// response must be a 200 completion.
    static func load(url: String, bodies: [Data], requests: Int, concurrency: Int) async throws -> Row {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Row, any Error>) in
            Thread { c.resume(with: Swift.Result { try loadBlocking(url: url, bodies: bodies, requests: requests, concurrency: concurrency) }) }.start()
        }
    }

    private final class Tally: @unchecked Sendable {
        let lock = NSLock()
        var next = 0, latencies: [Double] = [], tokens = 0, failure: String?
    }

    private static func loadBlocking(url: String, bodies: [Data], requests: Int, concurrency: Int) throws -> Row {
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
                    let mine = tally.next < requests && tally.failure == nil, k = tally.next
                    tally.next += 1
                    tally.lock.unlock()
                    guard mine else { return }
                    let s = Date()
                    do {
                        let r = try transport.send(HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")],
                                                               body: .bytes(bodies[k % bodies.count]), timeout: 600))
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
