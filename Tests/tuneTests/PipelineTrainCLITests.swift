// PipelineTrainCLITests — `tune run` through prepare → train → eval → register on the tiny model:
// the adapter and the eval report are registered with lineage, a re-run is fully cached, and a gate
// that the tuned model cannot pass exits 1 without moving the alias.
import Foundation
import Testing
import Engine

private func trainPipeline(minDelta: Double) throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    try writeDocRows(30, in: dir)
    let yaml = """
    name: tiny-task
    base: tiny.gguf
    registry: reg.sqlite
    seed: 5
    \(tinyPrepareAndTrainYAML())
    eval:
      metrics: [loss, exact_match]
      gate: {metric: loss, min_delta: \(minDelta)}
    register:
      aliases: [staging]
    """
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

@Suite struct PipelineTrainCLITests {
    @Test func trainsEvaluatesRegistersAndCaches() throws {
        let (dir, p) = try trainPipeline(minDelta: 0.001)
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path
        let r = try tune(["run", p, "--blobs", blobs])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("eval: Gate: loss"), "\(r.stderr)")
        let again = try tune(["run", p, "--blobs", blobs, "--json"])
        #expect(again.status == 0 && !again.stdout.contains(#""status":"ran""#), "\(again.stdout)")
        let reg = dir.appendingPathComponent("reg.sqlite").path
        let show = try tune(["artifacts", "show", "tiny-task-adapter@staging", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(show.status == 0, "\(show.stderr)")
        let path = try tune(["artifacts", "path", "tiny-task-adapter@1", "--registry", reg, "--blobs", blobs]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(FileManager.default.fileExists(atPath: path + "/adapter_model.safetensors"))
        let lineage = try tune(["artifacts", "lineage", "tiny-task-eval@1", "--registry", reg, "--blobs", blobs])
        #expect(lineage.stdout.contains("tiny-task-adapter") && lineage.stdout.contains("tiny-task-dataset"), "\(lineage.stdout)")
    }

    @Test func failedGateStopsPromotion() throws {
        let (dir, p) = try trainPipeline(minDelta: 100)
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path
        let r = try tune(["run", p, "--blobs", blobs])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("eval gate failed") && r.stderr.contains("FAIL"), "\(r.stderr)")
        let reg = dir.appendingPathComponent("reg.sqlite").path
        let show = try tune(["artifacts", "show", "tiny-task-adapter@staging", "--registry", reg, "--blobs", blobs])
        #expect(show.status == 66, "the alias must not move when the gate fails: \(show.stdout)")
    }
}
