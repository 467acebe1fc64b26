// PipelineRunnerTests — cache keys skip finished stages; changed inputs re-run; unimplemented stages say so.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct PipelineRunnerTests {
    /// A temp dir with a tiny model, a small chat dataset and a pipeline file.
    static func setUp() throws -> (dir: URL, pipeline: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 1, weightType: .q8_0)
        let rows = (0..<12).map { i in
            #"{"messages": [{"role": "user", "content": "item \#(i) please"}, {"role": "assistant", "content": "label \#(i % 3)"}]}"#
        }
        try (rows.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("train.jsonl"), atomically: true, encoding: .utf8)
        let yaml = """
            name: tiny-run
            base: tiny.gguf
            seed: 3
            registry: registry.sqlite
            prepare:
              train: train.jsonl
              split: {eval_fraction: 0.25}
            register:
              aliases: [staging]
            """
        let p = dir.appendingPathComponent("pipeline.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        return (dir, p)
    }

    @Test func secondRunSkipsEverythingAndChangedInputReruns() throws {
        let (dir, path) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        let spec = try PipelineSpec.load(path: path)

        let first = try PipelineRunner(spec: spec, options: opts).run()
        #expect(first.stages.map(\.status) == ["ran", "ran"])
        #expect(first.stages[0].outputs == ["tiny-run-dataset@1"])

        var dry = opts
        dry.dryRun = true
        var events: [RunEvent] = []
        _ = try PipelineRunner(spec: spec, options: dry).run { events.append($0) }
        #expect(events.allSatisfy { if case .planned(_, "skip", _) = $0 { true } else { false } })

        let second = try PipelineRunner(spec: spec, options: opts).run()
        #expect(second.stages.map(\.status) == ["cached", "cached"])
        #expect(second.runID == nil, "a fully cached run starts no run record")
        #expect(second.stages.map(\.cacheKey) == first.stages.map(\.cacheKey))

        // Touch the data: prepare's key changes, a new dataset version is registered.
        let train = dir.appendingPathComponent("train.jsonl")
        try (String(contentsOf: train, encoding: .utf8)
            + #"{"messages": [{"role": "user", "content": "one more"}, {"role": "assistant", "content": "label 0"}]}"# + "\n")
            .write(to: train, atomically: true, encoding: .utf8)
        let third = try PipelineRunner(spec: spec, options: opts).run()
        #expect(third.stages.map(\.status) == ["ran", "ran"])
        #expect(third.stages[0].outputs == ["tiny-run-dataset@2"])
        let reg = try Registry.open(path: dir.appendingPathComponent("registry.sqlite").path, blobRoot: opts.blobRoot)
        #expect(try reg.resolve("tiny-run-dataset@staging").version == 2)

        var forced = opts
        forced.force = [.register]
        #expect(try PipelineRunner(spec: spec, options: forced).run().stages.map(\.status) == ["cached", "ran"])
    }

    @Test func managedBackendWithoutAnAPIKeyIsAClearError() throws {
        let (dir, path) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let yaml = try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "register:", with: "train:\n  backend: openai\n  openai: {model: gpt-4o-mini}\nregister:")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        opts.environment = [:]
        do {
            _ = try PipelineRunner(spec: try PipelineSpec.load(path: path), options: opts).run()
            Issue.record("expected an error")
        } catch let e as TuneError {
            #expect(e.message == "the API key for the managed provider is not set: export OPENAI_API_KEY=… (or name another variable: train.openai.api_key_env in a pipeline, --api-key-env for tune jobs)")
        }
    }
}

@Suite struct FileHashCacheTests {
    @Test func remembersUnchangedFilesAndNoticesChanges() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-hashcache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("model.bin").path, store = dir.appendingPathComponent("hashes.json").path
        try Data("one".utf8).write(to: URL(fileURLWithPath: f))
        let a = FileHashCache(file: store)
        let h1 = try a.sha256(f)
        #expect(h1 == SHA256.hex(Data("one".utf8)))
        a.save()
        #expect(FileManager.default.fileExists(atPath: store))
        // A second cache reads the stored entry: prove it by planting a different hash for the same stamp.
        var stored = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: store))) as! [String: [String: String]]
        let key = stored.keys.first!
        stored[key]!["sha256"] = "planted"
        try JSONSerialization.data(withJSONObject: stored).write(to: URL(fileURLWithPath: store))
        #expect(try FileHashCache(file: store).sha256(f) == "planted")
        // Changed content (new size and mtime) is hashed again.
        try Data("two!".utf8).write(to: URL(fileURLWithPath: f))
        #expect(try FileHashCache(file: store).sha256(f) == SHA256.hex(Data("two!".utf8)))
    }
}
