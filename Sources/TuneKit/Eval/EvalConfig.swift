// EvalConfig — what an evaluation computes (metrics, options, patterns), the promotion gate and the
// optional cost inputs: the frozen value behind a pipeline's `eval:` section and `tune eval` flags.
// Fields and semantics: docs/eval.md.

import Foundation

public struct EvalConfig: Codable, Hashable, Sendable {
    /// Declared metrics (`EvalConfig.knownMetrics`).
    public var metrics: [String] = ["loss", "exact_match"]
    public var maxNewTokens = 32
    /// `exact_generation: true`: greedy generation on the exact float32 path. nil/false: the fast path
    /// (int8 decode steps, bf16-product batched steps where the CPU gains from it; docs/PERFORMANCE.md has
    /// the drift). Scores (loss, choice, exact_match) are always exact. Optional so that stored configs
    /// without it read back, and keep their hash.
    public var exactGeneration: Bool?
    /// Sequences per batched forward.
    public var batch = 8
    /// Only the first `limit` eval examples (lm-eval-harness's `--limit`): quick checks and smoke runs.
    /// The report's `examples` count says how many were used.
    public var limit: Int?
    /// Answer options: `choice` scores each as the assistant answer; also the classes of the confusion matrix.
    public var choices: [String] = []
    /// `regex`: the generated answer contains a match of this pattern.
    public var regex: String?
    /// `json_fields`: these top-level fields of the generated JSON equal the reference's.
    public var jsonFields: [String] = []
    public var gate: [GateRule] = []
    public var costs: CostConfig?
    /// Models reached through an OpenAI-compatible chat-completions API, evaluated beside base/adapter/merged
    /// (`eval.reference`, docs/eval.md "Reference models").
    public var references: [ReferenceModel] = []
    /// Confidence routing between the tuned model and one reference (`eval.routing`, docs/routing.md).
    public var routing: RoutingConfig?

    public init() {}

    /// Whether greedy generation takes the fast path: `exact_generation` not set, and no routing (a router's
    /// confidence must be what the served router computes for one request, and the fast path's arithmetic
    /// depends on how many sequences share a step; the exact path's does not).
    public var fastGeneration: Bool { exactGeneration != true && routing == nil }

    /// Metrics a reference (or managed) model reports: the declared ones a chat API can give.
    public var apiMetrics: [String] { reportedMetrics.filter { !ManagedEvaluator.unavailableMetrics.contains($0) } }

    /// `examples` cut to `limit` (order kept: the prepared eval split is already a deterministic sample).
    public func limited<T>(_ examples: [T]) -> [T] {
        guard let limit, limit < examples.count else { return examples }
        return Array(examples.prefix(limit))
    }

    public static let knownMetrics = ["loss", "perplexity", "exact_match", "token_accuracy", "contains", "regex",
                                      "json_valid", "json_fields", "choice"]
    /// Metrics that need greedy generation.
    public static let generationMetrics: Set<String> = ["contains", "regex", "json_valid", "json_fields"]

    /// Whether greedy generation runs (a generation metric is declared, `choices` for the confusion matrix, or
    /// routing without `choice`: the confidence is then the greedy answer's mean token log-prob).
    public var generates: Bool {
        !choices.isEmpty || metrics.contains { Self.generationMetrics.contains($0) } || (routing != nil && !metrics.contains("choice"))
    }

    /// The metric keys a report carries for this config (declared ones plus their companions).
    public var reportedMetrics: [String] {
        var out: [String] = []
        for m in metrics {
            switch m {
            case "loss", "perplexity": out += ["loss", "perplexity"]
            case "exact_match", "token_accuracy": out += ["exact_match", "token_accuracy"]
            default: out.append(m)
            }
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Checks what the YAML reader checks, for configs assembled from flags; all problems in one error.
    public func validate() throws {
        var problems: [String] = []
        for m in metrics where !Self.knownMetrics.contains(m) {
            problems.append("unknown metric \"\(m)\" (known: \(Self.knownMetrics.joined(separator: ", ")))")
        }
        if metrics.contains("choice"), choices.isEmpty { problems.append("metric choice needs answer options (--choices a,b,c or choices: in the config)") }
        if metrics.contains("regex"), regex == nil { problems.append("metric regex needs a pattern (--regex)") }
        if let r = regex, (try? NSRegularExpression(pattern: r)) == nil { problems.append("regex \"\(r)\" is not a valid regular expression") }
        if metrics.contains("json_fields"), jsonFields.isEmpty { problems.append("metric json_fields needs fields (--json-field)") }
        if maxNewTokens < 1 { problems.append("max new tokens must be positive, got \(maxNewTokens)") }
        if batch < 1 { problems.append("batch must be positive, got \(batch)") }
        for g in gate where resolve(gateMetric: g.metric) == nil {
            problems.append(GateRule.routedMetrics.contains(g.metric)
                            ? "gate metric \(g.metric) reads the routed system: it needs eval.routing"
                            : "gate metric \(g.metric) is not computed (computed: \((reportedMetrics + ["accuracy"]).joined(separator: ", ")))")
        }
        problems += referenceProblems() + gateBoundProblems()
        problems += (routing?.problems(in: self) ?? []).map { "eval.routing\($0.key.isEmpty ? "" : ".\($0.key)"): \($0.message)" }
        guard problems.isEmpty else { throw TuneError(.invalidArgument, problems.joined(separator: "; ")) }
    }

    /// Duplicate reference names, and gate bounds against a reference that is not declared or on a metric a
    /// chat API cannot give.
    func referenceProblems() -> [String] {
        var problems: [String] = [], seen = Set<String>()
        for r in references where !seen.insert(r.name).inserted { problems.append("eval reference \"\(r.name)\" is declared twice") }
        for g in gate {
            for name in g.versus.keys.compactMap(GateRule.versusTarget) {
                if !references.contains(where: { $0.name == name }) {
                    problems.append("gate rule \(g.metric): no eval reference named \"\(name)\" (declared: \(references.map(\.name).joined(separator: ", ")))")
                } else if let m = resolve(gateMetric: g.metric), ManagedEvaluator.unavailableMetrics.contains(m) {
                    problems.append("gate rule \(g.metric) vs \(name): a reference is evaluated through a chat API, which gives no \(m)")
                }
            }
        }
        return problems
    }

    /// The metric a gate name reads: `accuracy` is `choice` when declared, else `exact_match`;
    /// `routed_accuracy` and `cost_per_correct` read the routed system when `routing` is set.
    public func resolve(gateMetric m: String) -> String? {
        if GateRule.routedMetrics.contains(m) { return routing != nil ? m : nil }
        let name = m == "accuracy" ? (metrics.contains("choice") ? "choice" : "exact_match") : m
        return reportedMetrics.contains(name) ? name : nil
    }

    /// Gate rules whose bounds do not fit their metric: `min_lower_bound` on a metric that is not a
    /// proportion of examples, bounds against the base or a reference on the routed system.
    func gateBoundProblems() -> [String] {
        var problems: [String] = []
        for g in gate {
            guard let m = resolve(gateMetric: g.metric) else { continue }
            if g.minLowerBound != nil, !GateRule.proportionMetrics.contains(m) {
                problems.append("gate rule \(g.metric): min_lower_bound needs a proportion of examples (\(GateRule.proportionMetrics.sorted().joined(separator: ", "))), not \(m)")
            }
            if GateRule.routedMetrics.contains(m), [g.minDeltaVsBase, g.maxDeltaVsBase, g.minRatioVsBase, g.maxRatioVsBase].contains(where: { $0 != nil }) || !g.versus.isEmpty {
                problems.append("gate rule \(g.metric): the routed system takes min, max\(m == "routed_accuracy" ? ", min_lower_bound" : ""), not bounds against the base or a reference")
            }
        }
        return problems
    }
}

/// One promotion rule on one metric; every bound given must hold for every tuned model.
public struct GateRule: Codable, Hashable, Sendable {
    public var metric: String
    public var min: Double?
    public var max: Double?
    /// tuned − base ≥ this.
    public var minDeltaVsBase: Double?
    /// tuned − base ≤ this.
    public var maxDeltaVsBase: Double?
    /// tuned / base ≥ this.
    public var minRatioVsBase: Double?
    /// tuned / base ≤ this.
    public var maxRatioVsBase: Double?
    /// The lower end of the 95% Wilson interval ≥ this (per-example proportions only).
    public var minLowerBound: Double?
    /// Bounds against a reference model, by bound name: `min_delta_vs_NAME`, `max_delta_vs_NAME`,
    /// `min_ratio_vs_NAME`, `max_ratio_vs_NAME` (NAME an `eval.reference` name) → limit.
    public var versus: [String: Double] = [:]

    public init(metric: String, min: Double? = nil, max: Double? = nil, minDeltaVsBase: Double? = nil,
                maxDeltaVsBase: Double? = nil, minRatioVsBase: Double? = nil, maxRatioVsBase: Double? = nil) {
        self.metric = metric
        self.min = min
        self.max = max
        self.minDeltaVsBase = minDeltaVsBase
        self.maxDeltaVsBase = maxDeltaVsBase
        self.minRatioVsBase = minRatioVsBase
        self.maxRatioVsBase = maxRatioVsBase
    }

    enum CodingKeys: String, CodingKey {
        case metric, min, max
        case minDeltaVsBase = "min_delta_vs_base", maxDeltaVsBase = "max_delta_vs_base"
        case minRatioVsBase = "min_ratio_vs_base", maxRatioVsBase = "max_ratio_vs_base"
        case minLowerBound = "min_lower_bound"
        case versus = "vs_reference"
    }

    /// The reference a `{min,max}_{delta,ratio}_vs_NAME` bound names (nil for other bounds and for `_vs_base`).
    public static func versusTarget(_ bound: String) -> String? {
        for prefix in ["min_delta_vs_", "max_delta_vs_", "min_ratio_vs_", "max_ratio_vs_"] where bound.hasPrefix(prefix) {
            let name = String(bound.dropFirst(prefix.count))
            return name == "base" || !ReferenceModel.isValidName(name) ? nil : name
        }
        return nil
    }

    public static let boundNames = ["min", "max", "min_delta_vs_base", "max_delta_vs_base", "min_ratio_vs_base", "max_ratio_vs_base",
                                    "min_lower_bound"]

    /// Metrics that are a proportion of examples, so a Wilson interval (and `min_lower_bound`) applies.
    public static let proportionMetrics: Set<String> = ["exact_match", "contains", "regex", "json_valid", "choice", "routed_accuracy"]

    /// Gate metrics on the routed system (`eval.routing`), measured on the held-out half.
    public static let routedMetrics = ["routed_accuracy", "cost_per_correct"]

    /// The old `{metric, min_delta}` form: improvement of at least `minDelta` (for loss/perplexity, a decrease).
    public static func legacy(metric: String, minDelta: Double) -> GateRule {
        ["loss", "perplexity"].contains(metric) ? GateRule(metric: metric, maxDeltaVsBase: -minDelta)
                                                : GateRule(metric: metric, minDeltaVsBase: minDelta)
    }

    mutating func set(_ bound: String, _ v: Double) {
        switch bound {
        case "min": min = v
        case "max": max = v
        case "min_delta_vs_base": minDeltaVsBase = v
        case "max_delta_vs_base": maxDeltaVsBase = v
        case "min_ratio_vs_base": minRatioVsBase = v
        case "max_ratio_vs_base": maxRatioVsBase = v
        case "min_lower_bound": minLowerBound = v
        default: versus[bound] = v
        }
    }

    /// Parses the CLI form `METRIC:BOUND=VALUE[,BOUND=VALUE…]`, e.g. `accuracy:min=0.9,min_delta_vs_base=0.05`.
    public static func parse(_ s: String) throws -> GateRule {
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw TuneError(.invalidArgument, "gate rule \"\(s)\": expected METRIC:BOUND=VALUE[,BOUND=VALUE], e.g. accuracy:min=0.9,min_delta_vs_base=0.05")
        }
        var rule = GateRule(metric: parts[0])
        for kv in parts[1].split(separator: ",") {
            let p = kv.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard p.count == 2, boundNames.contains(p[0]) || versusTarget(p[0]) != nil, let v = Double(p[1]), v.isFinite else {
                throw TuneError(.invalidArgument, "gate rule \"\(s)\": \"\(kv)\" is not BOUND=NUMBER with BOUND one of \(boundNames.joined(separator: ", ")) or min_delta_vs_REF, max_delta_vs_REF, min_ratio_vs_REF, max_ratio_vs_REF")
            }
            rule.set(p[0], v)
        }
        return rule
    }
}

/// Prices, all optional; only what is given is reported (docs/eval.md, "Cost").
public struct CostConfig: Codable, Hashable, Sendable {
    /// $ per hour of the machine that serves the tuned model (and trains it, unless `trainHardwarePerHour`).
    public var hardwarePerHour: Double?
    public var trainHardwarePerHour: Double?
    /// $ per month that the open model costs regardless of volume (reserved machine, ops).
    public var monthlyFixed: Double?
    /// Managed (closed) model prices, $ per 1M tokens.
    public var managedInputPerMillion: Double?
    public var managedOutputPerMillion: Double?
    /// Months over which the training cost is spread in the break-even (default 1: all in the first month).
    public var amortizeMonths: Double = 1
    /// Expected requests per month: the volume at which the payback period against each reference is given.
    public var monthlyRequests: Double?

    public init(hardwarePerHour: Double? = nil, trainHardwarePerHour: Double? = nil, monthlyFixed: Double? = nil,
                managedInputPerMillion: Double? = nil, managedOutputPerMillion: Double? = nil, amortizeMonths: Double = 1) {
        self.hardwarePerHour = hardwarePerHour
        self.trainHardwarePerHour = trainHardwarePerHour
        self.monthlyFixed = monthlyFixed
        self.managedInputPerMillion = managedInputPerMillion
        self.managedOutputPerMillion = managedOutputPerMillion
        self.amortizeMonths = amortizeMonths
    }

    public init(hardwarePerHour: Double? = nil, trainHardwarePerHour: Double? = nil, monthlyFixed: Double? = nil,
                managedInputPerMillion: Double? = nil, managedOutputPerMillion: Double? = nil, amortizeMonths: Double = 1,
                monthlyRequests: Double?) {
        self.init(hardwarePerHour: hardwarePerHour, trainHardwarePerHour: trainHardwarePerHour, monthlyFixed: monthlyFixed,
                  managedInputPerMillion: managedInputPerMillion, managedOutputPerMillion: managedOutputPerMillion, amortizeMonths: amortizeMonths)
        self.monthlyRequests = monthlyRequests
    }

    enum CodingKeys: String, CodingKey {
        case hardwarePerHour = "hardware_per_hour", trainHardwarePerHour = "train_hardware_per_hour"
        case monthlyFixed = "monthly_fixed", managedInputPerMillion = "managed_input_per_million"
        case managedOutputPerMillion = "managed_output_per_million", amortizeMonths = "amortize_months"
        case monthlyRequests = "monthly_requests"
    }
}
