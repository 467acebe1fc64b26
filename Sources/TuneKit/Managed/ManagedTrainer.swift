// ManagedTrainer — one fine-tuning job at an OpenAI-compatible provider, idempotent and resumable:
//   1. look for a job whose metadata carries this stage's cache key (a re-run, or a run that lost its
//      connection, re-attaches to it — even one that already succeeded);
//   2. else upload the chat-format train/validation JSONL (purpose `fine-tune`) and create the job with
//      `metadata: {tune_cache_key: …}` and a deterministic suffix;
//   3. poll it, reporting status changes and new events, until it succeeds (→ result) or fails or is
//      cancelled (→ TuneError with the provider's message).
// Stopping (Ctrl-C) stops polling only: the job keeps running and the next run re-attaches.
//
//     let trainer = ManagedTrainer(client: client, pollInterval: 10, timeout: 86_400)
//     let result = try trainer.run(ManagedTrainRequest(…)) { event in … }

import Foundation

/// What to train.
public struct ManagedTrainRequest: Sendable {
    public var model: String
    public var train: Data
    public var validation: Data?
    public var hyperparameters: Hyperparameters
    public var suffix: String?
    public var seed: Int?
    /// Identifies the job across runs (`tune_cache_key` → the stage's cache key).
    public var metadata: [String: String]
    public init(model: String, train: Data, validation: Data?, hyperparameters: Hyperparameters, suffix: String?,
                seed: Int?, metadata: [String: String]) {
        self.model = model; self.train = train; self.validation = validation; self.hyperparameters = hyperparameters
        self.suffix = suffix; self.seed = seed; self.metadata = metadata
    }
}

/// Progress of a managed job, as data (the runner turns it into progress lines).
public enum ManagedTrainEvent: Sendable, Equatable {
    case attached(job: String, status: String)
    case uploaded(file: String, bytes: Int, role: String)
    case created(job: String)
    case status(String)
    /// A provider event; `step`/`trainLoss` are set for metrics events.
    case event(message: String, step: Int?, totalSteps: Int?, trainLoss: Double?)
    case retrying(String)
}

public struct ManagedTrainResult: Sendable {
    public var job: FineTuningJob
    public var checkpoints: [FineTuningCheckpoint]
    public var events: [FineTuningEvent]
    /// True when the job was found by its metadata instead of created by this run.
    public var reattached: Bool
}

public struct ManagedTrainer: Sendable {
    public var client: OpenAIClient
    public var pollInterval: Double
    /// Total seconds to wait for the job; past it the stage fails and the job keeps running.
    public var timeout: Double

    public init(client: OpenAIClient, pollInterval: Double = 10, timeout: Double = 86_400) {
        self.client = client; self.pollInterval = pollInterval; self.timeout = timeout
    }

    /// Runs (or re-attaches to) the job and follows it to the end. `onEvent` is called on this thread.
    public func run(_ request: ManagedTrainRequest, onEvent: (ManagedTrainEvent) -> Void) throws -> ManagedTrainResult {
        var client = self.client
        let retries = LineBox()
        client.onRetry = { retries.add($0) }
        func emit(_ e: ManagedTrainEvent) {
            for r in retries.drain() { onEvent(.retrying(r)) }
            onEvent(e)
        }
        var job: FineTuningJob
        let existing = try client.findJobs(metadata: request.metadata)
        // A live or finished job is resumed; failed/cancelled ones are history: a re-run trains anew.
        let reattached: Bool
        if let found = existing.first(where: { !["failed", "cancelled"].contains($0.status) }) {
            job = found
            reattached = true
            emit(.attached(job: job.id, status: job.status))
        } else {
            let train = try client.uploadFile(request.train, filename: "train.jsonl")
            emit(.uploaded(file: train.id, bytes: request.train.count, role: "train"))
            var validation: OpenAIFile? = nil
            if let v = request.validation, !v.isEmpty {
                validation = try client.uploadFile(v, filename: "validation.jsonl")
                emit(.uploaded(file: validation!.id, bytes: v.count, role: "validation"))
            }
            job = try client.createJob(CreateFineTuningJob(
                model: request.model, trainingFile: train.id, validationFile: validation?.id,
                hyperparameters: request.hyperparameters.isEmpty ? nil : request.hyperparameters,
                suffix: request.suffix, seed: request.seed, metadata: request.metadata))
            reattached = false
            emit(.created(job: job.id))
        }
        let start = client.clock.now()
        var seen = Set<String>(), events: [FineTuningEvent] = [], lastStatus = ""
        while true {
            if job.status != lastStatus { lastStatus = job.status; emit(.status(job.status)) }
            for e in try newEvents(client, job.id, seen: &seen) {
                events.append(e)
                emit(Self.progress(e))
            }
            if job.isTerminal { break }
            guard client.clock.now() - start + pollInterval <= timeout else {
                throw TuneError(.remote, "fine-tuning job \(job.id) is still \(job.status) after \(OpenAIClient.seconds(timeout)) "
                                + "(train.openai.timeout); it keeps running at the provider — run again to re-attach")
            }
            do { try client.pause(pollInterval) } catch let e as TuneError where e.kind == .interrupted {
                throw TuneError(.interrupted, "stopped following fine-tuning job \(job.id) (\(job.status)); the job keeps running at the provider: "
                                + "run the same command to re-attach, or `tune jobs cancel \(job.id)` to cancel it")
            }
            job = try client.job(job.id)
            for r in retries.drain() { emit(.retrying(r)) }
        }
        guard job.status == "succeeded" else {
            let why = job.error.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") } ?? "no error given"
            throw TuneError(.remote, "fine-tuning job \(job.id) \(job.status): \(client.scrub(why.isEmpty ? "no error given" : why))")
        }
        guard job.fineTunedModel?.isEmpty == false else {
            throw TuneError(.remote, "fine-tuning job \(job.id) succeeded but names no fine_tuned_model")
        }
        // Checkpoints are optional (not every provider has the endpoint).
        let checkpoints = (try? client.checkpoints(job: job.id).data) ?? []
        return ManagedTrainResult(job: job, checkpoints: checkpoints, events: events, reattached: reattached)
    }

    /// Events not reported yet, oldest first (providers list newest first).
    func newEvents(_ client: OpenAIClient, _ id: String, seen: inout Set<String>) throws -> [FineTuningEvent] {
        let page = try client.events(job: id, limit: 100)
        let oldestFirst = Array(page.data.reversed().enumerated())
        let fresh = oldestFirst.filter { !seen.contains($0.element.id) }
            .sorted { ($0.element.createdAt ?? 0, $0.offset) < ($1.element.createdAt ?? 0, $1.offset) }.map(\.element)
        for e in fresh { seen.insert(e.id) }
        return fresh
    }

    static func progress(_ e: FineTuningEvent) -> ManagedTrainEvent {
        func number(_ key: String) -> Double? {
            if case .object(let o)? = e.data, case .number(let n)? = o[key] { return n }
            return nil
        }
        return .event(message: e.message ?? "", step: number("step").map { Int($0) }, totalSteps: number("total_steps").map { Int($0) },
                      trainLoss: number("train_loss"))
    }
}

/// Retry notes from the client's callback, handed on at the trainer's next event.
final class LineBox: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    func drain() -> [String] { lock.lock(); defer { lines = []; lock.unlock() }; return lines }
}
