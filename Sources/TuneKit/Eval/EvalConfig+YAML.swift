// EvalConfig+YAML — reads an `eval:` mapping (pipeline section, or a file given to `tune eval`)
// with positioned diagnostics; the old `gate: {metric, min_delta}` form is still accepted.

import Foundation
import Yams

extension EvalConfig {
    init(_ r: YAMLReader) {
        self.init()
        metrics = r.strings("metrics", default: metrics)
        for m in metrics where !Self.knownMetrics.contains(m) {
            let hint = didYouMean(m, among: Self.knownMetrics).map { "did you mean \"\($0)\"?" }
            r.report(r.value("metrics"), "metrics", "unknown metric \"\(m)\"; expected some of \(Self.knownMetrics.joined(separator: ", "))", hint: hint)
        }
        maxNewTokens = r.int("max_new_tokens", default: 32, min: 1)
        batch = r.int("batch", default: 8, min: 1, max: 256)
        if r.has("exact_generation") { exactGeneration = r.bool("exact_generation", default: false) }
        limit = r.has("limit") ? r.int("limit", default: 1, min: 1) : nil
        choices = r.strings("choices")
        regex = r.string("regex")
        jsonFields = r.strings("json_fields")
        if metrics.contains("choice"), choices.isEmpty {
            r.report(r.value("metrics"), "metrics", "metric \"choice\" needs the answer options", hint: "add choices: [label_a, label_b, …]")
        }
        if metrics.contains("regex"), regex == nil {
            r.report(r.value("metrics"), "metrics", "metric \"regex\" needs a pattern", hint: "add regex: \"^[a-z_]+$\"")
        }
        if let p = regex, (try? NSRegularExpression(pattern: p)) == nil {
            r.report(r.value("regex"), "regex", "not a valid regular expression: \"\(p)\"")
        }
        if metrics.contains("json_fields"), jsonFields.isEmpty {
            r.report(r.value("metrics"), "metrics", "metric \"json_fields\" needs the fields to compare", hint: "add json_fields: [label]")
        }
        references = r.objects("reference").map { ReferenceModel($0) }
        if let c = r.object("costs") { costs = CostConfig(c) }
        if let rt = r.object("routing") { routing = RoutingConfig(rt, config: self) }
        if let g = r.object("gate") { gate = Self.gateRules(g, config: self) }
        for p in referenceProblems() + gateBoundProblems() {
            r.report(r.value(p.hasPrefix("gate") ? "gate" : "reference"), p.hasPrefix("gate") ? "gate" : "reference", p)
        }
        r.finish()
    }

    /// `gate:` either `{metric: M, min_delta: D}` (old form) or `{METRIC: {BOUND: VALUE, …}, …}`.
    static func gateRules(_ g: YAMLReader, config: EvalConfig) -> [GateRule] {
        if g.has("metric") {
            let metric = g.string("metric", required: true) ?? ""
            if !config.metrics.contains(metric) {
                g.report(g.value("metric"), "metric", "gate metric \"\(metric)\" is not among eval.metrics",
                         hint: "add it to metrics: [\((config.metrics + [metric]).joined(separator: ", "))]")
            }
            let d = g.double("min_delta", default: 0, range: -1e6...1e6)
            g.finish()
            return [.legacy(metric: metric, minDelta: d)]
        }
        var rules: [GateRule] = []
        for (k, _) in g.node?.mapping ?? [:] {
            guard let name = k.string, let sub = g.object(name) else { continue }
            if config.resolve(gateMetric: name) == nil, GateRule.routedMetrics.contains(name) {
                g.report(g.value(name), name, "gate metric \"\(name)\" reads the routed system", hint: "add eval.routing: {reference: NAME, target_accuracy: 0.95}")
            } else if config.resolve(gateMetric: name) == nil {
                let known = config.reportedMetrics + ["accuracy"] + (config.routing != nil ? GateRule.routedMetrics : [])
                g.report(g.value(name), name, "gate metric \"\(name)\" is not computed by eval.metrics (computed: \(known.joined(separator: ", ")))",
                         hint: didYouMean(name, among: known).map { "did you mean \"\($0)\"?" } ?? "add it to eval.metrics")
            }
            var rule = GateRule(metric: name)
            for b in GateRule.boundNames where sub.has(b) { rule.set(b, sub.double(b, default: 0)) }
            for (bk, _) in sub.node?.mapping ?? [:] {
                guard let b = bk.string, GateRule.versusTarget(b) != nil else { continue }
                rule.set(b, sub.double(b, default: 0))
            }
            if GateRule.boundNames.allSatisfy({ !sub.has($0) }), rule.versus.isEmpty, sub.node?.mapping != nil {
                sub.report(sub.node, nil, "a gate rule needs at least one bound", hint: "one of \(GateRule.boundNames.joined(separator: ", "))")
            }
            sub.finish()
            rules.append(rule)
        }
        return rules
    }

    /// Reads `path`: a pipeline YAML (its `eval:` section) or a bare eval mapping.
    public static func load(file path: String) throws -> EvalConfig {
        let sink = DiagnosticSink(file: path)
        guard let node = try composeYAML(file: path) else { return EvalConfig() }
        let top = YAMLReader(sink: sink, path: "", node: node)
        let config: EvalConfig
        if node.mapping?.keys.contains(where: { $0.string == "eval" }) == true {
            config = top.object("eval").map { EvalConfig($0) } ?? EvalConfig()
        } else {
            config = EvalConfig(top)
        }
        try sink.throwIfAny()
        return config
    }
}

extension CostConfig {
    init(_ r: YAMLReader) {
        func price(_ k: String) -> Double? { r.has(k) ? r.double(k, default: 0, range: 0...1e9) : nil }
        self.init(hardwarePerHour: price("hardware_per_hour"), trainHardwarePerHour: price("train_hardware_per_hour"),
                  monthlyFixed: price("monthly_fixed"), managedInputPerMillion: price("managed_input_per_million"),
                  managedOutputPerMillion: price("managed_output_per_million"),
                  amortizeMonths: r.double("amortize_months", default: 1, range: 0...1200, exclusiveLower: true),
                  monthlyRequests: price("monthly_requests"))
        r.finish()
    }

    /// Reads a costs file: the mapping itself, or one under `costs:` (a pipeline's `eval.costs` also works).
    public static func load(file path: String) throws -> CostConfig {
        let sink = DiagnosticSink(file: path)
        guard let node = try composeYAML(file: path) else { return CostConfig() }
        var r = YAMLReader(sink: sink, path: "", node: node)
        if let e = r.object("eval") { r = e }
        let c = r.object("costs").map { CostConfig($0) } ?? CostConfig(r)
        try sink.throwIfAny()
        return c
    }
}

/// The YAML node tree of `path` (nil for an empty file); an unreadable file or a syntax error is a
/// positioned error.
func composeYAML(file path: String) throws -> Node? {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw TuneError(.notFound, "\(path): cannot read (\(error.localizedDescription))")
    }
    do { return try Yams.compose(yaml: text) } catch let e as YamlError {
        throw ConfigError(diagnostics: [Diagnostic(yaml: e, file: path)])
    }
}
