// HFExportTests — an HF directory tune makes from a GGUF base loads in transformers as the model itself
// ([6/7] item 3), checked against what transformers made of the same files (Tests/Fixtures/hf_export,
// scripts/reference/hf_export_fixtures.py, run once):
//   • the tokenizer files tune writes are the bytes transformers read (sha256), and transformers' ids for
//     ≥ 50 strings and its apply_chat_template for ≥ 10 conversations equal tune's, on SmolLM2 and Qwen2.5;
//   • a merged SmolLM2 exported as an HF directory scores the same under transformers and `tune score`.

import Engine
import Foundation
import Testing

private struct HFExportFixture: Decodable {
    struct Tokenizer: Decodable {
        struct Case: Decodable { var text: String; var ids: [Int32] }
        struct Chat: Decodable {
            var messages: [ChatMessage]
            var addGenerationPrompt: Bool
            var text: String?
            enum CodingKeys: String, CodingKey { case messages, text, addGenerationPrompt = "add_generation_prompt" }
        }
        var model: String
        var files: [String: String]
        var strings: [Case]
        var chats: [Chat]
    }
    struct Merged: Decodable {
        struct Text: Decodable { var text: String; var ids: [Int32]; var logprobs: [Double] }
        var base: String
        var adapter: String
        var files: [String: String]
        var texts: [Text]
    }
    var tokenizers: [String: Tokenizer]
    var merged: Merged
}

private let fixture: HFExportFixture? = {
    let url = packageRoot.appendingPathComponent("Tests/Fixtures/hf_export/fixtures.json")
    return (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(HFExportFixture.self, from: $0) }
}()

private func sha256(_ path: String) throws -> String { try SHA256.hashFile(path) }

@Suite(.enabled(if: hasRealModel, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)")) struct HFExportTests {
    @Test(arguments: ["smollm2", "qwen2.5"]) func tokenizerFilesAreWhatTransformersRead(_ key: String) throws {
        let all = try #require(fixture)
        let fx = try #require(all.tokenizers[key])
        let model = packageRoot.appendingPathComponent(fx.model).path
        guard FileManager.default.fileExists(atPath: model) else {
            print("skipped: \(fx.model) is not here (scripts/setup --model qwen2.5-coder-0.5b; CI fetches it)")
            return
        }
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["tokenize", model, "--write-hf", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        for (name, digest) in fx.files {
            #expect(try sha256(dir.appendingPathComponent(name).path) == digest, "\(name) differs from the file transformers was checked on")
        }
        // transformers' ids = tune's own tokenizer's = tune reading its exported tokenizer.json back.
        let own = try LlamaModel.loadTokenizer(path: model)
        let back = try BPETokenizer(tokenizerJSON: Data(contentsOf: dir.appendingPathComponent("tokenizer.json")),
                                    tokenizerConfigJSON: Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json")))
        #expect(fx.strings.count >= 50)
        for c in fx.strings {
            #expect(own.encodeAddingBOS(c.text) == c.ids, "tune vs transformers: \(c.text.debugDescription)")
            #expect(back.encodeAddingBOS(c.text) == c.ids, "tokenizer.json read back: \(c.text.debugDescription)")
        }
        // apply_chat_template of the exported tokenizer_config.json = tune's rendering of the model's template.
        let template = try ChatTemplate.forModel(own)
        #expect(Set(fx.chats.map { "\($0.messages)" }).count >= 10)
        for c in fx.chats {
            let text = try #require(c.text, "the fixture's template refused \(c.messages)")
            #expect(try template.render(c.messages, addGenerationPrompt: c.addGenerationPrompt) == text, "\(c.messages) gen=\(c.addGenerationPrompt)")
        }
    }

    @Test func mergedHFDirectoryScoresAsTransformersScoresIt() throws {
        let fx = try #require(fixture).merged
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("merged").path
        let m = try tune(["merge", "--base", realModelPath, "--adapter", fx.adapter, "--method", "linear", "--output", "model",
                          "--format", "safetensors", "--dtype", "float32", "--out", out])
        #expect(m.status == 0, "\(m.stderr)")
        for (name, digest) in fx.files {
            #expect(try sha256(out + "/" + name) == digest, "\(name) differs from the directory transformers loaded")
        }
        let idsFile = dir.appendingPathComponent("ids.json")
        try JSONEncoder().encode(fx.texts.map(\.ids)).write(to: idsFile)
        let s = try tune(["score", out, "--ids", idsFile.path, "--json"])
        #expect(s.status == 0, "\(s.stderr)")
        struct Scores: Decodable { var logprobs: [[Double]] }
        let scores = try JSONDecoder().decode(Scores.self, from: Data(s.stdout.utf8))
        #expect(scores.logprobs.count == fx.texts.count)
        var worst = 0.0
        for (t, lp) in zip(fx.texts, scores.logprobs) {
            #expect(lp.count == t.logprobs.count)
            for (a, b) in zip(lp, t.logprobs) { worst = max(worst, abs(a - b)) }
        }
        #expect(worst < 1e-3, "max |Δ log p| tune score vs transformers on the export: \(worst)")
        print("HF export: max |Δ log p| tune vs transformers over \(fx.texts.map(\.logprobs.count).reduce(0, +)) tokens: \(worst)")
    }
}
