// GemmBench — `tune bench gemm`: GFLOP/s of the three GEMM layouts of a linear layer
// out = X·Wᵀ (forward, dX = dY·W, dW += dYᵀ·X) on Llama-shaped (N, K), for tune's f32,
// fused-Q4_1 and bf16 kernels (f32 products, and bf16 products "-b16p" where the CPU has
// AVX-512 BF16), the same kernels under ISA avx2 ("-avx2", when the active ISA is avx512), the naive `_ref` kernels (reduced M, labelled) and OpenBLAS sgemm
// (dlopen'ed, benchmark reference only, on the best core the CPU supports: OpenBLASCore) measured in the same run; plus T=1 Q4_1 forward
// (generation GEMV), the packed-weight forward (the training loss's LM head) and the LoRA rank-r
// products (N or K = r: the small-N paths). Every tune row carries its ratio to OpenBLAS.

import CKernels
import Foundation

/// One measured kernel on one shape and layout.
public struct GemmBenchRow: Codable, Sendable {
    public var layout: String   // forward | dX | dW | gemv
    public var kernel: String   // tune-f32 | tune-q4_1 | tune-bf16 | tune-*-b16p | tune-*-avx2 | ref-f32 | openblas-f32
    public var m: Int, n: Int, k: Int
    public var gflops: Double
    /// gflops ÷ the OpenBLAS row of the same layout and shape (same run); nil without OpenBLAS.
    public var vsOpenBLAS: Double?
    enum CodingKeys: String, CodingKey { case layout, kernel, m, n, k, gflops, vsOpenBLAS = "vs_openblas" }
}

public struct GemmBenchReport: Codable, Sendable {
    public var threads: Int
    public var cpuISA: String
    public var openblas: Bool
    /// `openblas_get_corename()` of the reference as measured, and how that core was chosen.
    public var openblasCore: String?
    public var openblasNote: String?
    /// `openblas_get_config()`: version and build options.
    public var openblasConfig: String?
    public var rows: [GemmBenchRow]
    enum CodingKeys: String, CodingKey {
        case threads, openblas, rows, cpuISA = "cpu_isa", openblasCore = "openblas_core", openblasNote = "openblas_note"
        case openblasConfig = "openblas_config"
    }
}

private typealias SgemmFn = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                            UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32, Float,
                                            UnsafeMutablePointer<Float>?, Int32) -> Void

public struct GemmBench: Sendable {
    public var m = 1024, refM = 32
    public var shapes: [(n: Int, k: Int)] = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)]
    /// LoRA rank and the layer widths its products are measured on.
    public var loraRank = 8
    public var loraWidths = [576, 1536]
    /// Quantized weight types measured on forward and dX besides f32/bf16 (ggml type ids; shapes whose
    /// K is not a multiple of a type's block are skipped for it). Types without a quantizer (the
    /// K-quants, Q5_0) get random blocks with sane scales: the kernels' time does not depend on values.
    public var quantTypes: [Int32] = [Int32(CK_TYPE_Q4_1.rawValue)]
    /// Quantized types the bench can measure, by ggml id.
    static let quantTypeIDs: [Int32] = [CK_TYPE_Q4_0, CK_TYPE_Q4_1, CK_TYPE_Q5_0, CK_TYPE_Q5_1, CK_TYPE_Q8_0, CK_TYPE_Q2_K,
                                        CK_TYPE_Q3_K, CK_TYPE_Q4_K, CK_TYPE_Q5_K, CK_TYPE_Q6_K, CK_TYPE_NF4].map { Int32($0.rawValue) }
    /// Their names, lower-case (q4_k for ggml's q4_K).
    public static var quantTypeNames: [String] { quantTypeIDs.map { String(cString: ck_type_name($0)).lowercased() } }
    /// The ggml id of a quantized type by name, case-insensitive; nil if unknown.
    public static func quantType(named name: String) -> Int32? {
        quantTypeIDs.first { String(cString: ck_type_name($0)).lowercased() == name.lowercased() }
    }
    /// Load OpenBLAS as if its detection had picked this core (shows the override path; see OpenBLASCore).
    public var simulatedOpenBLASDetection: String?
    public init() {}

    /// N rows of K elements of `type`: quantized from `w` where the kernels have a quantizer, else
    /// random blocks whose f16 scales (and K-quant min scales) are small and finite.
    static func weights(_ type: Int32, _ w: [Float], n: Int, k: Int) -> [UInt8] {
        var q = [UInt8](repeating: 0, count: Int(ck_type_row_bytes(type, Int64(k))) * n)
        if q.withUnsafeMutableBytes({ ck_quantize_row(type, w, $0.baseAddress, Int64(n * k)) }) == 0 { return q }
        var seed: UInt64 = 0x9e3779b97f4a7c15 &* UInt64(type + 1)
        for i in q.indices { seed = seed &* 6364136223846793005 &+ 1442695040888963407; q[i] = UInt8(truncatingIfNeeded: seed >> 33) }
        let bb = Int(ck_type_block_bytes(type))
        let dAt = type == Int32(CK_TYPE_Q6_K.rawValue) ? bb - 2 : 0
        let kq = type == Int32(CK_TYPE_Q4_K.rawValue) || type == Int32(CK_TYPE_Q5_K.rawValue)
        for b in 0..<(q.count / bb) {
            let d = ck_fp32_to_fp16(0.01), m = ck_fp32_to_fp16(0.002)
            q[b * bb + dAt] = UInt8(d & 0xff); q[b * bb + dAt + 1] = UInt8(d >> 8)
            if kq { q[b * bb + 2] = UInt8(m & 0xff); q[b * bb + 3] = UInt8(m >> 8) }
        }
        return q
    }

    /// Seconds of calls per measured cell and round (at least 2 calls: the best of them is reported).
    public var budget = 0.1
    /// Rounds over each shape's cells, the best of each cell kept: a tune kernel and its OpenBLAS
    /// reference are each measured in `rounds` windows spread over the shape's run, so a burst of
    /// load from elsewhere skews one window of each rather than the whole of one side's ratio.
    public var rounds = 2

    /// Best seconds per call over calls made until `budget` seconds have passed (at least 2 calls).
    /// Calls of a few ms repeat ~50–100 times, so the best is stable at 0.2 s as at 0.3 s; calls
    /// longer than the budget (the LM-head shape) run exactly twice.
    static func time(budget: Double = 0.2, _ body: () -> Void) -> Double {
        var best = Double.infinity, total = 0.0, calls = 0
        while calls < 2 || total < budget {
            let t0 = DispatchTime.now()
            body()
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
            best = min(best, s); total += s; calls += 1
        }
        return best
    }

    /// cblas_sgemm of the OpenBLAS that `OpenBLASCore.load` brought in, on tune's thread count.
    private static func sgemm(_ h: UnsafeMutableRawPointer) -> SgemmFn? {
        guard let f = dlsym(h, "cblas_sgemm") else { return nil }
        if let set = dlsym(h, "openblas_set_num_threads") {
            unsafeBitCast(set, to: (@convention(c) (Int32) -> Void).self)(Int32(ck_get_threads()))
        }
        return unsafeBitCast(f, to: SgemmFn.self)
    }

    /// Appends `row`, or keeps the better GFLOP/s of it and an earlier round's row for the same cell.
    static func keepBest(_ rows: inout [GemmBenchRow], _ row: GemmBenchRow) {
        if let i = rows.firstIndex(where: { $0.layout == row.layout && $0.kernel == row.kernel && $0.m == row.m && $0.n == row.n && $0.k == row.k }) {
            rows[i].gflops = max(rows[i].gflops, row.gflops)
        } else {
            rows.append(row)
        }
    }

    /// Rows for the naive `_ref` kernels on an N×K shape: refM, fewer on large shapes so one
    /// call stays near 32·576·576 multiply-adds (the LM-head shape's naive dW alone took 12 s).
    func refRows(_ n: Int, _ k: Int) -> Int { max(2, min(refM, refM * 576 * 576 / (n * k))) }

    public func run(progress: (String) -> Void = { _ in }) -> GemmBenchReport {
        let budget = self.budget
        func time(_ body: () -> Void) -> Double { Self.time(budget: budget, body) }
        let loaded = OpenBLASCore.load(simulatedDetection: simulatedOpenBLASDetection)
        let blas = loaded.flatMap { Self.sgemm($0.handle) }
        var rows: [GemmBenchRow] = []
        var seed: UInt64 = 1
        func rand(_ n: Int) -> [Float] {
            (0..<n).map { _ in seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: seed >> 11) % 1000) / 2000 }
        }
        let q41 = Int32(CK_TYPE_Q4_1.rawValue), f32 = Int32(CK_TYPE_F32.rawValue), bf16 = Int32(CK_TYPE_BF16.rawValue)
        for (n, k) in shapes {
            progress("N=\(n) K=\(k)")
            let w = rand(n * k), x = rand(m * k), dy = rand(m * n)
            let quants: [(name: String, id: Int32, w: [UInt8])] = quantTypes.filter { k % Int(ck_type_block_size($0)) == 0 }
                .map { (String(cString: ck_type_name($0)), $0, Self.weights($0, w, n: n, k: k)) }
            let wq = quants.first { $0.id == q41 }?.w ?? Self.weights(q41, w, n: n, k: k)
            var wb = [UInt8](repeating: 0, count: 2 * n * k)
            _ = wb.withUnsafeMutableBytes { ck_quantize_row(bf16, w, $0.baseAddress, Int64(n * k)) }
            var out = [Float](repeating: 0, count: m * max(n, k)), dw = [Float](repeating: 0, count: n * k)
            let (M, N, K) = (Int64(m), Int64(n), Int64(k))
            func add(_ layout: String, _ kernel: String, _ mm: Int, _ secs: Double) {
                Self.keepBest(&rows, GemmBenchRow(layout: layout, kernel: kernel, m: mm, n: n, k: k, gflops: 2.0 * Double(mm * n * k) / secs / 1e9))
            }
            for round in 0..<max(1, rounds) {
            // forward
            add("forward", "tune-f32", m, time { _ = ck_matmul_forward(&out, x, w, f32, nil, M, K, N) })
            var packed = [Float](repeating: 0, count: Int(ck_matmul_packed_size(K, N)))
            _ = ck_matmul_pack(&packed, w, f32, K, N)
            add("forward", "tune-f32-packed", m, time { _ = ck_matmul_forward_packed(&out, x, packed, nil, M, K, N) })
            packed = []
            for q in quants { add("forward", "tune-" + q.name, m, time { _ = ck_matmul_forward(&out, x, q.w, q.id, nil, M, K, N) }) }
            add("gemv", "tune-q4_1", 1, time { _ = ck_matmul_forward(&out, x, wq, q41, nil, 1, K, N) })
            add("gemv", "tune-f32", 1, time { _ = ck_matmul_forward(&out, x, w, f32, nil, 1, K, N) })
            // dX
            add("dX", "tune-f32", m, time { _ = ck_matmul_backward_input(&out, dy, w, f32, M, K, N, 0) })
            for q in quants { add("dX", "tune-" + q.name, m, time { _ = ck_matmul_backward_input(&out, dy, q.w, q.id, M, K, N, 0) }) }
            // bf16 products (VDPBF16PS): bf16 weights (the bf16 base), and Q4_1 (QLoRA opt-in)
            if ck_bf16_products_available() != 0 {
                add("forward", "tune-bf16-b16p", m, time { _ = ck_matmul_forward_bf16(&out, x, wb, bf16, nil, M, K, N) })
                add("forward", "tune-q4_1-b16p", m, time { _ = ck_matmul_forward_bf16(&out, x, wq, q41, nil, M, K, N) })
                add("dX", "tune-bf16-b16p", m, time { _ = ck_matmul_backward_input_bf16(&out, dy, wb, bf16, M, K, N, 0) })
                add("dX", "tune-q4_1-b16p", m, time { _ = ck_matmul_backward_input_bf16(&out, dy, wq, q41, M, K, N, 0) })
            }
            add("forward", "tune-bf16", m, time { _ = ck_matmul_forward(&out, x, wb, bf16, nil, M, K, N) })
            add("dX", "tune-bf16", m, time { _ = ck_matmul_backward_input(&out, dy, wb, bf16, M, K, N, 0) })
            // dW
            add("dW", "tune-f32", m, time { ck_matmul_backward_weight(&dw, dy, x, M, K, N) })
            // the same kernels under the AVX2 ISA, in this run (side-by-side ratio for the AVX-512 paths)
            let isa = ck_isa_active()
            if isa > 1, ck_set_isa(1) == 0 {
                add("forward", "tune-f32-avx2", m, time { _ = ck_matmul_forward(&out, x, w, f32, nil, M, K, N) })
                add("forward", "tune-q4_1-avx2", m, time { _ = ck_matmul_forward(&out, x, wq, q41, nil, M, K, N) })
                add("dX", "tune-f32-avx2", m, time { _ = ck_matmul_backward_input(&out, dy, w, f32, M, K, N, 0) })
                add("dX", "tune-q4_1-avx2", m, time { _ = ck_matmul_backward_input(&out, dy, wq, q41, M, K, N, 0) })
                add("dW", "tune-f32-avx2", m, time { ck_matmul_backward_weight(&dw, dy, x, M, K, N) })
                _ = ck_set_isa(isa)
            }
            // naive reference kernels on refRows rows (one round: no ratio is taken to them)
            if round == 0 {
                let rm = refRows(n, k), R = Int64(rm)
                add("forward", "ref-f32", rm, time { _ = ck_matmul_forward_ref(&out, x, w, f32, nil, R, K, N) })
                add("dX", "ref-f32", rm, time { _ = ck_matmul_backward_input_ref(&out, dy, w, f32, R, K, N, 0) })
                add("dW", "ref-f32", rm, time { ck_matmul_backward_weight_ref(&dw, dy, x, R, K, N) })
            }
            if let sg = blas {
                let (m32, n32, k32) = (Int32(m), Int32(n), Int32(k))
                // row-major = 101, no-trans = 111, trans = 112
                add("forward", "openblas-f32", m, time { sg(101, 111, 112, m32, n32, k32, 1, x, k32, w, k32, 0, &out, n32) })
                add("dX", "openblas-f32", m, time { sg(101, 111, 111, m32, k32, n32, 1, dy, n32, w, k32, 0, &out, k32) })
                add("dW", "openblas-f32", m, time { sg(101, 112, 111, n32, k32, m32, 1, dy, n32, x, k32, 1, &dw, k32) })
                add("gemv", "openblas-f32", 1, time { sg(101, 111, 112, 1, n32, k32, 1, x, k32, w, k32, 0, &out, n32) })
            }
            }
        }
        // LoRA products at rank r (f32): u = X·Aᵀ (forward, N = r), du = dY·B (dX, K = r),
        // dB += dYᵀ·u (dW, K = r), dA += duᵀ·X (dW, N = r).
        for width in loraWidths {
            progress("LoRA r=\(loraRank) width \(width)")
            let r = loraRank, (M, R, Wd) = (Int64(m), Int64(loraRank), Int64(width))
            let x = rand(m * width), a = rand(r * width), b = rand(width * r), dy = rand(m * width), u = rand(m * r)
            var out = [Float](repeating: 0, count: m * width), da = [Float](repeating: 0, count: r * width), db = da
            func addL(_ layout: String, _ kernel: String, _ n: Int, _ k: Int, _ secs: Double) {
                Self.keepBest(&rows, GemmBenchRow(layout: layout, kernel: kernel, m: m, n: n, k: k, gflops: 2.0 * Double(m * n * k) / secs / 1e9))
            }
            for _ in 0..<max(1, rounds) {
            func measure(_ suffix: String) {
                addL("forward", "tune-f32" + suffix, r, width, time { _ = ck_matmul_forward(&out, x, a, f32, nil, M, Wd, R) })
                addL("dX", "tune-f32" + suffix, width, r, time { _ = ck_matmul_backward_input(&out, dy, b, f32, M, R, Wd, 0) })
                addL("dW", "tune-f32" + suffix, width, r, time { ck_matmul_backward_weight(&db, dy, u, M, R, Wd) })
                addL("dW", "tune-f32" + suffix, r, width, time { ck_matmul_backward_weight(&da, u, x, M, Wd, R) })
            }
            measure("")
            let isa = ck_isa_active()
            if isa > 1, ck_set_isa(1) == 0 { measure("-avx2"); _ = ck_set_isa(isa) }
            if let sg = blas {
                let (m32, r32, w32) = (Int32(m), Int32(r), Int32(width))
                addL("forward", "openblas-f32", r, width, time { sg(101, 111, 112, m32, r32, w32, 1, x, w32, a, w32, 0, &out, r32) })
                addL("dX", "openblas-f32", width, r, time { sg(101, 111, 111, m32, r32, w32, 1, dy, w32, b, r32, 0, &out, r32) })
                addL("dW", "openblas-f32", width, r, time { sg(101, 112, 111, w32, r32, m32, 1, dy, w32, u, r32, 1, &db, r32) })
                addL("dW", "openblas-f32", r, width, time { sg(101, 112, 111, r32, w32, m32, 1, u, r32, x, w32, 1, &da, w32) })
            }
            }
        }
        // Ratios to OpenBLAS (same layout and shape, same run).
        for i in rows.indices where rows[i].kernel.hasPrefix("tune") {
            if let ref = rows.first(where: { $0.kernel == "openblas-f32" && $0.layout == rows[i].layout
                && $0.n == rows[i].n && $0.k == rows[i].k && $0.m == rows[i].m }) {
                rows[i].vsOpenBLAS = rows[i].gflops / ref.gflops
            }
        }
        // Training attention (causal GQA, SmolLM2 heads) on one m-token sequence: forward (with lse) and
        // backward, GFLOP/s counting 2·D MACs per (query, key ≤ query, head) forward and 4·D backward;
        // "-avx2" rows are the AVX2 dot/axpy loops in this run.
        do {
            let (T, H, Hkv, D) = (min(m, 256), 9, 3, 64)
            let q = rand(T * H * D), kk = rand(T * Hkv * D), v = rand(T * Hkv * D), g = rand(T * H * D)
            var o = [Float](repeating: 0, count: T * H * D), lse = [Float](repeating: 0, count: T * H)
            var dq = o, dk = [Float](repeating: 0, count: T * Hkv * D), dv = dk
            let pairs = Double(T * (T + 1) / 2 * H * D)
            func addA(_ layout: String, _ kernel: String, _ flops: Double, _ secs: Double) {
                rows.append(GemmBenchRow(layout: layout, kernel: kernel, m: T, n: H, k: D, gflops: flops / secs / 1e9))
            }
            func measure(_ suffix: String) {
                addA("attn-fwd", "tune" + suffix, 4 * pairs, time {
                    ck_attention_forward_train(&o, &lse, q, kk, v, Int64(T), Int64(H), Int64(Hkv), Int64(D)) })
                addA("attn-bwd", "tune" + suffix, 8 * pairs, time {
                    ck_attention_backward(&dq, &dk, &dv, g, q, kk, v, o, lse, Int64(T), Int64(H), Int64(Hkv), Int64(D)) })
            }
            measure("")
            let isa = ck_isa_active()
            if isa > 1, ck_set_isa(1) == 0 { measure("-avx2"); _ = ck_set_isa(isa) }
        }
        return GemmBenchReport(threads: Int(ck_get_threads()), cpuISA: String(cString: ck_isa_name(ck_isa_active())),
                               openblas: blas != nil, openblasCore: loaded?.core, openblasNote: loaded?.note,
                               openblasConfig: loaded?.config, rows: rows)
    }
}
