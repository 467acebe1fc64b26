// tune bench serve — chat-completions requests/s and p50/p99 latency through `tune serve` at 1, 4 and 16
// concurrent clients, beside the engine's direct generation of the same prompt (the reference).
import ArgumentParser
import Foundation
import TuneKit
import TuneServer

struct BenchServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Chat-completions throughput and latency of tune serve vs direct generation.")
    @Option(help: "Model to serve.") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Requests per concurrency level.") var requests = 16
    @Option(name: .customLong("max-tokens"), help: "Tokens generated per request.") var maxTokens = 32
    @Option(help: "Concurrency levels, comma-separated.") var concurrency = "1,4,16"
    @Option(help: "Chat completions the server generates at once.") var parallel = 1
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        do {
            try global.apply()
            var bench = ServeBench()
            bench.modelPath = model
            bench.requests = requests
            bench.maxTokens = maxTokens
            bench.parallel = parallel
            bench.concurrency = try concurrency.split(separator: ",").map {
                guard let n = Int($0), (1...64).contains(n) else { throw ValidationError("--concurrency: expected integers in 1...64, got \($0)") }
                return n
            }
            let json = global.json
            let r = try await bench.run { msg in if !json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) } }
            if json { try Output.json(r); return }
            Output.text("model \(r.model), \(r.maxTokens) tokens per request, server generates \(r.parallel) at once")
            Output.text(String(format: "direct engine (reference): %.3f s/request, %.1f tok/s", r.directSecondsPerRequest, r.directTokensPerSecond))
            Output.text("clients  requests   req/s    p50 s    p99 s    tok/s   vs direct")
            for row in r.rows {
                Output.text(String(format: "%7d %9d %7.2f %8.3f %8.3f %8.1f %9.2fx", row.concurrency, row.requests, row.requestsPerSecond,
                                   row.p50Seconds, row.p99Seconds, row.completionTokensPerSecond,
                                   row.completionTokensPerSecond / max(r.directTokensPerSecond, 1e-9)))
            }
        } catch {
            try reportingErrors { throw error }
        }
    }
}
