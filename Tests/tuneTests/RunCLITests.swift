// RunCLITests — `tune run` killed with SIGKILL mid-pipeline, then run again: it finishes, with no
// duplicate artifacts; a finished pipeline re-runs with every stage cached.
import Foundation
import Testing
import Engine

private func makePipeline() throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
    let rows = (0..<10).map { i in
        #"{"prompt": "document \#(i) text", "completion": "class \#(i % 2)"}"#
    }
    try (rows.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
    let yaml = "name: crashy\nbase: tiny.gguf\nregistry: reg.sqlite\nprepare:\n  train: data.jsonl\nregister:\n  aliases: [staging]\n"
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

@Suite struct RunCLITests {
    @Test(arguments: ["run.after-prepare", "run.before-stage-record", "registry.before-commit"])
    func killedRunResumesWithoutDuplicates(point: String) throws {
        let (dir, p) = try makePipeline()
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path
        let crashed = try tune(["run", p, "--blobs", blobs], env: ["TUNE_FAULT": point])
        #expect(crashed.status == 9, "expected SIGKILL at \(point), got \(crashed.status): \(crashed.stderr)")

        let resumed = try tune(["run", p, "--blobs", blobs, "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let again = try tune(["run", p, "--blobs", blobs, "--json"])
        #expect(again.stdout.contains(#""status":"cached""#) && !again.stdout.contains(#""status":"ran""#))

        let list = try tune(["artifacts", "list", "--registry", dir.appendingPathComponent("reg.sqlite").path,
                             "--blobs", blobs, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(items.count == 1, "exactly one dataset version after a crash and a resume, got \(items.count)")
        #expect(items.first?["name"] as? String == "crashy-dataset")
        let verify = try tune(["artifacts", "verify", "--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", blobs])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }
}
