// GlobalOptions — flags every command shares.
import ArgumentParser
import Engine
import TuneKit

struct GlobalOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON instead of text.")
    var json = false

    @Option(name: .long, help: "Kernel threads (default: TUNE_THREADS or all cores).")
    var threads: Int?

    /// Applies process-wide settings (thread count) before a command runs.
    func apply() throws {
        if let threads {
            guard threads > 0 else { throw ValidationError("--threads must be a positive integer, got \(threads)") }
            Kernels.setThreads(threads)
        }
    }
}
