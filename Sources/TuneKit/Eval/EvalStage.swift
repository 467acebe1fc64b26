// Runner+Eval — the pipeline's eval stage: base, base + the trained adapter and the merge stage's
// output (when there is one) on the prepared eval split, as `eval:` declares (EvalConfig). The
// report (JSON + Markdown + HTML) is registered and linked to what it evaluates; a failed gate stops
// the pipeline before register (exit 1) and is never cached, so a re-run evaluates again.

import Foundation

extension PipelineRunner {
    func executeEval(key: String, upstream: [Artifact], registry: Registry, run: RunID,
                     onEvent: (RunEvent) -> Void) throws -> Artifact {
        let config = spec.eval!.config
        guard let dataset = upstream.last(where: { $0.kind == .dataset }), let dataDir = registry.path(of: dataset) else {
            throw TuneError(.invalidArgument, "\(spec.name): eval needs a prepared dataset (add a prepare: stage)")
        }
        let prepared = try PreparedDataset(directory: dataDir)
        guard prepared.manifest.splits["eval"] != nil else {
            throw TuneError(.invalidArgument, "\(spec.name): the prepared dataset has no eval split (set prepare.eval or prepare.split.eval_fraction)")
        }
        let examples = config.limited(try prepared.examples(split: "eval"))
        let base = try LlamaModel.load(path: basePath)
        let baseName = (basePath as NSString).lastPathComponent
        var inputs: [ArtifactID: String] = [dataset.id: "data"]
        var subjects = ["base": baseName]
        var evals: [ModelEvaluation] = []
        let evalItems = Evaluator.items(examples).count   // what the Evaluator counts (one per assistant turn)
        func evaluate(_ m: LlamaModel, _ role: ModelRole, _ name: String) throws {
            // Examples done / total per model, with rate and ETA (the first batch, then ≤ 1 a second, then the last).
            let meter = ProgressMeter(task: "eval", subject: role.rawValue, total: Double(evalItems), unit: "examples")
            if let u = meter.tick(0) { onEvent(.measured(stage: .eval, progress: u)) }
            let e = try Evaluator.evaluate(model: m, role: role, name: name, examples: examples, config: config) { done, _ in
                if let u = meter.tick(Double(done)) { onEvent(.measured(stage: .eval, progress: u)) }
            }
            onEvent(.progress(stage: .eval, message: String(format: "%@: %d examples in %.1f s (%.2f examples/s)", role.rawValue, e.examples, e.seconds, e.examplesPerSecond)))
            evals.append(e)
        }
        try evaluate(base, .base, baseName)
        var curve: TrainingCurve? = nil, trainSeconds: Double? = nil
        if let adapter = upstream.last(where: { $0.kind == .adapter && $0.name == outputName(.train) }),
           let dir = registry.path(of: adapter), ManagedModelRecord.isManaged(adapter) {
            // A model at a provider: generation metrics through its chat completions (docs/managed.md).
            let e = try evaluateManaged(adapter, dir: dir, dataDir: dataDir, config: config)
            onEvent(.progress(stage: .eval, message: String(format: "adapter (managed): %d examples in %.1f s (%.2f examples/s)", e.examples, e.seconds, e.examplesPerSecond)))
            evals.append(e)
            inputs[adapter.id] = "evaluated"
            subjects["adapter"] = adapter.ref
        } else if let adapter = upstream.last(where: { $0.kind == .adapter && $0.name == outputName(.train) }), let dir = registry.path(of: adapter) {
            try evaluate(try base.loadingAdapter(directory: dir), .adapter, adapter.ref)
            inputs[adapter.id] = "evaluated"
            subjects["adapter"] = adapter.ref
            curve = try TrainingCurve.load(adapterDirectory: dir)
            // Measured: tokens trained ÷ the run's tokens/s.
            if case .number(let tps)? = adapter.metadata["tokens_per_second"], tps > 0,
               let data = try? Data(contentsOf: URL(fileURLWithPath: dir + "/trainer_state.json")),
               let state = try? JSONDecoder().decode(TokenCount.self, from: data) {
                trainSeconds = Double(state.log.reduce(0) { $0 + $1.tokens }) / tps
            }
        }
        if let merged = upstream.last(where: { $0.name == outputName(.merge) && ($0.kind == .mergedModel || $0.kind == .adapter) }),
           let path = registry.path(of: merged) {
            let model = merged.kind == .adapter ? try base.loadingAdapter(directory: path) : try LlamaModel.load(path: Self.modelPath(in: path))
            try evaluate(model, .merged, merged.ref)
            inputs[merged.id] = "evaluated"
            subjects["merged"] = merged.ref
        }
        let report = try EvalReport(models: evals, config: config, subjects: subjects, dataset: dataset.ref,
                                    training: curve, trainSeconds: trainSeconds)
        for line in report.markdown().split(separator: "\n").prefix(while: { !$0.hasPrefix("## ") }) where line.hasPrefix("|") {
            onEvent(.progress(stage: .eval, message: String(line)))
        }
        for c in report.gate?.checks ?? [] { onEvent(.progress(stage: .eval, message: "Gate: \(c.message)")) }
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try report.write(to: dir.path)
        let passed = report.gate?.passed ?? true
        var meta: [String: JSONValue] = ["pipeline": .string(spec.name), "gate_passed": .bool(passed),
                                         "schema_version": .number(Double(EvalReport.schemaVersion))]
        for e in evals {
            for (k, v) in e.metrics where v.isFinite { meta[e.role == .adapter ? k : "\(e.role.rawValue)_\(k)"] = .number(v) }
            meta["\(e.role.rawValue)_examples_per_second"] = .number(e.examplesPerSecond)
        }
        if passed { meta["cache_key"] = .string(key) }   // a failed gate is never adopted as a finished stage
        let artifact = try registry.register(NewArtifact(kind: .evalReport, name: outputName(.eval), source: dir, metadata: meta),
                                             inputs: inputs, run: run)
        if let blob = registry.path(of: artifact) {   // where to open it, also (above all) when the gate failed
            onEvent(.report(stage: .eval, path: blob, html: (blob as NSString).appendingPathComponent("report.html")))
        }
        if let g = report.gate, !g.passed {
            throw TuneError(.gateFailed, "\(spec.name): eval gate failed — \(g.summary); report \(artifact.ref)")
        }
        return artifact
    }

    /// A merged model blob: a GGUF file, an HF directory, or a directory holding one `.gguf`.
    static func modelPath(in path: String) -> String {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: path + "/config.json"),
              let gguf = (try? fm.contentsOfDirectory(atPath: path))?.filter({ $0.hasSuffix(".gguf") }).sorted().first else { return path }
        return path + "/" + gguf
    }
}

/// The token counts of a trainer_state.json log (snake_case on disk).
private struct TokenCount: Decodable {
    struct Step: Decodable { var tokens: Int }
    var log: [Step]
}
