// GGUFModelTests — TinyLlama GGUF files (layout, metadata, permutation, speed) and the real
// SmolLM2-135M Q4_1 model: counts, types, shapes and sha256 parity with gguf-py.

import Foundation
import Testing
import Engine

@Suite struct GGUFModelTests {
    // MARK: - TinyLlama

    @Test func tinyLlamaFile() throws {
        let c = LlamaConfig.tiny
        let path = try TestPaths.tempDir().appendingPathComponent("tiny.gguf").path
        let t0 = Date()
        try TinyLlama.writeGGUF(to: path, config: c, seed: 42)
        #expect(Date().timeIntervalSince(t0) < 1.0)
        let f = try GGUFFile(path: path)
        #expect(f.metadata["general.architecture"]?.stringValue == "llama")
        #expect(f.metadata["llama.embedding_length"]?.intValue == 64)
        #expect(f.metadata["llama.attention.head_count_kv"]?.intValue == 2)
        #expect(f.metadata["tokenizer.ggml.model"]?.stringValue == "gpt2")
        let tokens = try #require(f.metadata["tokenizer.ggml.tokens"]?.arrayValue)
        #expect(tokens.count == c.vocabSize && c.vocabSize == 285)
        #expect(tokens[0].stringValue == "<|endoftext|>" && tokens[3].stringValue == "!" && tokens.last?.stringValue == "ed")
        #expect(f.metadata["tokenizer.ggml.token_type"]?.arrayValue?.prefix(4).map(\.intValue) == [3, 3, 3, 1])
        #expect(f.tensors.count == 2 + 9 * c.numLayers)
        #expect(f.tensor(named: "token_embd.weight")?.shape == [64, 285])
        #expect(f.tensor(named: "token_embd.weight")?.type == .q8_0)
        #expect(f.tensor(named: "blk.1.attn_k.weight")?.shape == [64, 32])
        #expect(f.tensor(named: "blk.1.ffn_down.weight")?.type == .q4_1)
        #expect(f.tensor(named: "blk.0.attn_norm.weight")?.type == .f32)
        #expect(f.tensor(named: "output.weight") == nil)
        // Deterministic: same seed, same bytes.
        let path2 = try TestPaths.tempDir().appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: path2, config: c, seed: 42)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: path2)))
    }

    @Test func tinyLlamaPermutesQK() throws {
        #expect(TinyLlama.permuteRows([0, 1, 2, 3, 4, 5, 6, 7], rows: 8, cols: 1, heads: 2) == [0, 2, 1, 3, 4, 6, 5, 7])
        var c = LlamaConfig.tiny
        c.tiedEmbeddings = false
        let path = try TestPaths.tempDir().appendingPathComponent("tiny32.gguf").path
        try TinyLlama.writeGGUF(to: path, config: c, seed: 7, weightType: .f32)
        let f = try GGUFFile(path: path)
        let w = TinyLlama.weights(config: c, seed: 7)
        let q = try #require(w["model.layers.1.self_attn.q_proj.weight"])
        let k = try #require(w["model.layers.0.self_attn.k_proj.weight"])
        #expect(try f.dequantize(#require(f.tensor(named: "blk.1.attn_q.weight")))
            == TinyLlama.permuteRows(q.values, rows: 64, cols: 64, heads: 4))
        #expect(try f.dequantize(#require(f.tensor(named: "blk.0.attn_k.weight")))
            == TinyLlama.permuteRows(k.values, rows: 32, cols: 64, heads: 2))
        #expect(try f.dequantize(#require(f.tensor(named: "blk.0.attn_v.weight"))) == w["model.layers.0.self_attn.v_proj.weight"]?.values)
        #expect(try f.dequantize(#require(f.tensor(named: "output.weight"))) == w["lm_head.weight"]?.values)
        #expect(f.tensor(named: "token_embd.weight")?.type == .f32)
    }

    // MARK: - Real model

    @Test(.enabled(if: TestPaths.hasSmolLM2, "models/SmolLM2-135M-Instruct.Q4_1.gguf not present"))
    func smolLM2Parses() throws {
        let f = try GGUFFile(path: TestPaths.smolLM2)
        #expect(f.version == 3 && f.alignment == 32)
        #expect(f.metadataKeys.count == 33 && f.metadataKeys.first == "general.architecture")
        #expect(f.tensors.count == 272)
        let byType = Dictionary(grouping: f.tensors, by: \.type).mapValues(\.count)
        #expect(byType == [.q4_1: 210, .f32: 61, .q8_0: 1])
        #expect(f.tensor(named: "token_embd.weight")?.shape == [576, 49152])
        #expect(f.tensor(named: "blk.0.attn_k.weight")?.shape == [576, 192])
        #expect(f.tensor(named: "blk.29.ffn_down.weight")?.shape == [1536, 576])
        #expect(f.metadata["tokenizer.ggml.tokens"]?.arrayValue?.count == 49152)
        #expect(f.metadata["tokenizer.ggml.merges"]?.arrayValue?.count == 48900)
        #expect(f.metadata["tokenizer.chat_template"]?.stringValue == TinyLlama.chatTemplate)
        #expect(f.metadata["llama.rope.freq_base"] == .float32(100_000))
    }

    @Test(.enabled(if: TestPaths.hasSmolLM2, "models/SmolLM2-135M-Instruct.Q4_1.gguf not present"))
    func smolLM2DequantMatchesGGUFPy() throws {
        let f = try GGUFFile(path: TestPaths.smolLM2)
        let json = try Data(contentsOf: TestPaths.fixtures.appendingPathComponent("smollm2_sha256.json"))
        let expected = try #require(try JSONSerialization.jsonObject(with: json) as? [String: [String: Any]])
        #expect(expected.count == 4)
        for (name, info) in expected.sorted(by: { $0.key < $1.key }) {
            let t = try #require(f.tensor(named: name))
            #expect(t.type.name.lowercased() == info["type"] as? String)
            let fast = try f.dequantize(t)
            #expect(fast.count == info["elements"] as? Int)
            #expect(SHA256.hex(fast) == info["sha256"] as? String, "\(name): fast dequant differs from gguf-py")
            #expect(SHA256.hex(try f.dequantizeReference(t)) == info["sha256"] as? String, "\(name): reference differs")
        }
    }
}
