// JobWorker — the one trainer of this device: takes queued jobs first come first served, runs tune's
// local LoRA trainer on each (the prepare stage's chat formatting, then LoRATrainer with checkpoints),
// writes events and checkpoints, honours cancel, and on shutdown checkpoints and requeues the running job.

import Engine
import Foundation
import ServiceLifecycle
import TuneKit

final class JobWorker: Service, @unchecked Sendable {
    let store: ServeStore
    let host: ModelHost
    let config: ServeConfig
    let metrics: ServeMetrics
    private let lock = NSLock()
    private var cancels: Set<String> = []
    private var stopping = false
    private(set) var runningJob: String?

    init(store: ServeStore, host: ModelHost, config: ServeConfig, metrics: ServeMetrics) {
        self.store = store
        self.host = host
        self.config = config
        self.metrics = metrics
    }

    static func jobDirectory(store: ServeStore, job: String) -> String { (store.jobsDirectory as NSString).appendingPathComponent(job) }
    /// The trainer's output: the final PEFT adapter, and checkpoints/ while it runs.
    static func adapterDirectory(store: ServeStore, job: String) -> String {
        (jobDirectory(store: store, job: job) as NSString).appendingPathComponent("adapter")
    }

    private func locked<T>(_ body: () -> T) -> T { lock.lock(); defer { lock.unlock() }; return body() }

    /// Asks the running job to stop at its next step boundary (it becomes `cancelled`).
    func requestCancel(_ id: String) { locked { _ = cancels.insert(id) } }
    func stop() { locked { stopping = true } }
    var isStopping: Bool { locked { stopping } }

    // MARK: - Recovery

    /// After a restart: a job left `running` resumes from its checkpoint (requeued) or fails with the
    /// reason; a job left `validating_files` fails (validation is quick: create it again).
    func recover() throws {
        for job in try store.jobs(status: .running) {
            if let step = Self.lastCheckpointStep(store: store, job: job.id) {
                try store.updateJob(job.id, event: ("info", "The server stopped while this job was running; it was requeued and resumes from its checkpoint at step \(step).")) {
                    $0.status = .queued
                }
            } else {
                try store.updateJob(job.id, event: ("error", "The server stopped while this job was running, before its first checkpoint.")) {
                    $0.status = .failed
                    $0.finishedAt = ServeStore.now()
                    $0.error = JobError(code: "server_restarted",
                                        message: "The server stopped while the job was running and no checkpoint had been written; create the job again.",
                                        param: nil)
                }
            }
        }
        for job in try store.jobs(status: .validatingFiles) {
            try store.updateJob(job.id, event: ("error", "The server stopped while validating files.")) {
                $0.status = .failed
                $0.finishedAt = ServeStore.now()
                $0.error = JobError(code: "server_restarted", message: "The server stopped while validating this job's files; create the job again.", param: nil)
            }
        }
    }

    /// The step of the newest complete trainer checkpoint of `job`, if any.
    static func lastCheckpointStep(store: ServeStore, job: String) -> Int? {
        let root = (adapterDirectory(store: store, job: job) as NSString).appendingPathComponent("checkpoints")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        return names.compactMap { n -> Int? in
            guard FileManager.default.fileExists(atPath: "\(root)/\(n)/trainer_state.json") else { return nil }
            return Int(n.filter(\.isNumber))
        }.max()
    }

    // MARK: - Service

    /// Until graceful shutdown (SIGTERM/SIGINT) or cancellation: either stops the running job at its
    /// next step with a checkpoint and requeues it.
    func run() async throws {
        await withTaskCancellationHandler {
            await loop()
        } onCancel: {
            self.stop()
        }
    }

    private func loop() async {
        await withGracefulShutdownHandler {
            while !self.isStopping && !Task.isCancelled {
                do {
                    if let job = try store.nextQueued() {
                        await runOnThread(job.id)
                        continue
                    }
                } catch {
                    FileHandle.standardError.write(Data("tune serve: job queue: \(error)\n".utf8))
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        } onGracefulShutdown: {
            self.stop()
        }
    }

    /// Trains on a thread of its own (the trainer is synchronous and CPU-bound), resuming when it returns.
    private func runOnThread(_ id: String) async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let t = Thread { [self] in
                self.execute(id)
                c.resume()
            }
            t.stackSize = 16 << 20
            t.start()
        }
    }

    // MARK: - Training

    /// Runs one queued job to an end state (or back to queued when the server is stopping).
    func execute(_ id: String) {
        do {
            let job = try store.updateJob(id, event: ("info", "Fine-tuning job started.")) { j in
                guard j.status == .queued else { throw APIError.invalid("job \(id) is no longer queued") }
                j.status = .running
            }
            locked { runningJob = id }
            defer { locked { runningJob = nil; cancels.remove(id) } }
            try train(job)
        } catch let e as APIError where e.status == .badRequest {
            return   // cancelled between the queue read and the start
        } catch {
            let message = (error as? TuneError)?.message ?? (error as? EngineError)?.message ?? "\(error)"
            _ = try? store.updateJob(id, event: ("error", "Fine-tuning failed: \(message)")) {
                $0.status = .failed
                $0.finishedAt = ServeStore.now()
                $0.error = JobError(code: "training_failed", message: message, param: nil)
            }
        }
    }

    /// OpenAI's hyperparameters on tune's one train recipe (TrainRecipe; see docs/serve.md).
    static func recipe(for job: FineTuningJob, checkpointEvery: Int) -> TrainRecipe {
        TrainRecipe(openAIHyperparameters: job.hyperparameters.nEpochs, batchSize: job.hyperparameters.batchSize,
                    learningRateMultiplier: job.hyperparameters.learningRateMultiplier, seed: job.seed,
                    checkpointEvery: checkpointEvery)
    }

    private func train(_ job: FineTuningJob) throws {
        let dir = Self.jobDirectory(store: store, job: job.id)
        let output = Self.adapterDirectory(store: store, job: job.id)
        // The prepare stage's chat formatting: the model's template, loss on assistant turns only.
        var prep = PrepareConfig()
        prep.format = .chat
        prep.onError = .fail
        prep.split.evalFraction = 0
        prep.dedup.exact = false
        prep.dedup.near = nil
        prep.maxTokens = min(prep.maxTokens, host.base.config.contextLength)
        let trainPath = store.filePath(job.trainingFile)
        let (data, _) = try TrainingDataLoader.load(
            data: [trainPath], evalFile: job.validationFile.map { store.filePath($0) }, modelPath: config.modelPath,
            workDir: dir, config: prep)
        let options: TrainingOptions
        do { options = try Self.recipe(for: job, checkpointEvery: config.checkpointEvery).options(model: host.base.config) } catch let e as TuneError {
            throw TuneError(.invalidArgument, "hyperparameters: \(e.message)")
        }
        let trainer = try LoRATrainer(model: host.base, options: options, data: data, output: output, baseModelName: host.baseID)
        let ftID = ModelHost.fineTunedID(base: host.baseID, suffix: job.suffix, job: job.id)
        var lastLoss: Double?, lastEval: Double?
        var lastStepEvent = Date.distantPast
        let result = try trainer.run(shouldStop: { [self] in locked { stopping || cancels.contains(job.id) } }, events: { [self] e in
            switch e {
            case .started(let s):
                try? store.addEvent(job: job.id, message: "Training started: \(TrainRecipe.Text.started(s)).")
            case .resumed(let step, _):
                try? store.addEvent(job: job.id, message: "Resumed from the checkpoint at step \(step).")
            case .step(let p):
                metrics.addTrained(tokens: p.record.tokens)
                lastLoss = p.record.loss
                // One metrics event per step, or at most one a second for fast (tiny) models.
                if p.record.step == p.totalSteps || Date().timeIntervalSince(lastStepEvent) >= 1 || p.totalSteps <= 200 {
                    lastStepEvent = Date()
                    try? store.addEvent(job: job.id, message: String(format: "Step %d/%d: training loss=%.4f", p.record.step, p.totalSteps, p.record.loss),
                                        type: "metrics", data: ["step": Double(p.record.step), "train_loss": p.record.loss,
                                                                "total_steps": Double(p.totalSteps), "learning_rate": p.record.learningRate])
                }
            case .eval(let r):
                lastEval = r.loss
                try? store.addEvent(job: job.id, message: String(format: "Step %d: validation loss=%.4f", r.step, r.loss), type: "metrics",
                                    data: ["step": Double(r.step), "valid_loss": r.loss])
            case .checkpoint(let step, _):
                var m: [String: Double] = ["step": Double(step)]
                if let lastLoss { m["train_loss"] = lastLoss }
                if let lastEval { m["valid_loss"] = lastEval }
                try? store.addCheckpoint(job: job.id, step: step, modelID: "\(ftID):ckpt-step-\(step)", metrics: m)
            case .interrupted(let step, _):
                try? store.addEvent(job: job.id, message: "Training stopped at step \(step); checkpoint written.")
            default: break
            }
        })
        let tokens = result.log.reduce(0) { $0 + $1.tokens }
        if result.interrupted {
            if locked({ cancels.contains(job.id) }) {
                try store.updateJob(job.id, event: ("info", "Fine-tuning job cancelled at step \(result.steps).")) {
                    $0.status = .cancelled
                    $0.finishedAt = ServeStore.now()
                    $0.trainedTokens = tokens
                }
            } else {
                try store.updateJob(job.id, event: ("info", "The server is shutting down; the job was requeued and resumes from step \(result.steps).")) {
                    $0.status = .queued
                }
            }
            return
        }
        try? FileManager.default.removeItem(atPath: (output as NSString).appendingPathComponent("checkpoints"))
        try store.updateJob(job.id, event: ("info", "The job has successfully completed. New model: \(ftID)")) {
            $0.status = .succeeded
            $0.finishedAt = ServeStore.now()
            $0.fineTunedModel = ftID
            $0.trainedTokens = tokens
        }
    }
}
