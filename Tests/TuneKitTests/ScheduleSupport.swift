// ScheduleSupport — a temp directory with a registry, tiny GGUF bases and scheduled pipeline files.
import Foundation
import Engine
import TuneKit

struct ScheduleFixture {
    let dir: URL
    let registry: Registry
    let scratch: ScratchDatabase?

    /// A fresh registry on `backend` (RegistrySupport: the PostgreSQL case needs TUNE_TEST_POSTGRES).
    init(_ backend: RegistryBackend = .sqlite) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-sched-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (location, scratch) = try backend.freshLocation(in: dir, file: "reg.sqlite")
        self.scratch = scratch
        registry = try Registry.open(path: location, blobRoot: dir.appendingPathComponent("blobs").path)
    }

    /// Another handle on the same database (as a second process would have).
    func reopen() throws -> Registry {
        try Registry.open(path: registry.path, blobRoot: dir.appendingPathComponent("blobs").path)
    }

    /// Writes a tiny llama GGUF and returns its path.
    func model(_ name: String, seed: UInt64, config: LlamaConfig = .tiny) throws -> String {
        let p = dir.appendingPathComponent(name).path
        try TinyLlama.writeGGUF(to: p, config: config, seed: seed, weightType: .q4_1)
        return p
    }

    /// Registers `FAMILY@version` from a fresh tiny model.
    @discardableResult
    func base(_ family: String = "tiny", _ version: String, seed: UInt64) throws -> BaseModel {
        try BaseCatalog.add(.init(family: family, version: version, model: model("\(family)-\(version).gguf", seed: seed),
                                  license: "apache-2.0"), to: registry).base
    }

    /// Writes a scheduled pipeline file and returns its path.
    func pipeline(_ name: String, base: String = "tiny@latest", schedule: String = "{on_base_upgrade: true}", rank: Int = 4) throws -> String {
        let yaml = """
        name: \(name)
        base: \(base)
        seed: 5
        prepare:
          train: data.jsonl
          split: {eval_fraction: 0.2}
        train:
          lora: {rank: \(rank), alpha: 8, dropout: 0.0}
          max_steps: 4
          batch_size: 4
          seq_len: 64
        eval:
          metrics: [loss]
        schedule: \(schedule)
        """
        let p = dir.appendingPathComponent("\(name).yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
}
