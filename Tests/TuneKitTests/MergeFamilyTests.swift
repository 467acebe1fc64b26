// MergeFamilyTests — merging is implemented for llama and qwen2 bases only: a Gemma 3, Qwen3 or Phi-3 base is
// refused in one line naming the family, in GGUF and HF layouts (never a merged model with misnamed norms).
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct MergeFamilyTests {
    @Test("a base of a family the merge paths do not convert is refused, naming it", arguments: ["gemma3", "qwen3", "phi3"])
    func refused(_ name: String) throws {
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c: LlamaConfig = name == "gemma3" ? .tinyGemma3 : name == "qwen3" ? .tinyQwen3 : .tinyPhi3
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
}
