// Cost — the open-vs-managed decision as numbers, from prices in the config and throughput measured
// by the evaluation. Every formula (with units) is in docs/eval.md, "Cost"; nothing is assumed:
// a price that is not configured leaves the figures that need it out.

import Foundation

public struct CostReport: Codable, Sendable, Equatable {
    public var inputs: CostConfig
    /// The model the serving figures describe (merged if evaluated, else the adapter, else the base).
    public var role: ModelRole
    public var trainSeconds: Double?
    /// $ = train_seconds / 3600 × train $/hour.
    public var trainingCost: Double?
    public var avgPromptTokens: Double
    public var avgOutputTokens: Double
    public var tokensPerSecond: Double
    /// $ per 1000 requests on the configured hardware at the measured throughput.
    public var servingPer1k: Double?
    /// $ per 1000 requests on the managed API.
    public var managedPer1k: Double?
    public var accuracyMetric: String?
    public var accuracy: Double?
    /// $ per correct answer = serving $ per request / accuracy.
    public var costPerCorrect: Double?
    /// Requests per month at which the open model's monthly cost equals the managed one's; nil when
    /// it never does (the open model costs as much or more per request) or prices are missing.
    public var breakEvenMonthlyRequests: Double?
    public var breakEvenNote: String
    /// $ per request and per correct answer of every evaluated model (open ones from hardware time, API
    /// ones from usage × prices).
    public var models: [ModelCost] = []
    /// The served open model against each reference, per correct answer (quality-adjusted break-even, payback).
    public var references: [ReferenceBreakEven] = []

    enum CodingKeys: String, CodingKey {
        case inputs, role, accuracy, models, references
        case trainSeconds = "train_seconds", trainingCost = "training_cost", avgPromptTokens = "avg_prompt_tokens"
        case avgOutputTokens = "avg_output_tokens", tokensPerSecond = "tokens_per_second", servingPer1k = "serving_per_1k_requests"
        case managedPer1k = "managed_per_1k_requests", accuracyMetric = "accuracy_metric", costPerCorrect = "cost_per_correct"
        case breakEvenMonthlyRequests = "break_even_monthly_requests", breakEvenNote = "break_even_note"
    }

    /// - Parameters:
    ///   - model: the evaluation whose throughput and token counts are used.
    ///   - trainSeconds: measured training time, when known.
    ///   - accuracyMetric: the metric "correct" means (choice when declared, else exact match).
    ///   - all: every evaluated model (references included), for the per-model and per-reference figures.
    public static func compute(_ c: CostConfig, model m: ModelEvaluation, trainSeconds: Double?, accuracyMetric: String?,
                               all: [ModelEvaluation] = [], references refs: [ReferenceModel] = []) -> CostReport {
        let n = Double(max(1, m.examples))
        let prompt = Double(m.promptTokens) / n
        // Output tokens: what the model generated when it generated, else the reference answer's length.
        let output = Double(m.generatedTokens > 0 ? m.generatedTokens : m.targetTokens) / n
        let tps = (Double(m.promptTokens) + Double(m.generatedTokens > 0 ? m.generatedTokens : m.targetTokens)) / max(m.seconds, 1e-9)
        let trainRate = c.trainHardwarePerHour ?? c.hardwarePerHour
        let training = zip2(trainSeconds, trainRate).map { $0 / 3600 * $1 }
        let serving = c.hardwarePerHour.map { (prompt + output) / tps / 3600 * $0 * 1000 }
        var managed: Double? = nil
        if c.managedInputPerMillion != nil || c.managedOutputPerMillion != nil {
            managed = (prompt * (c.managedInputPerMillion ?? 0) + output * (c.managedOutputPerMillion ?? 0)) / 1e6 * 1000
        }
        let acc = accuracyMetric.flatMap { m.metrics[$0] }
        let perCorrect = zip2(serving, acc).flatMap { s, a in a > 0 ? s / 1000 / a : nil }
        var breakEven: Double? = nil
        var note: String
        if let s = serving, let g = managed {
            let fixed = (c.monthlyFixed ?? 0) + (training ?? 0) / c.amortizeMonths
            let saving = (g - s) / 1000            // $ saved per request by the open model
            if saving > 0 {
                breakEven = fixed / saving
                note = String(format: "open model cheaper above %.0f requests/month (fixed $%.2f/month ÷ $%.6f saved per request)", fixed / saving, fixed, saving)
            } else {
                note = String(format: "never: the open model costs $%.6f per request, the managed one $%.6f", s / 1000, g / 1000)
            }
        } else {
            note = "needs hardware_per_hour and a managed price (managed_input_per_million / managed_output_per_million)"
        }
        var report = CostReport(inputs: c, role: m.role, trainSeconds: trainSeconds, trainingCost: training, avgPromptTokens: prompt,
                                avgOutputTokens: output, tokensPerSecond: tps, servingPer1k: serving, managedPer1k: managed,
                                accuracyMetric: acc == nil ? nil : accuracyMetric, accuracy: acc, costPerCorrect: perCorrect,
                                breakEvenMonthlyRequests: breakEven, breakEvenNote: note)
        report.models = all.map { ModelCost.of($0, costs: c, references: refs, accuracyMetric: accuracyMetric) }
        let open = ModelCost.of(m, costs: c, references: refs, accuracyMetric: accuracyMetric)
        report.references = report.models.filter { $0.role == .reference }.map {
            ReferenceBreakEven.compute(open: open, reference: $0, costs: c, trainingCost: training)
        }
        return report
    }
}

/// One model's price per request and per correct answer.
public struct ModelCost: Codable, Sendable, Equatable {
    public var role: ModelRole
    public var model: String
    /// `hardware` (measured throughput × $/hour) or `usage` (API usage × $/1M tokens).
    public var basis: String
    public var avgPromptTokens: Double
    public var avgOutputTokens: Double
    /// $ per request; nil when the prices it needs are not configured.
    public var perRequest: Double?
    public var accuracy: Double?
    /// $ per correct answer = per request / accuracy (nil when accuracy is 0 or unknown).
    public var costPerCorrect: Double?
    /// Its 95% bootstrap interval over the examples (each example's own tokens priced; Bootstrap.costPerCorrect).
    public var costPerCorrectCI95: Interval?

    enum CodingKeys: String, CodingKey {
        case role, model, basis, accuracy
        case avgPromptTokens = "avg_prompt_tokens", avgOutputTokens = "avg_output_tokens"
        case perRequest = "per_request", costPerCorrect = "cost_per_correct", costPerCorrectCI95 = "cost_per_correct_ci95"
    }

    /// Open models: (p + o) / r / 3600 × hardware $/hour with the model's own measured r; API models
    /// (references, a managed adapter): (p × in + o × out) / 10⁶ with p, o from the API's usage.
    public static func of(_ m: ModelEvaluation, costs c: CostConfig, references: [ReferenceModel], accuracyMetric: String?) -> ModelCost {
        let n = Double(max(1, m.examples))
        let acc = accuracyMetric.flatMap { m.metrics[$0] }
        if m.apiModel != nil || m.role == .reference {
            let p = Double(m.promptTokens) / n, o = Double(m.generatedTokens) / n
            let prices: (Double?, Double?) = m.role == .reference
                ? references.first { $0.name == m.model }.map { ($0.inputPerMillion, $0.outputPerMillion) } ?? (nil, nil)
                : (c.managedInputPerMillion, c.managedOutputPerMillion)
            let unpriced = prices.0 == nil && prices.1 == nil
            let per = unpriced ? nil : (p * (prices.0 ?? 0) + o * (prices.1 ?? 0)) / 1e6
            var cost = ModelCost(role: m.role, model: m.model, basis: "usage", avgPromptTokens: p, avgOutputTokens: o, perRequest: per,
                                 accuracy: acc, costPerCorrect: zip2(per, acc).flatMap { $1 > 0 ? $0 / $1 : nil })
            if !unpriced, let outcomes = m.outcomes {
                cost.costPerCorrectCI95 = Bootstrap.costPerCorrect(
                    costs: outcomes.map { (Double($0.promptTokens) * (prices.0 ?? 0) + Double($0.outputTokens) * (prices.1 ?? 0)) / 1e6 },
                    correct: outcomes.map(\.correct), seed: EvalReport.bootstrapSeed)
            }
            return cost
        }
        let outTokens = Double(m.generatedTokens > 0 ? m.generatedTokens : m.targetTokens)
        let p = Double(m.promptTokens) / n, o = outTokens / n
        let tps = (Double(m.promptTokens) + outTokens) / max(m.seconds, 1e-9)
        let per = c.hardwarePerHour.map { (p + o) / tps / 3600 * $0 }
        var cost = ModelCost(role: m.role, model: m.model, basis: "hardware", avgPromptTokens: p, avgOutputTokens: o, perRequest: per,
                             accuracy: acc, costPerCorrect: zip2(per, acc).flatMap { $1 > 0 ? $0 / $1 : nil })
        if let hourly = c.hardwarePerHour, let outcomes = m.outcomes {
            // Each example at the model's measured rate: its own prompt and output tokens.
            cost.costPerCorrectCI95 = Bootstrap.costPerCorrect(
                costs: outcomes.map { Double($0.promptTokens + $0.outputTokens) / tps / 3600 * hourly },
                correct: outcomes.map(\.correct), seed: EvalReport.bootstrapSeed)
        }
        return cost
    }
}

/// The served open model against one reference, per correct answer (docs/eval.md, "Break-even per correct answer").
public struct ReferenceBreakEven: Codable, Sendable, Equatable {
    public var reference: String
    public var open: ModelRole
    /// $ per request of the open model (c_o) and of the reference (c_r); accuracies a_o, a_r.
    public var openPerRequest: Double?
    public var referencePerRequest: Double?
    public var openAccuracy: Double?
    public var referenceAccuracy: Double?
    /// q = c_r × a_o / a_r: what the reference costs for as many correct answers as one open request gives.
    public var referenceEquivalentPerRequest: Double?
    /// $/month independent of volume: monthly_fixed + training / amortize_months.
    public var fixedMonthly: Double?
    /// V* = fixed / (q − c_o): above V* requests/month the open model is cheaper per correct answer.
    public var breakEvenMonthlyRequests: Double?
    /// At `costs.monthly_requests` V: months until the training cost is paid back, T / (V × (q − c_o) − monthly_fixed).
    public var paybackMonths: Double?
    public var note: String

    enum CodingKeys: String, CodingKey {
        case reference, open, note
        case openPerRequest = "open_per_request", referencePerRequest = "reference_per_request"
        case openAccuracy = "open_accuracy", referenceAccuracy = "reference_accuracy"
        case referenceEquivalentPerRequest = "reference_equivalent_per_request", fixedMonthly = "fixed_monthly"
        case breakEvenMonthlyRequests = "break_even_monthly_requests", paybackMonths = "payback_months"
    }

    public static func compute(open o: ModelCost, reference r: ModelCost, costs c: CostConfig, trainingCost: Double?) -> ReferenceBreakEven {
        var b = ReferenceBreakEven(reference: r.model, open: o.role, openPerRequest: o.perRequest, referencePerRequest: r.perRequest,
                                   openAccuracy: o.accuracy, referenceAccuracy: r.accuracy, note: "")
        guard let co = o.perRequest, let cr = r.perRequest, let ao = o.accuracy, let ar = r.accuracy else {
            b.note = o.perRequest == nil ? "needs costs.hardware_per_hour (the open model's price)"
                   : r.perRequest == nil ? "needs the reference's input_per_million / output_per_million" : "needs an accuracy metric"
            return b
        }
        let fixed = (c.monthlyFixed ?? 0) + (trainingCost ?? 0) / c.amortizeMonths
        b.fixedMonthly = fixed
        guard ao > 0 else { b.note = "never: the open model answers nothing correctly"; return b }
        guard ar > 0 else {
            b.breakEvenMonthlyRequests = 0
            b.note = "the reference answers nothing correctly: the open model is cheaper per correct answer at any volume"
            return b
        }
        let q = cr * ao / ar, saving = q - co
        b.referenceEquivalentPerRequest = q
        guard saving > 0 else {
            b.note = String(format: "never: per correct answer the open model costs $%.6f, the reference $%.6f", co / ao, cr / ar)
            return b
        }
        b.breakEvenMonthlyRequests = fixed / saving
        b.note = String(format: "open model cheaper per correct answer above %.0f requests/month ($%.2f/month fixed ÷ $%.6f saved per request)",
                        fixed / saving, fixed, saving)
        if let v = c.monthlyRequests {
            let margin = v * saving - (c.monthlyFixed ?? 0)
            if let t = trainingCost, margin > 0 {
                b.paybackMonths = t / margin
                b.note += String(format: "; at %.0f requests/month training pays back in %.2f months", v, t / margin)
            } else if trainingCost == nil {
                b.note += "; payback needs the training cost (train seconds and a hardware price)"
            } else {
                b.note += String(format: "; at %.0f requests/month the open model never pays back its training", v)
            }
        }
        return b
    }
}

private func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
