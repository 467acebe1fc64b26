// tune bench registry — lookup latency (p50/p99) of a registry filled with many artifacts.
import ArgumentParser
import Foundation
import TuneKit

struct BenchRegistryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registry",
        abstract: "show NAME@N, alias lookup and exposure latency with 100k artifacts (in process, blobs in memory).")
    @Option(help: "Artifacts to register.") var artifacts = 100_000
    @Option(help: "Timed calls per operation.") var calls = 2_000
    @Option(help: "Keep the registry here instead of a temp dir.") var dir: String?
    @Option(help: "Measure PostgreSQL instead: a server URL (postgres://…); a fresh database is created there and dropped.")
    var postgres: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            var bench = RegistryBench()
            bench.artifacts = artifacts
            bench.calls = calls
            let r = try bench.run(directory: dir.map { URL(fileURLWithPath: $0) }, postgres: postgres) { msg in
                if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) }
            }
            if global.json { try Output.json(r); return }
            Output.text("\(r.backend): \(r.artifacts) artifacts, \(r.baseVersions) base versions, \(r.aliases) aliases; filled in "
                + String(format: "%.1f s", r.fillSeconds))
            Output.text("operation                  calls    p50 µs    p99 µs    max µs  results/call")
            for row in r.rows {
                Output.text(row.operation.padding(toLength: 25, withPad: " ", startingAt: 0)
                    + String(format: "%6d %9.1f %9.1f %9.1f %13.1f", row.calls, row.p50Microseconds, row.p99Microseconds,
                             row.maxMicroseconds, row.meanResults))
            }
        }
    }
}
