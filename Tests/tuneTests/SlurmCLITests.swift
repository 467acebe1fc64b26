// SlurmCLITests — `tune run --executor slurm` against a real one-node Slurm cluster started on this
// machine by scripts/slurm-local (munge + slurmctld + slurmd from Debian's packages): a run end to
// end, a re-run that submits nothing, Ctrl-C cancelling the jobs then a resumed run, a submitting
// process killed with SIGKILL and a re-run that re-attaches, a node taken down mid-job, an unknown
// partition, and sbatch missing. Skipped, saying why, where the cluster cannot start (not root, or
// Slurm not installed: `scripts/slurm-local install`).
import Foundation
import Testing
import Engine
import TuneKit

/// Why the cluster cannot start here (nil when it can): checked without starting anything.
private let slurmUnavailable: String? = {
    guard getuid() == 0 else { return "not root: the one-node Slurm cluster runs its daemons as root" }
    for tool in ["munged", "slurmctld", "slurmd", "sbatch"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
        if !found { return "\(tool) not installed: run scripts/slurm-local install" }
    }
    return nil
}()

/// The cluster's SLURM_CONF, started on first use by the suite and stopped when the test process exits.
private let clusterConf: Result<String, TestError> = {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-slurm-\(getpid())").path
    let log = dir + ".up.log"
    // system(3), not Process: Foundation's child monitoring can deadlock inside a global's lazy initializer.
    let script = packageRoot.appendingPathComponent("scripts/slurm-local").path
    let status = system("'\(script)' up '\(dir)' >'\(log)' 2>&1 </dev/null")
    guard status == 0 else {
        return .failure(TestError("scripts/slurm-local up failed: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")"))
    }
    atexit {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-slurm-\(getpid())").path
        let script = packageRoot.appendingPathComponent("scripts/slurm-local").path
        _ = system("'\(script)' down '\(dir)' >/dev/null 2>&1 </dev/null; rm -rf '\(dir)' '\(dir).up.log'")
    }
    return .success("\(dir)/slurm.conf")
}()

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

private func slurmPipeline(steps: Int, extra: String = "") throws -> (dir: URL, pipeline: String, blobs: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    try writeDocRows(30, in: dir)
    let stages = tinyPrepareAndTrainYAML(steps: steps, evalEvery: steps, prepareResources: #"{cpus: 1, memory: 1G, time: "00:10:00"}"#,
                                         trainResources: #"{cpus: 2, time: "10"}"#)
    let yaml = """
    name: slurm-task
    base: tiny.gguf
    registry: reg.sqlite
    seed: 5
    executor: slurm
    slurm: {poll_seconds: 0.2\(extra)}
    \(stages)
    register:
      aliases: [staging]
    """
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p, dir.appendingPathComponent("blobs").path)
}

/// Starts `tune args…` without waiting; stderr goes to a file the test can poll.
private func startTune(_ args: [String], env: [String: String], stderrPath: String) throws -> Process {
    let p = Process()
    p.executableURL = tuneBinary
    p.arguments = args
    p.currentDirectoryURL = packageRoot
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
    p.standardError = FileHandle(forWritingAtPath: stderrPath)
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return p
}

/// Waits (at most `seconds`) until `file` contains `text`.
private func waitFor(_ text: String, in file: String, seconds: Double = 120) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let s = try? String(contentsOfFile: file, encoding: .utf8), s.contains(text) { return true }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return false
}

private func slurm(_ tool: String, _ args: [String]) -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/\(tool)")
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(["SLURM_CONF": (try? clusterConf.get()) ?? ""]) { $1 }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try? p.run()
    let d = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: d, as: UTF8.self)
}

@Suite(.serialized, .enabled(if: slurmUnavailable == nil, "\(slurmUnavailable ?? "")"))
struct SlurmCLITests {
    let env: [String: String]
    init() throws { env = ["SLURM_CONF": try clusterConf.get()] }

    @Test func runsEveryStageAsAJobThenCaches() throws {
        let (dir, p, blobs) = try slurmPipeline(steps: 8)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["run", p, "--blobs", blobs, "--json"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        let stages = summary?["stages"] as? [[String: Any]] ?? []
        #expect(stages.count == 3 && stages.allSatisfy { $0["status"] as? String == "ran" && $0["slurm_job_id"] != nil }, "\(r.stdout)")
        let reg = dir.appendingPathComponent("reg.sqlite").path
        let show = try tune(["artifacts", "show", "slurm-task-adapter@staging", "--registry", reg, "--blobs", blobs])
        #expect(show.status == 0, "\(show.stderr)")
        let again = try tune(["run", p, "--blobs", blobs, "--json"], env: env)
        #expect(again.status == 0 && !again.stdout.contains("slurm_job_id") && again.stdout.contains(#""status":"cached""#), "\(again.stdout)")
    }

    @Test func interruptCancelsJobsAndARerunResumes() throws {
        let (dir, p, blobs) = try slurmPipeline(steps: 4000)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("stderr.txt").path
        let proc = try startTune(["run", p, "--blobs", blobs], env: env, stderrPath: log)
        #expect(waitFor("train: step", in: log), "train never started: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        kill(proc.processIdentifier, SIGINT)
        proc.waitUntilExit()
        #expect(proc.terminationStatus == 130)
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("cancelled Slurm jobs"), "\(text)")
        // The last train job of this name (earlier tests ran others) ends CANCELLED once its processes are gone.
        var trainJob = ""
        for _ in 0..<100 {
            trainJob = slurm("squeue", ["-h", "-t", "all", "-n", "tune-slurm-task-train", "-o", "%i %T"])
            let last = trainJob.split(separator: "\n").max { Int($0.split(separator: " ")[0])! < Int($1.split(separator: " ")[0])! }
            if last?.hasSuffix("CANCELLED") == true { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        #expect(trainJob.split(separator: "\n").contains { $0.hasSuffix("CANCELLED") }, "\(trainJob)")
        // The re-run keeps the finished prepare stage and runs train + register (shorter: a new config).
        try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(of: "max_steps: 4000", with: "max_steps: 8")
            .write(toFile: p, atomically: true, encoding: .utf8)
        let r = try tune(["run", p, "--blobs", blobs, "--json"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains(#""stage":"prepare","status":"cached""#) || r.stdout.contains(#""status":"cached""#), "\(r.stdout)")
    }

    @Test func killedSubmitterReattaches() throws {
        let (dir, p, blobs) = try slurmPipeline(steps: 300)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("stderr.txt").path
        let proc = try startTune(["run", p, "--blobs", blobs], env: env, stderrPath: log)
        #expect(waitFor("submitted", in: log))
        #expect(waitFor("train: step", in: log))
        kill(proc.processIdentifier, SIGKILL)
        proc.waitUntilExit()
        let r = try tune(["run", p, "--blobs", blobs], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("re-attached to Slurm jobs"), "\(r.stderr)")
        #expect(!r.stderr.contains("plan  "), "a re-run submitted jobs again: \(r.stderr)")
        let list = try tune(["artifacts", "list", "--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", blobs, "--json"])
        #expect(list.stdout.components(separatedBy: "\"slurm-task-adapter\"").count - 1 == 1, "\(list.stdout)")
    }

    @Test func nodeDownFailsTheStageWithSlurmsReasonThenResumes() throws {
        let (dir, p, blobs) = try slurmPipeline(steps: 4000)
        defer { try? FileManager.default.removeItem(at: dir) }
        let log = dir.appendingPathComponent("stderr.txt").path
        let proc = try startTune(["run", p, "--blobs", blobs], env: env, stderrPath: log)
        #expect(waitFor("train: step", in: log))
        let node = slurm("sinfo", ["-h", "-N", "-o", "%N"]).trimmingCharacters(in: .whitespacesAndNewlines)
        _ = slurm("scontrol", ["update", "nodename=\(node)", "state=down", "reason=tune-test"])
        proc.waitUntilExit()
        _ = slurm("scontrol", ["update", "nodename=\(node)", "state=resume"])
        for _ in 0..<100 where !slurm("sinfo", ["-h", "-o", "%T"]).contains("idle") { Thread.sleep(forTimeInterval: 0.1) }
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(proc.terminationStatus == 1, "\(text)")
        #expect(text.contains("stage train: Slurm job") && text.contains("NODE_FAIL"), "\(text)")
        #expect(text.contains("run the same command again to resume"), "\(text)")
    }

    /// The sample pipeline itself (pipelines/sample.yaml, its datasets, the real model) through the cluster,
    /// made CI-sized with --set: end to end, then a run with another step count interrupted during
    /// training (Ctrl-C → scancel, exit 130) and resumed from its checkpoint to completion.
    @Test(.enabled(if: hasRealModel, "the real model is not fetched (scripts/setup)"))
    func samplePipelineEndToEndThenInterruptedAndResumed() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reg = dir.appendingPathComponent("reg.sqlite").path, blobs = dir.appendingPathComponent("blobs").path
        func args(steps: Int) -> [String] {
            ["run", "pipelines/sample.yaml", "--executor", "slurm", "--registry", reg, "--blobs", blobs,
             "--set", "slurm.poll_seconds=0.2", "--set", "train.max_steps=\(steps)", "--set", "train.checkpoint_every=2",
             "--set", "train.eval_every=1000",   // no held-out loss pass inside training (the eval stage measures it)
             "--set", "eval.limit=12",           // 12 of the 80 held-out documents, for base, adapter and merged
             // A few steps cannot lift accuracy by the sample's +0.3: the gate is still computed and reported.
             "--set", "eval.gate.accuracy.min_delta_vs_base=-1", "--set", "eval.gate.perplexity.max_ratio_vs_base=10"]
        }
        let r = try tune(args(steps: 4) + ["--json"], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        let summary = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
        let stages = summary?["stages"] as? [[String: Any]] ?? []
        #expect(stages.map { $0["stage"] as? String ?? "" } == ["prepare", "train", "merge", "eval", "register"], "\(r.stdout)")
        #expect(stages.allSatisfy { $0["status"] as? String == "ran" && $0["slurm_job_id"] != nil }, "\(r.stdout)")
        let overrides = summary?["overrides"] as? [[String: Any]] ?? []
        #expect(overrides.count == 7 && overrides[1]["key"] as? String == "train.max_steps" && overrides[1]["previous"] as? String == "60",
                "\(r.stdout)")
        // The eval job reported the gate's verdict; the merged model is registered as staging.
        let logs = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("slurm").path)
        let evalLog = try logs.first { $0.hasPrefix("tune-shipping-docs-eval-") && $0.hasSuffix(".log") }
            .map { try String(contentsOfFile: dir.appendingPathComponent("slurm/\($0)").path, encoding: .utf8) } ?? ""
        #expect(evalLog.contains("Gate: ") && evalLog.contains("accuracy"), "\(logs) \(evalLog)")
        let show = try tune(["artifacts", "show", "shipping-docs-merged@staging", "--registry", reg, "--blobs", blobs])
        #expect(show.status == 0, "\(show.stderr)")
        // The jobs re-read the file: they trained what the overrides said.
        let adapter = try tune(["artifacts", "show", "shipping-docs-adapter", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(adapter.stdout.contains(#""steps":4"#), "\(adapter.stdout)")
        // Every stage job recorded the overridden values with its run, as the submitting run had them.
        let registry = try Registry.open(path: reg, blobRoot: blobs)
        for id in 1...5 {
            let config = try registry.run(RunID(rawValue: Int64(id))).config.canonicalJSON()
            #expect(config.contains(#""key":"train.max_steps""#) && config.contains(#""value":"4""#), "run \(id): \(config)")
        }

        // Another step count: prepare is cached, train runs and is interrupted after its first checkpoint.
        let log = dir.appendingPathComponent("stderr.txt").path
        let proc = try startTune(args(steps: 6), env: env, stderrPath: log)
        let work = dir.appendingPathComponent("work/shipping-docs").path
        var checkpointed = false
        for _ in 0..<3000 where !checkpointed {
            let trains = (try? FileManager.default.contentsOfDirectory(atPath: work)) ?? []
            checkpointed = trains.contains { t in
                ((try? FileManager.default.contentsOfDirectory(atPath: "\(work)/\(t)/checkpoints")) ?? []).contains { !$0.hasPrefix(".") }
            }
            if !checkpointed { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(checkpointed, "no checkpoint: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        kill(proc.processIdentifier, SIGINT)
        proc.waitUntilExit()
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(proc.terminationStatus == 130, "\(text)")
        #expect(text.contains("plan  train: submitted") && !text.contains("plan  prepare") && text.contains("cancelled Slurm jobs"), "\(text)")
        // The cancelled job's processes are gone before the resumed run trains in the same directory.
        for _ in 0..<600 where !slurm("squeue", ["-h", "-n", "tune-shipping-docs-train", "-t", "running,completing", "-o", "%i"])
            .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        // The same command resumes: train from its checkpoint, then merge, eval and register.
        let again = try tune(args(steps: 6), env: env)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("train: resumed at step"), "\(again.stderr)")
        #expect(again.stderr.contains("eval: Gate: "), "\(again.stderr)")
        #expect(again.stdout.contains("prepare cached, train ran, merge ran, eval ran, register ran"), "\(again.stdout)")
    }

    @Test func unknownPartitionIsRefusedBeforeAnythingRuns() throws {
        let (dir, p, blobs) = try slurmPipeline(steps: 8, extra: ", partition: no-such-partition")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["run", p, "--blobs", blobs], env: env)
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("sbatch refused job tune-slurm-task-prepare") && r.stderr.contains("partition"), "\(r.stderr)")
    }

    @Test func missingSbatchSaysSo() throws {
        let (dir, p, blobs) = try slurmPipeline(steps: 8)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["run", p, "--blobs", blobs], env: ["PATH": "/nonexistent"])
        #expect(r.status == 65, "\(r.stderr)")
        #expect(r.stderr.contains("`sbatch` is not on PATH") && r.stderr.contains("--executor local"), "\(r.stderr)")
    }
}
