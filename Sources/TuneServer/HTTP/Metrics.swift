// Metrics — counters, latency histograms and gauges in Prometheus' text exposition format (0.0.4),
// written by hand: a few maps under one lock, rendered on `GET /metrics`.

import Foundation

final class ServeMetrics: @unchecked Sendable {
    static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    private struct Histogram { var counts = [Int](repeating: 0, count: ServeMetrics.buckets.count); var sum = 0.0; var count = 0 }
    private let lock = NSLock()
    private var requests: [String: Int] = [:]                 // "method\0route\0status"
    private var latency: [String: Histogram] = [:]            // route
    private var tokensTrained = 0
    private var promptTokens = 0
    private var completionTokens = 0
    private var textPromptTokens = 0
    private var textCompletionTokens = 0
    private var rateLimited = 0
    private var routed: [String: Int] = [:]                   // "router\0route"

    func observe(method: String, route: String, status: Int, seconds: Double) {
        lock.lock(); defer { lock.unlock() }
        requests["\(method)\u{0}\(route)\u{0}\(status)", default: 0] += 1
        var h = latency[route] ?? Histogram()
        for (i, b) in Self.buckets.enumerated() where seconds <= b { h.counts[i] += 1 }
        h.sum += seconds
        h.count += 1
        latency[route] = h
    }

    func addTrained(tokens: Int) { lock.lock(); tokensTrained += tokens; lock.unlock() }
    func addChat(prompt: Int, completion: Int) { lock.lock(); promptTokens += prompt; completionTokens += completion; lock.unlock() }
    func addCompletion(prompt: Int, completion: Int) {
        lock.lock(); textPromptTokens += prompt; textCompletionTokens += completion; lock.unlock()
    }
    func addRateLimited() { lock.lock(); rateLimited += 1; lock.unlock() }
    func addRouted(router: String, route: String) { lock.lock(); routed["\(router)\u{0}\(route)", default: 0] += 1; lock.unlock() }

    /// The exposition text. `jobs` are the counts by status read from the database at scrape time.
    func render(jobs: [JobStatus: Int], batch: (steps: Int, peakBatch: Int, reusedPromptTokens: Int) = (0, 0, 0)) -> String {
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }
        out += "# HELP tune_http_requests_total HTTP requests by method, route and status.\n# TYPE tune_http_requests_total counter\n"
        for (k, v) in requests.sorted(by: { $0.key < $1.key }) {
            let p = k.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            out += "tune_http_requests_total{method=\"\(esc(p[0]))\",route=\"\(esc(p[1]))\",status=\"\(p[2])\"} \(v)\n"
        }
        out += "# HELP tune_http_request_duration_seconds Request latency by route.\n# TYPE tune_http_request_duration_seconds histogram\n"
        for (route, h) in latency.sorted(by: { $0.key < $1.key }) {
            let r = esc(route)
            for (i, b) in Self.buckets.enumerated() {
                out += "tune_http_request_duration_seconds_bucket{route=\"\(r)\",le=\"\(b)\"} \(h.counts[i])\n"
            }
            out += "tune_http_request_duration_seconds_bucket{route=\"\(r)\",le=\"+Inf\"} \(h.count)\n"
            out += "tune_http_request_duration_seconds_sum{route=\"\(r)\"} \(h.sum)\n"
            out += "tune_http_request_duration_seconds_count{route=\"\(r)\"} \(h.count)\n"
        }
        out += "# HELP tune_fine_tuning_jobs Fine-tuning jobs by status.\n# TYPE tune_fine_tuning_jobs gauge\n"
        for s in JobStatus.allCases { out += "tune_fine_tuning_jobs{status=\"\(s.rawValue)\"} \(jobs[s] ?? 0)\n" }
        out += "# HELP tune_job_queue_depth Jobs waiting for the trainer (validating or queued).\n# TYPE tune_job_queue_depth gauge\n"
        out += "tune_job_queue_depth \((jobs[.queued] ?? 0) + (jobs[.validatingFiles] ?? 0))\n"
        out += "# HELP tune_tokens_trained_total Tokens processed by training steps since the server started.\n# TYPE tune_tokens_trained_total counter\n"
        out += "tune_tokens_trained_total \(tokensTrained)\n"
        out += "# HELP tune_chat_prompt_tokens_total Prompt tokens of chat completions.\n# TYPE tune_chat_prompt_tokens_total counter\n"
        out += "tune_chat_prompt_tokens_total \(promptTokens)\n"
        out += "# HELP tune_chat_completion_tokens_total Generated tokens of chat completions.\n# TYPE tune_chat_completion_tokens_total counter\n"
        out += "tune_chat_completion_tokens_total \(completionTokens)\n"
        out += "# HELP tune_completions_prompt_tokens_total Prompt tokens of legacy completions (/v1/completions).\n# TYPE tune_completions_prompt_tokens_total counter\n"
        out += "tune_completions_prompt_tokens_total \(textPromptTokens)\n"
        out += "# HELP tune_completions_completion_tokens_total Generated tokens of legacy completions.\n# TYPE tune_completions_completion_tokens_total counter\n"
        out += "tune_completions_completion_tokens_total \(textCompletionTokens)\n"
        out += "# HELP tune_rate_limited_total Requests refused with 429.\n# TYPE tune_rate_limited_total counter\n"
        out += "tune_rate_limited_total \(rateLimited)\n"
        out += "# HELP tune_batch_steps_total Shared decoding steps of the chat batchers (continuous batching).\n# TYPE tune_batch_steps_total counter\n"
        out += "tune_batch_steps_total \(batch.steps)\n"
        out += "# HELP tune_batch_peak_sequences Most chat completions one decoding step has carried.\n# TYPE tune_batch_peak_sequences gauge\n"
        out += "tune_batch_peak_sequences \(batch.peakBatch)\n"
        out += "# HELP tune_prefix_cache_tokens_total Prompt tokens whose KV rows the chat batchers copied from an earlier sequence (prefix caching) instead of computing.\n# TYPE tune_prefix_cache_tokens_total counter\n"
        out += "tune_prefix_cache_tokens_total \(batch.reusedPromptTokens)\n"
        out += "# HELP tune_router_requests_total Routed chat requests by router and route (local, reference, local_fallback).\n# TYPE tune_router_requests_total counter\n"
        for (k, v) in routed.sorted(by: { $0.key < $1.key }) {
            let p = k.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
            out += "tune_router_requests_total{router=\"\(esc(p[0]))\",route=\"\(esc(p[1]))\"} \(v)\n"
        }
        return out
    }
}
