// EvalStage — the pipeline's eval stage: base, base + the trained adapter and the merge stage's
// output (when there is one) on the prepared eval split, as `eval:` declares (EvalConfig). The
// report (JSON + Markdown + HTML) is registered and linked to what it evaluates; a failed gate stops
// the pipeline before register (exit 1) and is never cached, so a re-run evaluates again. With
// `eval.routing` a passing eval also registers a `router` artifact (RouterArtifact.swift).

import Engine
import Foundation

extension StageKind {
    public static let eval = StageKind(known: "eval")
}

extension PipelineSpec {
    /// `eval:`
    public var eval: EvalSection? {
        get { section(Stages.Eval.self) }
        set { setSection(Stages.Eval.self, newValue) }
    }
}

extension EvalSection: StageSection {}

/// A registered eval report (report.json, report.md, report.html in `directory`).
public struct EvalReportArtifact: Sendable {
    public let artifact: Artifact
    public let directory: String
    public var gatePassed: Bool { artifact.metadata["gate_passed"] != .bool(false) }
}

extension Stages {
    public enum Eval: Stage {
        public static let kind = StageKind.eval
        public static let outputSuffix = "eval"

        public static func readSection(_ r: YAMLReader) -> EvalSection { EvalSection(r) }

        public static func keyParts(_ e: EvalSection, _ c: StagePlan) throws -> [String: JSONValue] {
            ["config": try JSONValue(encoding: e), "base": .string(try c.sha256(c.basePath))]
        }

        public static func output(_ artifacts: [Artifact], registry: Registry) throws -> EvalReportArtifact? {
            guard let a = artifacts.last(where: { $0.kind == .evalReport }) else { return nil }
            return EvalReportArtifact(artifact: a, directory: try StoredArtifact.resolve(a, registry: registry).path)
        }
    }
}

extension Stages.Eval {
    public static func run(_ section: EvalSection, _ c: StageContext) throws -> [Artifact] {
        let config = section.config
        let spec = c.spec, basePath = c.basePath, registry = c.registry
        guard let dataset = c.outputs.of(Stages.Prepare.self) else {
            throw TuneError(.invalidArgument, "\(spec.name): eval needs a prepared dataset (add a prepare: stage)")
        }
        let dataDir = dataset.directory
        let prepared = try PreparedDataset(directory: dataDir)
        guard prepared.manifest.splits["eval"] != nil else {
            throw TuneError(.invalidArgument, "\(spec.name): the prepared dataset has no eval split (set prepare.eval or prepare.split.eval_fraction)")
        }
        let examples = config.limited(try prepared.examples(split: "eval"))
        let base = try LlamaModel.load(path: basePath)
        let baseName = (basePath as NSString).lastPathComponent
        var inputs: [ArtifactID: String] = [dataset.artifact.id: "data"]
        var evaluated: [ModelRole: Artifact] = [:]   // the routed model becomes a router's `local` input
        var subjects = ["base": baseName]
        var evals: [ModelEvaluation] = []
        let evalItems = Evaluator.items(examples).count   // what the Evaluator counts (one per assistant turn)
        func evaluate(_ m: LlamaModel, _ role: ModelRole, _ name: String) throws {
            // Examples done / total per model, with rate and ETA (the first batch, then ≤ 1 a second, then the last).
            let meter = ProgressMeter(task: "eval", subject: role.rawValue, total: Double(evalItems), unit: "examples")
            if let u = meter.tick(0) { c.event(.measured(stage: .eval, progress: u)) }
            let e = try Evaluator.evaluate(model: m, role: role, name: name, examples: examples, config: config) { done, _ in
                if let u = meter.tick(Double(done)) { c.event(.measured(stage: .eval, progress: u)) }
            }
            c.progress(String(format: "%@: %d examples in %.1f s (%.2f examples/s)", role.rawValue, e.examples, e.seconds, e.examplesPerSecond))
            evals.append(e)
        }
        // Routing needs a local model's log-probabilities and the same examples at the reference: refused
        // before anything is evaluated (or paid for) rather than after.
        let conversations = config.references.isEmpty ? [] : try c.referenceConversations(dataDir: dataDir, config: config)
        if let routing = config.routing {
            if let t = c.outputs.of(Stages.Train.self), t.isManaged, c.outputs.of(Stages.Merge.self) == nil {
                throw TuneError(.invalidArgument, "\(spec.name): eval.routing needs the tuned model's confidence (log-probabilities); "
                                + "a managed adapter (train.backend: openai) is evaluated through a chat API, which gives none")
            }
            if conversations.count != evalItems {
                throw TuneError(.invalidArgument, "\(spec.name): eval.routing: the eval split has \(evalItems) scored examples but "
                                + "\(conversations.count) chat conversations for reference \(routing.reference): they must pair one to one")
            }
        }
        try evaluate(base, .base, baseName)
        var curve: TrainingCurve? = nil, trainSeconds: Double? = nil
        if let trained = c.outputs.of(Stages.Train.self), trained.isManaged {
            // A model at a provider: generation metrics through its chat completions (docs/managed.md).
            let adapter = trained.artifact
            let e = try c.evaluateManaged(adapter, dir: trained.directory, dataDir: dataDir, config: config)
            c.progress(String(format: "adapter (managed): %d examples in %.1f s (%.2f examples/s)", e.examples, e.seconds, e.examplesPerSecond))
            evals.append(e)
            inputs[adapter.id] = "evaluated"
            subjects["adapter"] = adapter.ref
        } else if let trained = c.outputs.of(Stages.Train.self) {
            let adapter = trained.artifact, dir = trained.directory
            try evaluate(try base.loadingAdapter(directory: dir), .adapter, adapter.ref)
            inputs[adapter.id] = "evaluated"
            evaluated[.adapter] = adapter
            subjects["adapter"] = adapter.ref
            curve = try TrainingCurve.load(adapterDirectory: dir)
            // Measured: tokens trained ÷ the run's tokens/s.
            if case .number(let tps)? = adapter.metadata["tokens_per_second"], tps > 0,
               let data = try? Data(contentsOf: URL(fileURLWithPath: dir + "/trainer_state.json")),
               let state = try? JSONDecoder().decode(TokenCount.self, from: data) {
                trainSeconds = Double(state.log.reduce(0) { $0 + $1.tokens }) / tps
            }
        }
        if let merged = c.outputs.of(Stages.Merge.self) {
            let model = merged.isAdapter ? try base.loadingAdapter(directory: merged.path) : try LlamaModel.load(path: merged.modelPath)
            try evaluate(model, .merged, merged.artifact.ref)
            inputs[merged.artifact.id] = "evaluated"
            evaluated[.merged] = merged.artifact
            subjects["merged"] = merged.artifact.ref
        }
        if !config.references.isEmpty {
            // Reference models through their chat-completions APIs, on the same (limited) eval split.
            let env = c.options.environment
            for ref in config.references {
                // Retries happen on worker threads: collected, then printed in order (also when the reference fails).
                let retries = LineBuffer()
                defer { for line in retries.drain() { c.progress(line) } }
                let e = try ref.evaluate(conversations: conversations, config: config, environment: env, transport: c.options.transport,
                                         shouldStop: c.options.shouldStop, onRetry: { retries.append($0) })
                c.progress(String(format: "reference %@ (%@): %d examples in %.1f s (%.2f examples/s, latency p50 %.0f ms, p95 %.0f ms)",
                                  ref.name, ref.model, e.examples, e.seconds, e.examplesPerSecond,
                                  (e.latencyP50 ?? 0) * 1000, (e.latencyP95 ?? 0) * 1000))
                evals.append(e)
                subjects["reference:\(ref.name)"] = "\(ref.model) at \(ref.shownURL(environment: env))"
                // The reference is a managed model the report (and a router measured by it) depends on, so
                // `tune artifacts exposure --managed-model ID` finds what compares with or escalates to it.
                inputs[try c.managedModelArtifact(model: ref.model, provider: ref.shownURL(environment: env)).id] = "reference"
            }
        }
        let report = try EvalReport(models: evals, config: config, subjects: subjects, dataset: dataset.artifact.ref,
                                    training: curve, trainSeconds: trainSeconds)
        for line in report.markdown().split(separator: "\n").prefix(while: { !$0.hasPrefix("## ") }) where line.hasPrefix("|") {
            c.progress(String(line))
        }
        for check in report.gate?.checks ?? [] { c.progress("Gate: \(check.message)") }
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try report.write(to: dir.path)
        let passed = report.gate?.passed ?? true
        var meta: [String: JSONValue] = ["pipeline": .string(spec.name), "gate_passed": .bool(passed),
                                         "schema_version": .number(Double(EvalReport.schemaVersion))]
        for e in evals {
            let prefix = e.role == .reference ? "reference_\(e.model)_" : e.role == .adapter ? "" : "\(e.role.rawValue)_"
            for (k, v) in e.metrics where v.isFinite { meta[prefix + k] = .number(v) }
            meta[(e.role == .adapter ? "adapter_" : prefix) + "examples_per_second"] = .number(e.examplesPerSecond)
        }
        for m in report.costs?.models ?? [] {
            guard let v = m.costPerCorrect else { continue }
            meta[m.role == .reference ? "reference_\(m.model)_cost_per_correct" : "\(m.role.rawValue)_cost_per_correct"] = .number(v)
        }
        if passed { meta["cache_key"] = .string(c.key) }   // a failed gate is never adopted as a finished stage
        let artifact = try registry.register(NewArtifact(kind: .evalReport, name: c.outputName, source: dir, metadata: meta),
                                             inputs: inputs, run: c.run)
        if let blob = registry.path(of: artifact) {   // where to open it, also (above all) when the gate failed
            c.event(.report(stage: .eval, path: blob, html: (blob as NSString).appendingPathComponent("report.html")))
        }
        if let g = report.gate, !g.passed {
            throw TuneError(.gateFailed, "\(spec.name): eval gate failed — \(g.summary); report \(artifact.ref)")
        }
        guard let routing = report.routing else { return [artifact] }
        let prompt = RouterPrompt.measured(examples: examples, eos: base.tokenizer.eosID, config: config,
                                           template: prepared.manifest.template.rendererSetting,
                                           systemPrompt: spec.prepare?.config.systemPrompt)
        let router = try c.registerRouter(routing, config: config, report: artifact, models: evaluated, prompt: prompt)
        c.progress("router \(router.ref): \(routing.chosenOn.label) (\(routing.rule)) → on the held-out half "
                   + String(format: "%.1f%% accurate, %.1f%% escalated", 100 * routing.reportedOn.accuracy, 100 * routing.reportedOn.escalationRate))
        return [artifact, router]
    }
}

extension StageContext {
    /// The eval split's chat conversations (cut to `config.limit`), rendered back with the dataset's own template.
    func referenceConversations(dataDir: String, config: EvalConfig) throws -> [[ChatMessageBody]] {
        let prepared = try PreparedDataset(directory: dataDir)
        let tok = try DatasetTokenizer.load(modelPath: basePath)
        try prepared.requireTokenizer(sha256: tok.sha256)
        return ChatExport.conversations(config.limited(try prepared.examples(split: "eval")), tokenizer: tok.tokenizer,
                                        template: prepared.manifest.template.name)
    }
}

/// Lines appended from any thread, drained on the stage's thread.
final class LineBuffer: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    func drain() -> [String] { lock.lock(); defer { lines = []; lock.unlock() }; return lines }
}

/// The token counts of a trainer_state.json log (snake_case on disk).
private struct TokenCount: Decodable {
    struct Step: Decodable { var tokens: Int }
    var log: [Step]
}
