// tune bench gemm — GFLOP/s of the GEMM layouts vs the naive reference and OpenBLAS (same run).
import ArgumentParser
import Foundation
import TuneKit

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm",
        abstract: "GEMM GFLOP/s (forward, dX, dW; f32, bf16 and fused quantized types) vs the naive reference and OpenBLAS (on its best core for this CPU).")
    @Option(help: "Rows of X (tokens).") var m = 1024
    @Option(help: "Rows for the naive reference kernels (slow).") var refM = 32
    @Option(help: "Rounds over each shape's cells (best kept; each round spends 0.1 s per cell).") var rounds = 2
    @Option(help: "Quantized weight types for the forward and dX rows, comma-separated (q4_0, q4_1, q5_0, q8_0, q4_k, q5_k, q6_k, nf4, …; default q4_1). A shape whose K is not a multiple of a type's block skips it.")
    var types = "q4_1"
    @Option(help: "Weight shapes NxK, comma-separated (default: SmolLM2-135M's 576x576,192x576,1536x576,576x1536,49152x576; Qwen2.5-0.5B's are 896x896,128x896,4864x896,896x4864,151936x896).")
    var shapes: String?
    @Option(help: .hidden) var openblasSimulateDetection: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1 (got \(rounds))") }
        _ = try parsedTypes()
        _ = try parsedShapes()
    }

    /// ggml type ids by name (case-insensitive: q4_k = q4_K).
    func parsedTypes() throws -> [Int32] {
        try types.split(separator: ",").map { name in
            let n = name.trimmingCharacters(in: .whitespaces)
            guard let id = GemmBench.quantType(named: n) else {
                throw ValidationError("--types: unknown quantized type '\(n)' (expected one of \(GemmBench.quantTypeNames.joined(separator: ", ")))")
            }
            return id
        }
    }

    func parsedShapes() throws -> [(n: Int, k: Int)]? {
        guard let shapes else { return nil }
        return try shapes.split(separator: ",").map { s in
            let p = s.lowercased().split(separator: "x")
            guard p.count == 2, let n = Int(p[0]), let k = Int(p[1]), n > 0, k > 0 else {
                throw ValidationError("--shapes: '\(s)' is not NxK (e.g. 896x4864)")
            }
            return (n, k)
        }
    }

    func run() throws {
        try reportingErrors {
            try global.apply()
            var bench = GemmBench()
            bench.m = m
            bench.refM = refM
            bench.rounds = rounds
            bench.quantTypes = try parsedTypes()
            if let sh = try parsedShapes() { bench.shapes = sh }
            bench.simulatedOpenBLASDetection = openblasSimulateDetection
            let r = bench.run { msg in if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) } }
            if global.json { try Output.json(r); return }
            Output.text("cpu \(r.cpuISA), \(r.threads) threads, best of \(rounds) rounds per cell; ref-* rows use M <= \(refM) (fewer on large shapes, see column M), gemv rows M=1")
            if !r.openblas {
                Output.text("reference: OpenBLAS not found (libopenblas.so.0); install it with `apt-get install -y libopenblas0-pthread` (scripts/setup does)")
            } else {
                Output.text("reference: OpenBLAS \(r.openblasNote ?? "core unknown")" + (r.openblasConfig.map { "; \($0)" } ?? ""))
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
