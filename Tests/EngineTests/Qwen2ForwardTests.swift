// Qwen2ForwardTests — the qwen2 family (q/k/v biases, tied head, rope θ 1e6, GGUF Q/K not permuted)
// against an independent numpy float64 forward (fixture: scripts/reference/qwen2_fixtures.py →
// Tests/Fixtures/forward/qwen2_tiny_logits.json), GGUF vs HF layouts, LoRA gradients by finite
// differences through the training graph, and refusals of what the engine does not implement.
import Foundation
import Testing
import Engine

private struct Qwen2Fixture: Decodable {
    struct Model: Decodable {
        var seed: UInt64
        var modelSafetensorsSHA256: String
        var configJSONSHA256: String
        enum CodingKeys: String, CodingKey {
            case seed, modelSafetensorsSHA256 = "model_safetensors_sha256", configJSONSHA256 = "config_json_sha256"
        }
    }
    struct Sequence: Decodable { var name: String; var ids: [Int32]; var logits: [[Double]] }
    var format: String
    var version: Int
    var model: Model
    var sequences: [Sequence]

    static func load() throws -> Qwen2Fixture {
        let url = packageRoot.appendingPathComponent("Tests/Fixtures/forward/qwen2_tiny_logits.json")
        return try JSONDecoder().decode(Qwen2Fixture.self, from: Data(contentsOf: url))
    }
}

enum Qwen2TestModel {
    static let config = LlamaConfig.tinyQwen2
    /// The fixture's seed (scripts/reference/qwen2_fixtures.py).
    static let seed: UInt64 = 11

    /// The tiny qwen2 in both layouts (f32, exact weights); also written to `$TUNE_WRITE_QWEN2_TINY`
    /// when set, for the fixture script to read.
    static func writeBoth(dir: URL, seed: UInt64 = seed, ggufType: GGMLType = .f32) throws -> (gguf: String, hf: String) {
        let gguf = dir.appendingPathComponent("qwen2-tiny.gguf").path
        try TinyLlama.writeGGUF(to: gguf, config: config, seed: seed, weightType: ggufType)
        let hf = dir.appendingPathComponent("qwen2-hf").path
        try TinyLlama.writeHF(to: hf, config: config, seed: seed)
        if let out = ProcessInfo.processInfo.environment["TUNE_WRITE_QWEN2_TINY"], !out.isEmpty {
            try TinyLlama.writeHF(to: out, config: config, seed: seed)
        }
        return (gguf, hf)
    }

    /// Logits after every position, decoding one token at a time through a KV-cache session.
    static func stepwiseLogits(_ m: LlamaModel, _ ids: [Int32]) throws -> [[Float]] {
        let s = m.makeSession()
        return try ids.map { try s.logits(for: [$0]) }
    }
}

@Suite("Qwen2 forward")
struct Qwen2ForwardTests {
    @Test("the tiny qwen2 reads as qwen2 from both layouts: biases, tied head, θ 1e6, eps 1e-6")
    func description() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, hf) = try Qwen2TestModel.writeBoth(dir: dir)
        let a = try LlamaModel.load(path: gguf), b = try LlamaModel.load(path: hf)
        #expect(a.config == b.config)
        #expect(a.config.architecture == .qwen2 && a.config.attentionBias && a.config.tiedEmbeddings)
        #expect(a.config.ropeTheta == 1_000_000 && a.config.rmsNormEps == 1e-6)
        #expect(a.weights.layers.allSatisfy { $0.bq?.count == 64 && $0.bk?.count == 32 && $0.bv?.count == 32 })
        #expect(a.weights.lmHead.data == a.weights.embed.data, "tied head must be the embedding itself")
        #expect(try ModelInfo.inspect(path: gguf).architecture == "qwen2")
        #expect(try ModelInfo.inspect(path: hf).architecture == "qwen2")
        // GGUF Q/K rows are stored in HF order for qwen2 (no llama permutation to undo).
        let (q, _) = try ModelInfo.tensorValues(path: gguf, name: "blk.0.attn_q.weight")
        let hfQ = TinyLlama.weights(config: Qwen2TestModel.config, seed: Qwen2TestModel.seed)["model.layers.0.self_attn.q_proj.weight"]!
        #expect(q == hfQ.values)
    }

    @Test("logits within 1e-4 of the numpy float64 Qwen2 forward; GGUF and HF layouts identical")
    func logitsMatchNumpy() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, hf) = try Qwen2TestModel.writeBoth(dir: dir)
        let fx = try Qwen2Fixture.load()
        #expect(fx.format == "tune-qwen2-forward-fixture" && fx.version == 1 && fx.model.seed == Qwen2TestModel.seed)
        #expect(try SHA256.hashFile(hf + "/model.safetensors") == fx.model.modelSafetensorsSHA256,
                "the fixture was made from other weights: regenerate it (scripts/reference/qwen2_fixtures.py)")
        #expect(try SHA256.hashFile(hf + "/config.json") == fx.model.configJSONSHA256)
        let a = try LlamaModel.load(path: gguf), b = try LlamaModel.load(path: hf)
        var worst = 0.0
        for seq in fx.sequences {
            // Decode path (KV cache, one token at a time) on both layouts: bit-identical weights ⇒ equal logits.
            let stepA = try Qwen2TestModel.stepwiseLogits(a, seq.ids), stepB = try Qwen2TestModel.stepwiseLogits(b, seq.ids)
            #expect(stepA == stepB, "\(seq.name): GGUF and HF logits differ")
            // Batched prefill path: the logits after every prefix in one batch.
            let prefixes = (1...seq.ids.count).map { Array(seq.ids[..<$0]) }
            let batched = try b.lastLogits(batch: prefixes)
            for (t, want) in seq.logits.enumerated() {
                for (got, label) in [(stepA[t], "decode"), (batched[t], "prefill")] {
                    let d = zip(got, want).map { abs(Double($0) - $1) }.max() ?? .infinity
                    worst = max(worst, d)
                    #expect(d < 1e-4, "\(seq.name) position \(t) (\(label)): max |Δlogit| \(d)")
                }
            }
            // Scoring: log-softmax of the fixture's logits.
            let scores = try a.score(ids: seq.ids).tokenLogprobs
            for t in 0..<(seq.ids.count - 1) {
                let row = seq.logits[t], m = row.max()!
                let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                #expect(abs(scores[t] - (row[Int(seq.ids[t + 1])] - lse)) < 1e-4, "\(seq.name) score at \(t)")
            }
        }
        print("qwen2 tiny: max |Δlogit| vs numpy float64 = \(worst)")
        #expect(worst > 0, "an exact float64 match from a float32 forward means the comparison is not running")
    }

    @Test("biases matter: the same weights without them give different logits")
    func biasesAreApplied() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, _) = try Qwen2TestModel.writeBoth(dir: dir)
        let fx = try Qwen2Fixture.load()
        let seq = fx.sequences[0]
        // A llama-described copy of the same numbers (no biases, Q/K permuted as llama stores them).
        var llama = Qwen2TestModel.config
        llama.architecture = .llama
        llama.attentionBias = false
        let p = dir.appendingPathComponent("as-llama.gguf").path
        try TinyLlama.writeGGUF(to: p, config: llama, seed: Qwen2TestModel.seed, weightType: .f32)
        let without = try LlamaModel.load(path: p).makeSession().logits(for: seq.ids)
        let with = try LlamaModel.load(path: gguf).makeSession().logits(for: seq.ids)
        let dNo = zip(without, seq.logits.last!).map { abs(Double($0) - $1) }.max()!
        let dYes = zip(with, seq.logits.last!).map { abs(Double($0) - $1) }.max()!
        #expect(dYes < 1e-4 && dNo > 1e-2, "with biases \(dYes), without \(dNo)")
    }

    @Test("LoRA gradients on qwen2 (q/k/v with biases) match float64 central differences")
    func loraFiniteDifferences() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, _) = try Qwen2TestModel.writeBoth(dir: dir)
        let model = try LlamaModel.load(path: gguf)
        try LoRAReference.checkGradients(model: model, config: Qwen2TestModel.config, seed: Qwen2TestModel.seed, scaleA: 3)
    }

    @Test("training loss equals the inference forward with the adapter (qwen2, Q8_0 base)")
    func trainingMatchesInference() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, _) = try Qwen2TestModel.writeBoth(dir: dir, ggufType: .q8_0)
        let model = try LlamaModel.load(path: gguf)
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases),
                                   model: Qwen2TestModel.config, seed: 1)
        var rng = SplitMix64(seed: 5)
        for s in lora.slots { for i in 0..<(2 * s.outFeatures) { lora.b(s)[i] = 0.2 * rng.symmetric() } }
        let seq = LoRATestModel.sequences[0]
        let (loss, count, _) = try LoRAGradients.compute(model: model, lora: lora, sequences: [seq])
        let scores = try model.with(adapter: lora).score(ids: seq.ids)
        let picked = (0..<(seq.ids.count - 1)).filter { seq.mask[$0 + 1] != 0 }.map { scores.tokenLogprobs[$0] }
        #expect(count == picked.count)
        #expect(abs(loss + picked.reduce(0, +) / Double(picked.count)) < 1e-4)
    }

    @Test("an unsupported architecture or math-changing key is refused, naming it, in one line")
    func refusals() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func refused(_ path: String, naming word: String) {
            do {
                _ = try LlamaModel.load(path: path)
                Issue.record("\(path) loaded; expected a refusal naming \(word)")
            } catch let e as EngineError {
                #expect(e.message.contains(word) && !e.message.contains("\n"), "\(e.message)")
            } catch { Issue.record("unexpected error \(error)") }
        }
        let c = Qwen2TestModel.config
        let other = dir.appendingPathComponent("starcoder2.gguf").path
        try TinyLlama.writeGGUF(to: other, config: c, seed: 1, weightType: .f32,
                                extraMetadata: [("general.architecture", .string("starcoder2"))])
        refused(other, naming: "'starcoder2'")
        let yarn = dir.appendingPathComponent("yarn.gguf").path
        try TinyLlama.writeGGUF(to: yarn, config: c, seed: 1, weightType: .f32,
                                extraMetadata: [("qwen2.rope.scaling.type", .string("yarn"))])
        refused(yarn, naming: "qwen2.rope.scaling.type")
        let partial = dir.appendingPathComponent("partial.gguf").path
        try TinyLlama.writeGGUF(to: partial, config: c, seed: 1, weightType: .f32,
                                extraMetadata: [("qwen2.rope.dimension_count", .uint32(8))])
        refused(partial, naming: "rope.dimension_count")
        // A llama GGUF carrying a tensor the llama forward does not read (here: qwen2-style biases).
        var biased = LlamaConfig.tiny
        biased.attentionBias = true
        let llamaBias = dir.appendingPathComponent("llama-bias.gguf").path
        try TinyLlama.writeGGUF(to: llamaBias, config: biased, seed: 1, weightType: .f32)
        refused(llamaBias, naming: "'blk.0.attn_q.bias'")
        // HF: model_type starcoder2 refused naming it; a llama directory with q_proj.bias refused naming the tensor.
        let hf = dir.appendingPathComponent("hf").path
        try TinyLlama.writeHF(to: hf, config: c, seed: 1)
        let cfg = hf + "/config.json"
        let text = try String(contentsOfFile: cfg, encoding: .utf8)
        try text.replacingOccurrences(of: "\"model_type\": \"qwen2\"", with: "\"model_type\": \"starcoder2\"")
            .replacingOccurrences(of: "Qwen2ForCausalLM", with: "Starcoder2ForCausalLM").write(toFile: cfg, atomically: true, encoding: .utf8)
        refused(hf, naming: "Starcoder2ForCausalLM")
        var asLlama = c
        asLlama.architecture = .llama
        asLlama.attentionBias = false
        try HFModelDirectory.writeConfig(asLlama, to: hf)
        refused(hf, naming: "model.layers.0.self_attn.k_proj.bias")
    }
}
