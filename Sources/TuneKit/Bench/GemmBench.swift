// GemmBench — `tune bench gemm`: GFLOP/s of the three GEMM layouts of a linear layer
// out = X·Wᵀ (forward, dX = dY·W, dW += dYᵀ·X) on Llama-shaped (N, K), for tune's f32 and
// fused-Q4_1 kernels, the naive `_ref` kernels (reduced M, labelled) and OpenBLAS sgemm
// (dlopen'ed, benchmark reference only) measured in the same run; plus T=1 Q4_1 forward
// (generation GEMV).

import CKernels
import Foundation

/// One measured kernel on one shape and layout.
public struct GemmBenchRow: Codable, Sendable {
    public var layout: String   // forward | dX | dW | gemv
    public var kernel: String   // tune-f32 | tune-q4_1 | ref-f32 | openblas-f32
    public var m: Int, n: Int, k: Int
    public var gflops: Double
}

public struct GemmBenchReport: Codable, Sendable {
    public var threads: Int
    public var cpuISA: String
    public var openblas: Bool
    public var rows: [GemmBenchRow]
    enum CodingKeys: String, CodingKey { case threads, openblas, rows, cpuISA = "cpu_isa" }
}

private typealias SgemmFn = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                            UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32, Float,
                                            UnsafeMutablePointer<Float>?, Int32) -> Void

public struct GemmBench: Sendable {
    public var m = 1024, refM = 32
    public var shapes: [(n: Int, k: Int)] = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)]
    public init() {}

    /// Best seconds per call over calls made until ~0.3 s have passed (at least 2 calls).
    static func time(_ body: () -> Void) -> Double {
        var best = Double.infinity, total = 0.0, calls = 0
        while calls < 2 || total < 0.3 {
            let t0 = DispatchTime.now()
            body()
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
            best = min(best, s); total += s; calls += 1
        }
        return best
    }

    private static func openBLAS() -> SgemmFn? {
        guard let h = dlopen("libopenblas.so.0", RTLD_NOW), let f = dlsym(h, "cblas_sgemm") else { return nil }
        if let set = dlsym(h, "openblas_set_num_threads") {
            unsafeBitCast(set, to: (@convention(c) (Int32) -> Void).self)(Int32(ck_get_threads()))
        }
        return unsafeBitCast(f, to: SgemmFn.self)
    }

    public func run(progress: (String) -> Void = { _ in }) -> GemmBenchReport {
        let blas = Self.openBLAS()
        var rows: [GemmBenchRow] = []
        var seed: UInt64 = 1
        func rand(_ n: Int) -> [Float] {
            (0..<n).map { _ in seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: seed >> 11) % 1000) / 2000 }
        }
        let q41 = Int32(CK_TYPE_Q4_1.rawValue), f32 = Int32(CK_TYPE_F32.rawValue)
        for (n, k) in shapes {
            progress("N=\(n) K=\(k)")
            let w = rand(n * k), x = rand(m * k), dy = rand(m * n)
            var wq = [UInt8](repeating: 0, count: Int(ck_type_row_bytes(q41, Int64(k))) * n)
            _ = wq.withUnsafeMutableBytes { ck_quantize_row(q41, w, $0.baseAddress, Int64(n * k)) }
            var out = [Float](repeating: 0, count: m * max(n, k)), dw = [Float](repeating: 0, count: n * k)
            let (M, N, K) = (Int64(m), Int64(n), Int64(k))
            func add(_ layout: String, _ kernel: String, _ mm: Int, _ secs: Double) {
                rows.append(GemmBenchRow(layout: layout, kernel: kernel, m: mm, n: n, k: k, gflops: 2.0 * Double(mm * n * k) / secs / 1e9))
            }
            // forward
            add("forward", "tune-f32", m, Self.time { _ = ck_matmul_forward(&out, x, w, f32, nil, M, K, N) })
            add("forward", "tune-q4_1", m, Self.time { _ = ck_matmul_forward(&out, x, wq, q41, nil, M, K, N) })
            add("gemv", "tune-q4_1", 1, Self.time { _ = ck_matmul_forward(&out, x, wq, q41, nil, 1, K, N) })
            add("gemv", "tune-f32", 1, Self.time { _ = ck_matmul_forward(&out, x, w, f32, nil, 1, K, N) })
            // dX
            add("dX", "tune-f32", m, Self.time { _ = ck_matmul_backward_input(&out, dy, w, f32, M, K, N, 0) })
            add("dX", "tune-q4_1", m, Self.time { _ = ck_matmul_backward_input(&out, dy, wq, q41, M, K, N, 0) })
            // dW
            add("dW", "tune-f32", m, Self.time { ck_matmul_backward_weight(&dw, dy, x, M, K, N) })
            // naive reference kernels on refM rows
            let R = Int64(refM)
            add("forward", "ref-f32", refM, Self.time { _ = ck_matmul_forward_ref(&out, x, w, f32, nil, R, K, N) })
            add("dX", "ref-f32", refM, Self.time { _ = ck_matmul_backward_input_ref(&out, dy, w, f32, R, K, N, 0) })
            add("dW", "ref-f32", refM, Self.time { ck_matmul_backward_weight_ref(&dw, dy, x, R, K, N) })
            if let sg = blas {
                let (m32, n32, k32) = (Int32(m), Int32(n), Int32(k))
                // row-major = 101, no-trans = 111, trans = 112
                add("forward", "openblas-f32", m, Self.time { sg(101, 111, 112, m32, n32, k32, 1, x, k32, w, k32, 0, &out, n32) })
                add("dX", "openblas-f32", m, Self.time { sg(101, 111, 111, m32, k32, n32, 1, dy, n32, w, k32, 0, &out, k32) })
                add("dW", "openblas-f32", m, Self.time { sg(101, 112, 111, n32, k32, m32, 1, dy, n32, x, k32, 1, &dw, k32) })
                add("gemv", "openblas-f32", 1, Self.time { sg(101, 111, 112, 1, n32, k32, 1, x, k32, w, k32, 0, &out, n32) })
            }
        }
        return GemmBenchReport(threads: Int(ck_get_threads()), cpuISA: String(cString: ck_isa_name(ck_isa_active())),
                               openblas: blas != nil, rows: rows)
    }
}
