// KernelTable+CUDA — the table over libtunecuda.so: every entry is dlsym("tcu_<op>") cast to the
// ck_ signature (cuda/tunecuda.h). Every symbol the training graph needs is required: a library that
// lacks one is refused with its name, never completed with a CPU kernel. RoPE uses the uncached
// tcu_rope_forward/backward (the library has no table op) and the LM head the plain GEMM (no packed
// GEMM on the GPU: the tile loader already reads W once per tile).
#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension KernelTable {
    /// Symbols of libtunecuda.so the CUDA table resolves (all required), in table order.
    public static let cudaSymbols: [String] = [
        "tcu_malloc", "tcu_free", "tcu_memcpy", "tcu_memset", "tcu_sync",
        "tcu_matmul_forward", "tcu_matmul_backward_input", "tcu_matmul_backward_weight",
        "tcu_matmul_forward_bf16", "tcu_matmul_backward_input_bf16", "tcu_embedding_forward",
        "tcu_rmsnorm_forward", "tcu_rmsnorm_backward", "tcu_rope_forward", "tcu_rope_backward",
        "tcu_attention_forward_train", "tcu_attention_backward", "tcu_swiglu_forward", "tcu_swiglu_backward",
        "tcu_add_inplace", "tcu_axpy", "tcu_scale", "tcu_mul_inplace", "tcu_xent_forward_backward",
        "tcu_adamw_step", "tcu_sumsq",
    ]

    /// Weight types the CUDA GEMMs and embedding decode (cuda/tunecuda.h): the types a Q4_K_M / Q5_K_M / Q6_K
    /// file mixes included (no Q2_K/Q3_K, Q5_1, NF4).
    public static let cudaWeightTypes: Set<GGMLType> = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q8_0, .q4_K, .q5_K, .q6_K]

    /// The CUDA table from an open libtunecuda.so handle (after `tunecuda_init` succeeded).
    static func cuda(handle h: UnsafeMutableRawPointer, path: String) throws -> KernelTable {
        if let missing = cudaSymbols.first(where: { dlsym(h, $0) == nil }) {
            throw EngineError(.unsupported, "not supported on CUDA yet: \(path) lacks \(missing), which the training graph needs (rebuild it: make -C cuda)")
        }
        func f<T>(_ name: String, _: T.Type) -> T { unsafeBitCast(dlsym(h, name)!, to: T.self) }
        typealias MM = @convention(c) (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, CFPtr?, Int64, Int64, Int64) -> Int32
        typealias MBI = @convention(c) (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32
        typealias MBW = @convention(c) (FPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64) -> Void
        typealias Rope = @convention(c) (FPtr?, IPtr?, Int64, Int64, Int64, Float) -> Void
        typealias Bin = @convention(c) (FPtr?, CFPtr?, Int64) -> Void
        typealias Malloc = @convention(c) (Int) -> UnsafeMutableRawPointer?
        typealias Free = @convention(c) (UnsafeMutableRawPointer?) -> Void
        typealias Memcpy = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int, Int32) -> Int32
        typealias Memset = @convention(c) (UnsafeMutableRawPointer?, Int32, Int) -> Int32
        typealias Sync = @convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Int32
        let malloc = f("tcu_malloc", Malloc.self), free = f("tcu_free", Free.self)
        let memcpy = f("tcu_memcpy", Memcpy.self), memset = f("tcu_memset", Memset.self), sync = f("tcu_sync", Sync.self)
        return KernelTable(
            name: "cuda", hostAddressable: false, weightTypes: cudaWeightTypes,
            alloc: { malloc(max(1, $0)) }, free: { free($0) },
            copy: { d, s, n, kind in memcpy(d, s, n, kind.rawValue) },
            memset: { d, v, n in memset(d, v, n) },
            sync: {
                var buf = [CChar](repeating: 0, count: 512)
                let rc = buf.withUnsafeMutableBufferPointer { sync($0.baseAddress, $0.count) }
                guard rc != 0 else { return nil }
                let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                return s.isEmpty ? "tcu_sync failed with code \(rc)" : s
            },
            matmulForward: f("tcu_matmul_forward", MM.self),
            matmulBackwardInput: f("tcu_matmul_backward_input", MBI.self),
            matmulBackwardWeight: f("tcu_matmul_backward_weight", MBW.self),
            matmulForwardBF16: f("tcu_matmul_forward_bf16", MM.self),
            matmulBackwardInputBF16: f("tcu_matmul_backward_input_bf16", MBI.self),
            embeddingForward: f("tcu_embedding_forward", (@convention(c) (FPtr?, IPtr?, UnsafeRawPointer?, Int32, Int64, Int64) -> Int32).self),
            rmsnormForward: f("tcu_rmsnorm_forward", (@convention(c) (FPtr?, FPtr?, CFPtr?, CFPtr?, Float, Int64, Int64) -> Void).self),
            rmsnormBackward: f("tcu_rmsnorm_backward", (@convention(c) (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64) -> Void).self),
            ropeForward: f("tcu_rope_forward", Rope.self), ropeBackward: f("tcu_rope_backward", Rope.self),
            attentionForwardTrain: f("tcu_attention_forward_train",
                                     (@convention(c) (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64) -> Void).self),
            attentionBackward: f("tcu_attention_backward",
                                 (@convention(c) (FPtr?, FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64) -> Void).self),
            swigluForward: f("tcu_swiglu_forward", (@convention(c) (FPtr?, CFPtr?, CFPtr?, Int64) -> Void).self),
            swigluBackward: f("tcu_swiglu_backward", (@convention(c) (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64) -> Void).self),
            addInplace: f("tcu_add_inplace", Bin.self),
            axpy: f("tcu_axpy", (@convention(c) (FPtr?, CFPtr?, Float, Int64) -> Void).self),
            scale: f("tcu_scale", (@convention(c) (FPtr?, Float, Int64) -> Void).self),
            mulInplace: f("tcu_mul_inplace", Bin.self),
            xentForwardBackward: f("tcu_xent_forward_backward", (@convention(c) (FPtr?, FPtr?, IPtr?, Float, Int64, Int64) -> Int64).self),
            adamwStep: f("tcu_adamw_step",
                         (@convention(c) (FPtr?, CFPtr?, FPtr?, FPtr?, Int64, Float, Float, Float, Float, Float, Int64) -> Void).self),
            sumsq: f("tcu_sumsq", (@convention(c) (CFPtr?, Int64) -> Double).self),
            ropeCache: nil, packed: nil)
    }
}
