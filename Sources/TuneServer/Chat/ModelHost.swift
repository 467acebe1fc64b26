// ModelHost — the models the server offers: the base model loaded once at startup and the adapters of
// finished jobs, loaded on first use over the same (shared) base weights and kept in a small LRU cache.

import Foundation
import TuneKit

final class ModelHost: @unchecked Sendable {
    let base: LlamaModel
    let baseID: String
    let created: Int
    private let store: ServeStore
    private let cacheSize: Int
    private let lock = NSLock()
    private var adapters: [(id: String, model: LlamaModel)] = []

    init(config: ServeConfig, store: ServeStore) throws {
        base = try LlamaModel.load(path: config.modelPath)
        baseID = config.modelID
        created = Int((try? FileManager.default.attributesOfItem(atPath: config.modelPath)[.modificationDate] as? Date)?
            .timeIntervalSince1970 ?? Date().timeIntervalSince1970)
        self.store = store
        cacheSize = max(1, config.adapterCacheSize)
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
    }

    func info(_ id: String) throws -> ModelObject? {
        if id == baseID { return ModelObject(id: baseID, created: created, ownedBy: "tune") }
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
        guard let job = try job(forModel: id) else { return nil }
        let m = try base.loadingAdapter(directory: JobWorker.adapterDirectory(store: store, job: job.id))
        lock.lock()
        defer { lock.unlock() }
        adapters.removeAll { $0.id == id }
        adapters.append((id, m))
        if adapters.count > cacheSize { adapters.removeFirst() }
        return m
    }
}
