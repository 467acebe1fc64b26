// Evaluator — held-out metrics of one model (base, base + adapter, or a merged model) on prepared
// eval examples, from ONE prefill per example (`LlamaModel.evaluate(prompts:)`):
//   • the reference answer, teacher-forced from the prompt's cache → loss, perplexity, and exact
//     match = greedy decoding reproduces the reference token for token (it does iff the reference
//     token is the argmax at every answer position: each step conditions on the same prefix);
//   • each option of `choices` scored the same way → choice accuracy = argmax of summed log-likelihood;
//   • greedy generation with the KV cache → contains, regex, json_valid, json_fields, confusion.
// Per example (ExampleOutcome): right or wrong under the accuracy metric, and a confidence for routing —
// the best − second-best option log-likelihood, else the greedy answer's mean token log-prob (docs/routing.md).
// All examples of a batch share every GEMM, the prompt forward included.
//
//     let cfg = try EvalConfig.load(file: "pipelines/sample.yaml")
//     let base = try Evaluator.evaluate(model: m, role: .base, name: "base", examples: ex, config: cfg)
//     let tuned = try Evaluator.evaluate(model: m.loadingAdapter(directory: dir), role: .adapter, …)
//     let report = EvalReport(models: [base, tuned], config: cfg, …)   // gate, costs, JSON/Markdown/HTML

import Engine
import Foundation

/// `reference`: a model evaluated through a chat-completions API for comparison (`eval.reference`), never gated.
public enum ModelRole: String, Codable, Sendable, CaseIterable { case base, adapter, merged, reference }

/// One model's results on one eval set.
public struct ModelEvaluation: Codable, Sendable, Equatable {
    public var role: ModelRole
    public var model: String
    public var examples: Int
    /// Reference answer tokens scored (the loss denominator).
    public var targetTokens: Int
    public var promptTokens: Int
    public var generatedTokens: Int
    /// Every computed metric by name (`EvalConfig.reportedMetrics`); fractions in [0, 1] except loss/perplexity.
    public var metrics: [String: Double]
    /// Reference label × generated label, when `choices` are given.
    public var confusion: Confusion?
    /// The first few examples: reference, generated answer, chosen option.
    public var samples: [Sample]
    public var seconds: Double
    public var examplesPerSecond: Double
    /// (prompt + generated tokens) / seconds: the measured throughput the serving cost uses.
    public var tokensPerSecond: Double
    /// Per-request latency, seconds (nearest-rank p50 / p95), for models evaluated through an API.
    public var latencyP50: Double? = nil
    public var latencyP95: Double? = nil
    /// The provider's model id when evaluated through a chat-completions API (token counts are then the
    /// API's `usage`, and its cost is usage × prices rather than hardware time).
    public var apiModel: String? = nil
    /// Per example, in eval order, when an accuracy metric is computed: what routing needs (`Routing`).
    public var outcomes: [ExampleOutcome]? = nil
    /// 95% Wilson score interval of the accuracy (`choice` when declared, else `exact_match`); set by the report.
    public var accuracyCI95: Interval? = nil

    public struct Sample: Codable, Sendable, Equatable {
        public var reference: String
        public var generated: String?
        public var choice: String?
    }

    enum CodingKeys: String, CodingKey {
        case role, model, examples, metrics, confusion, samples, seconds
        case targetTokens = "target_tokens", promptTokens = "prompt_tokens", generatedTokens = "generated_tokens"
        case examplesPerSecond = "examples_per_second", tokensPerSecond = "tokens_per_second"
        case latencyP50 = "latency_p50_s", latencyP95 = "latency_p95_s", apiModel = "api_model"
        case outcomes = "per_example", accuracyCI95 = "accuracy_ci95"
    }

    public var loss: Double? { metrics["loss"] }
    public var exactMatch: Double? { metrics["exact_match"] }
}

/// One eval example's result for one model (docs/routing.md).
public struct ExampleOutcome: Codable, Sendable, Equatable {
    /// Right under the accuracy metric (`choice` when declared, else `exact_match`).
    public var correct: Bool
    /// Local models: the best − second-best option log-likelihood (`choice`), else the mean ln p of the
    /// greedy answer's tokens (and of the stop token that ended it). Nil for API models.
    public var confidence: Double?
    /// Prompt and output tokens of this example (an API model's from its `usage`).
    public var promptTokens: Int
    public var outputTokens: Int

    public init(correct: Bool, confidence: Double? = nil, promptTokens: Int = 0, outputTokens: Int = 0) {
        self.correct = correct
        self.confidence = confidence
        self.promptTokens = promptTokens
        self.outputTokens = outputTokens
    }

    enum CodingKeys: String, CodingKey {
        case correct, confidence
        case promptTokens = "prompt_tokens", outputTokens = "output_tokens"
    }
}

public enum Evaluator {
    /// The (ids, target positions) of each eval segment: positions t with mask[t] = 1 (t ≥ 1).
    public static func items(_ examples: [DatasetExample]) -> [(ids: [Int32], targets: [Int])] {
        examples.flatMap { e in
            e.segments.compactMap { seg -> (ids: [Int32], targets: [Int])? in
                let ids = Array(e.ids[seg]), mask = Array(e.mask[seg])
                let targets = (1..<max(1, ids.count)).filter { mask[$0] != 0 }
                return targets.isEmpty ? nil : (ids, targets)
            }
        }
    }

    /// Tokens that end an answer: EOS, and the last answer token when every reference ends with the same
    /// one (a chat template's end-of-turn marker).
    static func stopTokens(_ all: [(ids: [Int32], targets: [Int])], eos: Int32?) -> Set<Int32> {
        var s = Set(eos.map { [$0] } ?? [])
        let lasts = Set(all.map { $0.ids[$0.targets.last!] })
        if all.count > 1, lasts.count == 1 { s.formUnion(lasts) }
        return s
    }

    /// Removes the stop tokens that end `answer` and returns them (in order): what is scored after each
    /// `choice` option, as the answer itself was.
    static func stopTail(_ answer: inout [Int32], stops: Set<Int32>) -> [Int32] {
        var tail: [Int32] = []
        while let t = answer.last, stops.contains(t) { tail.insert(t, at: 0); answer.removeLast() }
        return tail
    }

    /// The best option by summed log-likelihood (the first on a tie) and the choice confidence: its
    /// margin over the second best (nil with one option).
    static func bestChoice(_ sums: [Double]) -> (best: Int, margin: Double?) {
        let best = sums.indices.max { sums[$0] < sums[$1] || (sums[$0] == sums[$1] && $0 > $1) }!
        let ranked = sums.sorted(by: >)
        return (best, ranked.count > 1 ? ranked[0] - ranked[1] : nil)
    }

    /// Bytes of f32 / bf16 weight panels a model under evaluation may keep packed (SmolLM2-135M: 538 MB for all).
    public static let packedWeightBytes = 1 << 30

    /// Evaluates `model` on `examples` as `config` says, in batches of `config.batch` examples.
    public static func evaluate(model: LlamaModel, role: ModelRole, name: String, examples: [DatasetExample],
                                config: EvalConfig, progress: (Int, Int) -> Void = { _, _ in }) throws -> ModelEvaluation {
        let all = items(examples)
        guard !all.isEmpty else { throw TuneError(.invalidArgument, "evaluation: no eval example has target tokens") }
        // Every batch runs the same matrices through the tile GEMM (the prompts, and the LM head over the
        // judged rows): pack them once instead of per call (PackedWeights.swift; the same bits).
        model.packWeights(upToBytes: packedWeightBytes)
        let tok = model.tokenizer
        let stops = stopTokens(all, eos: tok.eosID)
        let pattern = try config.regex.map { p in
            do { return try NSRegularExpression(pattern: p) } catch { throw TuneError(.invalidArgument, "regex \"\(p)\": not a valid regular expression") }
        }
        let wantChoice = config.metrics.contains("choice") && !config.choices.isEmpty
        let maxNew = config.generates ? config.maxNewTokens : 0
        let accuracy = config.resolve(gateMetric: "accuracy")
        var outcomes: [ExampleOutcome] = []
        let t0 = Date()
        var nll = 0.0, tokens = 0, hits = 0, exact = 0, promptTokens = 0, generatedTokens = 0
        var counts: [String: Int] = [:]
        var confusion = config.choices.isEmpty || maxNew == 0 ? nil : Confusion(labels: config.choices)
        var samples: [ModelEvaluation.Sample] = []
        var i = 0
        while i < all.count {
            let group = Array(all[i..<min(all.count, i + config.batch)])
            var refs: [String] = [], tasks: [PromptTask] = []
            for item in group {
                let first = item.targets.first!, last = item.targets.last!
                var answer = item.targets.map { item.ids[$0] }
                let tail = stopTail(&answer, stops: stops)
                refs.append(tok.decode(answer))
                var conts = [(ids: Array(item.ids[first...last]), targets: item.targets.map { $0 - first })]
                if wantChoice {
                    conts += config.choices.map { o in let ids = tok.encode(o) + tail; return (ids, Array(ids.indices)) }
                }
                tasks.append(PromptTask(prompt: Array(item.ids[..<first]), continuations: conts, maxNewTokens: maxNew))
                promptTokens += first
            }
            let results = try model.evaluate(prompts: tasks, stopTokens: stops, fastGeneration: config.fastGeneration)
            for (k, r) in results.enumerated() {
                let ref = r.scores[0], reference = refs[k]
                nll -= ref.logprobs.reduce(0, +)
                tokens += ref.logprobs.count
                hits += ref.greedyHits.filter { $0 }.count
                if ref.greedyHits.allSatisfy({ $0 }) { exact += 1 }
                var sample = ModelEvaluation.Sample(reference: reference)
                var outcome = ExampleOutcome(correct: ref.greedyHits.allSatisfy { $0 }, promptTokens: group[k].targets.first!,
                                             outputTokens: maxNew > 0 ? r.generated.count : ref.logprobs.count)
                if let c = r.meanGeneratedLogprob { outcome.confidence = c }
                if wantChoice {
                    let (best, margin) = bestChoice(r.scores.dropFirst().map { $0.logprobs.reduce(0, +) })
                    sample.choice = config.choices[best]
                    let hit = TextMetrics.normalize(config.choices[best]) == TextMetrics.normalize(reference)
                    if hit { counts["choice", default: 0] += 1 }
                    if accuracy == "choice" { outcome.correct = hit }
                    if let margin { outcome.confidence = margin }
                }
                if accuracy != nil { outcomes.append(outcome) }
                if maxNew > 0 {
                    let text = tok.decode(r.generated)
                    generatedTokens += r.generated.count
                    sample.generated = text
                    func count(_ m: String, _ ok: Bool) { if config.metrics.contains(m), ok { counts[m, default: 0] += 1 } }
                    count("contains", TextMetrics.contains(generated: text, reference: reference))
                    if let pattern { count("regex", TextMetrics.regex(generated: text, pattern: pattern)) }
                    count("json_valid", TextMetrics.jsonValid(text))
                    count("json_fields", TextMetrics.jsonFieldsMatch(generated: text, reference: reference, fields: config.jsonFields))
                    confusion?.add(actual: TextMetrics.label(reference, among: config.choices),
                                   predicted: TextMetrics.label(text, among: config.choices))
                }
                if samples.count < 8 { samples.append(sample) }
            }
            i += group.count
            progress(i, all.count)
        }
        let secs = Date().timeIntervalSince(t0), n = Double(all.count)
        var metrics: [String: Double] = [:]
        for m in config.reportedMetrics {
            switch m {
            case "loss": metrics[m] = nll / Double(tokens)
            case "perplexity": metrics[m] = exp(nll / Double(tokens))
            case "exact_match": metrics[m] = Double(exact) / n
            case "token_accuracy": metrics[m] = Double(hits) / Double(tokens)
            default: metrics[m] = Double(counts[m] ?? 0) / n
            }
        }
        var e = ModelEvaluation(role: role, model: name, examples: all.count, targetTokens: tokens, promptTokens: promptTokens,
                                generatedTokens: generatedTokens, metrics: metrics, confusion: confusion, samples: samples,
                                seconds: secs, examplesPerSecond: n / max(secs, 1e-9),
                                tokensPerSecond: Double(promptTokens + generatedTokens) / max(secs, 1e-9))
        e.outcomes = accuracy == nil ? nil : outcomes
        return e
    }
}

extension PromptResult {
    /// The greedy answer's confidence: the mean log-probability of its tokens and of the stop token that
    /// ended it (nil when nothing was generated).
    var meanGeneratedLogprob: Double? {
        generatedLogprobs.isEmpty ? nil : generatedLogprobs.reduce(0, +) / Double(generatedLogprobs.count)
    }
}
