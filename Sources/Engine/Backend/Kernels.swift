// Kernels — Swift face of the CPU kernel module's process-wide settings (ISA dispatch, threads)
// and the thread-local opt-in int8 decode path.

import CKernels

/// Process-wide kernel settings.
public enum Kernels {
    /// Instruction-set paths of the CPU kernels, best last.
    public enum ISA: String, CaseIterable, Sendable, Codable {
        case ref, avx2, avx512
        var raw: Int32 {
            switch self { case .ref: 0; case .avx2: 1; case .avx512: 2 }
        }
        init(raw: Int32) { self = raw >= 2 ? .avx512 : raw == 1 ? .avx2 : .ref }
    }

    /// The best path this CPU supports.
    public static var detected: ISA { ISA(raw: ck_isa_detected()) }
    /// The path dispatching kernels use now (`TUNE_KERNELS` or `set(isa:)` may force one).
    public static var active: ISA { ISA(raw: ck_isa_active()) }

    /// Forces a path; throws if this CPU cannot run it.
    public static func set(isa: ISA) throws {
        guard ck_set_isa(isa.raw) == 0 else {
            throw EngineError(.unsupported, "this CPU does not support the \(isa.rawValue) kernels (best: \(detected.rawValue))")
        }
    }

    public static var threads: Int { Int(ck_get_threads()) }
    public static func setThreads(_ n: Int) { ck_set_threads(Int32(max(1, n))) }

    /// Runs `body` with the fast inference path on for the calling thread (ck_set_fast_decode):
    /// single-row matmuls (T = 1) on Q4_0/Q4_1/Q8_0/Q5_0/Q4_K/Q5_K/Q6_K weights quantize the activation row to int8
    /// blocks and use integer dot products, like llama.cpp; matmuls of many rows (prompts, batched decode
    /// steps) take bf16 products where `fastGEMMKernel` says so. Faster, not exact (the activation
    /// rounding moves logits slightly; docs/PERFORMANCE.md has the measured drift). Other threads
    /// and everything outside `body` keep the exact path; the previous setting is restored.
    public static func withFastInference<T>(_ body: () throws -> T) rethrows -> T {
        let before = ck_get_fast_decode()
        ck_set_fast_decode(1)
        defer { ck_set_fast_decode(before) }
        return try body()
    }

    /// Whether the int8 decode path takes a matrix of this type and width (Q4_0/Q4_1/Q8_0/Q5_0 with
    /// K % 32 == 0, Q4_K/Q5_K/Q6_K with K % 256 == 0, ck_gemv_q8_supported);
    /// other matmuls stay exact inside `withFastInference`.
    public static func fastDecodeApplies(to w: WeightMatrix) -> Bool {
        ck_gemv_q8_supported(Int32(w.type.rawValue), Int64(w.cols)) != 0
    }

    /// What the fast path runs many-row matmuls with: "bf16-avx512" (VDPBF16PS products, f32 sums) on a
    /// CPU where that beats f32 FMA (ck_fast_gemm_bf16; `TUNE_FAST_GEMM=bf16|f32` forces it), else "f32"
    /// (the exact tile GEMM).
    public static var fastGEMMKernel: String { ck_fast_gemm_bf16() != 0 ? "bf16-avx512" : "f32" }

    /// The kernel the int8 decode path uses now ("int8-avx512vnni", "int8-avx2" or "int8-ref").
    public static var fastDecodeKernel: String { String(cString: ck_gemv_q8_kernel_name(ck_gemv_q8_kernel())) }
}
