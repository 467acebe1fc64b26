// ForwardParityTests — the real SmolLM2 model against transformers' float32 forward
// (fixture: scripts/reference/forward_fixtures.py → Tests/Fixtures/forward/smollm2_forward.json).
import Foundation
import Testing
import Engine

private struct ForwardFixture: Decodable {
    struct Greedy: Decodable {
        var promptIdsCount: Int
        var ids: [Int32]
        enum CodingKeys: String, CodingKey { case promptIdsCount = "prompt_ids_count", ids }
    }
    struct Prompt: Decodable {
        var name: String
        var text: String
        var ids: [Int32]
        var tokenLogprobs: [Double]
        var meanLoglik: Double
        var greedy: Greedy?
        enum CodingKeys: String, CodingKey {
            case name, text, ids, greedy, tokenLogprobs = "token_logprobs", meanLoglik = "mean_loglik"
        }
    }
    var format: String
    var version: Int
    var prompts: [Prompt]

    static func load() throws -> ForwardFixture {
        let url = packageRoot.appendingPathComponent("Tests/Fixtures/forward/smollm2_forward.json")
        return try JSONDecoder().decode(ForwardFixture.self, from: Data(contentsOf: url))
    }
}

/// One loaded copy of the real model for every test in this file.
private let smolLM: Result<LlamaModel, Error> = Result { try LlamaModel.load(path: smolLMPath) }

@Suite(.enabled(if: smolLMAvailable, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)"))
struct ForwardParityTests {
    @Test func fixtureHeader() throws {
        let f = try ForwardFixture.load()
        #expect(f.format == "tune-forward-fixture" && f.version == 1)
        #expect(f.prompts.count >= 5)
        #expect(f.prompts.contains { $0.text.contains("<|im_start|>") }, "needs a chat-templated prompt")
    }

    @Test func tokenLogprobsMatchTransformers() throws {
        let model = try smolLM.get()
        for p in try ForwardFixture.load().prompts {
            #expect(model.tokenizer.encode(p.text) == p.ids, "\(p.name): token ids differ")
            let s = try model.score(ids: p.ids)
            #expect(s.tokenLogprobs.count == p.tokenLogprobs.count)
            let diffs = zip(s.tokenLogprobs, p.tokenLogprobs).map { abs($0 - $1) }
            let maxDiff = diffs.max() ?? .infinity
            #expect(maxDiff < 1e-3, "\(p.name): max |Δ log p| = \(maxDiff) at token \(diffs.firstIndex(of: maxDiff) ?? -1)")
            #expect(abs(s.meanLoglik - p.meanLoglik) < 1e-4, "\(p.name): mean \(s.meanLoglik) vs \(p.meanLoglik)")
        }
    }

    @Test func greedyContinuationMatchesTransformers() throws {
        let model = try smolLM.get()
        let cases = try ForwardFixture.load().prompts.compactMap { p in p.greedy.map { (p, $0) } }
        #expect(cases.count >= 2)
        for (p, g) in cases {
            let prompt = Array(p.ids.prefix(g.promptIdsCount))
            // The fixture used transformers' min_new_tokens = max_new_tokens (EOS masked throughout).
            let opts = GenerationOptions(maxTokens: g.ids.count, minNewTokens: g.ids.count)
            let out = try model.generate(promptIDs: prompt, options: opts)
            #expect(out.ids == g.ids, "\(p.name): greedy ids differ")
        }
    }

    @Test func sameLogitsForAnyThreadCountAndBatching() throws {
        let model = try smolLM.get()
        let ids = model.tokenizer.encode("Batching must not change what a sequence computes.")
        let alone = try model.lastLogits(batch: [ids])[0]
        let batched = try model.lastLogits(batch: [model.tokenizer.encode("Another sequence first."), ids])[1]
        #expect(alone == batched, "a sequence's logits changed when batched with another")
        let before = Kernels.threads
        Kernels.setThreads(1)
        defer { Kernels.setThreads(before) }
        #expect(try model.lastLogits(batch: [ids])[0] == alone, "logits depend on the thread count")
    }
}
