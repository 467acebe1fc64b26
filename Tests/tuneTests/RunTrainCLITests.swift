// RunTrainCLITests — `tune run` stopped mid-train (SIGKILL, or Ctrl-C) after a checkpoint exists, then
// run again: it resumes from the checkpoint rather than step 1, registers exactly one adapter whose
// bytes equal an uninterrupted run's, and a third run skips every stage.
import Foundation
import Testing
import Engine

private let pipelineName = "resumy"
private let totalSteps = 40

/// A prepare → train → register pipeline on a tiny generated model, in a fresh directory.
private func makeTrainPipeline() throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    let rows = (0..<24).map { i in #"{"prompt": "item \#(i) is", "completion": " class \#(i % 3)"}"# }
    try (rows.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
    let yaml = """
    name: \(pipelineName)
    base: tiny.gguf
    registry: reg.sqlite
    seed: 3
    prepare:
      train: data.jsonl
    train:
      method: qlora
      lora: {rank: 4, alpha: 8, dropout: 0.0}
      max_steps: \(totalSteps)
      batch_size: 2
      lr: 0.005
      seq_len: 128
      checkpoint_every: 4
    register:
      aliases: [staging]
    """
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

private func runArgs(_ dir: URL, _ pipeline: String) -> [String] {
    ["run", pipeline, "--blobs", dir.appendingPathComponent("blobs").path, "--threads", "1"]
}

/// Complete periodic checkpoints (step < total) of the pipeline's train work directories under `dir`.
private func checkpointSteps(_ dir: URL) -> [Int] {
    let fm = FileManager.default
    let work = dir.appendingPathComponent("work").appendingPathComponent(pipelineName)
    var steps: [Int] = []
    for train in (try? fm.contentsOfDirectory(atPath: work.path)) ?? [] where train.hasPrefix("train-") {
        let root = work.appendingPathComponent(train).appendingPathComponent("checkpoints")
        for name in (try? fm.contentsOfDirectory(atPath: root.path)) ?? [] where name.hasPrefix("checkpoint-") {
            if fm.fileExists(atPath: root.appendingPathComponent(name).appendingPathComponent("trainer_state.json").path),
               let step = Int(name.dropFirst("checkpoint-".count)) { steps.append(step) }
        }
    }
    return steps.sorted()
}

/// Starts `tune args…`, waits until a mid-training checkpoint exists under `dir`, sends `signal`,
/// and returns the exit status (SIGKILL reads as 9) and stderr.
private func tuneSignalled(_ args: [String], dir: URL, signal: Int32) throws -> (status: Int32, stderr: String) {
    let p = Process()
    p.executableURL = tuneBinary
    p.arguments = args
    p.currentDirectoryURL = packageRoot
    let log = dir.appendingPathComponent("stderr-\(signal).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let err = try FileHandle(forWritingTo: log)
    defer { try? err.close() }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = err
    try p.run()
    let deadline = Date().addingTimeInterval(300)
    while p.isRunning, Date() < deadline, checkpointSteps(dir).isEmpty { usleep(2_000) }
    if p.isRunning { kill(p.processIdentifier, signal) }
    p.waitUntilExit()
    let stderr = try Data(contentsOf: log)
    return (p.terminationStatus, String(decoding: stderr, as: UTF8.self))
}

private func registry(_ dir: URL) -> [String] {
    ["--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", dir.appendingPathComponent("blobs").path]
}

/// The registered adapter's directory (`tune artifacts path NAME@1`).
private func adapterPath(_ dir: URL) throws -> URL {
    let r = try tune(["artifacts", "path", "\(pipelineName)-adapter@1"] + registry(dir))
    #expect(r.status == 0, "\(r.stderr)")
    return URL(fileURLWithPath: r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
}

/// The first step the rerun resumed at, from its "resumed at step N" progress line.
private func resumedStep(_ stderr: String) -> Int? {
    guard let r = stderr.range(of: "resumed at step ") else { return nil }
    return Int(stderr[r.upperBound...].prefix { $0.isNumber })
}

/// Checks a stopped-then-rerun pipeline in `dir` against the uninterrupted one in `whole`.
private func expectResumedLikeWhole(_ dir: URL, _ p: String, whole: URL) throws {
    let resumed = try tune(runArgs(dir, p))
    #expect(resumed.status == 0, "\(resumed.stderr)")
    let step = try #require(resumedStep(resumed.stderr), "the rerun did not resume from a checkpoint: \(resumed.stderr)")
    #expect(step >= 4 && step < totalSteps, "resumed at step \(step)")

    let list = try tune(["artifacts", "list", "--json"] + registry(dir))
    let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
    let adapters = items.filter { $0["name"] as? String == "\(pipelineName)-adapter" }
    #expect(adapters.count == 1, "exactly one adapter version after a stop and a resume, got \(adapters.count)")
    #expect(items.count == 3 && items.filter({ $0["kind"] as? String == "base-model" }).count == 1,
            "one dataset, one adapter and the base model they were made from, got \(items.map { "\($0["name"] ?? "?")" })")

    let a = try adapterPath(whole), b = try adapterPath(dir)
    for file in ["adapter_model.safetensors", "adapter_config.json"] {
        #expect(try Data(contentsOf: a.appendingPathComponent(file)) == Data(contentsOf: b.appendingPathComponent(file)),
                "\(file) differs from the uninterrupted run's")
    }
    func log(_ d: URL) throws -> NSArray? {
        let s = try JSONSerialization.jsonObject(with: Data(contentsOf: d.appendingPathComponent("trainer_state.json"))) as? [String: Any]
        return s?["log"] as? NSArray
    }
    let wholeLog = try #require(try log(a))
    #expect(wholeLog.count == totalSteps)
    #expect(try log(b) == wholeLog, "the resumed run's loss log differs from the uninterrupted run's")

    let again = try tune(runArgs(dir, p) + ["--json"])
    #expect(again.status == 0, "\(again.stderr)")
    #expect(again.stdout.contains(#""status":"cached""#) && !again.stdout.contains(#""status":"ran""#)
            && !again.stdout.contains(#""status":"adopted""#), "\(again.stdout)")
    let verify = try tune(["artifacts", "verify"] + registry(dir))
    #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    let work = dir.appendingPathComponent("work").appendingPathComponent(pipelineName)
    #expect(((try? FileManager.default.contentsOfDirectory(atPath: work.path)) ?? []).isEmpty,
            "the train work directory is removed once the adapter is registered")
}

@Suite(.serialized) struct RunTrainCLITests {
    /// The same pipeline run once without interruption, in its own directory.
    private func uninterrupted() throws -> URL {
        let (whole, pw) = try makeTrainPipeline()
        let full = try tune(runArgs(whole, pw))
        #expect(full.status == 0, "\(full.stderr)")
        return whole
    }

    @Test func killedDuringTrainResumesFromCheckpoint() throws {
        let whole = try uninterrupted()
        defer { try? FileManager.default.removeItem(at: whole) }
        let (dir, p) = try makeTrainPipeline()
        defer { try? FileManager.default.removeItem(at: dir) }

        let killed = try tuneSignalled(runArgs(dir, p), dir: dir, signal: SIGKILL)
        #expect(killed.status == 9, "expected SIGKILL mid-train, got \(killed.status): \(killed.stderr)")
        #expect(!checkpointSteps(dir).isEmpty)
        try expectResumedLikeWhole(dir, p, whole: whole)
    }

    @Test func interruptedDuringTrainExits130AndResumes() throws {
        let whole = try uninterrupted()
        defer { try? FileManager.default.removeItem(at: whole) }
        let (dir, p) = try makeTrainPipeline()
        defer { try? FileManager.default.removeItem(at: dir) }

        let stopped = try tuneSignalled(runArgs(dir, p), dir: dir, signal: SIGINT)
        #expect(stopped.status == 130, "expected exit 130 after Ctrl-C, got \(stopped.status): \(stopped.stderr)")
        #expect(stopped.stderr.contains("training interrupted at step"), "\(stopped.stderr)")
        let steps = checkpointSteps(dir)
        #expect(!steps.isEmpty && steps.last! < totalSteps, "a checkpoint of the interrupted step is kept: \(steps)")
        try expectResumedLikeWhole(dir, p, whole: whole)
    }
}
