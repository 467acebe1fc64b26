// Runner+Train — the pipeline's train stage: the prepared dataset from upstream, the local LoRA /
// QLoRA trainer, the adapter registered with its loss curve. The trainer's work directory is keyed
// by the stage's cache key, so an interrupted or killed run resumes from its last checkpoint.

import Foundation

extension PipelineRunner {
    /// Where the train stage with cache key `key` keeps checkpoints (next to the registry database; under
    /// `.tune` for a PostgreSQL registry).
    func trainWorkDirectory(key: String, registryPath: String) -> String {
        let root = (RegistryLocation.stateDirectory(registryPath) as NSString).appendingPathComponent("work")
        return ((root as NSString).appendingPathComponent(spec.name) as NSString).appendingPathComponent("train-\(key.prefix(16))")
    }

    /// The section's recipe with the pipeline's seed, validated for `model` (errors name `train.KEY`).
    func trainingOptions(_ t: TrainSection, model: LlamaConfig) throws -> TrainingOptions {
        do { return try t.recipe(seed: spec.seed).options(model: model, keyPrefix: "train.") } catch let e as TuneError {
            throw TuneError(e.kind, "\(spec.name): \(e.message)")
        }
    }

    func executeTrain(key: String, upstream: [Artifact], registry: Registry, run: RunID,
                      onEvent: (RunEvent) -> Void) throws -> Artifact {
        let t = spec.train!
        guard let dataset = upstream.last(where: { $0.kind == .dataset }), let dataDir = registry.path(of: dataset) else {
            throw TuneError(.invalidArgument, "\(spec.name): train needs a prepared dataset (add a prepare: stage)")
        }
        if t.backend == "openai" {
            return try executeManagedTrain(key: key, dataset: dataset, dataDir: dataDir, upstream: upstream, registry: registry, run: run, onEvent: onEvent)
        }
        // The training graph's backend: TUNE_BACKEND (docs/cuda.md); fallback notices become progress lines.
        let kernel = try BackendSelector.shared.resolve(nil, for: .training)
        if let n = kernel.notice { onEvent(.progress(stage: .train, message: n)) }
        let model = try LlamaModel.load(path: basePath)
        let options = try trainingOptions(t, model: model.config)
        let (data, _) = try TrainingDataLoader.load(data: [dataDir], modelPath: basePath, workDir: NSTemporaryDirectory())
        let work = trainWorkDirectory(key: key, registryPath: registryPath)
        let trainer = try LoRATrainer(model: model, options: options, data: data, output: work,
                                      baseModelName: (basePath as NSString).lastPathComponent,
                                      backend: kernel.backend, fallbackToCPU: kernel.request == .auto)
        if let n = trainer.backendNotice { onEvent(.progress(stage: .train, message: n)) }
        var lastNote = Date.distantPast
        let result = try trainer.run(shouldStop: self.options.shouldStop, events: { e in
            switch e {
            case .step(let p):
                if Date().timeIntervalSince(lastNote) >= 10 || p.record.step == p.totalSteps {
                    lastNote = Date()
                    onEvent(.progress(stage: .train, message: TrainRecipe.Text.step(p)))
                }
            case .started, .resumed, .eval, .earlyStop:
                if let line = TrainRecipe.Text.line(e) { onEvent(.progress(stage: .train, message: line)) }
            default: break
            }
        })
        if result.interrupted {
            throw TuneError(.interrupted, "\(spec.name): training interrupted at step \(result.steps); run the same command to resume")
        }
        // Register the adapter files only (not the checkpoints).
        let staging = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-adapter-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: staging) }
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        for f in ["adapter_config.json", "adapter_model.safetensors", "trainer_state.json", "training_args.json"] {
            try FileManager.default.copyItem(atPath: (work as NSString).appendingPathComponent(f), toPath: staging.appendingPathComponent(f).path)
        }
        var meta: [String: JSONValue] = [
            "pipeline": .string(spec.name), "cache_key": .string(key), "steps": .number(Double(result.steps)),
            "method": .string(t.method.rawValue), "rank": .number(Double(t.rank)), "alpha": .number(t.recipe.resolvedAlpha),
            "tokens_per_second": .number(result.tokensPerSecond),
            "base_model": .string((basePath as NSString).lastPathComponent),
        ]
        if let l = result.finalLoss { meta["final_loss"] = .number(l) }
        if let l = result.finalEvalLoss { meta["final_eval_loss"] = .number(l) }
        let new = NewArtifact(kind: .adapter, name: outputName(.train), source: staging, metadata: meta,
                              governance: Governance(baseFamily: baseFamily, baseVersion: self.options.base?.version))
        let artifact = try registry.register(new, inputs: Dictionary(uniqueKeysWithValues: upstream.map { ($0.id, "input") }), run: run)
        try? FileManager.default.removeItem(atPath: work)   // registered: checkpoints are no longer needed
        return artifact
    }
}
