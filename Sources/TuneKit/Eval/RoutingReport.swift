// RoutingReport — `eval.routing` applied to an evaluation: the served open model's per-example
// confidence and correctness against the reference's, priced per example (the open model from its
// measured throughput × hardware $/hour, the reference from its `usage` × its prices), the τ curve on
// the whole split, and τ picked on one half and reported on the other (Routing, docs/routing.md).

import Foundation

public struct RoutingReport: Codable, Sendable, Equatable {
    public var reference: String
    /// The routed open model (merged if evaluated, else the adapter, else the base) and its name.
    public var local: ModelRole
    public var localModel: String
    /// `choice_margin` or `mean_token_logprob`.
    public var confidence: String
    public var accuracyMetric: String
    /// The sweep over every example (always local … always reference), Pareto front marked.
    public var curve: [RoutingPoint]
    /// The rule τ was picked with, e.g. `target_accuracy 0.97`, and whether its bound was met on the choosing half.
    public var rule: String
    public var met: Bool
    /// The picked policy measured on the examples it was picked on (even indices) and on the others (odd).
    public var chosenOn: RoutingPoint
    public var reportedOn: RoutingPoint
    public var note: String

    enum CodingKeys: String, CodingKey {
        case reference, local, confidence, curve, rule, met, note
        case localModel = "local_model", accuracyMetric = "accuracy_metric", chosenOn = "chosen_on", reportedOn = "reported_on"
    }

    /// The picked policy's τ (nil for always local / always reference).
    public var tau: Double? { chosenOn.tau }

    /// Pairs the served model's outcomes with the reference's, example by example.
    public static func compute(_ r: RoutingConfig, config: EvalConfig, models: [ModelEvaluation]) throws -> RoutingReport {
        guard let rule = r.rule, let metric = config.resolve(gateMetric: "accuracy") else {
            throw TuneError(.invalidArgument, "eval.routing: " + (r.problems(in: config).map(\.message).first ?? "incomplete"))
        }
        guard let local = models.first(where: { $0.role == .merged }) ?? models.first(where: { $0.role == .adapter })
                ?? models.first(where: { $0.role == .base }) else {
            throw TuneError(.invalidArgument, "eval.routing: no open model was evaluated")
        }
        guard let ref = models.first(where: { $0.role == .reference && $0.model == r.reference }) else {
            throw TuneError(.invalidArgument, "eval.routing: reference \"\(r.reference)\" was not evaluated")
        }
        guard let lo = local.outcomes, let ro = ref.outcomes else {
            throw TuneError(.invalidArgument, "eval.routing: no per-example results (the accuracy metric \(metric) was not computed)")
        }
        guard lo.count == ro.count, lo.count >= 2 else {
            throw TuneError(.invalidArgument, lo.count == ro.count
                            ? "eval.routing: needs at least 2 eval examples (one to pick τ on, one to report it on), got \(lo.count)"
                            : "eval.routing: \(local.role.rawValue) answered \(lo.count) examples, reference \(r.reference) \(ro.count): they must be the same examples")
        }
        guard lo.allSatisfy({ $0.confidence != nil }) else {
            throw TuneError(.invalidArgument, "eval.routing: the \(local.role.rawValue) model has no confidence "
                            + "(a model evaluated through a chat API gives no log-probabilities)")
        }
        let costs = config.costs ?? CostConfig()
        let localPer = ModelCost.of(local, costs: costs, references: config.references, accuracyMetric: metric).perRequest
        let prices = config.references.first { $0.name == r.reference }
        let priced = prices.map { $0.inputPerMillion != nil || $0.outputPerMillion != nil } ?? false
        let xs = zip(lo, ro).map { l, x in
            RoutedExample(confidence: l.confidence!, localCorrect: l.correct, referenceCorrect: x.correct, localCost: localPer,
                          referenceCost: priced ? (Double(x.promptTokens) * (prices?.inputPerMillion ?? 0)
                                                   + Double(x.outputTokens) * (prices?.outputPerMillion ?? 0)) / 1e6 : nil)
        }
        let (chosen, reported, met) = Routing.calibrate(xs, rule)
        var note = "τ picked on the \(Routing.halves(xs).choose.count) even-indexed examples (\(rule)), reported on the \(Routing.halves(xs).report.count) odd-indexed ones"
        if !met { note += "; the bound is not met on the choosing half: the closest policy was picked" }
        if localPer == nil { note += "; unpriced: set eval.costs.hardware_per_hour for the open model's cost" }
        if !priced { note += "; unpriced: set input_per_million / output_per_million on reference \(r.reference)" }
        return RoutingReport(reference: r.reference, local: local.role, localModel: local.model,
                             confidence: metric == "choice" ? "choice_margin" : "mean_token_logprob", accuracyMetric: metric,
                             curve: Routing.sweep(xs), rule: rule.description, met: met, chosenOn: chosen, reportedOn: reported, note: note)
    }
}
