// Evaluator — held-out metrics of a model (base, or base + adapter) on a prepared eval split:
//   loss / perplexity over the target (masked) tokens, and exact match = greedy decoding reproduces
//   the reference answer token for token, end-of-turn token included.
// Both come from ONE teacher-forced forward per example: greedy decoding emits the reference iff
// the reference token is the argmax at every target position (each step conditions on the same
// prefix either way), so no generation loop is needed. The LM head runs only on target rows.

import Foundation

public struct ModelEvaluation: Codable, Sendable, Equatable {
    public var model: String
    public var examples: Int
    public var targetTokens: Int
    public var loss: Double
    public var perplexity: Double
    /// Fraction of examples whose greedy answer equals the reference exactly.
    public var exactMatch: Double
    /// Fraction of target tokens that are the greedy choice.
    public var tokenAccuracy: Double
    public var seconds: Double
    public var examplesPerSecond: Double
}

public struct EvalComparison: Codable, Sendable {
    public var base: ModelEvaluation
    public var tuned: ModelEvaluation?
    public var gate: GateResult?

    public init(base: ModelEvaluation, tuned: ModelEvaluation?, gate: GateResult? = nil) {
        self.base = base
        self.tuned = tuned
        self.gate = gate
    }

    public struct GateResult: Codable, Sendable, Equatable {
        public var metric: String
        public var minDelta: Double
        public var delta: Double
        public var passed: Bool
        public var message: String
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

    /// Evaluates `model` on `examples` in batches of `batch` sequences.
    public static func evaluate(model: LlamaModel, name: String, examples: [DatasetExample], batch: Int = 8,
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> ModelEvaluation {
        let all = items(examples)
        guard !all.isEmpty else { throw TuneError(.invalidArgument, "evaluation: no eval example has target tokens") }
        let t0 = Date()
        var nll = 0.0, tokens = 0, hits = 0, exact = 0, done = 0
        var i = 0
        while i < all.count {
            let group = Array(all[i..<min(all.count, i + max(1, batch))])
            for s in try model.scoreTargets(group) {
                nll -= s.logprobs.reduce(0, +)
                tokens += s.logprobs.count
                hits += s.greedyHits.filter { $0 }.count
                if s.greedyHits.allSatisfy({ $0 }) { exact += 1 }
            }
            i += group.count
            done += group.count
            progress(done, all.count)
        }
        let secs = Date().timeIntervalSince(t0)
        let loss = nll / Double(tokens)
        return ModelEvaluation(model: name, examples: all.count, targetTokens: tokens, loss: loss, perplexity: exp(loss),
                               exactMatch: Double(exact) / Double(all.count), tokenAccuracy: Double(hits) / Double(tokens),
                               seconds: secs, examplesPerSecond: Double(all.count) / max(secs, 1e-9))
    }

    /// The metric value a gate reads (`exact_match`, `token_accuracy`; `loss`/`perplexity` count as
    /// negative so that "higher is better" holds for every gate).
    public static func metric(_ name: String, of e: ModelEvaluation) throws -> Double {
        switch name {
        case "exact_match": e.exactMatch
        case "token_accuracy": e.tokenAccuracy
        case "loss": -e.loss
        case "perplexity": -e.perplexity
        default: throw TuneError(.invalidArgument, "gate metric \(name) is not computed by this version of tune (exact_match, token_accuracy, loss, perplexity are)")
        }
    }

    /// tuned − base on `metric` must be at least `minDelta`.
    public static func gate(metric: String, minDelta: Double, base: ModelEvaluation, tuned: ModelEvaluation) throws -> EvalComparison.GateResult {
        let delta = try Self.metric(metric, of: tuned) - Self.metric(metric, of: base)
        let passed = delta >= minDelta
        let msg = String(format: "%@: tuned − base = %+.4f, required ≥ %+.4f → %@", metric, delta, minDelta, passed ? "pass" : "FAIL")
        return .init(metric: metric, minDelta: minDelta, delta: delta, passed: passed, message: msg)
    }

    /// A Markdown table of the evaluations.
    public static func markdown(_ c: EvalComparison) -> String {
        var rows = ["| model | examples | loss | perplexity | exact match | token accuracy | examples/s |",
                    "|---|---:|---:|---:|---:|---:|---:|"]
        for e in [c.base] + (c.tuned.map { [$0] } ?? []) {
            rows.append(String(format: "| %@ | %d | %.4f | %.2f | %.1f%% | %.1f%% | %.1f |", e.model, e.examples, e.loss,
                               e.perplexity, 100 * e.exactMatch, 100 * e.tokenAccuracy, e.examplesPerSecond))
        }
        if let g = c.gate { rows.append("\nGate: \(g.message)") }
        return rows.joined(separator: "\n") + "\n"
    }
}
