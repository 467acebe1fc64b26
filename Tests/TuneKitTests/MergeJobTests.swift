// MergeJobTests — end to end on the tiny model: adapters merged into a GGUF model give the same logits
// as base + adapter (Q/K row order survives the round trip), a merged adapter re-factored by SVD equals
// the weighted sum of the inputs' ΔW, mergekit YAML problems are reported with positions.
import Engine
import Foundation
import Testing
import TuneKit

@Suite("MergeJob")
struct MergeJobTests {
    static func tinyBase(_ dir: URL) throws -> String {
        let p = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: p, config: .tiny, seed: 7, weightType: .f32)
        return p
    }

    @Test("one adapter merged into a GGUF model = base + adapter (logits)", arguments: ["f32", "q8_0"])
    func ggufModelMatchesAdapter(_ dtype: String) throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.tinyBase(dir)
        let adapterDir = dir.appendingPathComponent("a").path
        try MergeFixtures.randomAdapter(adapterDir, config: .tiny, rank: 4, seed: 1)
        var spec = MergeSpec(method: MergeMethods.named("task_arithmetic")!, base: base, inputs: [.init(path: adapterDir)])
        spec.output = .model
        spec.format = .gguf
        spec.dtype = dtype
        let out = dir.appendingPathComponent("merged").path
        let r = try MergeJob.run(spec, outputDirectory: out)
        #expect(r.tensorsMerged == 7 * LlamaConfig.tiny.numLayers)
        let file = try #require(r.files.first { $0.hasSuffix(".gguf") })
        let merged = try LlamaModel.load(path: out + "/" + file)
        let reference = try LlamaModel.load(path: base).loadingAdapter(directory: adapterDir)
        let ids: [Int32] = [1, 40, 41, 42, 77, 90, 12]
        let a = try merged.makeSession().logits(for: ids), b = try reference.makeSession().logits(for: ids)
        let maxDiff = zip(a, b).map { abs($0 - $1) }.max()!
        let spread = (b.max()! - b.min()!)
        #expect(maxDiff < (dtype == "f32" ? 1e-4 : 2e-2) * max(1, spread), "maxdiff \(maxDiff)")
        // Untouched tensors are byte-identical copies (norms, embeddings).
        let g = try GGUFFile(path: out + "/" + file), g0 = try GGUFFile(path: base)
        let emb = try #require(g.tensor(named: "token_embd.weight")), emb0 = try #require(g0.tensor(named: "token_embd.weight"))
        #expect(Array(g.data(for: emb)) == Array(g0.data(for: emb0)))
        #expect(g.tensor(named: "blk.0.attn_q.weight")?.type.name == dtype)
    }

    @Test("merged adapter (task arithmetic) = Σ wᵢ ΔWᵢ, exactly representable at the summed rank")
    func adapterOutput() throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.tinyBase(dir)
        let a1 = try MergeFixtures.randomAdapter(dir.appendingPathComponent("a1").path, config: .tiny, rank: 4, targets: [.q, .v, .down], seed: 1)
        let a2 = try MergeFixtures.randomAdapter(dir.appendingPathComponent("a2").path, config: .tiny, rank: 2, targets: [.q, .k], seed: 2)
        var spec = MergeSpec(method: MergeMethods.named("task_arithmetic")!, base: base,
                             inputs: [.init(path: dir.appendingPathComponent("a1").path, parameters: .init(weight: 0.7)),
                                      .init(path: dir.appendingPathComponent("a2").path, parameters: .init(weight: -1.2))])
        spec.options.lambda = 0.5
        let out = dir.appendingPathComponent("merged").path
        let r = try MergeJob.run(spec, outputDirectory: out)
        #expect(r.rank == 6)
        #expect(abs((r.energyKept ?? 0) - 1) < 1e-9)
        let m = try LoRAAdapter.load(directory: out, model: .tiny)
        #expect(Set(m.config.targets) == [.q, .k, .v, .down])
        for s in m.slots {
            let got = m.delta(s)
            var want = [Float](repeating: 0, count: got.count)
            if let s1 = a1.slot(layer: s.layer, target: s.target) { for (i, x) in a1.delta(s1).enumerated() { want[i] += 0.5 * 0.7 * x } }
            if let s2 = a2.slot(layer: s.layer, target: s.target) { for (i, x) in a2.delta(s2).enumerated() { want[i] += 0.5 * -1.2 * x } }
            let err = zip(got, want).map { abs($0 - $1) }.max()!
            #expect(err < 1e-5, "\(s.target) layer \(s.layer): maxdiff \(err)")
        }
        // TIES output is dense: a smaller rank keeps less energy, and says so.
        var ties = spec
        ties.method = MergeMethods.named("ties")!
        ties.inputs = ties.inputs.map { var i = $0; i.parameters.density = 0.5; return i }
        ties.rank = 2
        let rt = try MergeJob.run(ties, outputDirectory: dir.appendingPathComponent("ties").path)
        #expect((rt.energyKept ?? 1) < 1 && (rt.energyKept ?? 0) > 0.1)
    }

    @Test("same seed ⇒ byte-identical DARE output; another seed differs")
    func dareDeterministic() throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.tinyBase(dir)
        try MergeFixtures.randomAdapter(dir.appendingPathComponent("a1").path, config: .tiny, rank: 4, seed: 1)
        try MergeFixtures.randomAdapter(dir.appendingPathComponent("a2").path, config: .tiny, rank: 4, seed: 2)
        func run(_ seed: UInt64, _ name: String) throws -> Data {
            var s = MergeSpec(method: MergeMethods.named("dare_ties")!, base: base,
                              inputs: ["a1", "a2"].map { .init(path: dir.appendingPathComponent($0).path, parameters: .init(weight: 1, density: 0.4)) })
            s.seed = seed
            s.output = .model
            _ = try MergeJob.run(s, outputDirectory: dir.appendingPathComponent(name).path)
            return try Data(contentsOf: dir.appendingPathComponent(name + "/model.safetensors"))
        }
        let x = try run(1, "x"), y = try run(1, "y"), z = try run(2, "z")
        #expect(x == y)
        #expect(x != z)
    }

    @Test("zero weight sum under normalize, and adapters of different bases: errors before any output")
    func badInputsFailBeforeOutput() throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = try Self.tinyBase(dir)
        let a1 = dir.appendingPathComponent("a1").path, a2 = dir.appendingPathComponent("a2").path
        try MergeFixtures.randomAdapter(a1, config: .tiny, rank: 4, seed: 1)
        let other = try MergeFixtures.randomAdapter(a2, config: .tiny, rank: 4, seed: 2)
        func expectError(_ spec: MergeSpec, _ needle: String) {
            let out = dir.appendingPathComponent("out-\(UUID().uuidString)").path
            do {
                _ = try MergeJob.run(spec, outputDirectory: out)
                Issue.record("expected an error containing \(needle)")
            } catch {
                #expect("\(error)".contains(needle), "\(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: out), "nothing may be written")
        }
        var zero = MergeSpec(method: MergeMethods.named("ties")!, base: base,
                             inputs: [.init(path: a1, parameters: .init(weight: 1, density: 1)), .init(path: a2, parameters: .init(weight: -1, density: 1))])
        expectError(zero, "weights sum to 0")
        zero.options.normalize = false
        _ = try MergeJob.run(zero, outputDirectory: dir.appendingPathComponent("ok").path) // no division: allowed
        try FileManager.default.removeItem(atPath: a2)
        try other.save(directory: a2, baseModel: "Qwen2.5-0.5B-Instruct")
        expectError(MergeSpec(method: MergeMethods.named("linear")!, base: base, inputs: [.init(path: a1), .init(path: a2)]),
                    "adapters of different base models")
    }

    @Test("mergekit YAML: unsupported fields and bad values are positioned errors, all at once")
    func configErrors() throws {
        let yaml = """
            merge_method: slerp
            base_model: models/base
            slices:
              - sources: []
            models:
              - model: models/m1
                parameters:
                  weight: [0, 0.5, 1]
                  density: 1.5
              - model: nowhere/at/all
            parameters:
              normalize: maybe
            dtype: float8
            """
        do {
            _ = try MergekitConfig.parse(yaml: yaml, file: "merge.yaml", baseDirectory: MergeFixtures.dir.path)
            Issue.record("expected a ConfigError")
        } catch let e as ConfigError {
            let text = e.description
            #expect(text.contains("merge.yaml:1:15: merge_method: merge method \"slerp\" is not supported by tune"))
            #expect(text.contains("merge.yaml:4:3: slices: mergekit field not supported by tune"))
            #expect(text.contains("models[0].parameters.weight: per-layer gradients and filters are not supported"))
            #expect(text.contains("models[0].parameters.density: expected a number in (0.0, 1.0], got 1.5"))
            #expect(text.contains("models[1].model: \"nowhere/at/all\" does not exist"))
            #expect(text.contains("parameters.normalize: expected true or false"))
            #expect(text.contains("dtype: expected one of"))
        }
    }
}
