// MergeCLITests — `tune merge` as a user runs it: mergekit YAML → JSON report, quick form, exit codes.
import Engine
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

    @Test("a mergekit config over full models runs unchanged: a model by default, equal to mergekit's within 1e-6",
          arguments: ["linear", "task_arithmetic", "ties"])
    func mergekitConfigUnchanged(_ name: String) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = fixtures.appendingPathComponent("\(name).yaml").path
        let out = dir.appendingPathComponent(name).path
        let r = try tune(["merge", "--config", config, "--out", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
        #expect(obj["output"] as? String == "model")
        func tensors(_ path: String) throws -> [String: [Float]] {
            let f = try SafetensorsFile(path: path)
            return try Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, try f.floats($0)) })
        }
        let ours = try tensors(out + "/model.safetensors")
        let theirs = try tensors(fixtures.appendingPathComponent("expected/\(name).safetensors").path)
        #expect(!theirs.isEmpty)
        for (tensor, expected) in theirs {
            let got = try #require(ours[tensor], "\(tensor) missing from tune's output")
            #expect(got.count == expected.count)
            let d = zip(got, expected).map { Double(abs($0 - $1)) }.max() ?? .infinity
            #expect(d <= 1e-6, "\(name): \(tensor) maxdiff \(d)")
        }
        // Asking for an adapter from full models stays an error, naming the model and the way out.
        let adapter = try tune(["merge", "--config", config, "--output", "adapter", "--out", dir.appendingPathComponent("a").path])
        #expect(adapter.status == 65)
        #expect(adapter.stderr.contains("--output adapter: \(fixtures.appendingPathComponent("models/m1").path) is a full model, "
                                        + "and a full model cannot be merged into an adapter (use --output model"), "\(adapter.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("a").path))
    }

    @Test("a mergekit config over adapters still writes an adapter by default")
    func adapterConfigStaysAdapter() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("m").path
        let r = try tune(["merge", "--config", fixtures.appendingPathComponent("ties_lora.yaml").path, "--out", out, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
        #expect(obj["output"] as? String == "adapter")
        #expect(FileManager.default.fileExists(atPath: out + "/adapter_config.json"))
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
