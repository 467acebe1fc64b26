// tune bench serve — chat-completions requests/s and p50/p95/p99 latency through `tune serve` at 1, 4 and 16
// concurrent clients, beside the engine's direct generation of the same prompt (the reference).
import ArgumentParser
import Engine
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
    @Option(help: "Chat completions the server decodes together per step (continuous batching; 0: off).") var batch = 16
    @Option(name: .customLong("packed-weights-mb"), help: "With batching: MiB of weights kept packed for the batched GEMM (0: none).")
    var packedWeightsMB = 1024
    @Option(help: "Without batching: chat completions the server generates at once.") var parallel = 1
    @Option(name: .customLong("prefix-cache"), help: "Finished sequences kept for prefix caching (0: off).") var prefixCache = 16
    @Flag(help: "Serve chat on the exact float32 path (tune serve --exact) instead of the fast one.") var exact = false
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        do {
            try global.apply()
            var bench = ServeBench()
            bench.modelPath = model
            bench.requests = requests
            bench.maxTokens = maxTokens
            bench.parallel = parallel
            bench.batch = batch
            bench.packedWeightBytes = packedWeightsMB << 20
            bench.prefixCache = prefixCache
            bench.exact = exact
            bench.concurrency = try concurrency.split(separator: ",").map {
                guard let n = Int($0), (1...64).contains(n) else { throw ValidationError("--concurrency: expected integers in 1...64, got \($0)") }
                return n
            }
            let json = global.json
            let r = try await bench.run { msg in if !json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) } }
            if json { try Output.json(r); return }
            Output.text("model \(r.model), \(r.maxTokens) tokens per request, "
                        + (r.batch > 0 ? "continuous batching of up to \(r.batch) chat completions per step" : "no batching, \(r.parallel) generation(s) at once")
                        + (r.exact ? ", exact path" : ", fast path (decode \(Kernels.fastDecodeKernel), batched steps \(Kernels.fastGEMMKernel))")
                        + ", \(r.reusedPromptTokens) prompt tokens from the prefix cache")
            Output.text(String(format: "direct engine (reference): %.3f s/request, %.1f tok/s", r.directSecondsPerRequest, r.directTokensPerSecond))
            Output.text("clients  requests   req/s    p50 s    p95 s    p99 s    tok/s   vs direct   vs 1st row")
            for row in r.rows {
                Output.text(String(format: "%7d %9d %7.2f %8.3f %8.3f %8.3f %8.1f %9.2fx %10.2fx", row.concurrency, row.requests, row.requestsPerSecond,
                                   row.p50Seconds, row.p95Seconds, row.p99Seconds, row.completionTokensPerSecond,
                                   row.completionTokensPerSecond / max(r.directTokensPerSecond, 1e-9),
                                   row.completionTokensPerSecond / max(r.rows[0].completionTokensPerSecond, 1e-9)))
            }
        } catch {
            try reportingErrors { throw error }
        }
    }
}
