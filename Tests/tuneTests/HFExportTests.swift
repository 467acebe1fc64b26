// HFExportTests — an HF directory tune makes from a GGUF base loads in transformers as the model itself
// ([6/7] item 3), checked against what transformers made of the same files (Tests/Fixtures/hf_export,
// scripts/reference/hf_export_fixtures.py, run once):
//   • the tokenizer files tune writes are the bytes transformers read (sha256), and transformers' ids for
//     ≥ 50 strings and its apply_chat_template for ≥ 10 conversations equal tune's, on SmolLM2, Qwen2.5 and
//     Gemma-3-270M (SentencePiece: tune writes HF's byte_fallback BPE form; this GGUF has no chat template, so
//     none is exported and tune renders none);
//   • merged SmolLM2, Gemma-3-270M and Qwen2.5 exported as HF directories score the same under transformers
//     and `tune score`; so does SmolLM2 exported in 100 MB shards (model.safetensors.index.json), and tune scores
//     the sharded directory exactly as the single-file one.

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
        /// TUNE_HF_SHARD_BYTES of a sharded export, and the number of shards transformers loaded.
        var shardBytes: Int?
        var shards: Int?
        enum CodingKeys: String, CodingKey { case base, adapter, files, texts, shardBytes = "shard_bytes", shards }
    }
    var tokenizers: [String: Tokenizer]
    var merged: [String: Merged]
}

private let fixture: HFExportFixture? = {
    let url = packageRoot.appendingPathComponent("Tests/Fixtures/hf_export/fixtures.json")
    return (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(HFExportFixture.self, from: $0) }
}()

private func sha256(_ path: String) throws -> String { try SHA256.hashFile(path) }

@Suite(.enabled(if: hasRealModel, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)")) struct HFExportTests {
    @Test(arguments: ["smollm2", "qwen2.5", "gemma3"]) func tokenizerFilesAreWhatTransformersRead(_ key: String) throws {
        let all = try #require(fixture)
        let fx = try #require(all.tokenizers[key])
        let model = packageRoot.appendingPathComponent(fx.model).path
        guard FileManager.default.fileExists(atPath: model) else {
            print("skipped: \(fx.model) is not here (scripts/setup --model …; CI fetches it)")
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
        if fx.chats.isEmpty {
            // The GGUF has no chat template (Gemma-3-270M here): none is exported, and tune does not guess one.
            #expect(own.chatTemplate == nil, "the fixture has no chats but the model has a template")
            #expect((try? ChatTemplate.forModel(own)) == nil)
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json"))) as? [String: Any]
            #expect(config?["chat_template"] == nil)
            return
        }
        // apply_chat_template of the exported tokenizer_config.json = tune's rendering of the model's template.
        let template = try ChatTemplate.forModel(own)
        #expect(Set(fx.chats.map { "\($0.messages)" }).count >= 10)
        for c in fx.chats {
            let text = try #require(c.text, "the fixture's template refused \(c.messages)")
            #expect(try template.render(c.messages, addGenerationPrompt: c.addGenerationPrompt) == text, "\(c.messages) gen=\(c.addGenerationPrompt)")
        }
    }

    @Test(arguments: ["smollm2", "smollm2-sharded", "gemma3", "qwen2.5"]) func mergedHFDirectoryScoresAsTransformersScoresIt(_ key: String) throws {
        let all = try #require(fixture)
        let fx = try #require(all.merged[key])
        let base = packageRoot.appendingPathComponent(fx.base).path
        guard FileManager.default.fileExists(atPath: base) else {
            print("skipped: \(fx.base) is not here (scripts/setup --model …; CI fetches it)")
            return
        }
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        func merge(_ out: String, shardBytes: Int?) throws {
            let m = try tune(["merge", "--base", base, "--adapter", fx.adapter, "--method", "linear", "--output", "model",
                              "--format", "safetensors", "--dtype", "float32", "--out", out],
                             env: shardBytes.map { ["TUNE_HF_SHARD_BYTES": String($0)] } ?? [:])
            #expect(m.status == 0, "\(m.stderr)")
        }
        func score(_ out: String) throws -> [[Double]] {
            let idsFile = dir.appendingPathComponent("ids.json")
            try JSONEncoder().encode(fx.texts.map(\.ids)).write(to: idsFile)
            let s = try tune(["score", out, "--ids", idsFile.path, "--json"])
            #expect(s.status == 0, "\(s.stderr)")
            struct Scores: Decodable { var logprobs: [[Double]] }
            return try JSONDecoder().decode(Scores.self, from: Data(s.stdout.utf8)).logprobs
        }
        let out = dir.appendingPathComponent("merged").path
        try merge(out, shardBytes: fx.shardBytes)
        for (name, digest) in fx.files {
            #expect(try sha256(out + "/" + name) == digest, "\(name) differs from the directory transformers loaded")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".safetensors") }
        if let shards = fx.shards {
            #expect(files.count == shards && shards >= 2, "\(files.sorted())")
            #expect(files.allSatisfy { $0.hasPrefix("model-") && $0.hasSuffix("-of-\(String(format: "%05d", shards)).safetensors") }, "\(files.sorted())")
        } else {
            #expect(files == ["model.safetensors"])
        }
        let scores = try score(out)
        #expect(scores.count == fx.texts.count)
        var worst = 0.0
        for (t, lp) in zip(fx.texts, scores) {
            #expect(lp.count == t.logprobs.count)
            for (a, b) in zip(lp, t.logprobs) { worst = max(worst, abs(a - b)) }
        }
        #expect(worst < 1e-3, "max |Δ log p| tune score vs transformers on the export: \(worst)")
        print("HF export \(key): max |Δ log p| tune vs transformers over \(fx.texts.map(\.logprobs.count).reduce(0, +)) tokens: \(worst)")
        if fx.shardBytes != nil {
            // The same merge in one file: tune reads the shards to the same weights, so the same scores.
            let single = dir.appendingPathComponent("single").path
            try merge(single, shardBytes: nil)
            #expect(FileManager.default.fileExists(atPath: single + "/model.safetensors"))
            #expect(try score(single) == scores, "sharded and single-file exports score differently")
        }
    }
}

@Suite struct SafetensorsShardsTests {
    @Test func plansShardsAsTransformersDoes() {
        // A new shard when the next tensor would pass the limit; a tensor over the limit alone.
        #expect(SafetensorsShards.plan(sizes: [4, 4, 2, 3, 12, 5, 5], maxBytes: 10) == [[0, 1, 2], [3], [4], [5, 6]])
        #expect(SafetensorsShards.plan(sizes: [1, 2, 3], maxBytes: 10) == [[0, 1, 2]])
        #expect(SafetensorsShards.plan(sizes: [], maxBytes: 10) == [[]])
        #expect(SafetensorsShards.fileName(2, of: 12) == "model-00002-of-00012.safetensors")
        #expect(SafetensorsShards.fileName(1, of: 1) == "model.safetensors")
        let index = SafetensorsShards.indexJSON(totalSize: 42, weightMap: ["b.weight": "model-00002-of-00002.safetensors",
                                                                          "a.weight": "model-00001-of-00002.safetensors"])
        #expect(String(decoding: index, as: UTF8.self) == """
            {
              "metadata": {
                "total_size": 42
              },
              "weight_map": {
                "a.weight": "model-00001-of-00002.safetensors",
                "b.weight": "model-00002-of-00002.safetensors"
              }
            }

            """)
    }
}
