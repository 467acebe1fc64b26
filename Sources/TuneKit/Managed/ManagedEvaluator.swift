// ManagedEvaluator — task metrics of a model that lives at a provider, from greedy generations through
// `POST /v1/chat/completions` (at most `concurrency` requests in flight, each with the client's retry
// policy). A chat API returns text, not log-likelihoods: loss, perplexity, token_accuracy and choice
// by log-likelihood cannot be computed and are left out of the metrics (reports show "–"), never
// estimated. `choice` is scored by matching the generated text against the options instead.

import Foundation

public enum ManagedEvaluator {
    /// Metrics a chat API cannot give.
    public static let unavailableMetrics: Set<String> = ["loss", "perplexity", "token_accuracy"]

    /// Evaluates `model` on `conversations` (each ends with the reference assistant turn).
    public static func evaluate(client: OpenAIClient, model: String, role: ModelRole, name: String,
                                conversations: [[ChatMessageBody]], config: EvalConfig, concurrency: Int = 4,
                                seed: Int? = nil) throws -> ModelEvaluation {
        let items = conversations.compactMap { c -> (prompt: [ChatMessageBody], reference: String)? in
            guard let last = c.lastIndex(where: { $0.role == "assistant" }), last > 0 else { return nil }
            return (Array(c[..<last]), c[last].content)
        }
        guard !items.isEmpty else { throw TuneError(.invalidArgument, "evaluation of \(name): no eval example has an assistant answer") }
        let pattern = try config.regex.map { p in
            do { return try NSRegularExpression(pattern: p) } catch { throw TuneError(.invalidArgument, "regex \"\(p)\": not a valid regular expression") }
        }
        let t0 = Date()
        let timed = try parallelMap(items.count, concurrency: concurrency) { i in
            let start = Date()
            let r = try client.chatCompletion(ChatCompletionRequest(model: model, messages: items[i].prompt,
                                                                    maxTokens: config.maxNewTokens, temperature: 0, seed: seed))
            return (r, Date().timeIntervalSince(start))
        }
        let secs = Date().timeIntervalSince(t0)
        let outputs = timed.map(\.0)
        let latencies = timed.map(\.1).sorted()
        var counts: [String: Int] = [:], promptTokens = 0, generatedTokens = 0
        var confusion = config.choices.isEmpty ? nil : Confusion(labels: config.choices)
        var samples: [ModelEvaluation.Sample] = []
        let accuracy = config.resolve(gateMetric: "accuracy")
        var outcomes: [ExampleOutcome] = []
        for (i, out) in outputs.enumerated() {
            let reference = items[i].reference, text = out.text
            promptTokens += out.usage?.promptTokens ?? 0
            generatedTokens += out.usage?.completionTokens ?? 0
            func count(_ m: String, _ ok: Bool) { if config.metrics.contains(m), ok { counts[m, default: 0] += 1 } }
            let trimmed = { (s: String) in s.trimmingCharacters(in: .whitespacesAndNewlines) }
            let exact = trimmed(text) == trimmed(reference)
            count("exact_match", exact)
            count("contains", TextMetrics.contains(generated: text, reference: reference))
            if let pattern { count("regex", TextMetrics.regex(generated: text, pattern: pattern)) }
            count("json_valid", TextMetrics.jsonValid(text))
            count("json_fields", TextMetrics.jsonFieldsMatch(generated: text, reference: reference, fields: config.jsonFields))
            let picked = TextMetrics.label(text, among: config.choices)
            let chose = picked.map(TextMetrics.normalize) == TextMetrics.normalize(reference)
            count("choice", chose)
            if let accuracy {
                outcomes.append(ExampleOutcome(correct: accuracy == "choice" ? chose : exact, promptTokens: out.usage?.promptTokens ?? 0,
                                               outputTokens: out.usage?.completionTokens ?? 0))
            }
            confusion?.add(actual: TextMetrics.label(reference, among: config.choices), predicted: picked)
            if samples.count < 8 { samples.append(.init(reference: reference, generated: text, choice: picked)) }
        }
        let n = Double(items.count)
        var metrics: [String: Double] = [:]
        for m in config.reportedMetrics where !unavailableMetrics.contains(m) { metrics[m] = Double(counts[m] ?? 0) / n }
        var e = ModelEvaluation(role: role, model: name, examples: items.count, targetTokens: 0, promptTokens: promptTokens,
                                generatedTokens: generatedTokens, metrics: metrics, confusion: confusion, samples: samples,
                                seconds: secs, examplesPerSecond: n / max(secs, 1e-9),
                                tokensPerSecond: Double(promptTokens + generatedTokens) / max(secs, 1e-9),
                                latencyP50: percentile(latencies, 0.5), latencyP95: percentile(latencies, 0.95), apiModel: model)
        e.outcomes = accuracy == nil ? nil : outcomes
        return e
    }

    /// The nearest-rank percentile of sorted `xs` (`q` in (0, 1]): the value at rank ⌈q·n⌉.
    public static func percentile(_ xs: [Double], _ q: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        let rank = Int((q * Double(xs.count)).rounded(.up))
        return xs[min(xs.count, max(1, rank)) - 1]
    }

    /// `body(0..<count)` on at most `concurrency` threads, results in index order; the first error
    /// stops handing out new work and is rethrown.
    static func parallelMap<T: Sendable>(_ count: Int, concurrency: Int, _ body: @escaping @Sendable (Int) throws -> T) throws -> [T] {
        let state = ParallelState<T>(count)
        let group = DispatchGroup()
        for _ in 0..<max(1, min(concurrency, count)) {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                while let i = state.take(count) { state.put(i, Result { try body(i) }) }
            }
        }
        group.wait()
        if let e = state.error { throw e }
        return state.results.map { $0! }
    }
}

/// Shared by the threads of one `parallelMap`.
final class ParallelState<T>: @unchecked Sendable {
    let lock = NSLock()
    var next = 0
    var results: [T?]
    var error: Error?
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
    func take(_ n: Int) -> Int? {
        lock.lock(); defer { lock.unlock() }
        guard error == nil, next < n else { return nil }
        next += 1
        return next - 1
    }
    func put(_ i: Int, _ r: Result<T, Error>) {
        lock.lock(); defer { lock.unlock() }
        switch r {
        case .success(let v): results[i] = v
        case .failure(let e): if error == nil { error = e }
        }
    }
}
