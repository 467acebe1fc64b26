// MergeCLITests — `tune merge` as a user runs it: mergekit YAML → JSON report, quick form, exit codes.
import Foundation
import Testing

@Suite("MergeCLI")
struct MergeCLITests {
    let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures/merge")

    @Test("--config ties.yaml --output model --json writes an HF directory and reports it")
    func configToModel() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("ties").path
        let r = try tune(["merge", "--config", fixtures.appendingPathComponent("ties.yaml").path, "--output", "model", "--out", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(obj["method"] as? String == "ties")
        #expect((obj["files"] as? [String])?.contains("model.safetensors") == true)
        #expect(FileManager.default.fileExists(atPath: out + "/config.json"))
        // A second run into the same non-empty directory needs --force.
        let again = try tune(["merge", "--config", fixtures.appendingPathComponent("ties.yaml").path, "--output", "model", "--out", out])
        #expect(again.status == 65)
        #expect(again.stderr.contains("already exists and is not empty"))
    }

    @Test("quick form: two adapters into a merged adapter; missing input exits 66; bad config exits 65")
    func quickFormAndErrors() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = fixtures.appendingPathComponent("models/base").path
        let a1 = fixtures.appendingPathComponent("adapters/a1").path, a2 = fixtures.appendingPathComponent("adapters/a2").path
        let r = try tune(["merge", "--base", base, "--adapter", a1, "--adapter", a2, "--method", "task_arithmetic",
                          "--weight", "0.5", "--out", dir.appendingPathComponent("m").path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("adapter rank 6 keeps 1.000000 of ΔW's energy"))
        let missing = try tune(["merge", "--base", base, "--adapter", "/nonexistent/adapter", "--out", dir.appendingPathComponent("x").path])
        #expect(missing.status == 66)
        #expect(missing.stderr.contains("/nonexistent/adapter: no such file or directory"))
        let bad = dir.appendingPathComponent("bad.yaml")
        try "merge_method: slerp\nmodels:\n  - model: x\n".write(to: bad, atomically: true, encoding: .utf8)
        let b = try tune(["merge", "--config", bad.path, "--out", dir.appendingPathComponent("y").path])
        #expect(b.status == 65)
        #expect(b.stderr.contains("bad.yaml:1:15: merge_method: merge method \"slerp\" is not supported by tune"))
    }
}
