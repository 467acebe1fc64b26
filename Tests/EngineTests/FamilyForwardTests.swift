// FamilyForwardTests — Qwen3, Gemma 3, Llama 3.x (llama3 RoPE scaling) and Phi-3 (fused projections, sliding window) against transformers' own classes
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

enum FamilyTestModels {
    static let seed: UInt64 = 13
    static let configs: [(name: String, config: LlamaConfig)] = [
        ("qwen3", .tinyQwen3), ("gemma3", .tinyGemma3), ("llama3", .tinyLlama3), ("phi3", .tinyPhi3),
    ]

    /// Both layouts of one family under `dir` (f32, exact weights); the HF directories are also written
    /// under `$TUNE_WRITE_FAMILIES_TINY` when set, for the fixture script to read.
    static func writeBoth(_ name: String, _ c: LlamaConfig, dir: URL) throws -> (gguf: String, hf: String) {
        let gguf = dir.appendingPathComponent("\(name).gguf").path
        try TinyLlama.writeGGUF(to: gguf, config: c, seed: seed, weightType: .f32)
        let hf = dir.appendingPathComponent(name).path
        try TinyLlama.writeHF(to: hf, config: c, seed: seed)
        if let out = ProcessInfo.processInfo.environment["TUNE_WRITE_FAMILIES_TINY"], !out.isEmpty {
            try TinyLlama.writeHF(to: out + "/" + name, config: c, seed: seed)
        }
        return (gguf, hf)
    }
}

@Suite("Qwen3, Gemma 3, Llama 3.x, Phi-3 forward")
struct FamilyForwardTests {
    @Test("each family reads back with its description from both layouts", arguments: FamilyTestModels.configs.map(\.name))
    func description(_ name: String) throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = FamilyTestModels.configs.first { $0.name == name }!.config
        let (gguf, hf) = try FamilyTestModels.writeBoth(name, c, dir: dir)
        let a = try LlamaModel.load(path: gguf), b = try LlamaModel.load(path: hf)
        #expect(b.config == c, "HF config.json round trip")
        #expect(a.config.architecture == c.architecture && a.config.qkNorm == c.qkNorm && a.config.sandwichNorms == c.sandwichNorms)
        #expect(a.config.slidingLayers == c.slidingLayers && a.config.ropeLocalTheta == c.ropeLocalTheta)
        // GGUF carries llama3 scaling as rope_freqs.weight, not as a config field.
        #expect(a.config.ropeScaling == nil && (a.weights.ropeFreqFactors != nil) == (c.ropeScaling != nil))
        #expect(try ModelInfo.inspect(path: gguf).architecture == c.architecture.rawValue)
    }

    @Test("logits within 1e-4 of transformers for the HF and GGUF layouts, prefill and decode", arguments: FamilyTestModels.configs.map(\.name))
    func logitsMatchTransformers(_ name: String) throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = FamilyTestModels.configs.first { $0.name == name }!.config
        let (gguf, hf) = try FamilyTestModels.writeBoth(name, c, dir: dir)
        let fx = try FamiliesFixture.load()
        #expect(fx.format == "tune-families-forward-fixture" && fx.seed == FamilyTestModels.seed)
        let fam = try #require(fx.families[name])
        #expect(try SHA256.hashFile(hf + "/model.safetensors") == fam.modelSafetensorsSHA256,
                "the fixture was made from other weights: regenerate it (scripts/reference/family_fixtures.py)")
        #expect(try SHA256.hashFile(hf + "/config.json") == fam.configJSONSHA256)
        var worst = 0.0
        for path in [hf, gguf] {
            let m = try LlamaModel.load(path: path)
            for seq in fam.sequences {
                let s = m.makeSession()
                let decode = try seq.ids.map { try s.logits(for: [$0]) }
                let prefill = try m.lastLogits(batch: (1...seq.ids.count).map { Array(seq.ids[..<$0]) })
                for (t, want) in seq.logits.enumerated() {
                    for (got, label) in [(decode[t], "decode"), (prefill[t], "prefill")] {
                        let d = zip(got, want).map { abs(Double($0) - $1) }.max() ?? .infinity
                        worst = max(worst, d)
                        #expect(d < 1e-4, "\(name) \(path.hasSuffix(".gguf") ? "gguf" : "hf") \(seq.name) position \(t) (\(label)): max |Δlogit| \(d)")
                    }
                }
            }
        }
        print("\(name) tiny: max |Δlogit| vs transformers = \(worst)")
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
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = LlamaConfig.tinyLlama3
        let (gguf, _) = try FamilyTestModels.writeBoth("llama3", c, dir: dir)
        try LoRAReference.checkGradients(model: try LlamaModel.load(path: gguf), config: c, seed: FamilyTestModels.seed)
    }

    @Test("Phi-3 reads q/k/v and gate/up as row ranges of the fused matrices; its PEFT adapters are refused")
    func phi3FusedViews() throws {
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = LlamaConfig.tinyPhi3
        let (gguf, hf) = try FamilyTestModels.writeBoth("phi3", c, dir: dir)
        for path in [gguf, hf] {
            let m = try LlamaModel.load(path: path)
            let l0 = m.weights.layers[0]
            #expect(l0.wk.data == l0.wq.data.advanced(by: l0.wq.rows * l0.wq.rowBytes), "k follows q inside qkv")
            #expect(l0.wUp.data == l0.wGate.data.advanced(by: c.intermediateSize * l0.wGate.rowBytes), "up follows gate")
            #expect(throws: EngineError.self) { try m.loadingAdapter(directory: dir.path) }
        }
    }

    @Test("training refuses what the training graph does not implement yet, naming it")
    func trainingRefusesUnimplementedFamilies() throws {
        for (name, c) in FamilyTestModels.configs where name != "llama3" {
            #expect(throws: EngineError.self, "\(name)") { try c.checkTrainable(source: name) }
        }
    }
}

private enum TinyLlamaGemmaWindow { static let window = LlamaConfig.tinyGemma3.slidingWindow }
