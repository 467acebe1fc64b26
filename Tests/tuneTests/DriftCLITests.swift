// DriftCLITests — through the real binary: `tune validate` warns (never fails) on an unpinned managed model
// id; `tune schedule recheck` re-evaluates a fully cached pipeline's production and reference, prints the
// comparison, exits 1 with --fail-on-drift when the scripted reference degrades past drift.max_drop and runs
// the notify hook; `tune artifacts history NAME@production` shows the metrics over time (table and --json).
import Engine
import Foundation
import LoopbackHTTP
import Testing

private let key = "sk-drift-cli-SECRET-9a8b"

/// Right ("c<i mod 3>") for doc i unless i is in `wrong`.
private final class Answers: @unchecked Sendable {
    private let lock = NSLock()
    private var w: Set<Int> = []
    var wrong: Set<Int> { get { lock.withLock { w } } set { lock.withLock { w = newValue } } }
    func chat(_ messages: [[String: String]]) -> (text: String, promptTokens: Int, completionTokens: Int) {
        let i = Int((messages.last { $0["role"] == "user" }?["content"] ?? "").filter(\.isNumber)) ?? -1
        return (wrong.contains(i) ? "nope" : "c\(i % 3)", 40, 2)
    }
}

@Suite struct DriftCLITests {
    @Test func recheckAndHistoryThroughTheCLI() throws {
        let provider = try FakeProvider(lifetime: 300)
        provider.requiredKey = key
        let answers = Answers()
        provider.chat = { _, m in answers.chat(m) }
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
        let train = (100..<120).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
        try (train.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
        let eval = (0..<4).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
        try (eval.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
        let p = dir.appendingPathComponent("p.yaml").path
        try """
            name: tiny-drift
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            prepare:
              train: data.jsonl
              eval: eval.jsonl
            train:
              lora: {rank: 4, alpha: 8, dropout: 0.0}
              max_steps: 2
              batch_size: 4
              seq_len: 128
            eval:
              metrics: [exact_match, contains]
              max_new_tokens: 4
              reference:
                - {name: closed, model: gpt-4o-mini, base_url: "\(provider.url)", api_key_env: TUNE_TEST_DRIFT_CLI_KEY, concurrency: 1}
            register:
              aliases: [production]
            drift: {max_drop: 0.2, metric: accuracy}
            notify:
              command: "cat > notified.json"
            """.write(toFile: p, atomically: true, encoding: .utf8)
        let env = ["TUNE_TEST_DRIFT_CLI_KEY": key]
        let blobs = dir.appendingPathComponent("blobs").path, reg = dir.appendingPathComponent("reg.sqlite").path

        // An unpinned reference model: a warning with its position, and the file is still valid.
        let v = try tune(["validate", p])
        #expect(v.status == 0 && v.stderr.contains("warning: \(p):17:") && v.stderr.contains("eval.reference[0].model: model id \"gpt-4o-mini\" is not pinned to a snapshot"),
                "\(v.stderr)")
        let vj = try tune(["validate", p, "--json"])
        let warnings = (try JSONSerialization.jsonObject(with: Data(vj.stdout.utf8)) as? [String: Any])?["warnings"] as? [String]
        #expect(vj.status == 0 && warnings?.count == 1, "\(vj.stdout)")

        let run = try tune(["run", p, "--blobs", blobs], env: env)
        #expect(run.status == 0 && run.stderr.contains("warning: "), "\(run.stderr)")
        #expect(try tune(["run", p, "--blobs", blobs], env: env).status == 0)
        #expect(provider.chatModels.count == 4, "the second run is cached")

        let same = try tune(["schedule", "recheck", p, "--blobs", blobs, "--json"], env: env)
        #expect(same.status == 0, "\(same.stderr)")
        let sj = try #require(try JSONSerialization.jsonObject(with: Data(same.stdout.utf8)) as? [String: Any])
        #expect(sj["drifted"] as? Bool == false && sj["report"] as? String == "tiny-drift-eval@2" && sj["production"] as? String == "tiny-drift-adapter@1",
                "\(same.stdout)")
        #expect(provider.chatModels.count == 8)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("notified.json").path))

        answers.wrong = [0, 1]
        let drifted = try tune(["schedule", "recheck", p, "--blobs", blobs, "--fail-on-drift"], env: env)
        #expect(drifted.status == 1, "\(drifted.stdout)\n\(drifted.stderr)")
        #expect(drifted.stdout.contains("reference:closed exact_match 1.0000 → 0.5000 (drop 0.5000 > 0.2000) DRIFT"), "\(drifted.stdout)")
        #expect(drifted.stdout.contains("drift beyond 0.2; notified"), "\(drifted.stdout)")
        let hook = try String(contentsOf: dir.appendingPathComponent("notified.json"), encoding: .utf8)
        #expect(hook.contains(#""drifted":true"#) && hook.contains(#""report":"tiny-drift-eval@3""#), "\(hook)")
        for out in [same, drifted] { #expect(!out.stdout.contains(key) && !out.stderr.contains(key)) }

        let h = try tune(["artifacts", "history", "tiny-drift-adapter@production", "--registry", reg, "--blobs", blobs])
        #expect(h.status == 0, "\(h.stderr)")
        let lines = h.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("tiny-drift-adapter@1 (sha256 ") == true && lines.first?.hasSuffix("3 eval reports") == true, "\(h.stdout)")
        #expect(lines.count == 5 && lines[1].contains("reference:closed exact_match"), "\(h.stdout)")
        #expect(lines[2].contains("tiny-drift-eval@1  eval") && lines[4].contains("tiny-drift-eval@3  recheck DRIFT"), "\(h.stdout)")
        #expect(lines[4].hasSuffix("0.5000"), "the reference's exact_match is the last column: \(h.stdout)")
        let page = dir.appendingPathComponent("history.html").path
        #expect(try tune(["artifacts", "history", "tiny-drift-adapter@production", "--registry", reg, "--blobs", blobs, "--html", page]).status == 0)
        let html = try String(contentsOfFile: page, encoding: .utf8)
        let charts = html.components(separatedBy: "<svg").count - 1, circles = html.components(separatedBy: "<circle").count - 1
        #expect(charts >= 2 && circles == 3 * charts, "one point per report in every chart: \(charts) charts, \(circles) points")
        let hj = try tune(["artifacts", "history", "tiny-drift-adapter@production", "--registry", reg, "--blobs", blobs, "--json"])
        let points = (try JSONSerialization.jsonObject(with: Data(hj.stdout.utf8)) as? [String: Any])?["points"] as? [[String: Any]]
        #expect(points?.map { $0["kind"] as? String } == ["eval", "recheck", "recheck"], "\(hj.stdout)")
    }
}
