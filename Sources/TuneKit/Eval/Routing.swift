// Routing — the tuned model answers when its confidence is at least τ, else the request escalates to a
// reference model. Pure arithmetic on per-example results (docs/routing.md):
//   • point(τ): escalated = {i : cᵢ < τ}; correct = Σ_local okᵢ + Σ_escalated refOkᵢ; accuracy = correct / n
//     (with a Wilson interval); $ = Σᵢ localᵢ + Σ_escalated refᵢ (the local model always runs: its answer
//     gives the confidence), except "always reference", which never runs the local model;
//   • sweep: always local, every observed confidence above the smallest as τ, always reference; the
//     Pareto front of (accuracy ↑, $ per 1k ↓) (escalation rate ↓ when unpriced);
//   • calibration: τ is picked on the even-indexed examples and reported on the odd-indexed ones.

import Foundation

/// One eval example as routing sees it.
public struct RoutedExample: Sendable, Equatable {
    public var confidence: Double
    public var localCorrect: Bool
    public var referenceCorrect: Bool
    /// $ of answering it with the local model / the reference (nil: not priced).
    public var localCost: Double?
    public var referenceCost: Double?

    public init(confidence: Double, localCorrect: Bool, referenceCorrect: Bool, localCost: Double? = nil, referenceCost: Double? = nil) {
        self.confidence = confidence
        self.localCorrect = localCorrect
        self.referenceCorrect = referenceCorrect
        self.localCost = localCost
        self.referenceCost = referenceCost
    }
}

/// One routing policy measured on a set of examples.
public struct RoutingPoint: Codable, Sendable, Equatable {
    public enum Policy: String, Codable, Sendable { case alwaysLocal = "always_local", threshold, alwaysReference = "always_reference" }
    public var policy: Policy
    /// τ of a `threshold` policy: local when confidence ≥ τ.
    public var tau: Double?
    public var examples: Int
    public var escalated: Int
    public var correct: Int
    public var accuracy: Double
    public var accuracyCI95: Interval?
    public var escalationRate: Double
    /// $ per 1000 requests and per correct answer (nil when a price it needs is missing, or nothing is correct).
    public var costPer1k: Double?
    public var costPerCorrect: Double?
    /// Its 95% bootstrap interval (set on the picked policy's two halves only; nil when unpriced).
    public var costPerCorrectCI95: Interval?
    /// Not dominated by another point of the same sweep (accuracy ≥ and cost ≤, one strictly).
    public var pareto = false

    enum CodingKeys: String, CodingKey {
        case policy, tau, examples, escalated, correct, accuracy, pareto
        case accuracyCI95 = "accuracy_ci95", escalationRate = "escalation_rate", costPer1k = "cost_per_1k", costPerCorrect = "cost_per_correct"
        case costPerCorrectCI95 = "cost_per_correct_ci95"
    }

    /// "τ = 0.42", "always local", "always reference".
    public var label: String {
        switch policy {
        case .alwaysLocal: "always local"
        case .alwaysReference: "always reference"
        case .threshold: String(format: "τ = %.4g", tau ?? .nan)
        }
    }
}

public enum Routing {
    /// Whether an example with confidence `c` escalates under the policy.
    public static func escalates(_ c: Double, _ policy: RoutingPoint.Policy, tau: Double?) -> Bool {
        switch policy {
        case .alwaysLocal: false
        case .alwaysReference: true
        case .threshold: c < (tau ?? -.infinity)
        }
    }

    /// The policy's figures on `xs`.
    public static func point(_ xs: [RoutedExample], _ policy: RoutingPoint.Policy, tau: Double? = nil) -> RoutingPoint {
        var escalated = 0, correct = 0
        var cost: Double? = 0
        for x in xs {
            let up = escalates(x.confidence, policy, tau: tau)
            if up { escalated += 1 }
            if up ? x.referenceCorrect : x.localCorrect { correct += 1 }
            if policy != .alwaysReference { cost = zip2(cost, x.localCost).map { $0.0 + $0.1 } }
            if up { cost = zip2(cost, x.referenceCost).map { $0.0 + $0.1 } }
        }
        let n = xs.count, nn = Double(max(1, n))
        return RoutingPoint(policy: policy, tau: policy == .threshold ? tau : nil, examples: n, escalated: escalated, correct: correct,
                            accuracy: Double(correct) / nn, accuracyCI95: Interval.wilson(successes: correct, of: n),
                            escalationRate: Double(escalated) / nn, costPer1k: n == 0 ? nil : cost.map { $0 / nn * 1000 },
                            costPerCorrect: correct == 0 ? nil : cost.map { $0 / Double(correct) })
    }

    /// Always local, τ = each distinct observed confidence above the smallest (ascending: escalation grows
    /// strictly), always reference; Pareto front marked.
    public static func sweep(_ xs: [RoutedExample]) -> [RoutingPoint] {
        let taus = Array(Set(xs.map(\.confidence))).sorted().dropFirst()
        var points = [point(xs, .alwaysLocal)] + taus.map { point(xs, .threshold, tau: $0) } + [point(xs, .alwaysReference)]
        markPareto(&points)
        return points
    }

    /// Marks the points no other point dominates on (accuracy ↑, $ per 1k ↓) — on escalation rate ↓ when
    /// any point is unpriced.
    public static func markPareto(_ points: inout [RoutingPoint]) {
        let priced = points.allSatisfy { $0.costPer1k != nil }
        func cost(_ p: RoutingPoint) -> Double { priced ? p.costPer1k! : p.escalationRate }
        for i in points.indices {
            let p = points[i]
            points[i].pareto = !points.contains { q in
                q.accuracy >= p.accuracy && cost(q) <= cost(p) && (q.accuracy > p.accuracy || cost(q) < cost(p))
            }
        }
    }

    /// The point `rule` picks from a sweep, and whether the rule's bound is met (when it is not: the most
    /// accurate point for `target_accuracy`, the cheapest for `max_cost_per_1k`).
    ///   target_accuracy a: accuracy ≥ a, then cheapest (fewest escalations when unpriced);
    ///   max_escalation e:  escalation rate ≤ e, then most accurate, then cheapest;
    ///   max_cost_per_1k m: $ per 1k ≤ m, then most accurate, then cheapest.
    /// Remaining ties go to fewer escalations (earlier in the sweep).
    public static func pick(_ points: [RoutingPoint], _ rule: RoutingRule) -> (index: Int, met: Bool) {
        precondition(!points.isEmpty)
        let eps = 1e-12
        let priced = points.allSatisfy { $0.costPer1k != nil }
        func cost(_ p: RoutingPoint) -> Double { priced ? p.costPer1k! : p.escalationRate }
        /// The first index minimizing `key` (lexicographic) among `candidates`.
        func best(_ candidates: [Int], _ key: (RoutingPoint) -> [Double]) -> Int {
            candidates.min { a, b in
                let ka = key(points[a]), kb = key(points[b])
                return ka.lexicographicallyPrecedes(kb) || (ka == kb && a < b)
            }!
        }
        let all = Array(points.indices)
        let accurateThenCheap: (RoutingPoint) -> [Double] = { [-$0.accuracy, cost($0), $0.escalationRate] }
        switch rule {
        case .targetAccuracy(let a):
            let ok = all.filter { points[$0].accuracy >= a - eps }
            return ok.isEmpty ? (best(all, accurateThenCheap), false) : (best(ok) { [cost($0), $0.escalationRate] }, true)
        case .maxEscalation(let e):
            let ok = all.filter { points[$0].escalationRate <= e + eps }
            return ok.isEmpty ? (best(all) { [$0.escalationRate, -$0.accuracy] }, false) : (best(ok, accurateThenCheap), true)
        case .maxCostPer1k(let m):
            let ok = all.filter { points[$0].costPer1k.map { $0 <= m * (1 + eps) + eps } ?? false }
            return ok.isEmpty ? (best(all) { [$0.costPer1k ?? .infinity, -$0.accuracy] }, false) : (best(ok, accurateThenCheap), true)
        }
    }

    /// Calibration halves by example index: τ is chosen on the even indices, reported on the odd ones.
    public static func halves<T>(_ xs: [T]) -> (choose: [T], report: [T]) {
        (xs.enumerated().filter { $0.offset % 2 == 0 }.map(\.element), xs.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
    }

    /// Picks τ on the choosing half with `rule` and measures that policy on the reporting half.
    public static func calibrate(_ xs: [RoutedExample], _ rule: RoutingRule) -> (chosen: RoutingPoint, reported: RoutingPoint, met: Bool) {
        let (choose, report) = halves(xs)
        let points = sweep(choose)
        let (i, met) = pick(points, rule)
        var chosen = points[i], reported = point(report, chosen.policy, tau: chosen.tau)
        chosen.costPerCorrectCI95 = costPerCorrectInterval(choose, chosen)
        reported.costPerCorrectCI95 = costPerCorrectInterval(report, reported)
        return (chosen, reported, met)
    }

    /// The bootstrap interval of `p`'s cost per correct answer on `xs` (each example's own local and
    /// reference cost under the policy); nil when a cost is unpriced.
    public static func costPerCorrectInterval(_ xs: [RoutedExample], _ p: RoutingPoint) -> Interval? {
        var costs: [Double] = [], correct: [Bool] = []
        for x in xs {
            let up = escalates(x.confidence, p.policy, tau: p.tau)
            var c = 0.0
            if p.policy != .alwaysReference { guard let l = x.localCost else { return nil }; c += l }
            if up { guard let r = x.referenceCost else { return nil }; c += r }
            costs.append(c)
            correct.append(up ? x.referenceCorrect : x.localCorrect)
        }
        return Bootstrap.costPerCorrect(costs: costs, correct: correct, seed: EvalReport.bootstrapSeed)
    }
}

private func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
