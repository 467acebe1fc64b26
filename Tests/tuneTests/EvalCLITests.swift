// EvalCLITests — `tune eval` end to end on the tiny model and a freshly trained tiny adapter:
// base vs adapter vs merged side by side with task metrics, report.json/md/html written, a gate
// that passes exits 0 and one that fails exits 1 naming the rule and the shortfall.
import Foundation
import Testing
import Engine

private func evalInputs() throws -> (dir: URL, model: String, data: String, adapter: String) {
    let dir = try makeTempDir()
    let model = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 2, weightType: .q4_1)
    let rows = (0..<12).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
    let data = dir.appendingPathComponent("data.jsonl").path
    try (rows.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
    let adapter = dir.appendingPathComponent("adapter").path
    let t = try tune(["train", "--model", model, "--data", data, "--out", adapter, "--qlora", "--rank", "4", "--steps", "6",
                      "--batch", "2", "--seq-len", "128", "--lr", "1e-2", "--seed", "3"])
    guard t.status == 0 else { throw CLIFailure(message: t.stderr) }
    return (dir, model, data, adapter)
}

private struct CLIFailure: Error { var message: String }

@Suite struct EvalCLITests {
    @Test func sideBySideReportAndGates() throws {
        let (dir, model, data, adapter) = try evalInputs()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("report").path
        let common = ["eval", "--model", model, "--adapter", adapter, "--merged", adapter, "--data", data,
                      "--metric", "loss", "--metric", "exact_match", "--metric", "choice", "--metric", "contains",
                      "--choices", "c0,c1,c2", "--max-new-tokens", "4", "--batch", "5"]
        let ok = try tune(common + ["--gate", "perplexity:max_ratio_vs_base=1000", "--report", report, "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(ok.stdout.utf8)) as! [String: Any]
        let models = json["models"] as! [[String: Any]]
        #expect(models.map { $0["role"] as! String } == ["base", "adapter", "merged"])
        let metrics = models.map { $0["metrics"] as! [String: Double] }
        #expect(Set(metrics[0].keys) == ["loss", "perplexity", "exact_match", "token_accuracy", "choice", "contains"])
        #expect(metrics[1] == metrics[2], "the merged slot holds the same adapter: identical metrics")
        #expect(metrics[0]["loss"] != metrics[1]["loss"], "training changed the model")
        #expect(models.allSatisfy { ($0["examples"] as! Int) == 12 && ($0["examples_per_second"] as! Double) > 0 })
        #expect((json["gate"] as! [String: Any])["passed"] as? Bool == true)
        #expect((json["training"] as! [String: Any])["train"] as? [Any] != nil, "trainer_state.json curve")
        for f in ["report.json", "report.md", "report.html"] {
            #expect(FileManager.default.fileExists(atPath: report + "/" + f), "\(f)")
        }
        let text = try tune(common + ["--gate", "accuracy:min=1.01", "--gate", "loss:max_delta_vs_base=100"])
        #expect(text.status == 1, "\(text.stderr)")
        #expect(text.stdout.contains("| base: tiny.gguf |") && text.stdout.contains("| merged: adapter |"), "\(text.stdout)")
        #expect(text.stdout.contains("## Gate: FAILED"))
        #expect(text.stderr.contains("error: eval gate failed — accuracy (choice): adapter = ") && text.stderr.contains("min ≥ 1.0100 → FAIL by"),
                "\(text.stderr)")
        #expect(!text.stderr.contains("loss"), "only the failed rule is named: \(text.stderr)")
    }

    @Test func badFlagsAreRejectedBeforeLoading() throws {
        let r = try tune(["eval", "--model", "/nonexistent.gguf", "--data", "x.jsonl", "--metric", "choice", "--gate", "accuracy:minimum=1"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("accuracy:minimum=1"), "\(r.stderr)")
        let r2 = try tune(["eval", "--model", "/nonexistent.gguf", "--data", "x.jsonl", "--metric", "choice"])
        #expect(r2.status == 65 && r2.stderr.contains("metric choice needs answer options"), "\(r2.stderr)")
    }
}
