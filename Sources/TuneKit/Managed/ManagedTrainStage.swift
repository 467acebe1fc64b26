// ManagedTrainStage — the train stage with `backend: openai` and the eval of its result: the prepared
// splits exported as chat JSONL, one job per cache key (found again by its metadata on a re-run),
// provider events as the same `.progress` lines local training prints, and the result registered as
// an `adapter` artifact whose blob is `managed_model.json` (metadata `backend: openai`).

import Foundation

/// `managed_model.json`, the blob of a managed adapter artifact.
public struct ManagedModelRecord: Codable, Sendable {
    public var backend = "openai"
    /// Provider API root, redacted (no credentials, no query).
    public var baseURL: String
    public var fineTunedModel: String
    public var job: FineTuningJob
    public var checkpoints: [FineTuningCheckpoint]
    /// Metrics events (step, train_loss, …) as the provider reported them.
    public var metrics: [JSONValue]
    public static let fileName = "managed_model.json"
    enum CodingKeys: String, CodingKey {
        case backend, job, checkpoints, metrics, baseURL = "base_url", fineTunedModel = "fine_tuned_model"
    }

    public static func isManaged(_ a: Artifact) -> Bool { a.kind == .adapter && a.metadata["backend"] == .string("openai") }

    public static func load(directory: String) throws -> ManagedModelRecord {
        let p = (directory as NSString).appendingPathComponent(fileName)
        guard let d = FileManager.default.contents(atPath: p) else { throw TuneError(.fileAccess, "\(p): cannot read the managed model record") }
        do { return try JSONDecoder().decode(Self.self, from: d) } catch {
            throw TuneError(.badData, "\(p): not a managed model record (\(OpenAIClient.describe(error)))")
        }
    }
}

extension StageContext {
    func managedClient(_ m: ManagedTrainConfig) throws -> OpenAIClient {
        var c = try m.client(environment: options.environment, transport: options.transport, jitterSeed: spec.seed)
        c.shouldStop = options.shouldStop
        return c
    }

    /// Chat conversations of a prepared split, rendered back with the dataset's own template.
    func conversations(dataDir: String, split: String) throws -> [[ChatMessageBody]] {
        let prepared = try PreparedDataset(directory: dataDir)
        let tok = try DatasetTokenizer.load(modelPath: basePath)
        try prepared.requireTokenizer(sha256: tok.sha256)
        return ChatExport.conversations(try prepared.examples(split: split), tokenizer: tok.tokenizer, template: prepared.manifest.template.name)
    }

    /// Trains `t` at the provider on the prepared dataset; registers the result as an `adapter` artifact.
    func trainManaged(_ t: TrainSection, dataset: DatasetArtifact) throws -> Artifact {
        let dataDir = dataset.directory
        guard let m = t.openai else { throw TuneError(.invalidArgument, "\(spec.name): train.backend openai needs a train.openai section") }
        let client = try managedClient(m)
        let train = try conversations(dataDir: dataDir, split: "train")
        guard !train.isEmpty else { throw TuneError(.invalidArgument, "\(spec.name): the prepared train split has no conversation with an assistant turn") }
        let hasEval = try PreparedDataset(directory: dataDir).manifest.splits["eval"] != nil
        let validation = hasEval ? try conversations(dataDir: dataDir, split: "eval") : []
        let suffix = m.suffix ?? String("\(spec.name)-\(key.prefix(8))".prefix(40))
        let request = ManagedTrainRequest(
            model: m.model, train: try ChatExport.jsonl(train), validation: validation.isEmpty ? nil : try ChatExport.jsonl(validation),
            hyperparameters: m.hyperparameters, suffix: suffix, seed: m.seed ?? Int(truncatingIfNeeded: spec.seed & 0x7fff_ffff),
            metadata: ["tune_cache_key": key, "tune_pipeline": spec.name])
        let trainer = ManagedTrainer(client: client, pollInterval: m.pollInterval, timeout: m.timeout)
        let result = try trainer.run(request) { e in progress(Self.describe(e)) }
        let job = result.job
        let record = ManagedModelRecord(
            baseURL: redactedURL(client.baseURL), fineTunedModel: job.fineTunedModel ?? "", job: job, checkpoints: result.checkpoints,
            metrics: result.events.compactMap { $0.data })
        let staging = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-managed-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: staging) }
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try encoder.encode(record).write(to: staging.appendingPathComponent(ManagedModelRecord.fileName))
        var meta: [String: JSONValue] = [
            "pipeline": .string(spec.name), "cache_key": .string(key), "backend": .string("openai"),
            "fine_tuned_model": .string(record.fineTunedModel), "job_id": .string(job.id), "base_url": .string(record.baseURL),
            "model": .string(m.model), "result_files": .array((job.resultFiles ?? []).map { .string($0) }),
        ]
        if let n = job.trainedTokens { meta["trained_tokens"] = .number(Double(n)) }
        if let l = result.events.compactMap({ Self.trainLoss($0) }).last { meta["final_loss"] = .number(l) }
        // The provider's model is this adapter's base: a `managed-model` artifact (id, snapshot, redacted provider).
        let managed = try managedModelArtifact(model: m.model, provider: record.baseURL)
        var gov = managed.governance
        gov.license = spec.register?.license
        gov.createdBy = Governance.currentUser
        gov.createdWith = "tune \(TuneKitInfo.version)"
        let new = NewArtifact(kind: .adapter, name: outputName, source: staging, metadata: meta, governance: gov)
        var inputs = lineage(outputs.latest, role: "input")
        inputs[managed.id] = "base"
        return try registry.register(new, inputs: inputs, run: run)
    }

    static func trainLoss(_ e: FineTuningEvent) -> Double? {
        if case .object(let o)? = e.data, case .number(let n)? = o["train_loss"] { return n }
        return nil
    }

    /// The progress line of a managed-training event (the same `.progress` lines local training emits).
    static func describe(_ e: ManagedTrainEvent) -> String {
        switch e {
        case .attached(let job, let status): "re-attached to job \(job) (\(status))"
        case .uploaded(let file, let bytes, let role): "uploaded \(role) file \(file) (\(bytes) bytes)"
        case .created(let job): "created job \(job)"
        case .status(let s): "job \(s)"
        case .event(let message, let step, let total, let loss):
            if let step, let loss { "step \(step)\(total.map { "/\($0)" } ?? "") loss " + String(format: "%.4f", loss) } else { message }
        case .retrying(let why): "retry: \(why)"
        }
    }

    /// Evaluates a managed adapter through the provider's chat completions.
    func evaluateManaged(_ adapter: Artifact, dir: String, dataDir: String, config: EvalConfig) throws -> ModelEvaluation {
        guard let m = spec.train?.openai else {
            throw TuneError(.invalidArgument, "\(spec.name): \(adapter.ref) is a managed model; evaluating it needs the train.openai section")
        }
        for rule in config.gate {
            if let metric = config.resolve(gateMetric: rule.metric), ManagedEvaluator.unavailableMetrics.contains(metric) {
                throw TuneError(.invalidArgument, "\(spec.name): gate metric \(rule.metric) needs log-likelihoods, which a chat API does not give; "
                                + "gate the managed model on exact_match, contains, regex, json_valid, json_fields or choice")
            }
        }
        let record = try ManagedModelRecord.load(directory: dir)
        return try ManagedEvaluator.evaluate(client: try managedClient(m), model: record.fineTunedModel, role: .adapter, name: adapter.ref,
                                             conversations: try conversations(dataDir: dataDir, split: "eval"), config: config,
                                             concurrency: m.evalConcurrency, seed: m.seed)
    }
}

