// EvalReport — base vs adapter vs merged on one eval set, the gate, costs and the training curve:
// the value behind report.json (schema in docs/eval.md, `schema_version`), report.md and report.html.

import Engine
import Foundation

public struct EvalReport: Codable, Sendable {
    public static let schemaVersion = 1
    public var schemaVersion = EvalReport.schemaVersion
    public var createdAt: String
    /// What was evaluated: role → path or registry ref; and the data.
    public var subjects: [String: String]
    public var dataset: String
    public var config: EvalConfig
    public var models: [ModelEvaluation]
    public var gate: GateResult?
    public var costs: CostReport?
    public var training: TrainingCurve?
    /// The tuned model answering when confident, else the reference (`eval.routing`, docs/routing.md).
    public var routing: RoutingReport?
    /// Each tuned model's accuracy minus the base's and each reference's, with paired-bootstrap 95%
    /// intervals (Bootstrap.swift); nil when no accuracy metric gives per-example outcomes.
    public var differences: [AccuracyDifference]?

    /// The bootstrap's seed: fixed, so the same evaluation gives the same intervals.
    public static let bootstrapSeed: UInt64 = 0x7475_6E65_5F62_7374

    enum CodingKeys: String, CodingKey {
        case schemaVersion = "schema_version", createdAt = "created_at"
        case subjects, dataset, config, models, gate, costs, training, routing, differences
    }

    /// Assembles the report: runs the gate (`config.gate`) and the cost model (`config.costs`).
    public init(models: [ModelEvaluation], config: EvalConfig, subjects: [String: String], dataset: String,
                training: TrainingCurve? = nil, trainSeconds: Double? = nil, now: Date = Date()) throws {
        self.createdAt = ISO8601DateFormatter().string(from: now)
        self.subjects = subjects
        self.dataset = dataset
        self.config = config
        let accuracy = config.resolve(gateMetric: "accuracy")
        self.models = models.map { m in
            var m = m
            if let k = m.outcomes?.filter(\.correct).count ?? accuracy.flatMap({ m.metrics[$0] }).map({ Int(($0 * Double(m.examples)).rounded()) }) {
                m.accuracyCI95 = Interval.wilson(successes: k, of: m.examples)
            }
            return m
        }
        self.training = training
        routing = try config.routing.map { try RoutingReport.compute($0, config: config, models: models) }
        if let metric = accuracy {
            let d = Bootstrap.differences(models, metric: metric, seed: Self.bootstrapSeed)
            differences = d.isEmpty ? nil : d
        }
        gate = config.gate.isEmpty ? nil : try Gate.check(config.gate, config: config, models: self.models, routing: routing)
        if config.costs != nil || !config.references.isEmpty,
           let served = models.first(where: { $0.role == .merged }) ?? models.first(where: { $0.role == .adapter })
                        ?? models.first(where: { $0.role != .reference }) {
            costs = CostReport.compute(config.costs ?? CostConfig(), model: served, trainSeconds: trainSeconds,
                                       accuracyMetric: config.resolve(gateMetric: "accuracy"), all: models, references: config.references)
        }
    }

    public func model(_ role: ModelRole) -> ModelEvaluation? { models.first { $0.role == role } }
    /// The evaluation of the reference named `name`.
    public func reference(_ name: String) -> ModelEvaluation? { models.first { $0.role == .reference && $0.model == name } }

    public func jsonData() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(self)
    }

    /// Writes report.json, report.md and report.html into `dir` (created if needed); returns their paths.
    @discardableResult
    public func write(to dir: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let files: [(String, Data)] = [("report.json", try jsonData()), ("report.md", Data(markdown().utf8)), ("report.html", Data(html().utf8))]
        return try files.map { name, data in
            let p = (dir as NSString).appendingPathComponent(name)
            do { try data.write(to: URL(fileURLWithPath: p), options: .atomic) } catch {
                throw TuneError(.io, "\(p): cannot write (\(error.localizedDescription))")
            }
            return p
        }
    }
}

/// Training and eval loss by step, from an adapter's `trainer_state.json`.
public struct TrainingCurve: Codable, Sendable, Equatable {
    public struct Point: Codable, Sendable, Equatable {
        public var step: Int
        public var loss: Double
    }
    public var train: [Point]
    public var eval: [Point]

    /// Reads `dir/trainer_state.json`; nil when there is none (an adapter trained elsewhere).
    public static func load(adapterDirectory dir: String) throws -> TrainingCurve? {
        let p = (dir as NSString).appendingPathComponent("trainer_state.json")
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let s: TrainerState
        do { s = try d.decode(TrainerState.self, from: Data(contentsOf: URL(fileURLWithPath: p))) } catch {
            throw TuneError(.invalidArgument, "\(p): not a tune trainer_state.json (\(error))")
        }
        return TrainingCurve(train: s.log.map { .init(step: $0.step, loss: $0.loss) }, eval: s.evals.map { .init(step: $0.step, loss: $0.loss) })
    }
}

// MARK: - Markdown

extension EvalReport {
    static func fmt(_ metric: String, _ v: Double?) -> String {
        guard let v else { return "–" }
        switch metric {
        case "loss": return String(format: "%.4f", v)
        case "perplexity": return String(format: "%.2f", v)
        default: return String(format: "%.1f%%", 100 * v)
        }
    }

    static func money(_ v: Double?) -> String {
        guard let v else { return "–" }
        return v >= 100 ? String(format: "$%.0f", v) : v >= 1 ? String(format: "$%.2f", v) : String(format: "$%.4f", v)
    }

    /// Money with enough digits for a fraction of a cent (per-request and per-correct figures).
    static func price(_ v: Double?) -> String {
        guard let v else { return "–" }
        return v >= 0.01 ? money(v) : String(format: "$%.6f", v)
    }

    /// A price with its 95% interval: "$0.0113 [$0.0098, $0.0131]" (the bare price without one).
    static func price(_ v: Double?, _ ci: Interval?) -> String {
        guard let ci, v != nil else { return price(v) }
        return "\(price(v)) [\(price(ci.lower)), \(price(ci.upper))]"
    }

    static func latency(_ m: ModelEvaluation) -> String {
        guard let p50 = m.latencyP50, let p95 = m.latencyP95 else { return "–" }
        return String(format: "%.0f / %.0f ms", p50 * 1000, p95 * 1000)
    }

    public func markdown() -> String {
        let ms = config.reportedMetrics
        var out = ["# Evaluation: \(dataset)", ""]
        let latency = models.contains { $0.latencyP50 != nil }, ci = models.contains { $0.accuracyCI95 != nil }
        out.append("| model | " + (["examples"] + ms + (ci ? ["accuracy 95% CI"] : []) + ["examples/s"] + (latency ? ["latency p50 / p95"] : []))
                   .joined(separator: " | ") + " |")
        out.append("|---|" + String(repeating: "---:|", count: ms.count + 2 + (latency ? 1 : 0) + (ci ? 1 : 0)))
        for m in models {
            var cells = [String(m.examples)] + ms.map { Self.fmt($0, m.metrics[$0]) } + (ci ? [m.accuracyCI95?.percent ?? "–"] : [])
                + [String(format: "%.1f", m.examplesPerSecond)]
            if latency { cells.append(Self.latency(m)) }
            out.append("| \(m.role.rawValue): \(m.model) | " + cells.joined(separator: " | ") + " |")
        }
        if let ds = differences {
            out += ["", "## Differences in \(ds[0].metric) (paired bootstrap, \(Bootstrap.resamples) resamples, 95%)", ""]
            out += ds.map { "- \($0.line)" }
        }
        if let g = gate {
            out += ["", "## Gate: \(g.passed ? "PASSED" : "FAILED")", ""]
            out += g.checks.map { "- \($0.passed ? "✅" : "❌") \($0.message)" }
        }
        for m in models {
            guard let c = m.confusion else { continue }
            out += ["", "## Confusion (\(m.role.rawValue)): rows = reference, columns = generated", ""]
            out.append("| | " + c.labels.joined(separator: " | ") + " |")
            out.append("|---|" + String(repeating: "---:|", count: c.labels.count))
            for (i, l) in c.labels.enumerated() { out.append("| \(l) | " + c.counts[i].map(String.init).joined(separator: " | ") + " |") }
        }
        if let c = costs {
            out += ["", "## Cost (\(c.role.rawValue))", "",
                    "| figure | value |", "|---|---:|",
                    "| training | \(Self.money(c.trainingCost)) |",
                    String(format: "| avg tokens per request (prompt + output) | %.0f + %.1f |", c.avgPromptTokens, c.avgOutputTokens),
                    String(format: "| measured throughput | %.0f tokens/s |", c.tokensPerSecond),
                    "| serving per 1k requests | \(Self.money(c.servingPer1k)) |",
                    "| managed API per 1k requests | \(Self.money(c.managedPer1k)) |",
                    "| cost per correct answer | \(Self.price(c.costPerCorrect)) |",
                    "| break-even volume | \(c.breakEvenMonthlyRequests.map { String(format: "%.0f requests/month", $0) } ?? "–") |",
                    "", c.breakEvenNote]
            if !c.references.isEmpty || c.models.contains(where: { $0.role == .reference }) {
                out += ["", "## Cost per correct answer", "", "| model | basis | $ per request | accuracy | $ per correct (95% CI) |", "|---|---|---:|---:|---:|"]
                for m in c.models {
                    out.append("| \(m.role.rawValue): \(m.model) | \(m.basis) | \(Self.price(m.perRequest)) | \(Self.fmt("accuracy", m.accuracy)) | \(Self.price(m.costPerCorrect, m.costPerCorrectCI95)) |")
                }
                out += ["", "## Break-even vs references (\(c.role.rawValue), per correct answer)", "",
                        "| reference | break-even | payback |", "|---|---:|---:|"]
                for b in c.references {
                    out.append("| \(b.reference) | \(b.breakEvenMonthlyRequests.map { String(format: "%.0f requests/month", $0) } ?? "–") | "
                               + "\(b.paybackMonths.map { String(format: "%.2f months", $0) } ?? "–") |")
                }
                out += [""] + c.references.map { "- \($0.reference): \($0.note)" }
            }
        }
        if let r = routing { out += routingMarkdown(r) }
        return out.joined(separator: "\n") + "\n"
    }
}
