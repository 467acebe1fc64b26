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

    enum CodingKeys: String, CodingKey {
        case inputs, role, accuracy
        case trainSeconds = "train_seconds", trainingCost = "training_cost", avgPromptTokens = "avg_prompt_tokens"
        case avgOutputTokens = "avg_output_tokens", tokensPerSecond = "tokens_per_second", servingPer1k = "serving_per_1k_requests"
        case managedPer1k = "managed_per_1k_requests", accuracyMetric = "accuracy_metric", costPerCorrect = "cost_per_correct"
        case breakEvenMonthlyRequests = "break_even_monthly_requests", breakEvenNote = "break_even_note"
    }

    /// - Parameters:
    ///   - model: the evaluation whose throughput and token counts are used.
    ///   - trainSeconds: measured training time, when known.
    ///   - accuracyMetric: the metric "correct" means (choice when declared, else exact match).
    public static func compute(_ c: CostConfig, model m: ModelEvaluation, trainSeconds: Double?, accuracyMetric: String?) -> CostReport {
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
        return CostReport(inputs: c, role: m.role, trainSeconds: trainSeconds, trainingCost: training, avgPromptTokens: prompt,
                          avgOutputTokens: output, tokensPerSecond: tps, servingPer1k: serving, managedPer1k: managed,
                          accuracyMetric: acc == nil ? nil : accuracyMetric, accuracy: acc, costPerCorrect: perCorrect,
                          breakEvenMonthlyRequests: breakEven, breakEvenNote: note)
    }
}

private func zip2<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
