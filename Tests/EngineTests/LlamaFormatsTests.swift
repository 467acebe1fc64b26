// LlamaFormatsTests — one tiny model written as GGUF (Q/K permuted as llama.cpp stores them) and as an
// HF safetensors directory must give the same logits: checks both loaders and the Q/K un-permutation.
import Foundation
import Testing
import Engine

@Suite struct LlamaFormatsTests {
    /// Writes the same random tiny model in both formats; returns (gguf path, HF dir).
    static func writeBoth(seed: UInt64, dir: URL) throws -> (String, String) {
        let config = LlamaConfig.tiny
        let gguf = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: gguf, config: config, seed: seed, weightType: .f32)

        let hf = dir.appendingPathComponent("hf")
        try FileManager.default.createDirectory(at: hf, withIntermediateDirectories: true)
        var st = SafetensorsWriter()
        for (name, t) in TinyLlama.weights(config: config, seed: seed).sorted(by: { $0.key < $1.key }) {
            try st.add(name: name, shape: t.shape, values: t.values, dtype: .f32)
        }
        try st.write(to: hf.appendingPathComponent("model.safetensors").path)
        try HFModelDirectory.writeConfig(config, to: hf.path)
        try tokenizerJSON(fromGGUF: gguf).write(to: hf.appendingPathComponent("tokenizer.json"))
        return (gguf, hf.path)
    }

    /// A minimal HF tokenizer.json with the GGUF file's vocabulary, merges and control tokens.
    static func tokenizerJSON(fromGGUF path: String) throws -> Data {
        let md = try GGUFFile(path: path).metadata
        let tokens = md["tokenizer.ggml.tokens"]!.arrayValue!.map { $0.stringValue! }
        let types = md["tokenizer.ggml.token_type"]!.arrayValue!.map { $0.intValue! }
        let merges = md["tokenizer.ggml.merges"]!.arrayValue!.map { $0.stringValue! }
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let added: [[String: Any]] = tokens.indices.filter { types[$0] == 3 }.map {
            ["id": $0, "content": tokens[$0], "special": true, "single_word": false, "lstrip": false,
             "rstrip": false, "normalized": false]
        }
        let json: [String: Any] = [
            "version": "1.0",
            "added_tokens": added,
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": true],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            ]],
            "model": ["type": "BPE", "vocab": vocab, "merges": merges],
        ]
        return try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    }

    @Test func ggufAndSafetensorsAgree() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-formats-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (gguf, hf) = try Self.writeBoth(seed: 7, dir: dir)
        let a = try LlamaModel.load(path: gguf), b = try LlamaModel.load(path: hf)
        #expect(a.config == b.config)
        let ids = a.tokenizer.encode("hello there, the model")
        #expect(ids == b.tokenizer.encode("hello there, the model"))
        let la = try a.score(ids: ids).tokenLogprobs, lb = try b.score(ids: ids).tokenLogprobs
        let maxDiff = zip(la, lb).map { abs($0 - $1) }.max() ?? .infinity
        #expect(maxDiff < 1e-4, "GGUF vs safetensors log-prob maxdiff \(maxDiff)")
    }

    @Test func quantizedTinyModelIsCloseToFloat() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-q-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let f32 = dir.appendingPathComponent("f32.gguf").path, q8 = dir.appendingPathComponent("q8.gguf").path
        try TinyLlama.writeGGUF(to: f32, config: .tiny, seed: 3, weightType: .f32)
        try TinyLlama.writeGGUF(to: q8, config: .tiny, seed: 3, weightType: .q8_0)
        let a = try LlamaModel.load(path: f32), b = try LlamaModel.load(path: q8)
        let ids = a.tokenizer.encode("the quick brown fox")
        let la = try a.score(ids: ids).tokenLogprobs, lb = try b.score(ids: ids).tokenLogprobs
        let maxDiff = zip(la, lb).map { abs($0 - $1) }.max() ?? .infinity
        #expect(maxDiff < 0.05, "Q8_0 vs F32 log-prob maxdiff \(maxDiff)")
        #expect(maxDiff > 0, "quantization changed nothing: was the weight type ignored?")
    }

    @Test func kvCacheGenerationMatchesFullRecompute() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-kv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.gguf").path
        try TinyLlama.writeGGUF(to: path, config: .tiny, seed: 11, weightType: .q4_1)
        let m = try LlamaModel.load(path: path)
        let prompt = m.tokenizer.encode("once upon a time")
        let g = try m.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 12, stopAtEOS: false))
        #expect(g.ids.count == 12)
        // Greedy step by step without a cache: argmax of a fresh full forward each time.
        var seq = prompt
        for expected in g.ids {
            let logits = try m.makeSession().logits(for: seq)
            let best = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }!
            #expect(Int32(best) == expected)
            seq.append(Int32(best))
        }
    }

    @Test func samplingIsSeeded() throws {
        var a = Sampler(temperature: 0.8, topP: 0.9, seed: 42), b = Sampler(temperature: 0.8, topP: 0.9, seed: 42)
        let logits: [Float] = (0..<50).map { Float(($0 * 37) % 11) / 3 }
        let sa = (0..<200).map { _ in a.sample(logits) }, sb = (0..<200).map { _ in b.sample(logits) }
        #expect(sa == sb)
        #expect(Set(sa).count > 1, "temperature sampling never varied")
        var greedy = Sampler(temperature: 0, topP: 1, seed: 1)
        #expect(greedy.sample(logits) == Sampler.argmax(logits))
        // top_p tiny ⇒ only the most likely token.
        var nucleus = Sampler(temperature: 1, topP: 1e-6, seed: 5)
        #expect((0..<50).allSatisfy { _ in nucleus.sample(logits) == Sampler.argmax(logits) })
    }
}
