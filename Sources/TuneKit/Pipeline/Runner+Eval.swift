// Runner+Eval — the pipeline's eval stage: base vs base + the trained adapter on the prepared eval
// split; the report (JSON + Markdown) is registered and linked to what it evaluates; a failed gate
// stops the pipeline before register (exit 1) and is never cached, so a re-run evaluates again.

import Foundation

extension PipelineRunner {
    func executeEval(key: String, upstream: [Artifact], registry: Registry, run: RunID,
                     onEvent: (RunEvent) -> Void) throws -> Artifact {
        let e = spec.eval!
        guard let dataset = upstream.last(where: { $0.kind == .dataset }), let dataDir = registry.path(of: dataset) else {
            throw TuneError(.invalidArgument, "\(spec.name): eval needs a prepared dataset (add a prepare: stage)")
        }
        let prepared = try PreparedDataset(directory: dataDir)
        guard prepared.manifest.splits["eval"] != nil else {
            throw TuneError(.invalidArgument, "\(spec.name): the prepared dataset has no eval split (set prepare.eval or prepare.split.eval_fraction)")
        }
        let examples = try prepared.examples(split: "eval")
        let basePath = resolve(spec.base)
        let base = try LlamaModel.load(path: basePath)
        let baseName = (basePath as NSString).lastPathComponent
        let baseEval = try Evaluator.evaluate(model: base, name: baseName, examples: examples)
        onEvent(.progress(stage: .eval, message: "\(baseName): \(baseEval.examples) examples in \(String(format: "%.1f", baseEval.seconds)) s"))
        var tunedEval: ModelEvaluation? = nil
        var inputs: [ArtifactID: String] = [dataset.id: "data"]
        if let adapter = upstream.last(where: { $0.kind == .adapter }), let dir = registry.path(of: adapter) {
            tunedEval = try Evaluator.evaluate(model: try base.loadingAdapter(directory: dir), name: "\(baseName) + \(adapter.ref)",
                                               examples: examples)
            inputs[adapter.id] = "evaluated"
        }
        var report = EvalComparison(base: baseEval, tuned: tunedEval)
        if let metric = e.gateMetric, let t = tunedEval {
            report.gate = try Evaluator.gate(metric: metric, minDelta: e.gateMinDelta, base: baseEval, tuned: t)
        }
        let md = Evaluator.markdown(report)
        for line in md.split(separator: "\n") { onEvent(.progress(stage: .eval, message: String(line))) }

        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-eval-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(report).write(to: dir.appendingPathComponent("report.json"))
        try Data(md.utf8).write(to: dir.appendingPathComponent("report.md"))
        let passed = report.gate?.passed ?? true
        var meta: [String: JSONValue] = [
            "pipeline": .string(spec.name), "base_exact_match": .number(baseEval.exactMatch), "base_loss": .number(baseEval.loss),
            "gate_passed": .bool(passed),
        ]
        if let t = tunedEval { meta["exact_match"] = .number(t.exactMatch); meta["loss"] = .number(t.loss) }
        if passed { meta["cache_key"] = .string(key) }   // a failed gate is never adopted as a finished stage
        let artifact = try registry.register(NewArtifact(kind: .evalReport, name: outputName(.eval), source: dir, metadata: meta),
                                             inputs: inputs, run: run)
        if let g = report.gate, !g.passed {
            throw TuneError(.gateFailed, "\(spec.name): eval gate failed — \(g.message); report \(artifact.ref)")
        }
        return artifact
    }
}
