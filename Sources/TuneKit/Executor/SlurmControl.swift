// SlurmControl — the seam between the Slurm executor and the cluster: submit a batch script,
// read job states, cancel. `SlurmCLI` drives Slurm's own commands (sbatch, scontrol, sacct, scancel);
// tests use an in-memory cluster.

import Foundation

/// What one `sbatch` asks for. Empty fields are left to the cluster's defaults.
public struct SlurmSubmission: Sendable, Equatable {
    public var name: String
    public var script: String
    public var output: String
    public var workingDirectory: String
    public var partition: String?
    public var account: String?
    public var time: String?
    public var cpus: Int?
    public var memory: String?
    public var gpus: Int?
    /// Job ids this job may start only after they all completed successfully (`afterok`).
    public var afterOK: [String] = []
    public var extraArguments: [String] = []

    /// The `sbatch` arguments (before the script path).
    public var arguments: [String] {
        var a = ["--parsable", "--job-name", name, "--output", output, "--chdir", workingDirectory,
                 "--no-requeue", "--kill-on-invalid-dep=yes"]
        if let partition { a += ["--partition", partition] }
        if let account { a += ["--account", account] }
        if let time { a += ["--time", time] }
        if let cpus { a += ["--cpus-per-task", String(cpus)] }
        if let memory { a += ["--mem", memory] }
        if let gpus, gpus > 0 { a += ["--gres", "gpu:\(gpus)"] }
        if !afterOK.isEmpty { a += ["--dependency", "afterok:" + afterOK.joined(separator: ":")] }
        return a + extraArguments
    }
}

/// A job's state as Slurm reports it.
public struct SlurmJobState: Sendable, Equatable {
    /// JobState (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, …).
    public var state: String
    /// Reason (why pending, or why it ended), "None" when Slurm gives none.
    public var reason: String
    /// ExitCode as `code:signal`.
    public var exitCode: String

    public init(state: String, reason: String = "None", exitCode: String = "0:0") {
        self.state = state; self.reason = reason; self.exitCode = exitCode
    }

    /// Still queued or running: waiting on it makes sense.
    public var isActive: Bool {
        ["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT"]
            .contains(state)
    }
    public var isSuccess: Bool { state == "COMPLETED" }
}

/// Talks to a Slurm cluster.
public protocol SlurmControl: Sendable {
    /// Submits a job; returns its id. Throws with sbatch's own message when Slurm refuses it.
    func submit(_ job: SlurmSubmission) throws -> String
    /// States of the given jobs; a job Slurm no longer knows is absent from the result.
    func states(of ids: [String]) throws -> [String: SlurmJobState]
    func cancel(_ ids: [String]) throws
}

/// `SlurmControl` through Slurm's command-line tools on PATH (SLURM_CONF in the environment selects the cluster).
public struct SlurmCLI: SlurmControl {
    public init() {}

    /// Fails with a clear message when Slurm's client tools are not installed.
    public static func checkInstalled() throws {
        for tool in ["sbatch", "scontrol", "scancel"] where ProcessRunner.which(tool) == nil {
            throw TuneError(.invalidArgument,
                            "executor slurm: `\(tool)` is not on PATH; install Slurm's client tools "
                                + "(Debian: apt-get install slurm-client) or run with --executor local")
        }
    }

    public func submit(_ job: SlurmSubmission) throws -> String {
        let scriptPath = (job.output as NSString).deletingLastPathComponent + "/\(job.name).sbatch"
        try AtomicFile.write(Data(job.script.utf8), to: scriptPath)
        let r = try ProcessRunner.run("sbatch", job.arguments + [scriptPath])
        guard r.status == 0 else {
            throw TuneError(.invalidArgument, "sbatch refused job \(job.name): \(Self.lastLine(r.stderr))")
        }
        // --parsable prints "id" or "id;cluster".
        let id = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ";").first.map(String.init) ?? ""
        guard !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw TuneError(.internal, "sbatch printed no job id for \(job.name): \(r.stdout)")
        }
        return id
    }

    public func states(of ids: [String]) throws -> [String: SlurmJobState] {
        guard !ids.isEmpty else { return [:] }
        var out: [String: SlurmJobState] = [:]
        let wanted = Set(ids)
        // One scontrol call lists every job the controller still remembers (MinJobAge after the end).
        let r = try ProcessRunner.run("scontrol", ["show", "job", "--oneliner"])
        if r.status == 0 {
            for line in r.stdout.split(separator: "\n") {
                let f = Self.fields(String(line))
                guard let id = f["JobId"], wanted.contains(id) else { continue }
                out[id] = SlurmJobState(state: f["JobState"] ?? "UNKNOWN", reason: f["Reason"] ?? "None",
                                        exitCode: f["ExitCode"] ?? "0:0")
            }
        } else if !r.stderr.contains("No jobs in the system") {
            throw TuneError(.io, "scontrol show job failed: \(Self.lastLine(r.stderr))")
        }
        // Jobs the controller forgot: ask accounting, where it is enabled.
        let forgotten = ids.filter { out[$0] == nil }
        if !forgotten.isEmpty, ProcessRunner.which("sacct") != nil {
            let a = try ProcessRunner.run("sacct", ["-n", "-P", "-X", "-o", "JobID,State,ExitCode,Reason", "-j", forgotten.joined(separator: ",")])
            if a.status == 0 {
                for line in a.stdout.split(separator: "\n") {
                    let c = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                    guard c.count >= 3, wanted.contains(c[0]) else { continue }
                    // sacct writes "CANCELLED by 0": keep the state word.
                    let state = c[1].split(separator: " ").first.map(String.init) ?? c[1]
                    out[c[0]] = SlurmJobState(state: state, reason: c.count > 3 ? c[3] : "None", exitCode: c[2])
                }
            }
        }
        return out
    }

    public func cancel(_ ids: [String]) throws {
        guard !ids.isEmpty else { return }
        let r = try ProcessRunner.run("scancel", ids)
        if r.status != 0 { throw TuneError(.io, "scancel \(ids.joined(separator: " ")) failed: \(Self.lastLine(r.stderr))") }
    }

    /// `Key=Value` pairs of one `scontrol --oneliner` record (values have no spaces, except
    /// a few free-text ones tune does not read).
    static func fields(_ line: String) -> [String: String] {
        var out: [String: String] = [:]
        for token in line.split(separator: " ") {
            guard let eq = token.firstIndex(of: "=") else { continue }
            let key = String(token[..<eq])
            if out[key] == nil { out[key] = String(token[token.index(after: eq)...]) }
        }
        return out
    }

    static func lastLine(_ text: String) -> String {
        text.split(separator: "\n").last.map { String($0).trimmingCharacters(in: .whitespaces) } ?? "(no message)"
    }
}
