// tune bench gemm — GFLOP/s of the GEMM layouts vs the naive reference and OpenBLAS (same run).
import ArgumentParser
import Foundation
import TuneKit

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GEMM GFLOP/s (forward, dX, dW; f32 and fused Q4_1) vs the naive reference and OpenBLAS.")
    @Option(help: "Rows of X (tokens).") var m = 1024
    @Option(help: "Rows for the naive reference kernels (slow).") var refM = 32
    @Option(help: "Rounds over each shape's cells (best kept; each round spends 0.1 s per cell).") var rounds = 2
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1 (got \(rounds))") }
    }

    func run() throws {
        try reportingErrors {
            try global.apply()
            var bench = GemmBench()
            bench.m = m
            bench.refM = refM
            bench.rounds = rounds
            let r = bench.run { msg in if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) } }
            if global.json { try Output.json(r); return }
            Output.text("cpu \(r.cpuISA), \(r.threads) threads, best of \(rounds) rounds per cell; ref-* rows use M <= \(refM) (fewer on large shapes, see column M), gemv rows M=1")
            if !r.openblas {
                Output.text("reference: OpenBLAS not found (libopenblas.so.0); install it with `apt-get install -y libopenblas0-pthread` (scripts/setup does)")
            }
            Output.text("layout   kernel                M      N      K     GFLOP/s  × OpenBLAS")
            for row in r.rows {
                Output.text(row.layout.padding(toLength: 9, withPad: " ", startingAt: 0)
                    + row.kernel.padding(toLength: 20, withPad: " ", startingAt: 0)
                    + String(format: "%6d %6d %6d %10.1f", row.m, row.n, row.k, row.gflops)
                    + (row.vsOpenBLAS.map { String(format: "  %9.2f", $0) } ?? ""))
            }
        }
    }
}
