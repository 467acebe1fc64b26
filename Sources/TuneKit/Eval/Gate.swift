// Gate — the promotion decision: every bound of every rule must hold for every tuned model
// (adapter, merged); each check says which rule, on which model, and by how much it passed or failed.

import Foundation

public struct GateCheck: Codable, Sendable, Equatable {
    /// The rule's metric as written (`accuracy`) and the metric it read (`choice`).
    public var metric: String
    public var resolved: String
    public var role: ModelRole
    /// `min`, `max`, `min_delta_vs_base`, …
    public var bound: String
    public var limit: Double
    /// The compared quantity: the value, tuned − base, or tuned / base.
    public var actual: Double
    /// How far inside the bound (≥ 0: pass; < 0: fail by |margin|).
    public var margin: Double
    public var passed: Bool
    public var message: String
}

public struct GateResult: Codable, Sendable, Equatable {
    public var passed: Bool
    public var checks: [GateCheck]
    public var failures: [GateCheck] { checks.filter { !$0.passed } }
    /// One line per failed check, or a pass summary.
    public var summary: String {
        passed ? "gate passed (\(checks.count) check\(checks.count == 1 ? "" : "s"))"
               : failures.map(\.message).joined(separator: "; ")
    }
}

public enum Gate {
    /// Checks `rules` for each non-base evaluation in `models` (against the `.base` one for `_vs_base` bounds);
    /// `routed_accuracy` / `cost_per_correct` rules check `routing`'s picked policy on its held-out half.
    public static func check(_ rules: [GateRule], config: EvalConfig, models: [ModelEvaluation],
                             routing: RoutingReport? = nil) throws -> GateResult {
        let base = models.first { $0.role == .base }
        // References are compared against, never gated themselves.
        let candidates = models.filter { $0.role == .adapter || $0.role == .merged }
        guard !rules.isEmpty else { return GateResult(passed: true, checks: []) }
        guard !candidates.isEmpty else {
            throw TuneError(.invalidArgument, "the gate needs a tuned model to check (an adapter or a merged model)")
        }
        if let problem = config.gateBoundProblems().first { throw TuneError(.invalidArgument, problem) }
        var checks: [GateCheck] = []
        func add(_ rule: GateRule, _ m: String, _ role: ModelRole, _ bound: String, _ limit: Double, _ actual: Double, _ what: String) {
            let isMin = bound.hasPrefix("min")
            let margin = isMin ? actual - limit : limit - actual
            let passed = margin >= -1e-12
            let label = m == rule.metric ? m : "\(rule.metric) (\(m))"
            let msg = String(format: "%@: %@ = %.4f, %@ %@ %.4f → %@", label, what, actual, bound, isMin ? "≥" : "≤", limit,
                             passed ? "pass" : String(format: "FAIL by %.4f", -margin))
            checks.append(GateCheck(metric: rule.metric, resolved: m, role: role, bound: bound, limit: limit, actual: actual,
                                    margin: margin, passed: passed, message: msg))
        }
        for rule in rules {
            guard let m = config.resolve(gateMetric: rule.metric) else {
                throw TuneError(.invalidArgument, "gate metric \(rule.metric) is not computed (computed: \(config.reportedMetrics.joined(separator: ", ")), accuracy)")
            }
            if GateRule.routedMetrics.contains(m) {
                guard let r = routing else { throw TuneError(.invalidArgument, "gate metric \(m) reads the routed system: it needs eval.routing") }
                let p = r.reportedOn, what = "routed (\(r.local.rawValue) ⇄ \(r.reference), \(p.label), held-out half)"
                let value: Double?, lower: Double?
                if m == "routed_accuracy" { value = p.accuracy; lower = p.accuracyCI95?.lower } else { value = p.costPerCorrect; lower = nil }
                guard let v = value else {
                    throw TuneError(.invalidArgument, "gate rule \(m): the routed system's cost per correct answer is unknown (\(r.note))")
                }
                for case let (bound, limit?) in [("min", rule.min), ("max", rule.max)] { add(rule, m, r.local, bound, limit, v, what) }
                if let limit = rule.minLowerBound {
                    guard let lo = lower else { throw TuneError(.internal, "gate: the routed accuracy has no interval") }
                    add(rule, m, r.local, "min_lower_bound", limit, lo, what + " 95% lower bound")
                }
                continue
            }
            let bounds: [(String, Double?)] = [("min", rule.min), ("max", rule.max), ("min_delta_vs_base", rule.minDeltaVsBase),
                                                ("max_delta_vs_base", rule.maxDeltaVsBase), ("min_ratio_vs_base", rule.minRatioVsBase),
                                                ("max_ratio_vs_base", rule.maxRatioVsBase), ("min_lower_bound", rule.minLowerBound)]
                + rule.versus.sorted { $0.key < $1.key }.map { ($0.key, Optional($0.value)) }
            for c in candidates {
                guard let v = c.metrics[m] else { throw TuneError(.internal, "gate: metric \(m) missing from the \(c.role.rawValue) evaluation") }
                for case let (bound, limit?) in bounds {
                    let actual: Double, what: String
                    if bound == "min_lower_bound" {
                        // The Wilson interval of the proportion: right answers counted per example.
                        let outcomes = m == config.resolve(gateMetric: "accuracy") ? c.outcomes : nil
                        let k = outcomes.map { $0.filter(\.correct).count } ?? Int((v * Double(c.examples)).rounded())
                        guard let ci = Interval.wilson(successes: k, of: c.examples) else {
                            throw TuneError(.invalidArgument, "gate rule \(rule.metric).min_lower_bound: the \(c.role.rawValue) model has no examples")
                        }
                        actual = ci.lower; what = "\(c.role.rawValue) 95% lower bound (\(k)/\(c.examples))"
                    } else if let name = GateRule.versusTarget(bound) {
                        guard let ref = models.first(where: { $0.role == .reference && $0.model == name }) else {
                            throw TuneError(.invalidArgument, "gate rule \(rule.metric).\(bound) compares with eval reference \"\(name)\", which was not evaluated")
                        }
                        guard let b = ref.metrics[m] else {
                            throw TuneError(.invalidArgument, "gate rule \(rule.metric).\(bound): reference \"\(name)\" has no \(m) (a chat API gives no log-likelihoods)")
                        }
                        if bound.contains("ratio") {
                            guard b != 0 else { throw TuneError(.invalidArgument, "gate rule \(rule.metric).\(bound): the reference's \(m) is 0, a ratio is undefined") }
                            actual = v / b; what = "\(c.role.rawValue)/\(name)"
                        } else { actual = v - b; what = "\(c.role.rawValue) − \(name)" }
                    } else if bound.hasSuffix("_vs_base") {
                        guard let b = base?.metrics[m] else {
                            throw TuneError(.invalidArgument, "gate rule \(rule.metric).\(bound) compares with the base model, which was not evaluated")
                        }
                        if bound.contains("ratio") {
                            guard b != 0 else { throw TuneError(.invalidArgument, "gate rule \(rule.metric).\(bound): the base's \(m) is 0, a ratio is undefined") }
                            actual = v / b; what = "\(c.role.rawValue)/base"
                        } else { actual = v - b; what = "\(c.role.rawValue) − base" }
                    } else { actual = v; what = c.role.rawValue }
                    add(rule, m, c.role, bound, limit, actual, what)
                }
            }
        }
        return GateResult(passed: checks.allSatisfy(\.passed), checks: checks)
    }
}
