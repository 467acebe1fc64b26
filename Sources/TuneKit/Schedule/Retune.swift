// Retune — what one job does: run the pipeline on the job's base version (the existing runner, base
// swapped), evaluate the new result and the current `production` artifact on the same eval split, and
// decide (ProductionGate). The decision is returned, not applied: the worker moves `production` in the
// same transaction that completes the job, and only while it still holds the job's lease.

import Engine
import Foundation

/// The outcome of one re-tune, before it is committed.
public struct RetuneDecision: Sendable {
    /// Move `production` of the candidate's name to this artifact (nil: keep production).
    public var promote: Artifact?
    public var reason: String
    /// The JSON summary stored on the job and sent to the notification hooks.
    public var summary: [String: JSONValue]
    /// Whether the hooks hear about it (a drift recheck notifies only on drift).
    public var notify = true
}

public enum Retune {
    /// Runs job `job` against `registry`. `shouldStop` is polled by training (the lease was lost).
    public static func run(_ job: Job, registry: Registry, shouldStop: @escaping @Sendable () -> Bool = { false },
                           onEvent: (RunEvent) -> Void = { _ in }) throws -> RetuneDecision {
        guard let schedule = try registry.schedules().first(where: { $0.pipeline == job.pipeline }) else {
            throw TuneError(.notFound, "job \(job.id): pipeline \(job.pipeline) is no longer scheduled")
        }
        let spec = try PipelineSpec.load(path: schedule.specPath)
        guard spec.name == job.pipeline else {
            throw TuneError(.invalidArgument, "job \(job.id): \(schedule.specPath) now names pipeline \(spec.name), not \(job.pipeline); run `tune schedule add` again")
        }
        guard spec.eval != nil, spec.prepare != nil else {
            throw TuneError(.invalidArgument, "\(schedule.specPath): a scheduled pipeline needs prepare: and eval: sections to compare with production")
        }
        let base = try registry.base(family: job.baseFamily, version: job.baseVersion)
        var options = RunOptions()
        options.registryPath = registry.path
        options.blobRoot = registry.blobs.root
        options.shouldStop = shouldStop
        options.base = ResolvedBase(path: try BaseCatalog.verifiedPath(base), family: base.family, version: base.version)
        let runner = PipelineRunner(spec: spec, options: options)
        var summary: [String: JSONValue] = [
            "pipeline": .string(spec.name), "job_id": .number(Double(job.id)), "trigger": .string(job.trigger.rawValue),
            "trigger_key": .string(job.triggerKey), "base": .string(base.ref.description), "attempt": .number(Double(job.attempts)),
        ]
        func decide(_ promote: Artifact?, _ reason: String) -> RetuneDecision {
            summary["decision"] = .object(["promoted": .bool(promote != nil), "reason": .string(reason)])
            return RetuneDecision(promote: promote, reason: reason, summary: summary)
        }
        let run: RunSummary, outputs: StageOutputs
        do { (run, outputs) = try runner.runWithOutputs(onEvent) } catch let e as TuneError where e.kind == .gateFailed {
            return decide(nil, "the pipeline's own gate failed: \(e.message)")
        }
        summary["run_id"] = run.runID.map { .number(Double($0)) } ?? .null
        guard let candidate = outputs.of(Stages.Merge.self)?.artifact ?? outputs.of(Stages.Train.self)?.artifact,
              let dataset = outputs.of(Stages.Prepare.self)?.artifact else {
            throw TuneError(.invalidArgument, "\(spec.name): the run produced no adapter or merged model to promote")
        }
        summary["candidate"] = .string(candidate.ref)
        let production = try? registry.resolve(ArtifactRef.alias(name: candidate.name, Registry.productionAlias))
        summary["production_before"] = production.map { .string($0.ref) } ?? .null
        guard let production else { return decide(candidate, "no production yet; the pipeline's gate passed") }
        if production.id == candidate.id { return decide(nil, "\(candidate.ref) is already production") }

        // Both on the same eval split, with the pipeline's eval config.
        let config = spec.eval!.config
        guard let dir = registry.path(of: dataset) else { throw TuneError(.notFound, "\(dataset.ref): blob missing") }
        let examples = try PreparedDataset(directory: dir).examples(split: "eval")
        func evaluate(_ a: Artifact, basePath: String) throws -> ModelEvaluation {
            guard let path = registry.path(of: a) else { throw TuneError(.notFound, "\(a.ref): blob missing") }
            let model = a.kind == .mergedModel ? try LlamaModel.load(path: Stages.Merge.modelPath(in: path))
                                               : try LlamaModel.load(path: basePath).loadingAdapter(directory: path)
            let e = try Evaluator.evaluate(model: model, role: a.kind == .mergedModel ? .merged : .adapter, name: a.ref,
                                           examples: examples, config: config)
            onEvent(.progress(stage: .eval, message: String(format: "production gate: %@ on %d examples in %.1f s", a.ref, e.examples, e.seconds)))
            return e
        }
        let cand = try evaluate(candidate, basePath: options.base!.path)
        var prodBase = options.base!.path
        if production.kind == .adapter {
            guard let f = production.governance.baseFamily, let v = production.governance.baseVersion else {
                throw TuneError(.invalidArgument, "\(production.ref) (production) records no base version; cannot load it to compare")
            }
            prodBase = try BaseCatalog.verifiedPath(try registry.base(family: f, version: v))
        }
        let prod = try evaluate(production, basePath: prodBase)
        let cmp = try ProductionGate.compare(candidate: cand.metrics, production: prod.metrics, config: config)
        var metrics: [String: JSONValue] = [:]
        for c in cmp {
            metrics[c.metric] = .object(["candidate": .number(c.candidate), "production": .number(c.production),
                                         "delta": .number(c.delta), "passed": .bool(c.passed)])
        }
        summary["metrics"] = .object(metrics)
        let line = ProductionGate.summary(cmp)
        onEvent(.progress(stage: .eval, message: "production gate: \(line)"))
        return cmp.allSatisfy { $0.passed } ? decide(candidate, "at least as good as \(production.ref): \(line)")
                                        : decide(nil, "worse than \(production.ref): \(line)")
    }
}
