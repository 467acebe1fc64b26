// ModelHost — the models the server offers: the base model loaded once at startup, the adapters of
// finished jobs and (with --registry) the registry's adapters trained on this base, loaded on first
// use over the same (shared) base weights and kept in a small LRU cache; and (with --router) registered
// routers, loaded at startup with their routed models, answering chat under the ids they were named by.

import Engine
import Foundation
import TuneKit

final class ModelHost: @unchecked Sendable {
    let base: LlamaModel
    let baseID: String
    let created: Int
    private let store: ServeStore
    private let cacheSize: Int
    private let registry: Registry?
    /// The base model's file name, as the train stage records it in an adapter's `base_model` metadata.
    private let baseFile: String
    private let lock = NSLock()
    private var adapters: [(id: String, model: LlamaModel)] = []
    /// One continuous batcher per loaded model (nil batch size: none); an evicted adapter's is shut down.
    private let batchSize: Int
    private let packedWeightBytes: Int
    private let prefixCache: Int
    private var batchers: [ObjectIdentifier: ContinuousBatcher] = [:]
    /// Each `--router` as given, with the runtime it names (also reachable as NAME and NAME@VERSION).
    let routers: [(id: String, runtime: RouterRuntime)]

    init(config: ServeConfig, store: ServeStore) throws {
        base = try LlamaModel.load(path: config.modelPath)
        baseID = config.modelID
        created = Int((try? FileManager.default.attributesOfItem(atPath: config.modelPath)[.modificationDate] as? Date)?
            .timeIntervalSince1970 ?? Date().timeIntervalSince1970)
        self.store = store
        cacheSize = max(1, config.adapterCacheSize)
        batchSize = config.batchSize
        packedWeightBytes = config.packedWeightBytes
        prefixCache = config.prefixCache
        registry = try config.registryPath.map { try Registry.open(path: $0, blobRoot: config.blobRoot) }
        baseFile = (config.modelPath as NSString).lastPathComponent
        var routers: [(String, RouterRuntime)] = []
        if let registry {
            for ref in config.routers {
                routers.append((ref, try RouterRuntime.load(ref: ref, registry: registry, base: base, baseFile: baseFile, environment: config.environment,
                                                           referenceURL: config.routerReferenceURL, timeout: config.routerTimeout)))
            }
        }
        self.routers = routers
    }

    /// The router a chat request's `model` names: a `--router` as given, or its artifact's NAME or NAME@VERSION.
    func router(_ id: String) -> RouterRuntime? {
        routers.first { $0.id == id || $0.runtime.artifact.name == id || $0.runtime.artifact.ref == id }?.runtime
    }

    /// Registered adapters trained on this base (all versions).
    private func registered() throws -> [Artifact] {
        guard let registry else { return [] }
        return try registry.list(kind: .adapter).filter { $0.metadata["base_model"] == .string(baseFile) }
    }

    /// The registered adapter `ref` names (NAME, NAME@3, NAME@alias), when it is one for this base.
    private func registered(_ ref: String) throws -> (Artifact, String)? {
        guard let registry, !ref.hasPrefix("ft:"), let a = try? registry.resolve(ref), a.kind == .adapter else { return nil }
        guard a.metadata["base_model"] == .string(baseFile) else {
            throw APIError.invalid("The registered adapter '\(a.ref)' was not trained on this server's base model '\(baseID)'.", param: "model")
        }
        guard let path = registry.path(of: a) else { return nil }
        return (a, path)
    }

    /// `ft:<base>:<suffix>:<job-id>` for a job of this server.
    static func fineTunedID(base: String, suffix: String?, job: String) -> String { "ft:\(base):\(suffix ?? ""):\(job)" }

    /// The job that produced a fine-tuned model id, when the id is one of this server's.
    func job(forModel id: String) throws -> FineTuningJob? {
        guard id.hasPrefix("ft:"), let jobID = id.split(separator: ":", omittingEmptySubsequences: false).last,
              let job = try store.job(String(jobID)), job.fineTunedModel == id, job.status == .succeeded else { return nil }
        return job
    }

    /// Every servable model: the base, then finished fine-tunes (newest first).
    func list() throws -> [ModelObject] {
        [ModelObject(id: baseID, created: created, ownedBy: "tune")]
            + (try store.jobs(status: .succeeded)).reversed().compactMap { j in
                j.fineTunedModel.map { ModelObject(id: $0, created: j.finishedAt ?? j.createdAt, ownedBy: "tune") }
            }
            + (try registered()).map { ModelObject(id: $0.ref, created: Self.epoch($0.createdAt), ownedBy: "tune-registry") }
            + routers.map { ModelObject(id: $0.id, created: Self.epoch($0.runtime.artifact.createdAt), ownedBy: "tune-router") }
    }

    private static func epoch(_ iso: String) -> Int {
        Int((ISO8601DateFormatter().date(from: iso) ?? Date()).timeIntervalSince1970)
    }

    func info(_ id: String) throws -> ModelObject? {
        if id == baseID { return ModelObject(id: baseID, created: created, ownedBy: "tune") }
        if let r = router(id) { return ModelObject(id: id, created: Self.epoch(r.artifact.createdAt), ownedBy: "tune-router") }
        if let (a, _) = try registered(id) { return ModelObject(id: id, created: Self.epoch(a.createdAt), ownedBy: "tune-registry") }
        guard let j = try job(forModel: id) else { return nil }
        return ModelObject(id: id, created: j.finishedAt ?? j.createdAt, ownedBy: "tune")
    }

    /// The model to generate with for `id`; nil when no such model is served.
    func model(_ id: String) throws -> LlamaModel? {
        if id == baseID { return base }
        lock.lock()
        if let i = adapters.firstIndex(where: { $0.id == id }) {
            let hit = adapters.remove(at: i)
            adapters.append(hit)
            lock.unlock()
            return hit.model
        }
        lock.unlock()
        let directory: String
        if let job = try job(forModel: id) {
            directory = JobWorker.adapterDirectory(store: store, job: job.id)
        } else if let (_, path) = try registered(id) {
            directory = path
        } else { return nil }
        let m = try base.loadingAdapter(directory: directory)
        lock.lock()
        defer { lock.unlock() }
        adapters.removeAll { $0.id == id }
        adapters.append((id, m))
        if adapters.count > cacheSize {
            let evicted = adapters.removeFirst().model
            batchers.removeValue(forKey: ObjectIdentifier(evicted))?.shutdown()   // it finishes what it holds
        }
        return m
    }

    /// The continuous batcher that decodes `model`'s chat completions (nil: batching is off, or the model
    /// is no longer hosted — an adapter evicted since the request looked it up generates on its own).
    func batcher(for model: LlamaModel) -> ContinuousBatcher? {
        guard batchSize > 0 else { return nil }
        lock.lock()
        defer { lock.unlock() }
        if let b = batchers[ObjectIdentifier(model)] { return b }
        guard model === base || adapters.contains(where: { $0.model === model }) else { return nil }
        let b = ContinuousBatcher(model: model, maxBatch: batchSize, packedWeightBytes: packedWeightBytes, prefixCache: prefixCache)
        batchers[ObjectIdentifier(model)] = b
        return b
    }

    /// Ends every batcher's decoding thread (once its sequences are done): the server is stopping.
    func shutdownBatchers() {
        lock.lock()
        let all = Array(batchers.values)
        batchers = [:]
        lock.unlock()
        for b in all { b.shutdown() }
    }

    /// Steps taken, the largest batch decoded and prompt tokens reused, over every model's batcher.
    var batchCounters: (steps: Int, peakBatch: Int, reusedPromptTokens: Int) {
        lock.lock()
        defer { lock.unlock() }
        return batchers.values.reduce((0, 0, 0)) { acc, b in
            let c = b.counters
            return (acc.0 + c.steps, max(acc.1, c.peakBatch), acc.2 + c.reusedPromptTokens)
        }
    }
}
