// Sections+Executor — where stages run: `executor: local | slurm`, the `slurm:` section, and each
// stage's `resources:`. None of these is part of a stage's cache key: the same stage computes the
// same result wherever it runs, so a stage finished on the cluster is cached for a local run too.

/// `slurm:` — cluster-wide settings for `executor: slurm`.
public struct SlurmSection: Codable, Hashable, Sendable {
    public var partition: String?
    public var account: String?
    /// Seconds between state polls of the submitted jobs.
    public var pollSeconds: Double
    /// Extra `sbatch` arguments, passed through as given (e.g. `["--qos=high"]`).
    public var sbatchArguments: [String]
    /// Directory for batch scripts and job logs (default: `slurm/` beside the registry). Must be on
    /// storage every node sees, like the registry and the blob store.
    public var logDirectory: String?

    public init() {
        pollSeconds = 2
        sbatchArguments = []
    }

    init(_ r: YAMLReader) {
        partition = r.string("partition")
        account = r.string("account")
        pollSeconds = r.double("poll_seconds", default: 2, range: 0.05...600)
        sbatchArguments = r.strings("sbatch_args")
        logDirectory = r.string("log_dir")
        r.finish()
    }
}

/// A stage's `resources:` — what its Slurm job asks for (ignored by the local executor).
public struct StageResources: Codable, Hashable, Sendable {
    public var cpus: Int?
    /// Memory as Slurm writes it: a number with an optional K/M/G/T suffix (`16G`).
    public var memory: String?
    /// Time limit as Slurm writes it: minutes, `HH:MM:SS`, or `D-HH:MM:SS`.
    public var time: String?
    public var gpus: Int?
    /// Overrides `slurm.partition` / `slurm.account` for this stage.
    public var partition: String?
    public var account: String?

    public init() {}

    init(_ r: YAMLReader) {
        if r.has("cpus") { cpus = r.int("cpus", default: 1, min: 1) }
        if r.has("gpus") { gpus = r.int("gpus", default: 0, min: 0) }
        if let m = r.string("memory") {
            if Self.isMemory(m) { memory = m } else {
                r.report(r.value("memory"), "memory", "expected a size like 16G, 512M or 2048 (megabytes), got \"\(m)\"")
            }
        }
        if let t = r.string("time") {
            if Self.isTime(t) { time = t } else {
                r.report(r.value("time"), "time", "expected a Slurm time limit (minutes, HH:MM:SS or D-HH:MM:SS), got \"\(t)\"")
            }
        }
        partition = r.string("partition")
        account = r.string("account")
        r.finish()
    }

    static func isMemory(_ s: String) -> Bool {
        var digits = Substring(s)
        if let last = s.last, "KMGTkmgt".contains(last) { digits = s.dropLast() }
        return !digits.isEmpty && digits.allSatisfy(\.isNumber)
    }

    static func isTime(_ s: String) -> Bool {
        let dayParts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard dayParts.count <= 2, dayParts.allSatisfy({ !$0.isEmpty }) else { return false }
        if dayParts.count == 2, !dayParts[0].allSatisfy(\.isNumber) { return false }
        let clock = dayParts.last!.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...3).contains(clock.count) else { return false }
        return clock.allSatisfy { !$0.isEmpty && $0.count <= 4 && $0.allSatisfy(\.isNumber) }
    }
}
