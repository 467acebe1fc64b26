// RealModelCLITests — the CLI contract on the real SmolLM2 model (skipped when scripts/setup has not run).
import Foundation
import Testing

private func jsonObject(_ s: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any])
}

@Suite(.enabled(if: hasRealModel, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)"))
struct RealModelCLITests {
    @Test func generateAnswersAChatQuestion() throws {
        let r = try tune(["generate", realModelPath, "--chat", "--prompt", "What is the capital of France? Answer in one sentence.",
                          "--max-tokens", "24", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        let text = try #require(o["text"] as? String)
        #expect(text.contains("Paris"), "unexpected answer: \(text)")
        #expect(o["finish_reason"] as? String == "stop", "greedy chat answer should end with <|im_end|>")
    }

    @Test func tokenizeJSONContract() throws {
        let r = try tune(["tokenize", realModelPath, "Hello world 123", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        #expect(o["ids"] as? [Int] == [19556, 905, 216, 33, 34, 35])
        #expect(o["tokens"] as? [String] == ["Hello", "Ġworld", "Ġ", "1", "2", "3"])
        let chat = try jsonObject(try tune(["tokenize", realModelPath, "hi", "--chat", "--json"]).stdout)
        let ids = try #require(chat["ids"] as? [Int])
        #expect(ids.first == 1, "chat encoding starts with <|im_start|>, no BOS added")
    }

    @Test func scoreJSONContract() throws {
        let r = try tune(["score", realModelPath, "--text", "The capital of France is Paris.", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        let ids = try #require(o["ids"] as? [Int]), lps = try #require(o["token_logprobs"] as? [Double])
        #expect(lps.count == ids.count - 1)
        #expect(lps.allSatisfy { $0 <= 0 && $0.isFinite })
        let mean = try #require(o["mean_loglik"] as? Double)
        #expect(abs(mean - lps.reduce(0, +) / Double(lps.count)) < 1e-9)
    }

    @Test func inspectJSONContract() throws {
        let r = try tune(["model", "inspect", realModelPath, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        #expect(o["architecture"] as? String == "llama")
        let config = try #require(o["config"] as? [String: Any])
        #expect(config["num_hidden_layers"] as? Int == 30 && config["num_key_value_heads"] as? Int == 3)
        let tensors = try #require(o["tensors"] as? [[String: Any]])
        #expect(tensors.count == 272)
        let q = try #require(tensors.first { $0["name"] as? String == "blk.0.attn_q.weight" })
        #expect(q["type"] as? String == "q4_1")
        #expect(q["shape"] as? [Int] == [576, 576])
        let e = try #require(tensors.first { $0["name"] as? String == "token_embd.weight" })
        #expect(e["shape"] as? [Int] == [576, 49152], "shape is in GGUF order, ne[0] first")
    }

    @Test func exportTensorWritesNumpyFloat32() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("q.npy").path
        let r = try tune(["model", "export-tensor", realModelPath, "blk.0.attn_q.weight", "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let data = try Data(contentsOf: URL(fileURLWithPath: out))
        let headerLen = Int(data[8]) | Int(data[9]) << 8
        let header = String(decoding: data[10..<(10 + headerLen)], as: UTF8.self)
        #expect(header.contains("'descr': '<f4'") && header.contains("'shape': (576, 576)"))
        #expect(data.count == 10 + headerLen + 576 * 576 * 4)
    }
}
