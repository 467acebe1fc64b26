// Recheck — drift checks (docs/governance.md, "Drift"). A re-run of an unchanged pipeline is fully
// cached and evaluates nothing, so a managed model changing under the same id, or production quietly
// degrading, would never show. A recheck (`schedule.recheck` cron, or `tune schedule recheck`):
//   1. finds the pipeline's production model (`register.name`@production, else PIPELINE-merged /
//      PIPELINE-adapter @production) and its history (MetricHistory): the last accepted eval is the
//      baseline, and its dataset is the pinned eval split;
//   2. evaluates production and each `eval.reference` on that split now — outside the runner, so no
//      stage cache is consulted and nothing is trained;
//   3. registers the result as a new eval report of the same model (lineage: dataset `data`, production
//      `evaluated`; metadata `recheck: true`, `trigger`, `baseline`, `drifted`), in one transaction, with
//      `history.html` (the metrics over time, this recheck last) beside report.json/.md/.html;
//   4. compares each compared metric (drift.metric, else the gate's metrics, else loss) with the
//      baseline, per model, and notifies (notify.command / notify.webhook) when one dropped by more
//      than drift.max_drop. No notification otherwise.

import Engine
import Foundation

/// One metric of one model, now against the baseline.
public struct DriftComparison: Codable, Sendable, Equatable {
    /// `production` or `reference:NAME`.
    public var model: String
    public var metric: String
    public var baseline: Double
    public var current: Double
    /// How much worse it got: baseline − current (current − baseline for loss/perplexity); negative = better.
    public var drop: Double
    public var lowerIsBetter: Bool
    /// The report the baseline value comes from.
    public var baselineReport: String
    /// drop > max_drop.
    public var drifted: Bool

    enum CodingKeys: String, CodingKey {
        case model, metric, baseline, current, drop, drifted
        case lowerIsBetter = "lower_is_better", baselineReport = "baseline_report"
    }
}

/// What one recheck found.
public struct RecheckResult: Codable, Sendable {
    public var pipeline: String
    /// The production model re-evaluated (`NAME@N`).
    public var production: String
    /// The new eval report.
    public var report: String
    /// The pinned eval split.
    public var dataset: String
    /// The last accepted eval of the model.
    public var baseline: String
    public var trigger: String
    public var maxDrop: Double
    /// Metrics measured now, by model (`production`, `reference:NAME`).
    public var current: [String: [String: Double]]
    public var comparisons: [DriftComparison]
    public var drifted: Bool
    /// Hook outcomes when a notification was sent.
    public var notify: JSONValue?

    enum CodingKeys: String, CodingKey {
        case pipeline, production, report, dataset, baseline, trigger, current, comparisons, drifted, notify
        case maxDrop = "max_drop"
    }

    /// One line per comparison: `production exact_match 0.7500 → 0.5000 (drop 0.2500 > 0.0200) DRIFT`.
    public var lines: [String] {
        comparisons.map { c in
            String(format: "%@ %@ %.4f → %.4f (%@ %.4f%@)%@", c.model, c.metric, c.baseline, c.current,
                   c.drop >= 0 ? "drop" : "gain", abs(c.drop), c.drifted ? String(format: " > %.4f", maxDrop) : "",
                   c.drifted ? " DRIFT" : "")
        }
    }

    /// The JSON summary sent to the hooks and stored on a scheduled job.
    public var summary: JSONValue {
        var o: [String: JSONValue] = ["event": .string("drift_check"), "pipeline": .string(pipeline), "production": .string(production),
                                      "report": .string(report), "dataset": .string(dataset), "baseline": .string(baseline),
                                      "trigger": .string(trigger), "max_drop": .number(maxDrop), "drifted": .bool(drifted)]
        o["comparisons"] = .array(comparisons.map { c in
            .object(["model": .string(c.model), "metric": .string(c.metric), "baseline": .number(c.baseline), "current": .number(c.current),
                     "drop": .number(c.drop), "drifted": .bool(c.drifted), "baseline_report": .string(c.baselineReport)])
        })
        return .object(o)
    }
}

/// How a recheck runs.
public struct RecheckOptions: Sendable {
    /// Recorded on the report: `manual`, or the scheduled job's `recheck:<fire time>`.
    public var trigger = "manual"
    /// Send the pipeline's notify hooks on drift (the worker sends them itself, after committing the job).
    public var notify = true
    public var notifier = Notifier()
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    public var transport: any HTTPTransport = CurlHTTPTransport()
    public var shouldStop: @Sendable () -> Bool = { false }
    public init() {}
}

public enum Recheck {
    /// The key prefix of scheduled recheck jobs (trigger `cron`).
    public static let jobKeyPrefix = "recheck:"

    /// Whether `job` is a drift recheck (else a re-tune).
    public static func isRecheck(_ job: Job) -> Bool { job.triggerKey.hasPrefix(jobKeyPrefix) }

    /// The recheck cron of a scheduled pipeline, read from its file (nil: none).
    public static func scheduled(_ s: ScheduleRecord) throws -> (expression: String, timeZone: String?)? {
        let spec = try PipelineSpec.load(path: s.specPath)
        guard let r = spec.schedule?.recheck else { return nil }
        return (r, spec.schedule?.timeZone)
    }

    /// The names whose `production` alias is the pipeline's production model, in the order looked up.
    public static func productionNames(_ spec: PipelineSpec) -> [String] {
        let runner = PipelineRunner(spec: spec, options: RunOptions())
        return ([spec.register?.name] + [runner.outputName(.merge), runner.outputName(.train)]).compactMap { $0 }
    }

    /// The artifact the pipeline's production alias points at.
    public static func production(of spec: PipelineSpec, registry: Registry) throws -> Artifact {
        let names = productionNames(spec)
        for n in names {
            do { return try registry.resolve(ArtifactRef.alias(name: n, Registry.productionAlias)) } catch let e as TuneError where e.kind == .notFound {
                continue
            }
        }
        throw TuneError(.notFound, "\(spec.name): no production model to recheck (none of \(names.map { "\($0)@\(Registry.productionAlias)" }.joined(separator: ", ")) exists); promote one: tune artifacts promote NAME@N --alias \(Registry.productionAlias)")
    }

    /// Opens the registry a pipeline writes to (`registry` overrides the file's `registry:`).
    public static func openRegistry(spec: PipelineSpec, registry: String?, blobs: String) throws -> Registry {
        var o = RunOptions()
        o.registryPath = registry
        return try Registry.open(path: PipelineRunner.registryPath(spec: spec, options: o), blobRoot: blobs)
    }

    /// Compares `current` (by model: `production`, `reference:NAME`) with the history's baseline: for each
    /// model, the last accepted eval's value, else (a reference added since) the first report that has one.
    public static func compare(current: [String: [String: Double]], history: MetricHistory, metrics: [String],
                               maxDrop: Double) -> [DriftComparison] {
        var out: [DriftComparison] = []
        let accepted = history.accepted
        for model in current.keys.sorted(by: { ($0 == "production" ? 0 : 1, $0) < ($1 == "production" ? 0 : 1, $1) }) {
            func value(_ p: MetricHistoryPoint, _ m: String) -> Double? {
                model == "production" ? p.metrics[m] : p.references[String(model.dropFirst("reference:".count))]?[m]
            }
            for m in metrics {
                guard let now = current[model]?[m] else { continue }
                guard let base = accepted.flatMap({ a in value(a, m).map { (a, $0) } }) ?? history.points.lazy.compactMap({ p in value(p, m).map { (p, $0) } }).first
                else { continue }
                let lower = ProductionGate.lowerIsBetter.contains(m)
                let drop = lower ? now - base.1 : base.1 - now
                out.append(DriftComparison(model: model, metric: m, baseline: base.1, current: now, drop: drop, lowerIsBetter: lower,
                                           baselineReport: base.0.report, drifted: drop > maxDrop + 1e-12))
            }
        }
        return out
    }

    /// Runs one recheck of `spec`'s production model and references; registers the report; notifies on drift.
    public static func run(spec: PipelineSpec, registry: Registry, options: RecheckOptions = RecheckOptions(),
                           progress: (String) -> Void = { _ in }) throws -> RecheckResult {
        guard let evalSection = spec.eval else {
            throw TuneError(.invalidArgument, "\(spec.name): a recheck re-runs the eval: section, and the pipeline has none")
        }
        let drift = spec.drift ?? DriftSection()
        var config = evalSection.config
        config.gate = []   // no base is evaluated: the gate vs base is the pipeline's, not the recheck's
        let production = try production(of: spec, registry: registry)
        let history = try registry.evalHistory(of: production)
        guard let pinned = history.accepted ?? history.points.last(where: { $0.kind == "eval" }) else {
            throw TuneError(.notFound, "\(production.ref) (production of \(spec.name)) has no eval report to recheck against; run the pipeline first (its eval stage evaluates the model)")
        }
        guard let dataset = try registry.inputs(of: pinned.reportID).first(where: { $0.role == "data" })?.artifact else {
            throw TuneError(.notFound, "\(pinned.report): records no dataset (lineage role data), so there is no pinned eval split")
        }
        guard let dataDir = registry.path(of: dataset) else { throw TuneError(.notFound, "\(dataset.ref): blob missing") }
        let prepared = try PreparedDataset(directory: dataDir)
        guard prepared.manifest.splits["eval"] != nil else { throw TuneError(.invalidArgument, "\(dataset.ref): has no eval split") }
        let examples = config.limited(try prepared.examples(split: "eval"))
        progress("recheck \(production.ref) on \(dataset.ref) (eval split, \(examples.count) examples); baseline \(pinned.report)")

        // Production, evaluated now.
        var evals: [ModelEvaluation] = []
        var subjects: [String: String] = [:]
        let role: ModelRole = pinned.role == "merged" || production.kind == .mergedModel ? .merged : .adapter
        guard let path = registry.path(of: production) else { throw TuneError(.notFound, "\(production.ref): blob missing") }
        var tokenizerModel: String?
        var conversationsCache: [[ChatMessageBody]]?
        func conversations() throws -> [[ChatMessageBody]] {
            if let c = conversationsCache { return c }
            let modelPath = try tokenizerModel ?? basePath(for: production, spec: spec, registry: registry)
            let tok = try DatasetTokenizer.load(modelPath: modelPath)
            try prepared.requireTokenizer(sha256: tok.sha256)
            let c = ChatExport.conversations(examples, tokenizer: tok.tokenizer, template: prepared.manifest.template.name)
            conversationsCache = c
            return c
        }
        let e: ModelEvaluation
        if ManagedModelRecord.isManaged(production) {
            guard let m = spec.train?.openai else {
                throw TuneError(.invalidArgument, "\(spec.name): production \(production.ref) is a managed model; evaluating it needs the train.openai section")
            }
            let record = try ManagedModelRecord.load(directory: path)
            e = try ManagedEvaluator.evaluate(client: try m.client(environment: options.environment, transport: options.transport),
                                              model: record.fineTunedModel, role: role, name: production.ref,
                                              conversations: try conversations(), config: config, concurrency: m.evalConcurrency, seed: m.seed)
        } else if production.kind == .mergedModel {
            let file = Stages.Merge.modelPath(in: path)
            tokenizerModel = file
            e = try Evaluator.evaluate(model: try LlamaModel.load(path: file), role: role, name: production.ref, examples: examples, config: config)
        } else if production.kind == .adapter {
            let base = try basePath(for: production, spec: spec, registry: registry)
            tokenizerModel = base
            e = try Evaluator.evaluate(model: try LlamaModel.load(path: base).loadingAdapter(directory: path), role: role, name: production.ref,
                                       examples: examples, config: config)
        } else {
            throw TuneError(.invalidArgument, "\(production.ref) is a \(production.kind.rawValue); a recheck evaluates an adapter or a merged model")
        }
        progress(String(format: "%@: %d examples in %.1f s", production.ref, e.examples, e.seconds))
        evals.append(e)
        subjects[role.rawValue] = production.ref

        // The references, on the same split.
        for ref in config.references {
            let retries = LineBuffer()
            defer { for line in retries.drain() { progress(line) } }
            let r = try ref.evaluate(conversations: try conversations(), config: config, environment: options.environment,
                                     transport: options.transport, shouldStop: options.shouldStop, onRetry: { retries.append($0) })
            progress(String(format: "reference %@ (%@): %d examples in %.1f s", ref.name, ref.model, r.examples, r.seconds))
            evals.append(r)
            subjects["reference:\(ref.name)"] = "\(ref.model) at \(ref.shownURL(environment: options.environment))"
        }

        // Compare, then record.
        var current: [String: [String: Double]] = ["production": e.metrics.filter { $0.value.isFinite }]
        for r in evals where r.role == .reference { current["reference:\(r.model)"] = r.metrics.filter { $0.value.isFinite } }
        let comparisons = compare(current: current, history: history, metrics: drift.resolvedMetrics(config), maxDrop: drift.maxDrop)
        let drifted = comparisons.contains { $0.drifted }
        let report = try EvalReport(models: evals, config: config, subjects: subjects, dataset: dataset.ref)
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-recheck-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try report.write(to: dir.path)
        let name = PipelineRunner(spec: spec, options: RunOptions()).outputName(.eval)
        // The metrics over time, this recheck last, beside the report (history.html).
        var overTime = history
        overTime.points.append(MetricHistoryPoint(
            report: "\(name) (this recheck)", reportID: ArtifactID(0), createdAt: Stamp.string(Date()), kind: "recheck", gatePassed: nil,
            trigger: options.trigger, evaluated: production.ref, role: role.rawValue, dataset: dataset.ref, metrics: current["production"] ?? [:],
            references: Dictionary(uniqueKeysWithValues: current.filter { $0.key.hasPrefix("reference:") }.map { (String($0.key.dropFirst(10)), $0.value) }),
            drifted: drifted))
        do { try Data(overTime.html(title: "Drift recheck · \(production.ref)").utf8).write(to: dir.appendingPathComponent("history.html")) } catch {
            throw TuneError(.io, "\(dir.path)/history.html: cannot write (\(error.localizedDescription))")
        }
        var meta: [String: JSONValue] = ["pipeline": .string(spec.name), "recheck": .bool(true), "trigger": .string(options.trigger),
                                         "subject": .string(production.ref), "baseline": .string(pinned.report), "drifted": .bool(drifted),
                                         "max_drop": .number(drift.maxDrop), "schema_version": .number(Double(EvalReport.schemaVersion))]
        for x in evals {
            let prefix = x.role == .reference ? "reference_\(x.model)_" : x.role == .adapter ? "" : "\(x.role.rawValue)_"
            for (k, v) in x.metrics where v.isFinite { meta[prefix + k] = .number(v) }
        }
        var inputs: [ArtifactID: String] = [dataset.id: "data", production.id: "evaluated"]
        for ref in config.references {   // each reference as a managed-model artifact, as the eval stage records it
            let m = try registry.managedModelArtifact(model: ref.model, provider: ref.shownURL(environment: options.environment),
                                                      createdWith: "tune \(TuneKitInfo.version) recheck")
            inputs[m.id] = "reference"
        }
        let artifact = try registry.register(NewArtifact(kind: .evalReport, name: name, source: dir, metadata: meta), inputs: inputs)
        var result = RecheckResult(pipeline: spec.name, production: production.ref, report: artifact.ref, dataset: dataset.ref,
                                   baseline: pinned.report, trigger: options.trigger, maxDrop: drift.maxDrop, current: current,
                                   comparisons: comparisons, drifted: drifted, notify: nil)
        for line in result.lines { progress(line) }
        if drifted, options.notify, let n = spec.notify {
            result.notify = options.notifier.send(result.summary, notify: n, directory: spec.baseDirectory)
        }
        return result
    }

    /// A scheduled recheck job: the pipeline file its schedule names, rechecked; the hooks are told after
    /// the job commits (the worker's at-most-once rule), and only when something drifted.
    public static func decision(_ job: Job, registry: Registry, options: RecheckOptions,
                                onEvent: (RunEvent) -> Void = { _ in }) throws -> RetuneDecision {
        guard let schedule = try registry.schedules().first(where: { $0.pipeline == job.pipeline }) else {
            throw TuneError(.notFound, "job \(job.id): pipeline \(job.pipeline) is no longer scheduled")
        }
        let spec = try PipelineSpec.load(path: schedule.specPath)
        guard spec.name == job.pipeline else {
            throw TuneError(.invalidArgument, "job \(job.id): \(schedule.specPath) now names pipeline \(spec.name), not \(job.pipeline); run `tune schedule add` again")
        }
        var o = options
        o.trigger = job.triggerKey
        o.notify = false
        let r = try run(spec: spec, registry: registry, options: o) { onEvent(.progress(stage: .eval, message: $0)) }
        guard case .object(var summary) = r.summary else { throw TuneError(.internal, "recheck summary is not an object") }
        summary["job_id"] = .number(Double(job.id))
        let drifted = r.comparisons.filter(\.drifted)
        let reason = drifted.isEmpty ? "no drift beyond \(r.maxDrop) (\(r.report))"
            : "drift: " + drifted.map { String(format: "%@ %@ dropped %.4f", $0.model, $0.metric, $0.drop) }.joined(separator: "; ") + " (\(r.report))"
        summary["decision"] = .object(["promoted": .bool(false), "reason": .string(reason)])
        return RetuneDecision(promote: nil, reason: reason, summary: summary, notify: r.drifted)
    }

    /// The base model an adapter runs on: the registered base version its record names, else the
    /// `base-model` artifact in its lineage (recorded by reference; re-hashed here), else the pipeline's base.
    static func basePath(for a: Artifact, spec: PipelineSpec, registry: Registry) throws -> String {
        if let p = try AdapterExport.basePath(of: a, registry: registry) { return p }
        if let ref = spec.baseReference {
            return try BaseCatalog.verifiedPath(try registry.base(family: ref.family, version: ref.version))
        }
        return PipelineRunner.resolve(spec.base, in: spec)
    }
}
