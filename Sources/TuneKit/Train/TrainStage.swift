// The pipeline's train stage: the prepared dataset from upstream, the local LoRA / QLoRA trainer (or a
// managed provider with `backend: openai`, Managed/ManagedTrainStage.swift), the adapter registered
// with its loss curve. The trainer's work directory is keyed by the stage's cache key, so an
// interrupted or killed run resumes from its last checkpoint.

import Engine
import Foundation

extension StageKind {
    public static let train = StageKind(known: "train")
}

extension PipelineSpec {
    /// `train:`
    public var train: TrainSection? {
        get { section(Stages.Train.self) }
        set { setSection(Stages.Train.self, newValue) }
    }
}

extension TrainSection: StageSection {}

/// A trained adapter in the registry: PEFT files in `directory`, or for a managed model its
/// `managed_model.json` record.
public struct AdapterArtifact: Sendable {
    public let artifact: Artifact
    public let directory: String
    /// A model at a managed provider (weights not available here).
    public var isManaged: Bool { ManagedModelRecord.isManaged(artifact) }
}

extension Stages {
    public enum Train: Stage {
        public static let kind = StageKind.train
        public static let outputSuffix = "adapter"

        public static func readSection(_ r: YAMLReader) -> TrainSection { TrainSection(r) }

        public static func keyParts(_ section: TrainSection, _ c: StagePlan) throws -> [String: JSONValue] {
            var t = section
            var parts: [String: JSONValue] = [:]
            if t.backend == "openai", let m = t.openai {
                // What is trained and where: the provider URL enters resolved (redacted), the API key never.
                t.openai = m.keyed
                let env = c.options.environment
                parts["provider"] = .string(redactedURL((try? OpenAIClient.apiRoot(m.resolvedBaseURL(environment: env))) ?? m.resolvedBaseURL(environment: env)))
            }
            parts["config"] = try JSONValue(encoding: t)
            parts["base"] = .string(try c.sha256(c.basePath))
            return parts
        }

        public static func output(_ artifacts: [Artifact], registry: Registry) throws -> AdapterArtifact? {
            guard let a = artifacts.last(where: { $0.kind == .adapter }) else { return nil }
            return AdapterArtifact(artifact: a, directory: try StoredArtifact.resolve(a, registry: registry).path)
        }

        /// Outputs of a crashed run were adopted: the checkpoints it left behind are no longer needed.
        public static func adopted(_ section: TrainSection, _ c: StageContext) {
            try? FileManager.default.removeItem(atPath: workDirectory(spec: c.spec, key: c.key, registryPath: c.registryPath))
        }

        /// Where the train stage with cache key `key` keeps checkpoints (next to the registry database; under
        /// `.tune` for a PostgreSQL registry).
        static func workDirectory(spec: PipelineSpec, key: String, registryPath: String) -> String {
            let root = (RegistryLocation.stateDirectory(registryPath) as NSString).appendingPathComponent("work")
            return ((root as NSString).appendingPathComponent(spec.name) as NSString).appendingPathComponent("train-\(key.prefix(16))")
        }

        /// The section's recipe with the pipeline's seed, validated for `model` (errors name `train.KEY`).
        static func trainingOptions(_ t: TrainSection, spec: PipelineSpec, model: LlamaConfig) throws -> TrainingOptions {
            do { return try t.recipe(seed: spec.seed).options(model: model, keyPrefix: "train.") } catch let e as TuneError {
                throw TuneError(e.kind, "\(spec.name): \(e.message)")
            }
        }

        public static func run(_ t: TrainSection, _ c: StageContext) throws -> [Artifact] {
            let spec = c.spec, basePath = c.basePath, key = c.key
            guard let dataset = c.outputs.of(Prepare.self) else {
                throw TuneError(.invalidArgument, "\(spec.name): train needs a prepared dataset (add a prepare: stage)")
            }
            let dataDir = dataset.directory
            if t.backend == "openai" { return [try c.trainManaged(t, dataset: dataset)] }
            // The training graph's backend: TUNE_BACKEND (docs/cuda.md); fallback notices become progress lines.
            let kernel = try BackendSelector.shared.resolve(nil, for: .training)
            if let n = kernel.notice { c.progress(n) }
            let model = try LlamaModel.load(path: basePath)
            let options = try trainingOptions(t, spec: spec, model: model.config)
            let (data, _) = try TrainingDataLoader.load(data: [dataDir], modelPath: basePath, workDir: NSTemporaryDirectory())
            let work = workDirectory(spec: spec, key: key, registryPath: c.registryPath)
            let trainer = try LoRATrainer(model: model, options: options, data: data, output: work,
                                          baseModelName: (basePath as NSString).lastPathComponent,
                                          backend: kernel.backend, fallbackToCPU: kernel.request == .auto)
            if let n = trainer.backendNotice { c.progress(n) }
            var lastNote = Date.distantPast
            let result = try trainer.run(shouldStop: c.options.shouldStop, events: { e in
                switch e {
                case .step(let p):
                    if Date().timeIntervalSince(lastNote) >= 10 || p.record.step == p.totalSteps {
                        lastNote = Date()
                        c.progress(TrainRecipe.Text.step(p))
                    }
                case .started, .resumed, .eval, .earlyStop:
                    if let line = TrainRecipe.Text.line(e) { c.progress(line) }
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
            let base = try c.baseArtifact()
            if let notes = c.spec.register?.notes, c.spec.register?.name == nil { meta["notes"] = .string(notes) }
            let new = NewArtifact(kind: .adapter, name: c.outputName, source: staging, metadata: meta,
                                  governance: c.modelGovernance(base: base))
            var inputs = c.lineage(c.outputs.latest, role: "input")
            inputs[base.id] = "base"
            let artifact = try c.registry.register(new, inputs: inputs, run: c.run)
            try? FileManager.default.removeItem(atPath: work)   // registered: checkpoints are no longer needed
            return [artifact]
        }
    }
}
