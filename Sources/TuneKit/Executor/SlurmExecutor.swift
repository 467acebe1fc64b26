// SlurmExecutor — `executor: slurm`: each stage that is not cached becomes one Slurm batch job
// running `tune run PIPELINE --from S --until S --executor local` on a compute node, chained with
// `--dependency=afterok`, so the cluster's scheduler (not tune) decides where and when stages run.
//
// The submitting process only watches: it polls job states, streams each job's log as progress,
// and on Ctrl-C cancels the jobs (`scancel`). The job ids are journaled beside the registry before
// anything waits on them, so a re-run after the submitting process died re-attaches to jobs still
// queued or running instead of submitting them again. Success is decided by the registry, not by
// Slurm's exit state alone: a stage is done when its cache key is recorded — which also catches a
// registry that is not on storage the compute nodes share.

import Foundation

/// Runs a pipeline's stages as Slurm jobs.
public struct SlurmExecutor {
    public let spec: PipelineSpec
    /// The pipeline file, as compute nodes will open it (absolute).
    public let pipelinePath: String
    public let options: RunOptions
    public let control: any SlurmControl
    /// The `tune` binary the jobs run (absolute; on shared storage for a real cluster).
    public let tuneExecutable: String
    /// Sleeps between polls (tests pass a no-op).
    public var sleep: (Double) -> Void = { Thread.sleep(forTimeInterval: $0) }

    public init(spec: PipelineSpec, pipelinePath: String, options: RunOptions, control: any SlurmControl, tuneExecutable: String) {
        self.spec = spec
        self.pipelinePath = Self.absolute(pipelinePath)
        self.options = options
        self.control = control
        self.tuneExecutable = Self.absolute(tuneExecutable)
    }

    /// What was submitted for one run, written before waiting so a re-run can re-attach.
    struct Journal: Codable {
        struct Job: Codable {
            var stage: StageKind
            var id: String
            var log: String
        }
        var pipeline: String
        var jobs: [Job]
    }

    var registryPath: String {
        let p = PipelineRunner(spec: spec, options: options).registryPath
        return RegistryLocation.isPostgres(p) ? p : Self.absolute(p)
    }
    var blobRoot: String { Self.absolute(options.blobRoot) }
    /// Batch scripts, job logs and the journal.
    var workDirectory: String {
        if let d = spec.slurm?.logDirectory { return PipelineRunner.resolve(d, in: spec) }
        return (Self.absolute(RegistryLocation.stateDirectory(registryPath)) as NSString).appendingPathComponent("slurm")
    }
    var journalPath: String { "\(workDirectory)/\(spec.name).jobs.json" }

    public func run(_ onEvent: (RunEvent) -> Void = { _ in }) throws -> RunSummary {
        var journal = try loadJournal()
        if let j = journal {
            let states = try control.states(of: j.jobs.map(\.id))
            if j.jobs.contains(where: { states[$0.id]?.isActive == true }) {
                if options.dryRun { return try report(j, states: states, onEvent) }
                onEvent(.progress(stage: j.jobs[0].stage,
                                  message: "re-attached to Slurm jobs \(j.jobs.map(\.id).joined(separator: ", ")) submitted by an earlier run"))
            } else {
                try? FileManager.default.removeItem(atPath: journalPath)
                journal = nil
            }
        }
        if journal == nil {
            var dry = options
            dry.dryRun = true
            let plan = try PipelineRunner(spec: spec, options: dry).run()
            guard let first = plan.stages.firstIndex(where: { $0.status == "would-run" }) else {
                // Everything is cached: the local runner reports it without running anything.
                return try PipelineRunner(spec: spec, options: options).run(onEvent)
            }
            if options.dryRun {
                for s in plan.stages {
                    onEvent(.planned(stage: s.stage, action: s.status == "would-run" ? "submit to Slurm" : "skip",
                                     reason: s.status == "would-run" ? "not finished with this configuration" : "cached"))
                }
                return plan
            }
            journal = try submit(plan.stages[first...].map(\.stage), onEvent)
        }
        try wait(journal!, onEvent)
        // Every job completed: the registry must now hold every selected stage.
        var dry = options
        dry.dryRun = true
        dry.force = []
        var summary = try PipelineRunner(spec: spec, options: dry).run()
        try? FileManager.default.removeItem(atPath: journalPath)
        for i in summary.stages.indices {
            guard let job = journal!.jobs.first(where: { $0.stage == summary.stages[i].stage }) else { continue }
            guard summary.stages[i].status == "cached" else {
                throw TuneError(.stageFailed,
                                "\(spec.name): Slurm job \(job.id) (\(job.stage.rawValue)) completed, but the registry at \(RegistryLocation.redact(registryPath)) "
                                    + "has no finished \(job.stage.rawValue) stage; is the registry on storage the compute nodes share? "
                                    + "Log: \(job.log)")
            }
            summary.stages[i].status = "ran"
            summary.stages[i].slurmJobID = job.id
        }
        return summary
    }

    /// `--dry-run` while an earlier run's jobs are still queued or running: says which stage is in
    /// which job and state, and returns without waiting, cancelling or submitting.
    func report(_ journal: Journal, states: [String: SlurmJobState], _ onEvent: (RunEvent) -> Void) throws -> RunSummary {
        var dry = options
        dry.dryRun = true
        var plan = try PipelineRunner(spec: spec, options: dry).run()
        for job in journal.jobs {
            let st = states[job.id]
            let state = st?.state ?? "UNKNOWN"
            let why = st.map { $0.reason == "None" ? "" : ", reason: \($0.reason)" } ?? ", no longer known to Slurm"
            onEvent(.planned(stage: job.stage, action: "Slurm job \(job.id) \(state)",
                             reason: "submitted by an earlier run\(why); log: \(job.log)"))
            if let i = plan.stages.firstIndex(where: { $0.stage == job.stage }) {
                plan.stages[i].status = "slurm-" + state.lowercased()
                plan.stages[i].slurmJobID = job.id
            }
        }
        return plan
    }

    // MARK: - Submission

    func submit(_ stages: [StageKind], _ onEvent: (RunEvent) -> Void) throws -> Journal {
        try AtomicFile.makeDirectory(workDirectory)
        var journal = Journal(pipeline: pipelinePath, jobs: [])
        for stage in stages {
            let name = "tune-\(spec.name)-\(stage.rawValue)"
            let res = spec.resources[stage.rawValue] ?? StageResources()
            var job = SlurmSubmission(
                name: name, script: script(for: stage), output: "\(workDirectory)/\(name)-%j.log",
                workingDirectory: FileManager.default.currentDirectoryPath)
            job.partition = res.partition ?? spec.slurm?.partition
            job.account = res.account ?? spec.slurm?.account
            job.time = res.time
            job.cpus = res.cpus
            job.memory = res.memory
            job.gpus = res.gpus
            job.afterOK = journal.jobs.last.map { [$0.id] } ?? []
            job.extraArguments = spec.slurm?.sbatchArguments ?? []
            let id: String
            do {
                id = try control.submit(job)
            } catch {
                // Jobs already submitted would wait forever on a chain that is now incomplete.
                try? control.cancel(journal.jobs.map(\.id))
                try? FileManager.default.removeItem(atPath: journalPath)
                throw error
            }
            journal.jobs.append(.init(stage: stage, id: id, log: job.output.replacingOccurrences(of: "%j", with: id)))
            try AtomicFile.write(try JSONEncoder().encode(journal), to: journalPath)
            onEvent(.planned(stage: stage, action: "submitted", reason: "Slurm job \(id)"))
        }
        return journal
    }

    /// The batch script of one stage: the same `tune run`, restricted to that stage, executed locally on the node.
    /// A PostgreSQL URL goes in without its password: the job authenticates through PGPASSWORD (sbatch exports
    /// the submitting environment) or ~/.pgpass, so no password is written to a script on shared storage.
    func script(for stage: StageKind) -> String {
        var args = [tuneExecutable, "run", pipelinePath, "--from", stage.rawValue, "--until", stage.rawValue,
                    "--executor", "local", "--registry", RegistryLocation.withoutPassword(registryPath), "--blobs", blobRoot]
        if options.force.contains(stage) { args += ["--force", stage.rawValue] }
        if options.noWait { args.append("--no-wait") }   // a stage another run holds fails the job instead of idling the node
        // The job reads the same file, so it needs the same overrides to compute the same cache keys.
        for o in spec.overrides { args += ["--set", o.argument] }
        return """
            #!/bin/sh
            # written by tune for pipeline \(spec.name), stage \(stage.rawValue)
            exec \(args.map(Self.shellQuoted).joined(separator: " "))

            """
    }

    // MARK: - Waiting

    func wait(_ journal: Journal, _ onEvent: (RunEvent) -> Void) throws {
        let ids = journal.jobs.map(\.id)
        var started: Set<String> = []
        var ended: Set<String> = []
        var lastReason: [String: String] = [:]
        var logOffsets: [String: UInt64] = [:]
        while true {
            if options.shouldStop() {
                try? control.cancel(ids.filter { !ended.contains($0) })
                try? FileManager.default.removeItem(atPath: journalPath)
                throw TuneError(.interrupted, "\(spec.name): stopped; cancelled Slurm jobs \(ids.joined(separator: ", ")). "
                                    + "Finished stages are kept; run the same command again to resume")
            }
            let states = try control.states(of: ids)
            for job in journal.jobs where !ended.contains(job.id) {
                for line in newLogLines(job.log, stage: job.stage, offsets: &logOffsets) { onEvent(.progress(stage: job.stage, message: line)) }
                guard let st = states[job.id] else {
                    // Forgotten by the controller and no accounting: the registry decides afterwards.
                    ended.insert(job.id)
                    continue
                }
                if st.state == "RUNNING", !started.contains(job.id) {
                    started.insert(job.id)
                    onEvent(.started(stage: job.stage))
                }
                if st.state == "PENDING" {
                    if st.reason == "DependencyNeverSatisfied" {
                        try fail(journal, job, st, ended: ended)
                    }
                    if lastReason[job.id] != st.reason, !["None", "Dependency", "Priority"].contains(st.reason) {
                        onEvent(.progress(stage: job.stage, message: "Slurm job \(job.id) pending: \(st.reason)"))
                    }
                    lastReason[job.id] = st.reason
                }
                guard !st.isActive else { continue }
                ended.insert(job.id)
                for line in newLogLines(job.log, stage: job.stage, offsets: &logOffsets) { onEvent(.progress(stage: job.stage, message: line)) }
                guard st.isSuccess else { try fail(journal, job, st, ended: ended) }
                onEvent(.progress(stage: job.stage, message: "Slurm job \(job.id) completed"))
            }
            if ended.count == ids.count { return }
            sleep(spec.slurm?.pollSeconds ?? 2)
        }
    }

    /// Cancels what is left of the chain and throws the failed job's reason.
    func fail(_ journal: Journal, _ job: Journal.Job, _ st: SlurmJobState, ended: Set<String>) throws -> Never {
        try? control.cancel(journal.jobs.map(\.id).filter { !ended.contains($0) && $0 != job.id })
        try? FileManager.default.removeItem(atPath: journalPath)
        let tail = Self.lastLines(of: job.log, count: 3)
        throw TuneError(.stageFailed,
                        "\(spec.name): stage \(job.stage.rawValue): Slurm job \(job.id) ended \(st.state) "
                            + "(reason: \(st.reason), exit code \(st.exitCode)); log: \(job.log)"
                            + (tail.isEmpty ? "" : "; last lines: \(tail.joined(separator: " | "))")
                            + ". Finished stages are kept; run the same command again to resume")
    }

    /// Complete lines appended to a log since the last call.
    func newLogLines(_ path: String, stage: StageKind, offsets: inout [String: UInt64]) -> [String] {
        let prefix = "\(stage.rawValue): "
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        let start = offsets[path] ?? 0
        guard (try? h.seek(toOffset: start)) != nil, let data = try? h.readToEnd(), !data.isEmpty,
              let lastNewline = data.lastIndex(of: UInt8(ascii: "\n")) else { return [] }
        let complete = data[data.startIndex...lastNewline]
        offsets[path] = start + UInt64(complete.count)
        // The job's own `tune run` prefixes its progress with the stage name; the caller adds it again.
        return String(decoding: complete, as: UTF8.self).split(separator: "\n").map { line -> String in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix(prefix) ? String(t.dropFirst(prefix.count)) : t
        }.filter { !$0.isEmpty }
    }

    static func lastLines(of path: String, count: Int) -> [String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").suffix(count).map { String($0) }
    }

    func loadJournal() throws -> Journal? {
        guard let data = FileManager.default.contents(atPath: journalPath) else { return nil }
        do { return try JSONDecoder().decode(Journal.self, from: data) } catch {
            throw TuneError(.badData, "\(journalPath): unreadable Slurm job journal (\(error)); "
                                + "check `squeue` for jobs of this pipeline, cancel them, and remove the file")
        }
    }

    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent(path).standardized.path
    }

    static func shellQuoted(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
