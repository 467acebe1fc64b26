// BackendOptions — `--backend` for the commands that run the training kernels (train, bench train).
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct BackendOptions: ParsableArguments {
    @Option(help: "Kernel backend: auto (CUDA when usable, else CPU with a one-line notice), cpu, or cuda (fail if unavailable). Default: TUNE_BACKEND, else auto.")
    var backend: BackendRequest?

    /// Picks the backend for the training graph; prints the fallback notice (once per process) on stderr.
    /// `cuda` without a usable GPU throws the reason (docs/cuda.md).
    @discardableResult
    func resolveForTraining() throws -> BackendResolution {
        let r = try BackendSelector.shared.resolve(backend, for: .training)
        if let notice = r.notice { FileHandle.standardError.write(Data("tune: \(notice)\n".utf8)) }
        return r
    }
}

extension BackendRequest: ExpressibleByArgument {}
