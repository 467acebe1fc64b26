// GenerateBatchTests — `generateBatch` (one batched forward per step over all live sequences, each with
// its own KV cache; prompts joining as others finish) against the one-at-a-time `generate`: the same
// tokens, text and finish reason for prompts of different lengths, greedy and sampled, on a tiny float
// model (bit-identical logits) and greedy on the real SmolLM2 Q4_1 model.
import Engine
import Foundation
import Testing

/// A tiny model of `type` weights in a temp dir (the caller removes the dir).
func tinyModel(_ type: GGMLType) throws -> (LlamaModel, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-genbatch-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: p, config: .tiny, seed: 11, weightType: type)
    return (try LlamaModel.load(path: p), dir)
}

/// Checks every result of a batched run against `generate` on the same prompt and options.
private func expectSameAsSequential(_ m: LlamaModel, _ prompts: [BatchPrompt], maxBatch: Int,
                                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    let batched = try m.generateBatch(prompts, maxBatch: maxBatch)
    #expect(batched.count == prompts.count, sourceLocation: sourceLocation)
    for (i, p) in prompts.enumerated() {
        let one = try m.generate(promptIDs: p.promptIDs, options: p.options)
        #expect(batched[i].ids == one.ids, "prompt \(i) (\(p.promptIDs.count) tokens), maxBatch \(maxBatch)", sourceLocation: sourceLocation)
        #expect(batched[i].text == one.text, "prompt \(i)", sourceLocation: sourceLocation)
        #expect(batched[i].finishReason == one.finishReason, "prompt \(i)", sourceLocation: sourceLocation)
        #expect(batched[i].promptIDs == p.promptIDs, sourceLocation: sourceLocation)
    }
}

@Suite struct GenerateBatchTests {
    /// Prompts of 1 to 23 tokens, token ids spread over the vocabulary.
    static func prompts(vocab: Int) -> [[Int32]] {
        [1, 5, 2, 13, 8, 23, 3].enumerated().map { k, n in (0..<n).map { Int32(($0 * 37 + k * 11 + 1) % vocab) } }
    }

    @Test func greedyAndSampledEqualSequentialOnFloatWeights() throws {
        let (m, dir) = try tinyModel(.f32)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ps = Self.prompts(vocab: m.config.vocabSize)
        // Different lengths to generate, one with nothing to generate, and EOS left on (may stop early).
        let greedy = ps.enumerated().map { i, p in BatchPrompt(promptIDs: p, options: GenerationOptions(maxTokens: [6, 0, 9, 4, 12, 7, 1][i])) }
        for maxBatch in [1, 3, 16] { try expectSameAsSequential(m, greedy, maxBatch: maxBatch) }
        // Sampling: each sequence keeps its own seeded sampler.
        let sampled = ps.enumerated().map { i, p in
            BatchPrompt(promptIDs: p, options: GenerationOptions(maxTokens: 8, temperature: 0.9, topP: 0.95, seed: UInt64(100 + i),
                                                                 stopAtEOS: false, minNewTokens: 2))
        }
        try expectSameAsSequential(m, sampled, maxBatch: 4)
        // The greedy run actually generated something (the comparison is not vacuous).
        #expect(try m.generateBatch(greedy, maxBatch: 4).map(\.ids.count).reduce(0, +) > 10)
    }

    @Test func greedyEqualsSequentialOnQ8Weights() throws {
        let (m, dir) = try tinyModel(.q8_0)
        defer { try? FileManager.default.removeItem(at: dir) }
        let greedy = Self.prompts(vocab: m.config.vocabSize).map {
            BatchPrompt(promptIDs: $0, options: GenerationOptions(maxTokens: 10, stopAtEOS: false))
        }
        try expectSameAsSequential(m, greedy, maxBatch: 5)
    }

    @Test(.enabled(if: smolLMAvailable, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)"))
    func greedyEqualsSequentialOnSmolLM2() throws {
        let m = try LlamaModel.load(path: smolLMPath)
        let texts = ["The capital of France is", "def fibonacci(n):", "Shipping documents include the bill of lading, which",
                     "1, 2, 3, 4,"]
        let prompts = texts.map { BatchPrompt(promptIDs: m.tokenizer.encodeAddingBOS($0), options: GenerationOptions(maxTokens: 12)) }
        try expectSameAsSequential(m, prompts, maxBatch: 3)
    }

    @Test func rejectsBadArguments() throws {
        let (m, dir) = try tinyModel(.f32)
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: EngineError.self) { try m.generateBatch([BatchPrompt(promptIDs: [], options: .init())]) }
        #expect(throws: EngineError.self) { try m.generateBatch([BatchPrompt(promptIDs: [1], options: .init())], maxBatch: 0) }
        #expect(throws: EngineError.self) {
            try m.generateBatch([BatchPrompt(promptIDs: [1, 2], options: .init(maxTokens: m.config.contextLength))])
        }
        #expect(throws: EngineError.self) { try m.generateBatch([BatchPrompt(promptIDs: [1, Int32(m.config.vocabSize)], options: .init())]) }
        #expect(try m.generateBatch([]).isEmpty)
    }
}
