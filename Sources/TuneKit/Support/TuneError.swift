// TuneError — the one public error type TuneKit throws (registry, prepare, the pipeline stages).
// Each error is a kind (for exit codes) plus one line that names what and where.

/// An error from TuneKit. `message` is one line a user can act on, naming the object and the place involved.
public struct TuneError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, coarse enough to map onto an exit code.
    public enum Kind: String, Sendable {
        /// The caller passed something malformed (a bad reference, name or JSON).
        case invalidArgument
        /// A named thing does not exist (artifact, alias, file).
        case notFound
        /// The request contradicts what is stored (e.g. a name registered under another kind).
        case conflict
        /// Stored content does not match its recorded hash.
        case integrity
        /// An input file's content is malformed (a JSONL row, a shard, a dataset manifest).
        case badData
        /// A file or directory the user named cannot be found, read or written (prepare inputs, configs,
        /// output directories); the same exit code as a missing file.
        case fileAccess
        /// Reading or writing the registry's own files (blobs, temporaries) failed.
        case io
        /// The user stopped the run (SIGINT); state was saved so the same command resumes.
        case interrupted
        /// An evaluation gate failed: the tuned model is not promoted.
        case gateFailed
        /// A stage's job failed outside tune's process (a Slurm job ended FAILED, NODE_FAIL, TIMEOUT…);
        /// the message carries the scheduler's reason. Re-running resumes.
        case stageFailed
        /// The SQLite registry reported an error.
        case database
        /// A remote service (a managed fine-tuning provider) refused the request, failed, or could not be
        /// reached within the retry policy; the message carries the provider's own words.
        case remote
        /// A state that should be impossible.
        case `internal`
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
