// RealModelParityTests — the real Gemma-3-270M and Qwen2.5-Coder-0.5B GGUFs (Q4_K_M; `scripts/setup --model
// gemma-3-270m|qwen2.5-coder-0.5b`) against transformers float32 reading the same files
// (fixtures: scripts/reference/real_gguf_fixtures.py → Tests/Fixtures/forward/{gemma3_270m,qwen25_coder_05b}.json):
// token ids of ≥ 50 strings, per-token log-probs within 1e-3 on ≥ 5 prompts incl. a chat-formatted one, and 16
// greedy tokens identical. Each suite is skipped (saying why) when its model file has not been fetched.
import Foundation
import Testing
import Engine

private struct RealFixture: Decodable {
    struct Model: Decodable { var file: String; var sha256: String }
    struct Tokens: Decodable { var text: String; var ids: [Int32] }
    struct Prompt: Decodable {
        var name: String, text: String, ids: [Int32], tokenLogprobs: [Double], top5: [Int32]
        enum CodingKeys: String, CodingKey { case name, text, ids, top5, tokenLogprobs = "token_logprobs" }
    }
    struct Greedy: Decodable {
        var name: String, ids: [Int32], newIds: [Int32]
        enum CodingKeys: String, CodingKey { case name, ids, newIds = "new_ids" }
    }
    var format: String
    var model: Model
    var tokens: [Tokens]
    var prompts: [Prompt]
    var greedy: [Greedy]

    static func load(_ name: String) throws -> RealFixture {
        let url = packageRoot.appendingPathComponent("Tests/Fixtures/forward/\(name)")
        return try JSONDecoder().decode(RealFixture.self, from: Data(contentsOf: url))
    }
}

private func modelPath(_ file: String) -> String { packageRoot.appendingPathComponent("models/\(file)").path }
private let gemmaFile = "gemma-3-270m-q4_k_m.gguf", qwenFile = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
private let gemma: Result<LlamaModel, Error> = Result { try LlamaModel.load(path: modelPath(gemmaFile)) }
private let qwen: Result<LlamaModel, Error> = Result { try LlamaModel.load(path: modelPath(qwenFile)) }

/// The three checks of one model against its fixture.
private enum Parity {
    static func tokens(_ model: LlamaModel, _ f: RealFixture) {
        #expect(f.tokens.count >= 50)
        for t in f.tokens {
            #expect(model.tokenizer.encode(t.text) == t.ids, "\(f.model.file): ids of \(String(reflecting: t.text)) differ")
            #expect(model.tokenizer.decode(t.ids) == t.text, "\(f.model.file): \(String(reflecting: t.text)) does not round-trip")
        }
    }

    static func logprobs(_ model: LlamaModel, _ f: RealFixture) throws {
        #expect(f.prompts.count >= 5 && f.prompts.contains { $0.name == "chat" })
        for p in f.prompts {
            let ids = p.name == "chat" ? model.tokenizer.encode(p.text) : model.tokenizer.encodeAddingBOS(p.text)
            let withBOS = p.name == "chat" && p.ids.first != ids.first ? [p.ids[0]] + ids : ids
            #expect(withBOS == p.ids, "\(f.model.file) \(p.name): token ids differ")
            let s = try model.score(ids: p.ids)
            #expect(s.tokenLogprobs.count == p.tokenLogprobs.count)
            let diffs = zip(s.tokenLogprobs, p.tokenLogprobs).map { abs($0 - $1) }
            let maxDiff = diffs.max() ?? .infinity
            #expect(maxDiff < 1e-3, "\(f.model.file) \(p.name): max |Δ log p| = \(maxDiff) at token \(diffs.firstIndex(of: maxDiff) ?? -1)")
            let logits = try model.lastLogits(batch: [p.ids])[0]
            let top5 = logits.indices.sorted { logits[$0] > logits[$1] }.prefix(5).map { Int32($0) }
            #expect(top5 == p.top5, "\(f.model.file) \(p.name): top-5 ids at the last position differ")
        }
    }

    static func greedy(_ model: LlamaModel, _ f: RealFixture) throws {
        #expect(f.greedy.count >= 2)
        for g in f.greedy {
            // transformers stops after emitting EOS (and keeps it); tune stops before it.
            let stopped = g.newIds.count < 16
            let want = stopped ? Array(g.newIds.dropLast()) : g.newIds
            let out = try model.generate(promptIDs: g.ids, options: GenerationOptions(maxTokens: 16))
            #expect(out.ids == want, "\(f.model.file) \(g.name): greedy ids \(out.ids) vs transformers \(g.newIds)")
        }
    }
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: modelPath(gemmaFile)),
                "needs models/gemma-3-270m-q4_k_m.gguf (scripts/setup --model gemma-3-270m)"))
struct Gemma3ParityTests {
    let fixture = "gemma3_270m.json"
    @Test func tokenIDsMatchTransformers() throws { Parity.tokens(try gemma.get(), try .load(fixture)) }
    @Test func tokenLogprobsMatchTransformers() throws { try Parity.logprobs(try gemma.get(), try .load(fixture)) }
    @Test func greedyMatchesTransformers() throws { try Parity.greedy(try gemma.get(), try .load(fixture)) }
    @Test func configIsGemma3() throws {
        let c = try gemma.get().config
        #expect(c.architecture == .gemma3 && c.qkNorm && c.sandwichNorms && c.activation == .geluTanh)
        #expect(c.slidingWindow == 512 && c.slidingLayers.filter { !$0 }.count == 3)   // layers 5, 11, 17 are global
        #expect(c.ropeLocalTheta == 10_000 && c.ropeTheta == 1_000_000)
    }

    /// The training graph on the real file (QLoRA on its own Q4_K/Q6_K blocks, and the f32 copy of
    /// --method lora) gives the inference forward's loss with the same adapter.
    @Test func trainingLossEqualsInference() throws {
        let m = try gemma.get()
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases), model: m.config, seed: 1)
        var rng = SplitMix64(seed: 5)
        for s in lora.slots { for i in 0..<(2 * s.outFeatures) { lora.b(s)[i] = 0.05 * rng.symmetric() } }
        let ids = m.tokenizer.encodeAddingBOS("The quick brown fox jumps over the lazy dog. Shipping documents: a bill of lading names the carrier.")
        let seq = DatasetExample(ids: ids, mask: ids.indices.map { $0 < 4 ? 0 : 1 })
        let scores = try m.with(adapter: lora).score(ids: ids)
        var sum = 0.0
        for t in 4..<ids.count { sum += scores.tokenLogprobs[t - 1] }
        let want = -sum / Double(ids.count - 4)
        for (model, label) in [(m, "quantized"), (try m.convertingMatrices(to: .f32), "f32 copy")] {
            let (loss, count, grad) = try LoRAGradients.compute(model: model, lora: lora, sequences: [seq])
            #expect(count == ids.count - 4)
            #expect(abs(loss - want) < 2e-4, "\(label): training loss \(loss) vs inference \(want)")
            #expect(grad.allSatisfy(\.isFinite) && grad.contains { $0 != 0 })
        }
        // Past the 512-token window of the sliding layers (QLoRA on the file's blocks only, to keep it short).
        let words = (0..<700).map { ["alpha", "bravo", "cargo", "delta", "echo", "freight", "gamma", "harbor"][($0 * 5 + $0 / 7) % 8] }
        let long = Array(m.tokenizer.encodeAddingBOS(words.joined(separator: " ")).prefix(560))
        try #require(long.count > m.config.slidingWindow)
        let lseq = DatasetExample(ids: long, mask: long.indices.map { $0 < 4 ? 0 : 1 })
        let lscores = try m.with(adapter: lora).score(ids: long)
        var lsum = 0.0
        for t in 4..<long.count { lsum += lscores.tokenLogprobs[t - 1] }
        let (lloss, _, _) = try LoRAGradients.compute(model: m, lora: lora, sequences: [lseq])
        #expect(abs(lloss + lsum / Double(long.count - 4)) < 2e-4, "\(long.count) tokens: training \(lloss) vs inference \(-lsum / Double(long.count - 4))")
    }
}

@Suite(.enabled(if: FileManager.default.fileExists(atPath: modelPath(qwenFile)),
                "needs models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (scripts/setup --model qwen2.5-coder-0.5b)"))
struct Qwen25ParityTests {
    let fixture = "qwen25_coder_05b.json"
    @Test func tokenIDsMatchTransformers() throws { Parity.tokens(try qwen.get(), try .load(fixture)) }
    @Test func tokenLogprobsMatchTransformers() throws { try Parity.logprobs(try qwen.get(), try .load(fixture)) }
    @Test func greedyMatchesTransformers() throws { try Parity.greedy(try qwen.get(), try .load(fixture)) }
}
