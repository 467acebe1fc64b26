// MergeFamilyTests — merging is implemented for llama, qwen2 and gemma3 bases: a Qwen3 or Phi-3 base is refused
// in one line naming the family, in GGUF and HF layouts (never a merged model with misnamed norms); a Gemma 3
// GGUF reads as the same HF-named tensors with the same values as its HF twin (GGUF's 1 + w norms read as w),
// and its merge is refused as GGUF output.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct MergeFamilyTests {
    @Test("a base of a family the merge paths do not convert is refused, naming it", arguments: ["qwen3", "phi3"])
    func refused(_ name: String) throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c: LlamaConfig = name == "qwen3" ? .tinyQwen3 : .tinyPhi3
        let gguf = dir.appendingPathComponent("\(name).gguf").path, hf = dir.appendingPathComponent(name).path
        try TinyLlama.writeGGUF(to: gguf, config: c, seed: 1, weightType: .f32)
        try TinyLlama.writeHF(to: hf, config: c, seed: 1)
        for path in [gguf, hf] {
            do {
                _ = try ModelTensors(path: path)
                Issue.record("\(path): expected a refusal")
            } catch let e as TuneError {
                #expect(e.message.contains("merging \(name)") && !e.message.contains("\n"), "\(e.message)")
            }
        }
        // llama and qwen2 still open.
        let ok = dir.appendingPathComponent("qwen2.gguf").path
        try TinyLlama.writeGGUF(to: ok, config: .tinyQwen2, seed: 1, weightType: .f32)
        _ = try ModelTensors(path: ok)
    }

    @Test func gemma3GGUFReadsAsItsHFTwin() throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gguf = dir.appendingPathComponent("gemma3.gguf").path, hf = dir.appendingPathComponent("gemma3").path
        try TinyLlama.writeGGUF(to: gguf, config: .tinyGemma3, seed: 1, weightType: .f32)
        try TinyLlama.writeHF(to: hf, config: .tinyGemma3, seed: 1)
        let g = try ModelTensors(path: gguf), h = try ModelTensors(path: hf)
        // Every HF tensor is found under its HF name (the tied head is absent from both).
        #expect(Set(g.entries.map(\.name)) == Set(h.entries.map(\.name)))
        #expect(g.entries.contains { $0.name.hasSuffix("pre_feedforward_layernorm.weight") })
        #expect(g.entries.contains { $0.name.hasSuffix("self_attn.q_norm.weight") })
        var worst: Float = 0
        for e in h.entries {
            let a = try g.floats(e.name), b = try h.floats(e.name)
            #expect(a.count == b.count, "\(e.name)")
            for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) }
        }
        #expect(worst < 1e-6, "max |GGUF − HF| over the tensors: \(worst)")
    }
}
