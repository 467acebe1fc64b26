// ServeCLITests — the built `tune serve` on 127.0.0.1 with port 0: it prints where it listens, answers
// with and without a key, stops cleanly on SIGTERM, and refuses a public address without keys.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct ServeCLITests {
    @Test func servesOnLoopbackAndStopsOnSIGTERM() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 1, weightType: .q8_0)
        // First line: {"event":"listening","port":N,...}
        let serve = try StartedServe(["serve", "--model", model, "--state-dir", dir.appendingPathComponent("state").path, "--port", "0", "--json",
                                      "--access-log", dir.appendingPathComponent("access.log").path],
                                     env: ["TUNE_SERVE_API_KEYS": "sk-cli-1,sk-cli-2"])
        let p = serve.process
        defer { if p.isRunning { p.terminate() } }
        let port = try #require(serve.port)
        #expect(port > 0 && serve.info["model"] as? String == "tiny")

        let http = CurlHTTPTransport()
        let url = "http://127.0.0.1:\(port)/v1/models"
        #expect(try http.send(HTTPRequest(method: "GET", url: url)).status == 401)
        let ok = try http.send(HTTPRequest(method: "GET", url: url, headers: [("Authorization", "Bearer sk-cli-2")]))
        #expect(ok.status == 200 && ok.bodyText.contains(#""id":"tiny""#))

        p.terminate()   // SIGTERM
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!p.isRunning, "tune serve stops on SIGTERM")
        #expect(p.terminationStatus == 0)
        let log = try String(contentsOf: dir.appendingPathComponent("access.log"), encoding: .utf8)
        #expect(log.split(separator: "\n").count == 2 && !log.contains("sk-cli"))
    }

    /// The acceptance check of `/v1/completions`: the built `tune serve`'s echoed log-probs for a text equal
    /// what the built `tune score --json` prints for it (the real SmolLM2 model when present, else the tiny one).
    @Test func completionLogprobsEqualTuneScore() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var model = realModelPath
        if !hasRealModel {
            model = dir.appendingPathComponent("tiny.gguf").path
            try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 1, weightType: .q8_0)
        }
        let text = "The bill of lading names the carrier, the shipper and the consignee."
        let scored = try tune(["score", model, "--text", text, "--json"])
        #expect(scored.status == 0, "\(scored.stderr)")
        struct Score: Decodable { var ids: [Int]; var token_logprobs: [Double] }
        let score = try JSONDecoder().decode(Score.self, from: Data(scored.stdout.utf8))

        let serve = try StartedServe(["serve", "--model", model, "--state-dir", dir.appendingPathComponent("state").path, "--port", "0", "--json"],
                                     env: ["TUNE_SERVE_API_KEYS": "sk-cli-1"])
        let p = serve.process
        defer { if p.isRunning { p.terminate() } }
        let port = try #require(serve.port)
        let body = try JSONSerialization.data(withJSONObject: ["model": serve.info["model"] as? String ?? "", "prompt": text, "echo": true,
                                                               "logprobs": 1, "max_tokens": 0] as [String: Any])
        let r = try CurlHTTPTransport().send(HTTPRequest(method: "POST", url: "http://127.0.0.1:\(port)/v1/completions",
                                                         headers: [("Authorization", "Bearer sk-cli-1"), ("Content-Type", "application/json")],
                                                         body: .bytes(body), timeout: 300))
        #expect(r.status == 200, "\(r.bodyText)")
        struct Reply: Decodable {
            var choices: [Choice]
            struct Choice: Decodable { var text: String; var logprobs: LP }
            struct LP: Decodable { var tokens: [String]; var token_logprobs: [Double?] }
        }
        let choice = try #require(try JSONDecoder().decode(Reply.self, from: r.body).choices.first)
        #expect(choice.text == text)
        #expect(choice.logprobs.tokens.count == score.ids.count)
        let served = choice.logprobs.token_logprobs.dropFirst().compactMap { $0 }
        #expect(served.count == score.token_logprobs.count && !served.isEmpty)
        for (a, b) in zip(served, score.token_logprobs) { #expect(abs(a - b) < 1e-4, "served \(a), tune score \(b)") }
        #expect(served == score.token_logprobs, "the same float path: equal, not only within 1e-4")
    }

    @Test func refusesAPublicAddressWithoutKeys() throws {
        let r = try tune(["serve", "--model", "nonexistent.gguf", "--host", "0.0.0.0", "--port", "0"], env: ["TUNE_SERVE_API_KEYS": ""])
        #expect(r.status == 65)
        #expect(r.stderr.contains("refusing to serve on 0.0.0.0 without API keys"), "\(r.stderr)")
    }
}
