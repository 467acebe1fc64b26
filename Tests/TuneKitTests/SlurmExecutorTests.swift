// SlurmExecutorTests — the Slurm executor against an in-memory cluster that "runs" each job by
// running its stage in-process: the submitted chain (resources, afterok), re-attaching to journaled
// jobs, failure reasons and cancellation of the rest, Ctrl-C, a refused submission, a job that
// completed without recording its stage, and `resources:` kept out of cache keys.
import Engine
import Foundation
import Testing
import TuneKit

/// A cluster in memory. A job runs (its stage, in-process) the first time its state is read after
/// its dependencies completed; `outcome` can make a stage end badly instead.
final class FakeSlurm: SlurmControl, @unchecked Sendable {
    let lock = NSLock()
    var submissions: [SlurmSubmission] = []
    var cancelled: [String] = []
    var jobs: [String: (stage: String, state: SlurmJobState)] = [:]
    var nextID = 100
    var refuseSubmission: Int?   // index of the submission sbatch refuses
    var outcome: (String) -> SlurmJobState? = { _ in nil }   // stage → forced end state
    var frozen = false   // jobs keep their states (nothing runs)
    var runStage: (String) throws -> Void = { _ in }

    func submit(_ job: SlurmSubmission) throws -> String {
        try lock.withLock {
            if refuseSubmission == submissions.count { throw TuneError(.invalidArgument, "sbatch refused job \(job.name): invalid partition") }
            submissions.append(job)
            nextID += 1
            jobs[String(nextID)] = (String(job.name.split(separator: "-").last!), SlurmJobState(state: "PENDING", reason: "Dependency"))
            return String(nextID)
        }
    }

    func states(of ids: [String]) throws -> [String: SlurmJobState] {
        for id in ids.sorted() where !frozen {
            guard let job = lock.withLock({ jobs[id] }), job.state.isActive else { continue }
            let end: SlurmJobState
            if let forced = outcome(job.stage) { end = forced } else {
                do { try runStage(job.stage); end = SlurmJobState(state: "COMPLETED") } catch {
                    end = SlurmJobState(state: "FAILED", reason: "NonZeroExitCode", exitCode: "1:0")
                }
            }
            lock.withLock { jobs[id]!.state = end }
            break   // one job per poll, like a chain
        }
        return lock.withLock { jobs.filter { ids.contains($0.key) }.mapValues(\.state) }
    }

    func cancel(_ ids: [String]) throws {
        lock.withLock {
            cancelled += ids
            for id in ids where jobs[id]?.state.isActive == true { jobs[id]!.state = SlurmJobState(state: "CANCELLED") }
        }
    }
}

@Suite struct SlurmExecutorTests {
    static func setUp(resources: String = "", slurm: String = "") throws -> (dir: URL, path: String, spec: PipelineSpec, opts: RunOptions) {
        let (dir, path) = try PipelineRunnerTests.setUp()
        var yaml = try String(contentsOfFile: path, encoding: .utf8)
        yaml = yaml.replacingOccurrences(of: "  split: {eval_fraction: 0.25}\n", with: "  split: {eval_fraction: 0.25}\n\(resources)")
        yaml += "\nexecutor: slurm\nslurm: {poll_seconds: 0.05\(slurm)}\n"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        return (dir, path, try PipelineSpec.load(path: path), opts)
    }

    /// The fake runs a stage the way the batch script would: `tune run --from S --until S`.
    static func executor(_ spec: PipelineSpec, _ path: String, _ opts: RunOptions, _ fake: FakeSlurm) -> SlurmExecutor {
        fake.runStage = { stage in
            var o = opts
            o.from = StageKind(rawValue: stage)
            o.until = o.from
            _ = try PipelineRunner(spec: spec, options: o).run()
        }
        var ex = SlurmExecutor(spec: spec, pipelinePath: path, options: opts, control: fake, tuneExecutable: "/opt/tune/bin/tune")
        ex.sleep = { _ in }
        return ex
    }

    @Test func submitsAChainWithResourcesAndRecordsJobIDs() throws {
        let (dir, path, spec, opts) = try Self.setUp(
            resources: "  resources: {cpus: 2, memory: 1G, time: \"00:05:00\", gpus: 1}\n", slurm: ", partition: p1, account: acc")
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = FakeSlurm()
        let summary = try Self.executor(spec, path, opts, fake).run()
        #expect(summary.stages.map(\.status) == ["ran", "ran"])
        #expect(summary.stages.map(\.slurmJobID) == ["101", "102"])
        let prep = fake.submissions[0].arguments.joined(separator: " ")
        #expect(prep.contains("--partition p1") && prep.contains("--account acc") && prep.contains("--cpus-per-task 2")
                    && prep.contains("--mem 1G") && prep.contains("--time 00:05:00") && prep.contains("--gres gpu:1"), "\(prep)")
        #expect(fake.submissions[1].afterOK == ["101"])
        #expect(fake.submissions[1].arguments.contains("afterok:101"))
        #expect(fake.submissions[0].script.contains("'/opt/tune/bin/tune' 'run' '\(path)' '--from' 'prepare' '--until' 'prepare' '--executor' 'local'"),
                "\(fake.submissions[0].script)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("slurm/tiny-run.jobs.json").path))
        // Finished on the cluster means finished: a local run finds every stage cached.
        var local = opts
        local.dryRun = true
        #expect(try PipelineRunner(spec: spec, options: local).run().stages.map(\.status) == ["cached", "cached"])
    }

    @Test func reRunReattachesToJournaledJobsInsteadOfSubmitting() throws {
        let (dir, path, spec, opts) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = FakeSlurm()
        // An earlier run submitted two jobs and died; they are still queued.
        fake.jobs = ["7": ("prepare", SlurmJobState(state: "RUNNING")), "8": ("register", SlurmJobState(state: "PENDING", reason: "Dependency"))]
        let journal = #"{"pipeline": "\#(path)", "jobs": [{"stage": "prepare", "id": "7", "log": "/nonexistent/7.log"}, {"stage": "register", "id": "8", "log": "/nonexistent/8.log"}]}"#
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("slurm"), withIntermediateDirectories: true)
        try journal.write(to: dir.appendingPathComponent("slurm/tiny-run.jobs.json"), atomically: true, encoding: .utf8)
        var events: [RunEvent] = []
        let summary = try Self.executor(spec, path, opts, fake).run { events.append($0) }
        #expect(fake.submissions.isEmpty)
        #expect(summary.stages.map(\.slurmJobID) == ["7", "8"])
        #expect(events.contains(.progress(stage: .prepare, message: "re-attached to Slurm jobs 7, 8 submitted by an earlier run")))
    }

    @Test func aFailedJobNamesSlurmsReasonAndCancelsTheRest() throws {
        let (dir, path, spec, opts) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = FakeSlurm()
        fake.outcome = { $0 == "prepare" ? SlurmJobState(state: "NODE_FAIL", reason: "NodeDown", exitCode: "0:9") : nil }
        #expect {
            try Self.executor(spec, path, opts, fake).run()
        } throws: { e in
            let m = (e as? TuneError)?.message ?? ""
            return (e as? TuneError)?.kind == .stageFailed && m.contains("stage prepare: Slurm job 101 ended NODE_FAIL (reason: NodeDown, exit code 0:9)")
                && m.contains("run the same command again to resume")
        }
        #expect(fake.cancelled == ["102"])
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("slurm/tiny-run.jobs.json").path))
    }

    @Test func aJobThatCompletedWithoutRecordingItsStageIsAnError() throws {
        let (dir, path, spec, opts) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = FakeSlurm()
        fake.outcome = { _ in SlurmJobState(state: "COMPLETED") }   // "ran" on a node that cannot see the registry
        #expect {
            try Self.executor(spec, path, opts, fake).run()
        } throws: { e in
            (e as? TuneError)?.message.contains("storage the compute nodes share") == true
        }
    }

    @Test func stopCancelsEverySubmittedJob() throws {
        let (dir, path, spec, opts0) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = opts0
        opts.shouldStop = { true }
        let fake = FakeSlurm()
        #expect {
            try Self.executor(spec, path, opts, fake).run()
        } throws: { e in (e as? TuneError)?.kind == .interrupted }
        #expect(fake.cancelled == ["101", "102"])
    }

    @Test func aRefusedSubmissionCancelsTheJobsBeforeIt() throws {
        let (dir, path, spec, opts) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = FakeSlurm()
        fake.refuseSubmission = 1
        #expect {
            try Self.executor(spec, path, opts, fake).run()
        } throws: { e in (e as? TuneError)?.message.contains("invalid partition") == true }
        #expect(fake.cancelled == ["101"])
    }

    @Test func dryRunWithActiveJournaledJobsOnlyReportsThem() throws {
        let (dir, path, spec, opts0) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = opts0
        opts.dryRun = true
        let fake = FakeSlurm()
        fake.frozen = true
        fake.jobs = ["7": ("prepare", SlurmJobState(state: "RUNNING")), "8": ("register", SlurmJobState(state: "PENDING", reason: "Dependency"))]
        let journalPath = dir.appendingPathComponent("slurm/tiny-run.jobs.json")
        let journal = #"{"pipeline": "\#(path)", "jobs": [{"stage": "prepare", "id": "7", "log": "/l/7.log"}, {"stage": "register", "id": "8", "log": "/l/8.log"}]}"#
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("slurm"), withIntermediateDirectories: true)
        try journal.write(to: journalPath, atomically: true, encoding: .utf8)
        var ex = Self.executor(spec, path, opts, fake)
        var ran: [String] = []
        fake.runStage = { ran.append($0) }
        var polls = 0
        ex.sleep = { _ in polls += 1 }
        var events: [RunEvent] = []
        let summary = try ex.run { events.append($0) }
        #expect(summary.stages.map(\.status) == ["slurm-running", "slurm-pending"])
        #expect(summary.stages.map(\.slurmJobID) == ["7", "8"])
        #expect(events == [
            .planned(stage: .prepare, action: "Slurm job 7 RUNNING", reason: "submitted by an earlier run; log: /l/7.log"),
            .planned(stage: .register, action: "Slurm job 8 PENDING", reason: "submitted by an earlier run, reason: Dependency; log: /l/8.log"),
        ])
        // Nothing waited on, submitted, cancelled or run; the journal stays for the real re-run.
        #expect(polls == 0 && ran.isEmpty && fake.submissions.isEmpty && fake.cancelled.isEmpty)
        #expect(fake.jobs["7"]?.state.state == "RUNNING")
        #expect(FileManager.default.fileExists(atPath: journalPath.path))
    }

    @Test func noWaitReachesTheStageJobs() throws {
        let (dir, path, _, opts) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try PipelineSpec.load(path: path)
        var o = opts
        o.noWait = true
        let fake = FakeSlurm()
        #expect(try Self.executor(spec, path, o, fake).run().stages.map(\.status) == ["ran", "ran"])
        #expect(!fake.submissions.isEmpty)
        for job in fake.submissions { #expect(job.script.contains("'--executor' 'local'") && job.script.contains("'--no-wait'"), "\(job.script)") }
        let waiting = FakeSlurm()   // without it, the jobs wait for a claimed stage
        _ = try Self.executor(try PipelineSpec.load(path: path, overrides: [try PipelineOverride(argument: "register.notes=x")]), path, opts, waiting).run()
        #expect(!waiting.submissions.isEmpty && waiting.submissions.allSatisfy { !$0.script.contains("--no-wait") })
    }

    @Test func stageJobsGetTheRunsOverrides() throws {
        let (dir, path, _, opts) = try Self.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try PipelineSpec.load(path: path, overrides: [try PipelineOverride(argument: "register.notes=it's here")])
        let fake = FakeSlurm()
        let summary = try Self.executor(spec, path, opts, fake).run()
        #expect(summary.stages.map(\.status) == ["ran", "ran"])
        #expect(summary.overrides?.map(\.argument) == ["register.notes=it's here"])
        for job in fake.submissions {
            #expect(job.script.contains(#"'--set' 'register.notes=it'\''s here'"#), "\(job.script)")
        }
        // The override is part of the register stage's key: without it, register is not cached.
        var dry = opts
        dry.dryRun = true
        #expect(try PipelineRunner(spec: spec, options: dry).run().stages.map(\.status) == ["cached", "cached"])
        #expect(try PipelineRunner(spec: try PipelineSpec.load(path: path), options: dry).run().stages.map(\.status) == ["cached", "would-run"])
    }

    @Test func aMergeOfThisRunsAdapterIsPlannedAfterTrain() throws {
        // The sample pipeline's shape: merge `adapter: train` cannot be keyed before train has run.
        let (dir, path, _, opts0) = try Self.setUp(
            resources: "train:\n  lora: {rank: 2}\n  max_steps: 2\nmerge:\n  method: task_arithmetic\n  adapters: [{adapter: train}]\n  output: model\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try PipelineSpec.load(path: path)
        #expect(spec.stages == [.prepare, .train, .merge, .register])
        var opts = opts0
        opts.dryRun = true
        var events: [RunEvent] = []
        let plan = try Self.executor(spec, path, opts, FakeSlurm()).run { events.append($0) }
        #expect(plan.stages.map(\.status) == ["would-run", "would-run", "would-run", "would-run"])
        #expect(events.filter { if case .planned(_, "submit to Slurm", _) = $0 { true } else { false } }.count == 4, "\(events)")
    }

    @Test func resourcesAreValidatedAndKeptOutOfCacheKeys() throws {
        let (dir, path, spec, opts) = try Self.setUp(resources: "  resources: {cpus: 4, time: \"1-00:00:00\"}\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(spec.resources["prepare"]?.cpus == 4 && spec.resources["prepare"]?.time == "1-00:00:00")
        var dry = opts
        dry.dryRun = true
        let withResources = try PipelineRunner(spec: spec, options: dry).run().stages.map(\.cacheKey)
        let plain = try PipelineSpec.parse(yaml: try String(contentsOfFile: path, encoding: .utf8)
            .replacingOccurrences(of: "  resources: {cpus: 4, time: \"1-00:00:00\"}\n", with: ""), file: path, baseDirectory: dir.path)
        #expect(try PipelineRunner(spec: plain, options: dry).run().stages.map(\.cacheKey) == withResources)
        #expect {
            try PipelineSpec.parse(yaml: "name: x\nbase: b\nprepare:\n  train: t.jsonl\n  resources: {memory: lots, time: \"5 min\"}\n", file: "p.yaml")
        } throws: { e in
            let d = "\(e)"
            return d.contains("prepare.resources.memory: expected a size like 16G") && d.contains("prepare.resources.time: expected a Slurm time limit")
        }
    }
}
