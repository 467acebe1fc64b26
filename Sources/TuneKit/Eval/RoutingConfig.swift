// RoutingConfig — `eval.routing:`: answer with the tuned model when its confidence is at least τ,
// else escalate to an `eval.reference`; τ is picked by exactly one rule (docs/routing.md).
//
//     eval:
//       reference: [{name: gpt, model: gpt-4o-mini, input_per_million: 0.15, output_per_million: 0.6}]
//       routing: {reference: gpt, target_accuracy: 0.97}

import Foundation

public struct RoutingConfig: Codable, Hashable, Sendable {
    /// The `eval.reference` name escalations go to.
    public var reference: String
    /// Cheapest τ whose routed accuracy reaches this (on the choosing half).
    public var targetAccuracy: Double?
    /// Most accurate τ that escalates at most this fraction of requests.
    public var maxEscalation: Double?
    /// Most accurate τ that costs at most this many $ per 1000 requests.
    public var maxCostPer1k: Double?

    public init(reference: String, targetAccuracy: Double? = nil, maxEscalation: Double? = nil, maxCostPer1k: Double? = nil) {
        self.reference = reference
        self.targetAccuracy = targetAccuracy
        self.maxEscalation = maxEscalation
        self.maxCostPer1k = maxCostPer1k
    }

    enum CodingKeys: String, CodingKey {
        case reference
        case targetAccuracy = "target_accuracy", maxEscalation = "max_escalation", maxCostPer1k = "max_cost_per_1k"
    }

    public static let ruleKeys = ["target_accuracy", "max_escalation", "max_cost_per_1k"]

    /// The rule that picks τ.
    public var rule: RoutingRule? {
        switch (targetAccuracy, maxEscalation, maxCostPer1k) {
        case (let a?, nil, nil): .targetAccuracy(a)
        case (nil, let e?, nil): .maxEscalation(e)
        case (nil, nil, let c?): .maxCostPer1k(c)
        default: nil
        }
    }

    /// What is wrong with this routing section inside `config`, each problem with the key it is about.
    func problems(in config: EvalConfig) -> [(key: String, message: String)] {
        var out: [(String, String)] = []
        let ref = config.references.first { $0.name == reference }
        if ref == nil {
            out.append(("reference", "no eval reference named \"\(reference)\" (declared: \(config.references.map(\.name).joined(separator: ", ")))"))
        }
        if rule == nil {
            out.append(("", "give exactly one of \(Self.ruleKeys.joined(separator: ", "))"))
        }
        switch config.resolve(gateMetric: "accuracy") {
        case nil: out.append(("", "routing needs an accuracy metric: add choice or exact_match to eval.metrics"))
        case "choice" where config.choices.count < 2:
            out.append(("", "a choice confidence is the margin between the two best options: give at least two choices"))
        default: break
        }
        if maxCostPer1k != nil {
            if config.costs?.hardwarePerHour == nil { out.append(("max_cost_per_1k", "needs the open model's price: set eval.costs.hardware_per_hour")) }
            if let ref, ref.inputPerMillion == nil, ref.outputPerMillion == nil {
                out.append(("max_cost_per_1k", "needs the reference's price: set input_per_million / output_per_million on reference \"\(reference)\""))
            }
        }
        return out
    }
}

/// How τ is picked from a sweep (docs/routing.md, "Picking τ").
public enum RoutingRule: Hashable, Sendable, CustomStringConvertible {
    case targetAccuracy(Double)
    case maxEscalation(Double)
    case maxCostPer1k(Double)

    public var description: String {
        switch self {
        case .targetAccuracy(let a): String(format: "target_accuracy %.4g", a)
        case .maxEscalation(let e): String(format: "max_escalation %.4g", e)
        case .maxCostPer1k(let c): String(format: "max_cost_per_1k $%.4g", c)
        }
    }
}

extension RoutingConfig {
    /// Reads `eval.routing`; cross-checks against the rest of `config` (references, metrics, costs).
    init(_ r: YAMLReader, config: EvalConfig) {
        self.init(reference: r.string("reference", required: true) ?? "")
        func fraction(_ k: String) -> Double? { r.has(k) ? r.double(k, default: 0, range: 0...1) : nil }
        targetAccuracy = fraction("target_accuracy")
        maxEscalation = fraction("max_escalation")
        maxCostPer1k = r.has("max_cost_per_1k") ? r.double("max_cost_per_1k", default: 0, range: 0...1e12) : nil
        for p in problems(in: config) where !(p.key == "reference" && reference.isEmpty) {
            if p.key.isEmpty {
                r.report(r.node, nil, p.message, hint: p.message.hasPrefix("give exactly") ? "e.g. routing: {reference: NAME, target_accuracy: 0.97}" : nil)
            } else {
                r.report(r.value(p.key), p.key, p.message)
            }
        }
        r.finish()
    }
}
