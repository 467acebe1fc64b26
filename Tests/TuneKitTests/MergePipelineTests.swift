// MergePipelineTests — the pipeline's merge stage runs MergeJob: adapters from paths merged into an
// adapter (kind adapter) or a GGUF model (kind merged-model), cached on re-run, clear errors for inputs
// that are neither files nor registry artifacts.
import Engine
import Foundation
import Testing
import TuneKit

@Suite("MergePipeline")
struct MergePipelineTests {
    static func setUp(merge: String) throws -> (URL, String) {
        let dir = try MergeFixtures.tempDir()
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 1, weightType: .f32)
        try MergeFixtures.randomAdapter(dir.appendingPathComponent("a1").path, config: .tiny, rank: 4, seed: 1)
        try MergeFixtures.randomAdapter(dir.appendingPathComponent("a2").path, config: .tiny, rank: 4, targets: [.q, .v], seed: 2)
        let yaml = "name: tiny-merge\nbase: tiny.gguf\nseed: 5\nregistry: registry.sqlite\n" + merge + "register:\n  aliases: [staging]\n"
        let p = dir.appendingPathComponent("pipeline.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        return (dir, p)
    }

    @Test("merge stage → adapter artifact, cached on the second run")
    func mergeToAdapter() throws {
        let (dir, path) = try Self.setUp(merge: """
            merge:
              method: dare_ties
              adapters:
                - {adapter: a1, weight: 1.0, density: 0.5}
                - {adapter: a2, weight: 0.5, density: 0.5}
              rank: 6

            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        let spec = try PipelineSpec.load(path: path)
        let first = try PipelineRunner(spec: spec, options: opts).run()
        #expect(first.stages.map(\.status) == ["ran", "ran"])
        #expect(first.stages[0].outputs == ["tiny-merge-merged@1"])
        let reg = try Registry.open(path: dir.appendingPathComponent("registry.sqlite").path, blobRoot: opts.blobRoot)
        let a = try reg.resolve("tiny-merge-merged@staging")
        #expect(a.kind == .adapter)
        #expect(a.metadata["rank"] == .number(6))
        let adapter = try LoRAAdapter.load(directory: try #require(reg.path(of: a)), model: .tiny)
        #expect(adapter.rank == 6)
        let second = try PipelineRunner(spec: spec, options: opts).run()
        #expect(second.stages.map(\.status) == ["cached", "cached"])
    }

    @Test("merge stage → GGUF merged model (q8_0) that loads")
    func mergeToModel() throws {
        let (dir, path) = try Self.setUp(merge: """
            merge:
              method: ties
              adapters:
                - {adapter: a1, density: 0.7}
                - {adapter: a2, density: 0.7}
              output: model
              dtype: q8_0

            """)
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        _ = try PipelineRunner(spec: try PipelineSpec.load(path: path), options: opts).run()
        let reg = try Registry.open(path: dir.appendingPathComponent("registry.sqlite").path, blobRoot: opts.blobRoot)
        let a = try reg.resolve("tiny-merge-merged@1")
        #expect(a.kind == .mergedModel)
        let root = try #require(reg.path(of: a))
        let gguf = try #require(try FileManager.default.contentsOfDirectory(atPath: root).first { $0.hasSuffix(".gguf") })
        let model = try LlamaModel.load(path: root + "/" + gguf)
        #expect(try model.makeSession().logits(for: [1, 2, 3]).allSatisfy(\.isFinite))
    }

    @Test("an input that is neither a path nor an artifact is a clear error")
    func missingInput() throws {
        let (dir, path) = try Self.setUp(merge: "merge:\n  adapters:\n    - adapter: nope@3\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        do {
            _ = try PipelineRunner(spec: try PipelineSpec.load(path: path), options: opts).run()
            Issue.record("expected an error")
        } catch let e as TuneError {
            #expect(e.kind == .notFound)
            #expect(e.message.hasPrefix("tiny-merge: merge.adapters[0]: \"nope@3\" is neither a file"))
        }
    }
}
