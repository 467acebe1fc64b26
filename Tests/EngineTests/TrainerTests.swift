// TrainerTests — the training loop on the tiny model: determinism, a pinned loss trajectory, resume
// after an interruption equal to an uninterrupted run, PEFT adapter round trips, bad options.

import Foundation
import Testing
import Engine

enum TrainerFixture {
    /// A learnable toy task: after "<prompt> =" comes a fixed two-token answer depending on the prompt.
    static func sequences(_ n: Int, seed: UInt64) -> [DatasetExample] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in
            let cls = Int32(rng.next() % 3)
            var ids: [Int32] = (0..<6).map { _ in Int32(20 + rng.next() % 60) }
            ids += [10 + cls, 100 + 7 * cls, 150 + cls]
            return DatasetExample(ids: ids, mask: [0, 0, 0, 0, 0, 0, 0, 1, 1])
        }
    }

    static func options(steps: Int = 12) -> TrainingOptions {
        var o = TrainingOptions(lora: LoRAConfig(rank: 4, alpha: 8, dropout: 0.1))
        o.learningRate = 1e-2
        o.steps = steps
        o.batchSize = 4
        o.gradAccum = 2
        o.seqLen = 64
        o.warmupSteps = 2
        o.seed = 11
        return o
    }

    static func data() -> TrainingData {
        TrainingData(train: sequences(40, seed: 1), eval: sequences(12, seed: 2))
    }
}

@Suite("Trainer")
struct TrainerTests {
    private func model() throws -> LlamaModel { try LoRATestModel.load(type: .q4_1) }

    private func adapterBytes(_ dir: URL) throws -> Data {
        try Data(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
    }

    @Test("same seed ⇒ bit-identical loss curve and adapter; the loss falls")
    func deterministicAndLearning() throws {
        let m = try model()
        let a = try TestPaths.tempDir(), b = try TestPaths.tempDir()
        let r1 = try LoRATrainer(model: m, options: TrainerFixture.options(), data: TrainerFixture.data(), output: a.path).run()
        let r2 = try LoRATrainer(model: m, options: TrainerFixture.options(), data: TrainerFixture.data(), output: b.path).run()
        #expect(r1.log == r2.log)
        #expect(try adapterBytes(a) == adapterBytes(b))
        let first = r1.log.prefix(2).map(\.loss).reduce(0, +) / 2, last = r1.log.suffix(2).map(\.loss).reduce(0, +) / 2
        #expect(last < 0.9 * first, "loss \(first) → \(last)")
        #expect(r1.evals.count == 1)
    }

    @Test("pinned loss trajectory (tiny model, seed 11)")
    func pinnedTrajectory() throws {
        let r = try LoRATrainer(model: try model(), options: TrainerFixture.options(steps: 6), data: TrainerFixture.data(),
                                output: try TestPaths.tempDir().path).run()
        let losses = r.log.map(\.loss)
        // Measured once with the AVX2 kernels; other ISAs agree to float rounding.
        let pinned = TrainerTests.pinned
        #expect(losses.count == pinned.count)
        for (l, p) in zip(losses, pinned) { #expect(abs(l - p) < 2e-3 * max(1, abs(p)), "losses \(losses)") }
    }
    static let pinned: [Double] = [5.516609, 5.485260, 5.476710, 5.506382, 5.274122, 5.249265]

    @Test("QLoRA over a float base trains on NF4 blocks: same as --base-weights nf4, close to the f32 base")
    func nf4OverFloatBase() throws {
        let m = try LoRATestModel.load(type: .f32)
        let quantizedFile = try model()
        #expect(m.hasFloatMatrices && !quantizedFile.hasFloatMatrices)
        let nf4 = try m.convertingMatrices(to: .nf4)
        #expect(!nf4.hasFloatMatrices && nf4.weightBytes < m.weightBytes / 3)
        func losses(_ mode: BaseWeightMode) throws -> [Double] {
            var o = TrainerFixture.options(steps: 4)
            o.baseWeights = mode
            return try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: try TestPaths.tempDir().path).run().log.map(\.loss)
        }
        let q = try losses(.quantized), explicit = try losses(.nf4), full = try losses(.f32)
        #expect(q == explicit, "quantized mode on a float base must be NF4")
        #expect(q != full, "NF4 rounding must show in the losses")
        for (a, b) in zip(q, full) { #expect(abs(a - b) < 0.05 * abs(b), "nf4 \(q) vs f32 \(full)") }
    }

    @Test("interrupted at a checkpoint and resumed ⇒ exactly the uninterrupted result")
    func resumeIsExact() throws {
        let m = try model()
        var o = TrainerFixture.options()
        o.checkpointEvery = 3
        let whole = try TestPaths.tempDir(), split = try TestPaths.tempDir()
        let full = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: whole.path).run()
        var calls = 0
        let part = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: split.path)
            .run(shouldStop: { calls += 1; return calls == 5 })
        #expect(part.interrupted && part.steps == 5)
        var resumedFrom = -1
        let rest = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: split.path).run(events: { e in
            if case .resumed(let step, _) = e { resumedFrom = step }
        })
        #expect(resumedFrom == 5)
        #expect(rest.log == full.log)
        #expect(rest.evals == full.evals)
        #expect(try adapterBytes(split) == adapterBytes(whole))
    }

    @Test("a checkpoint of a run with other options is refused, not silently resumed")
    func foreignCheckpointRefused() throws {
        let m = try model()
        let dir = try TestPaths.tempDir()
        _ = try LoRATrainer(model: m, options: TrainerFixture.options(steps: 2), data: TrainerFixture.data(), output: dir.path).run()
        var o = TrainerFixture.options(steps: 2)
        o.learningRate = 5e-3
        #expect(throws: EngineError.self) {
            _ = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: dir.path).run()
        }
    }

    @Test("bad hyperparameters are errors before any work", arguments: [
        ("rank", "lora rank must be a positive integer"), ("lr", "learning rate must be > 0"),
        ("seq", "exceeds the model's context length"), ("batch", "batch size must be a positive integer"),
    ])
    func badOptions(which: String, message: String) throws {
        var o = TrainerFixture.options()
        switch which {
        case "rank": o.lora.rank = 0
        case "lr": o.learningRate = 0
        case "seq": o.seqLen = LlamaConfig.tiny.contextLength + 1
        default: o.batchSize = 0
        }
        let err = #expect(throws: EngineError.self) {
            _ = try LoRATrainer(model: try model(), options: o, data: TrainerFixture.data(), output: try TestPaths.tempDir().path)
        }
        #expect(err?.message.contains(message) == true, "\(err?.message ?? "")")
    }

    @Test("unwritable output directory fails cleanly; the last good checkpoint survives a failed write")
    func unwritableOutput() throws {
        let m = try model()
        let dir = try TestPaths.tempDir()
        var o = TrainerFixture.options(steps: 4)
        o.checkpointEvery = 2
        var n = 0
        _ = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: dir.path).run(shouldStop: { n += 1; return n == 2 })
        let ckpt = dir.appendingPathComponent("checkpoints/checkpoint-000002")
        let before = try adapterBytes(ckpt)
        try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: dir.appendingPathComponent("checkpoints").path)
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.appendingPathComponent("checkpoints").path) }
        if getuid() != 0 {   // root ignores permissions
            #expect(throws: EngineError.self) {
                _ = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: dir.path).run()
            }
            #expect(try adapterBytes(ckpt) == before)
        }
        let ro = try TestPaths.tempDir()
        try FileManager.default.setAttributes([.posixPermissions: 0o500], ofItemAtPath: ro.path)
        if getuid() != 0 {
            #expect(throws: EngineError.self) {
                _ = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: ro.appendingPathComponent("out").path)
            }
        }
    }

    @Test("PEFT adapter directory round trip: config keys, tensor names and shapes, values")
    func peftRoundTrip() throws {
        let c = LlamaConfig.tiny
        let lora = try LoRATestModel.adapter(rank: 3, rs: true, targets: [.q, .k, .down])
        let dir = try TestPaths.tempDir()
        try lora.save(directory: dir.path, baseModel: "tiny")
        let cfg = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as? [String: Any])
        #expect(cfg["peft_type"] as? String == "LORA" && cfg["r"] as? Int == 3 && cfg["use_rslora"] as? Bool == true)
        #expect(cfg["target_modules"] as? [String] == ["q_proj", "k_proj", "down_proj"])
        let st = try SafetensorsFile(path: dir.appendingPathComponent("adapter_model.safetensors").path)
        let q = try #require(st.tensor(named: "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"))
        #expect(q.shape == [3, c.hiddenSize])
        let d = try #require(st.tensor(named: "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"))
        #expect(d.shape == [c.hiddenSize, 3])
        let back = try LoRAAdapter.load(directory: dir.path, model: c)
        #expect(back.config == lora.config && back.slots == lora.slots)
        #expect((0..<lora.count).allSatisfy { back.params[$0] == lora.params[$0] })
    }

    @Test("PEFT features tune does not support are clear errors naming the key")
    func peftUnsupported() throws {
        let lora = try LoRATestModel.adapter(rank: 2, targets: [.q])
        let cases: [(String, Any)] = [("use_dora", true), ("rank_pattern", ["q_proj": 4]), ("bias", "all")]
        for (key, value) in cases {
            let dir = try TestPaths.tempDir()
            try lora.save(directory: dir.path, baseModel: "tiny")
            let path = dir.appendingPathComponent("adapter_config.json")
            var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: path)) as? [String: Any])
            json[key] = value
            try JSONSerialization.data(withJSONObject: json).write(to: path)
            let err = #expect(throws: EngineError.self) { _ = try LoRAAdapter.load(directory: dir.path, model: .tiny) }
            #expect(err?.message.contains(key) == true, "\(err?.message ?? "")")
        }
    }
}
