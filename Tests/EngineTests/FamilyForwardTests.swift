// FamilyForwardTests — Qwen3, Gemma 3, Llama 3.x (llama3 RoPE scaling), Phi-3 (fused projections, sliding window),
// Mistral (head_dim ≠ C/H) and Qwen2 (q/k/v biases) against transformers' own classes
// (float32, eager attention) over tune's tiny random models (fixture: scripts/reference/family_fixtures.py →
// Tests/Fixtures/forward/families_tiny_logits.json), for the HF directories and for the GGUFs of the same
// weights written the way llama.cpp's converters write them (Gemma norms as 1 + w, llama3 scaling as
// rope_freqs.weight, Q/K in HF order for the NEOX families).
import Foundation
import Testing
import Engine

private struct FamiliesFixture: Decodable {
    struct Sequence: Decodable { var name: String; var ids: [Int32]; var logits: [[Double]] }
    struct Family: Decodable {
        var modelSafetensorsSHA256: String
        var configJSONSHA256: String
        var sequences: [Sequence]
        enum CodingKeys: String, CodingKey {
            case sequences, modelSafetensorsSHA256 = "model_safetensors_sha256", configJSONSHA256 = "config_json_sha256"
        }
    }
    var format: String
    var seed: UInt64
    var families: [String: Family]

    static func load() throws -> FamiliesFixture {
        let url = packageRoot.appendingPathComponent("Tests/Fixtures/forward/families_tiny_logits.json")
        return try JSONDecoder().decode(FamiliesFixture.self, from: Data(contentsOf: url))
    }
}

/// llama.cpp's converter output for a tiny family, less its tensor data (scripts/reference/converted_gguf_fixtures.py).
private struct ConvertedManifest: Decodable {
    struct Tensor: Decodable {
        var name: String, ggmlType: UInt32, ne: [Int], offset: Int, nbytes: Int, sha256: String
        enum CodingKeys: String, CodingKey { case name, ne, offset, nbytes, sha256, ggmlType = "ggml_type" }
    }
    var format: String, family: String, architecture: String
    var modelSafetensorsSHA256: String, fileSize: Int, fileSHA256: String, dataOffset: Int, headerSHA256: String
    var tensors: [Tensor]
    enum CodingKeys: String, CodingKey {
        case format, family, architecture, tensors
        case modelSafetensorsSHA256 = "model_safetensors_sha256", fileSize = "file_size", fileSHA256 = "file_sha256"
        case dataOffset = "data_offset", headerSHA256 = "header_sha256"
    }
}

enum FamilyTestModels {
    static let seed: UInt64 = 13
    static let configs: [(name: String, config: LlamaConfig)] = [
        ("qwen3", .tinyQwen3), ("gemma3", .tinyGemma3), ("llama3", .tinyLlama3), ("phi3", .tinyPhi3),
        ("mistral", .tinyMistral), ("qwen2", .tinyQwen2),
    ]

    /// Both layouts of one family under `dir` (f32, exact weights); the HF directories are also written
    /// under `$TUNE_WRITE_FAMILIES_TINY` when set, for the fixture script to read.
    static func writeBoth(_ name: String, _ c: LlamaConfig, dir: URL) throws -> (gguf: String, hf: String) {
        let gguf = dir.appendingPathComponent("\(name).gguf").path
        try TinyLlama.writeGGUF(to: gguf, config: c, seed: seed, weightType: .f32)
        let hf = dir.appendingPathComponent(name).path
        let mistral = name == "mistral"   // llama math, written as MistralForCausalLM
        try TinyLlama.writeHF(to: hf, config: c, seed: seed, mistral: mistral)
        if let out = ProcessInfo.processInfo.environment["TUNE_WRITE_FAMILIES_TINY"], !out.isEmpty {
            try TinyLlama.writeHF(to: out + "/" + name, config: c, seed: seed, mistral: mistral)
            // The GGUF too, for the fixture script to compare with llama.cpp's converter output, and tune's
            // adapter for PEFT to load (families tune trains).
            try TinyLlama.writeGGUF(to: out + "/" + name + ".gguf", config: c, seed: seed, weightType: .f32)
            try writeTuneAdapter(name, c, to: out + "/" + name + "_tune_adapter")
        }
        return (gguf, hf)
    }

    /// Both layouts of `c` (as `writeBoth`) in a temp dir that is removed when `body` returns; `body`
    /// gets the paths and the dir.
    static func withFamily<T>(_ name: String, _ c: LlamaConfig, _ body: (_ gguf: String, _ hf: String, _ dir: URL) throws -> T) throws -> T {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, hf) = try writeBoth(name, c, dir: dir)
        return try body(gguf, hf, dir)
    }

    /// tune's adapter of a family in PEFT's layout (`FamilyForwardTests.familyAdapter`: r=2 on all 7 targets,
    /// non-zero B), the one family_lora_fixtures.py loads in PEFT.
    static func writeTuneAdapter(_ name: String, _ c: LlamaConfig, to dir: String) throws {
        try FamilyForwardTests.familyAdapter(c).save(directory: dir, baseModel: "tune-tiny-\(name)")
    }

    /// The named family's config (`configs`).
    static func config(_ name: String) -> LlamaConfig { configs.first { $0.name == name }!.config }
}

@Suite("Qwen3, Gemma 3, Llama 3.x, Phi-3, Mistral, Qwen2 forward")
struct FamilyForwardTests {
    @Test("each family reads back with its description from both layouts", arguments: FamilyTestModels.configs.map(\.name))
    func description(_ name: String) throws {
        let c = FamilyTestModels.config(name)
        try FamilyTestModels.withFamily(name, c) { gguf, hf, _ in
            let a = try LlamaModel.load(path: gguf), b = try LlamaModel.load(path: hf)
            #expect(b.config == c, "HF config.json round trip")
            #expect(a.config.architecture == c.architecture && a.config.qkNorm == c.qkNorm && a.config.sandwichNorms == c.sandwichNorms)
            #expect(a.config.slidingLayers == c.slidingLayers && a.config.ropeLocalTheta == c.ropeLocalTheta)
            // GGUF carries llama3 scaling as rope_freqs.weight, not as a config field.
            #expect(a.config.ropeScaling == nil && (a.weights.ropeFreqFactors != nil) == (c.ropeScaling != nil))
            #expect(try ModelInfo.inspect(path: gguf).architecture == c.architecture.rawValue)
        }
    }

    @Test("logits within 1e-4 of transformers for the HF and GGUF layouts, prefill and decode", arguments: FamilyTestModels.configs.map(\.name))
    func logitsMatchTransformers(_ name: String) throws {
        try FamilyTestModels.withFamily(name, FamilyTestModels.config(name)) { gguf, hf, _ in
            try Self.expectTransformersLogits(name, hf: hf, paths: [hf, gguf])
        }
    }

    @Test("llama.cpp's converter output (convert_hf_to_gguf.py, rebuilt from its header and tune's tensor bytes) loads with logits within 1e-4 of transformers",
          arguments: FamilyTestModels.configs.map(\.name))
    func convertedByLlamaCpp(_ name: String) throws {
        let dir = packageRoot.appendingPathComponent("Tests/Fixtures/forward/converted")
        let mf = try JSONDecoder().decode(ConvertedManifest.self, from: Data(contentsOf: dir.appendingPathComponent("\(name).json")))
        #expect(mf.format == "tune-converted-gguf-manifest" && mf.family == name)
        let c = FamilyTestModels.config(name)
        try FamilyTestModels.withFamily(name, c) { gguf, hf, tmp in
            #expect(try SHA256.hashFile(hf + "/model.safetensors") == mf.modelSafetensorsSHA256,
                    "the manifest was made from other weights: regenerate it (scripts/reference/converted_gguf_fixtures.py)")
            var bytes = try Data(contentsOf: dir.appendingPathComponent("\(name).gguf-header"))
            #expect(bytes.count == mf.dataOffset && SHA256.hex(bytes) == mf.headerSHA256)
            let mine = try GGUFFile(path: gguf)
            for t in mf.tensors {
                let m = try #require(mine.tensor(named: t.name), "\(name): tune's GGUF has no \(t.name), the converter's has")
                #expect(m.type.rawValue == t.ggmlType && m.shape == t.ne, "\(name) \(t.name): \(m.type) \(m.shape) vs the converter's type \(t.ggmlType) \(t.ne)")
                let d = mine.data(for: m)
                #expect(d.count == t.nbytes && SHA256.hex(d) == t.sha256, "\(name) \(t.name): tune writes other bytes than the converter")
                #expect(bytes.count <= t.offset)
                bytes.append(Data(count: max(0, t.offset - bytes.count)))
                bytes.append(contentsOf: d)
            }
            bytes.append(Data(count: max(0, mf.fileSize - bytes.count)))
            #expect(bytes.count == mf.fileSize && SHA256.hex(bytes) == mf.fileSHA256, "\(name): the rebuilt file is not the converter's")
            let converted = tmp.appendingPathComponent("\(name)-converted.gguf").path
            try bytes.write(to: URL(fileURLWithPath: converted))
            #expect(try ModelInfo.inspect(path: converted).architecture == mf.architecture)
            #expect(try LlamaModel.load(path: converted).config == LlamaModel.load(path: gguf).config,
                    "the converter's metadata and tune's describe the same model")
            try Self.expectTransformersLogits(name, hf: hf, paths: [converted])
        }
    }

    /// Logits of the models at `paths` (the weights of `hf`) against transformers' (families fixture), every
    /// position of every sequence, by the decode session and by the batched prefill.
    static func expectTransformersLogits(_ name: String, hf: String, paths: [String]) throws {
        let fx = try FamiliesFixture.load()
        #expect(fx.format == "tune-families-forward-fixture" && fx.seed == FamilyTestModels.seed)
        let fam = try #require(fx.families[name])
        #expect(try SHA256.hashFile(hf + "/model.safetensors") == fam.modelSafetensorsSHA256,
                "the fixture was made from other weights: regenerate it (scripts/reference/family_fixtures.py)")
        #expect(try SHA256.hashFile(hf + "/config.json") == fam.configJSONSHA256)
        var worst = 0.0
        for path in paths {
            let m = try LlamaModel.load(path: path)
            for seq in fam.sequences {
                let s = m.makeSession()
                let decode = try seq.ids.map { try s.logits(for: [$0]) }
                let prefill = try m.lastLogits(batch: (1...seq.ids.count).map { Array(seq.ids[..<$0]) })
                for (t, want) in seq.logits.enumerated() {
                    for (got, label) in [(decode[t], "decode"), (prefill[t], "prefill")] {
                        let d = zip(got, want).map { abs(Double($0) - $1) }.max() ?? .infinity
                        worst = max(worst, d)
                        #expect(d < 1e-4, "\(name) \((path as NSString).lastPathComponent) \(seq.name) position \(t) (\(label)): max |Δlogit| \(d)")
                    }
                }
            }
        }
        print("\(name) tiny (\(paths.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))): max |Δlogit| vs transformers = \(worst)")
        #expect(worst > 0, "an exact match from a different implementation means the comparison is not running")
    }

    @Test("Gemma's sliding window matters: the same weights with every layer global differ past the window")
    func slidingWindowIsApplied() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fam = try #require(try FamiliesFixture.load().families["gemma3"])
        let seq = try #require(fam.sequences.first { $0.ids.count > TinyLlamaGemmaWindow.window })
        var global = LlamaConfig.tinyGemma3
        global.slidingLayers = []
        let p = dir.appendingPathComponent("global").path
        try TinyLlama.writeHF(to: p, config: global, seed: FamilyTestModels.seed)
        let got = try LlamaModel.load(path: p).makeSession().logits(for: seq.ids)
        let d = zip(got, seq.logits.last!).map { abs(Double($0) - $1) }.max()!
        #expect(d > 1e-3, "without the window the last position should differ (got \(d))")
    }

    @Test("LoRA gradients on Llama 3.x (llama3-scaled RoPE) match float64 central differences")
    func llama3LoRAFiniteDifferences() throws {
        let c = LlamaConfig.tinyLlama3
        try FamilyTestModels.withFamily("llama3", c) { gguf, _, _ in
                try LoRAReference.checkGradients(model: try LlamaModel.load(path: gguf), config: c, seed: FamilyTestModels.seed)
        }
    }

    @Test("Phi-3 reads q/k/v and gate/up as row ranges of the fused matrices; its LoRA is PEFT's on the fused modules (shared A, row blocks of B)")
    func phi3FusedViews() throws {
        let c = LlamaConfig.tinyPhi3
        try FamilyTestModels.withFamily("phi3", c) { gguf, hf, dir in
            for path in [gguf, hf] {
                let m = try LlamaModel.load(path: path)
                let l0 = m.weights.layers[0]
                #expect(l0.wk.data == l0.wq.data.advanced(by: l0.wq.rows * l0.wq.rowBytes), "k follows q inside qkv")
                #expect(l0.wUp.data == l0.wGate.data.advanced(by: c.intermediateSize * l0.wGate.rowBytes), "up follows gate")
            }
            // One A per fused module, the Bs contiguous in q, k, v order: 4 modules' parameters, PEFT's count.
            let lora = try Self.familyAdapter(c)
            let r = lora.rank, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim, C = c.hiddenSize, F = c.intermediateSize
            #expect(lora.count == c.numLayers * r * ((C + q + 2 * kv) + (q + C) + (C + 2 * F) + (F + C)))
            let s = lora.slots.filter { $0.layer == 1 }
            #expect(s.map(\.peftModule) == ["self_attn.qkv_proj", "self_attn.qkv_proj", "self_attn.qkv_proj", "self_attn.o_proj",
                                            "mlp.gate_up_proj", "mlp.gate_up_proj", "mlp.down_proj"])
            #expect(s[1].aOffset == s[0].aOffset && s[2].aOffset == s[0].aOffset && s[5].aOffset == s[4].aOffset)
            #expect(s[1].bOffset == s[0].bOffset + r * q && s[2].bOffset == s[1].bOffset + r * kv && s.map(\.fusedRow) == [0, q, q + kv, 0, 0, F, 0])
            #expect(s[2].dropoutTarget == .q && s[5].dropoutTarget == .gate)
            // Saved as PEFT names the fused modules; read back the same.
            let adir = dir.appendingPathComponent("phi3-adapter").path
            try lora.save(directory: adir, baseModel: "phi3")
            let st = try SafetensorsFile(path: adir + "/" + LoRAAdapter.weightsFile)
            #expect(st.tensor(named: "base_model.model.model.layers.0.self_attn.qkv_proj.lora_B.weight")?.shape == [q + 2 * kv, r])
            #expect(st.tensor(named: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") == nil)
            let back = try LoRAAdapter.load(directory: adir, model: c)
            #expect(back.slots == lora.slots && Array(UnsafeBufferPointer(start: back.params, count: back.count)) == Array(UnsafeBufferPointer(start: lora.params, count: lora.count)))
            let cfg = try String(contentsOfFile: adir + "/" + LoRAAdapter.configFile, encoding: .utf8)
            #expect(cfg.contains("\"qkv_proj\"") && cfg.contains("\"gate_up_proj\"") && !cfg.contains("\"q_proj\""))
            // An adapter of split q/k/v modules does not fit Phi-3's fused layout: refused, naming the tensor.
            let llamaDir = dir.appendingPathComponent("split-adapter").path
            try LoRAAdapter(config: LoRAConfig(rank: 2, targets: [.q, .k, .v]), model: .tinyLlama3, seed: 1).save(directory: llamaDir, baseModel: "x")
            #expect(throws: EngineError.self) { try LoRAAdapter.load(directory: llamaDir, model: c) }
            // Only part of a fused module is refused, naming it.
            do {
                _ = try LoRAAdapter(config: LoRAConfig(rank: 2, targets: [.q, .v]), model: c)
                Issue.record("expected a refusal")
            } catch let e as EngineError { #expect(e.message.contains("qkv_proj"), "\(e.message)") }
        }
    }

    /// The LoRA sequences plus one 13-token row, longer than tiny Gemma's window of 8, so sliding layers clip.
    static let trainSequences: [DatasetExample] = LoRATestModel.sequences + [
        DatasetExample(ids: [3, 44, 120, 9, 77, 5, 230, 18, 64, 2, 150, 33, 81],
                       mask: [0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]),
    ]

    /// A rank-2 adapter on every target with non-zero B (so A gets gradients too).
    static func familyAdapter(_ c: LlamaConfig, layers: [Int]? = nil) throws -> LoRAAdapter {
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases, layers: layers), model: c, seed: 1)
        var rng = SplitMix64(seed: 99)
        for s in lora.slots {
            for i in 0..<(2 * s.outFeatures) { lora.b(s)[i] = 0.3 * rng.symmetric() }
        }
        return lora
    }

    /// Tiny Gemma 3 with query_pre_attn_scalar 24 ≠ head_dim 16 (the real 270M has 256 = head_dim), so
    /// the q scale is exercised; written as an HF directory (config.json carries the scalar).
    static let gemmaQueryScaled: LlamaConfig = {
        var c = LlamaConfig.tinyGemma3
        c.queryPreAttnScalar = 24
        return c
    }()

    @Test("LoRA gradients on Qwen3 (q/k norm) and Phi-3 (fused qkv / gate_up modules with shared A, sliding window), GGUF, match float64 central differences",
          arguments: ["qwen3", "phi3"])
    func loraFiniteDifferences(_ name: String) throws {
        let c = FamilyTestModels.config(name)
        try FamilyTestModels.withFamily(name, c) { gguf, _, _ in
            let model = try LlamaModel.load(path: gguf)
            let lora = try Self.familyAdapter(c)
            let seqs = Self.trainSequences
            let (loss, _, grad) = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs)
            let ref = LoRAReference(config: c, weights: TinyLlama.weights(config: c, seed: FamilyTestModels.seed), lora: lora)
            ref.expectFiniteDifferences(seqs, loss: loss, grad: grad, lora: lora)
        }
    }

    @Test("LoRA gradients on Gemma 3 ((1+w) and sandwich norms, GeGLU, √C embeddings, query scalar, sliding window with its θ) match float64 central differences")
    func gemma3LoRAFiniteDifferences() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = Self.gemmaQueryScaled
        let hf = dir.appendingPathComponent("gemma3q").path
        try TinyLlama.writeHF(to: hf, config: c, seed: FamilyTestModels.seed)
        let model = try LlamaModel.load(path: hf)
        #expect(model.config == c)
        // Slots on sliding layer 2 and global layer 5 (the float64 reference is slow in debug builds): the
        // gradient of layer 2 flows back through the frozen sliding layers 3 and 4 and the global layer 5.
        let lora = try Self.familyAdapter(c, layers: [2, 5])
        let seqs = Self.trainSequences
        let (loss, _, grad) = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs)
        let ref = LoRAReference(config: c, weights: TinyLlama.weights(config: c, seed: FamilyTestModels.seed), lora: lora)
        ref.expectFiniteDifferences(seqs, loss: loss, grad: grad, lora: lora)
    }

    @Test("training loss equals the inference forward with the adapter (Q8_0 GGUFs past the window, and their f32 copy as --method lora trains)",
          arguments: ["qwen3", "gemma3", "llama3", "phi3", "mistral"])
    func trainingMatchesInference(_ name: String) throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = FamilyTestModels.config(name)
        let gguf = dir.appendingPathComponent("\(name)-q8.gguf").path
        try TinyLlama.writeGGUF(to: gguf, config: c, seed: FamilyTestModels.seed, weightType: .q8_0)
        let model = try LlamaModel.load(path: gguf)
        // The float copy keeps the family's vectors (q/k and post norms, GGUF rope_freqs).
        let f32 = try model.convertingMatrices(to: .f32)
        let lora = try Self.familyAdapter(c)
        for seq in [Self.trainSequences[0], Self.trainSequences[2]] {
            let scores = try model.with(adapter: lora).score(ids: seq.ids)
            let picked = (0..<(seq.ids.count - 1)).filter { seq.mask[$0 + 1] != 0 }.map { scores.tokenLogprobs[$0] }
            for (m, label) in [(model, "q8_0"), (f32, "f32 copy")] {
                let (loss, count, _) = try LoRAGradients.compute(model: m, lora: lora, sequences: [seq])
                #expect(count == picked.count)
                #expect(abs(loss + picked.reduce(0, +) / Double(picked.count)) < 1e-4, "\(name) \(label) \(seq.ids.count) tokens")
            }
        }
    }

    @Test("Gemma 3 on a table without the family ops (the CUDA op set) is refused in one line naming them; the checked host double with them trains bit-identically to the CPU")
    func gemmaNeedsFamilyOps() throws {
        let c = LlamaConfig.tinyGemma3
        try FamilyTestModels.withFamily("gemma3", c) { gguf, _, _ in
            let model = try LlamaModel.load(path: gguf)
            let lora = try Self.familyAdapter(c)
            let seqs = Self.trainSequences
            do {
                _ = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, backend: CheckedHostDevice(.cudaOps))
                Issue.record("expected a refusal")
            } catch let e as EngineError {
                #expect(e.kind == .unsupported)
                #expect(e.message.contains("geglu_backward") && e.message.contains("attention_forward_train_window")
                        && !e.message.contains("\n"), "\(e.message)")
            }
            let dev = CheckedHostDevice(.cpuOps)
            let a = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, backend: dev)
            let b = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs)
            #expect(a.loss == b.loss && a.grad == b.grad)
            #expect(dev.violations.isEmpty, "\(dev.violations)")
        }
    }

    @Test("Qwen3 needs no new op: on the CUDA op set (checked host double: uncached RoPE, unpacked head) it agrees with the CPU, every pointer a device one")
    func qwen3OnCUDAOpSet() throws {
        let c = LlamaConfig.tinyQwen3
        try FamilyTestModels.withFamily("qwen3", c) { gguf, _, _ in
            let model = try LlamaModel.load(path: gguf)
            let lora = try Self.familyAdapter(c)
            let dev = CheckedHostDevice(.cudaOps)
            let a = try LoRAGradients.compute(model: model, lora: lora, sequences: Self.trainSequences, backend: dev)
            let b = try LoRAGradients.compute(model: model, lora: lora, sequences: Self.trainSequences)
            #expect(abs(a.loss - b.loss) < 1e-6)
            let scale = b.grad.map { abs($0) }.max()!
            #expect(zip(a.grad, b.grad).map { abs($0 - $1) }.max()! <= 1e-5 * scale)
            #expect(dev.violations.isEmpty, "\(dev.violations)")
            #expect(dev.liveAllocations == 0)
        }
    }
}

private enum TinyLlamaGemmaWindow { static let window = LlamaConfig.tinyGemma3.slidingWindow }
