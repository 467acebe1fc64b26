// ProductionGate — "at least as good as production": the re-tuned candidate and the current production
// artifact, evaluated on the same eval split with the same EvalConfig, compared metric by metric.
//
// Rule (docs/schedule.md): the compared metrics are those the pipeline's gate rules name (resolved:
// `accuracy` → `choice` or `exact_match`), or `loss` when the gate has no rules. For each, the
// candidate must be no worse than production: candidate ≥ production for every metric except
// `loss` and `perplexity`, where candidate ≤ production (a tolerance of 1e-9 absorbs rounding).
// The pipeline's own gate (vs its base) must have passed first: the runner stops before register otherwise.

import Foundation

public struct MetricComparison: Codable, Sendable, Equatable {
    public var metric: String
    public var candidate: Double
    public var production: Double
    /// candidate − production.
    public var delta: Double
    public var lowerIsBetter: Bool
    public var passed: Bool

    enum CodingKeys: String, CodingKey { case metric, candidate, production, delta, passed, lowerIsBetter = "lower_is_better" }
}

public enum ProductionGate {
    public static let lowerIsBetter: Set<String> = ["loss", "perplexity"]

    /// The metrics the decision reads (resolved names), in rule order without repeats.
    public static func metrics(_ config: EvalConfig) -> [String] {
        var seen = Set<String>()
        let named = config.gate.compactMap { config.resolve(gateMetric: $0.metric) }.filter { seen.insert($0).inserted }
        if !named.isEmpty { return named }
        return config.reportedMetrics.contains("loss") ? ["loss"] : Array(config.reportedMetrics.prefix(1))
    }

    public static func compare(candidate: [String: Double], production: [String: Double], config: EvalConfig) throws -> [MetricComparison] {
        try metrics(config).map { m in
            guard let c = candidate[m], let p = production[m] else {
                throw TuneError(.internal, "production gate: metric \(m) missing from an evaluation")
            }
            let lower = lowerIsBetter.contains(m)
            let ok = lower ? c <= p + 1e-9 : c >= p - 1e-9
            return MetricComparison(metric: m, candidate: c, production: p, delta: c - p, lowerIsBetter: lower, passed: ok)
        }
    }

    /// One line: `loss 1.2345 vs 1.3000 (−0.0655) ok; choice …`.
    public static func summary(_ cs: [MetricComparison]) -> String {
        cs.map { String(format: "%@ %.4f vs production %.4f (%+.4f) %@", $0.metric, $0.candidate, $0.production, $0.delta,
                        $0.passed ? "ok" : ($0.lowerIsBetter ? "worse (higher)" : "worse (lower)")) }.joined(separator: "; ")
    }
}
