// KernelTable — the ops the training graph calls plus the memory ops that feed them, as one table
// of functions with the C ABI's signatures (ck_<op> ≡ tcu_<op>). TrainGraph, the LoRA side paths and
// the optimizer step call only through a table, so the same graph runs on:
//   - `.cpu`: the CKernels functions; memory is host memory, so frozen weights and LoRA parameters
//     are used in place (`hostAddressable`) and the CPU path is the one it always was;
//   - CUDA: dlsym(tcu_*) from libtunecuda.so (`CUDABackend.kernelTable()`); every array is device
//     memory, host data crosses only through `copy(…, .hostToDevice / .deviceToHost)`;
//   - `CheckedHostDevice`: CPU kernels behind an allocator that tracks "device" allocations and checks
//     every pointer an op or copy gets (the test double that catches host pointers passed to ops).
//
//     let k = try backend.kernelTable()
//     let x = try k.allocFloats(n)                 // device memory
//     try k.upload(x, from: host, count: n)         // h2d
//     k.rmsnormForward(out, rstd, x, w, eps, T, C)  // same arguments as ck_rmsnorm_forward

import CKernels
import Foundation

/// Direction of a `KernelTable.copy` (the `kind` of `tcu_memcpy`).
public enum CopyKind: Int32, Sendable {
    case hostToDevice = 0, deviceToHost = 1, deviceToDevice = 2
}

public typealias FPtr = UnsafeMutablePointer<Float>
public typealias CFPtr = UnsafePointer<Float>
public typealias IPtr = UnsafePointer<Int32>

/// Kernel + memory functions of one backend (see the file header). Optional members are ops only
/// some backends have; the graph uses an equivalent plain op without them (stated per member).
public final class KernelTable: @unchecked Sendable { // immutable; the functions are thread-compatible like the C ABI
    public let name: String
    /// Device memory is host memory: host arrays may be used in place (no upload).
    public let hostAddressable: Bool
    /// Weight types the GEMMs and embedding accept (nil: every type CKernels knows).
    public let weightTypes: Set<GGMLType>?

    // MARK: memory
    public let alloc: (Int) -> UnsafeMutableRawPointer?
    public let free: (UnsafeMutableRawPointer) -> Void
    public let copyFn: (UnsafeMutableRawPointer, UnsafeRawPointer, Int, CopyKind) -> Int32
    public let memsetFn: (UnsafeMutableRawPointer, Int32, Int) -> Int32
    /// Waits for queued ops; nil or the first error recorded since the last call.
    public let syncFn: () -> String?

    // MARK: ops (ck_/tcu_ signatures)
    public let matmulForward: (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, CFPtr?, Int64, Int64, Int64) -> Int32
    public let matmulBackwardInput: (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32
    public let matmulBackwardWeight: (FPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64) -> Void
    public let matmulForwardBF16: (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, CFPtr?, Int64, Int64, Int64) -> Int32
    public let matmulBackwardInputBF16: (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32
    public let embeddingForward: (FPtr?, IPtr?, UnsafeRawPointer?, Int32, Int64, Int64) -> Int32
    public let rmsnormForward: (FPtr?, FPtr?, CFPtr?, CFPtr?, Float, Int64, Int64) -> Void
    public let rmsnormBackward: (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64) -> Void
    public let ropeForward: (FPtr?, IPtr?, Int64, Int64, Int64, Float) -> Void
    public let ropeBackward: (FPtr?, IPtr?, Int64, Int64, Int64, Float) -> Void
    public let attentionForwardTrain: (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64) -> Void
    public let attentionBackward: (FPtr?, FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64) -> Void
    public let swigluForward: (FPtr?, CFPtr?, CFPtr?, Int64) -> Void
    public let swigluBackward: (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64) -> Void
    public let addInplace: (FPtr?, CFPtr?, Int64) -> Void
    public let axpy: (FPtr?, CFPtr?, Float, Int64) -> Void
    public let scale: (FPtr?, Float, Int64) -> Void
    /// nil: LoRA dropout is not supported by this backend (the graph refuses dropout > 0).
    public let mulInplace: ((FPtr?, CFPtr?, Int64) -> Void)?
    public let xentForwardBackward: (FPtr?, FPtr?, IPtr?, Float, Int64, Int64) -> Int64
    public let adamwStep: (FPtr?, CFPtr?, FPtr?, FPtr?, Int64, Float, Float, Float, Float, Float, Int64) -> Void
    public let sumsq: (CFPtr?, Int64) -> Double

    /// RoPE with a cos/sin table (`ck_rope_table` + `_cached`, bit-identical to `ropeForward`);
    /// nil: the graph calls `ropeForward`/`ropeBackward` with θ.
    public struct RopeCache: @unchecked Sendable {
        public let table: (FPtr?, Int64, Int64, Float) -> Void
        public let forward: (FPtr?, IPtr?, CFPtr?, Int64, Int64, Int64) -> Void
        public let backward: (FPtr?, IPtr?, CFPtr?, Int64, Int64, Int64) -> Void
        /// The table from explicit inverse frequencies [D/2] (host pointer; RoPE scaling). nil: this backend
        /// cannot train a model with scaled RoPE yet.
        public var tableFreq: ((FPtr?, Int64, Int64, CFPtr?) -> Void)? = nil
    }
    public let ropeCache: RopeCache?

    /// The LM head packed once (`ck_matmul_pack` + `ck_matmul_forward_packed`); nil: `matmulForward`.
    public struct PackedGEMM: @unchecked Sendable {
        public let size: (Int64, Int64) -> Int64
        public let pack: (FPtr?, UnsafeRawPointer?, Int32, Int64, Int64) -> Int32
        public let forward: (FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64) -> Int32
    }
    public let packed: PackedGEMM?

    /// Ops only some families need in training (Gemma 3: GeGLU, sliding-window attention); nil: this
    /// backend cannot train such a model yet and the graph refuses it in one line, naming the op.
    public struct FamilyOps: @unchecked Sendable {
        /// `ck_geglu_forward` / `ck_geglu_backward` (out = gelu_tanh(gate)·up).
        public let gegluForward: (FPtr?, CFPtr?, CFPtr?, Int64) -> Void
        public let gegluBackward: (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64) -> Void
        /// `ck_attention_forward_train_window` / `ck_attention_backward_window` (last argument: the window).
        public let attentionForwardTrainWindow: (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64, Int64) -> Void
        public let attentionBackwardWindow: (FPtr?, FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?,
                                             Int64, Int64, Int64, Int64, Int64) -> Void
        public init(gegluForward: @escaping (FPtr?, CFPtr?, CFPtr?, Int64) -> Void,
                    gegluBackward: @escaping (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64) -> Void,
                    attentionForwardTrainWindow: @escaping (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64, Int64) -> Void,
                    attentionBackwardWindow: @escaping (FPtr?, FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?,
                                                        Int64, Int64, Int64, Int64, Int64) -> Void) {
            self.gegluForward = gegluForward; self.gegluBackward = gegluBackward
            self.attentionForwardTrainWindow = attentionForwardTrainWindow; self.attentionBackwardWindow = attentionBackwardWindow
        }
    }
    public let family: FamilyOps?

    public init(name: String, hostAddressable: Bool, weightTypes: Set<GGMLType>?,
                alloc: @escaping (Int) -> UnsafeMutableRawPointer?, free: @escaping (UnsafeMutableRawPointer) -> Void,
                copy: @escaping (UnsafeMutableRawPointer, UnsafeRawPointer, Int, CopyKind) -> Int32,
                memset: @escaping (UnsafeMutableRawPointer, Int32, Int) -> Int32, sync: @escaping () -> String?,
                matmulForward: @escaping (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, CFPtr?, Int64, Int64, Int64) -> Int32,
                matmulBackwardInput: @escaping (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32,
                matmulBackwardWeight: @escaping (FPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64) -> Void,
                matmulForwardBF16: @escaping (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, CFPtr?, Int64, Int64, Int64) -> Int32,
                matmulBackwardInputBF16: @escaping (FPtr?, CFPtr?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32,
                embeddingForward: @escaping (FPtr?, IPtr?, UnsafeRawPointer?, Int32, Int64, Int64) -> Int32,
                rmsnormForward: @escaping (FPtr?, FPtr?, CFPtr?, CFPtr?, Float, Int64, Int64) -> Void,
                rmsnormBackward: @escaping (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64) -> Void,
                ropeForward: @escaping (FPtr?, IPtr?, Int64, Int64, Int64, Float) -> Void,
                ropeBackward: @escaping (FPtr?, IPtr?, Int64, Int64, Int64, Float) -> Void,
                attentionForwardTrain: @escaping (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64) -> Void,
                attentionBackward: @escaping (FPtr?, FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, CFPtr?, Int64, Int64, Int64, Int64) -> Void,
                swigluForward: @escaping (FPtr?, CFPtr?, CFPtr?, Int64) -> Void,
                swigluBackward: @escaping (FPtr?, FPtr?, CFPtr?, CFPtr?, CFPtr?, Int64) -> Void,
                addInplace: @escaping (FPtr?, CFPtr?, Int64) -> Void,
                axpy: @escaping (FPtr?, CFPtr?, Float, Int64) -> Void,
                scale: @escaping (FPtr?, Float, Int64) -> Void,
                mulInplace: ((FPtr?, CFPtr?, Int64) -> Void)?,
                xentForwardBackward: @escaping (FPtr?, FPtr?, IPtr?, Float, Int64, Int64) -> Int64,
                adamwStep: @escaping (FPtr?, CFPtr?, FPtr?, FPtr?, Int64, Float, Float, Float, Float, Float, Int64) -> Void,
                sumsq: @escaping (CFPtr?, Int64) -> Double,
                ropeCache: RopeCache?, packed: PackedGEMM?, family: FamilyOps? = nil) {
        self.name = name; self.hostAddressable = hostAddressable; self.weightTypes = weightTypes
        self.alloc = alloc; self.free = free; self.copyFn = copy; self.memsetFn = memset; self.syncFn = sync
        self.matmulForward = matmulForward; self.matmulBackwardInput = matmulBackwardInput
        self.matmulBackwardWeight = matmulBackwardWeight; self.matmulForwardBF16 = matmulForwardBF16
        self.matmulBackwardInputBF16 = matmulBackwardInputBF16; self.embeddingForward = embeddingForward
        self.rmsnormForward = rmsnormForward; self.rmsnormBackward = rmsnormBackward
        self.ropeForward = ropeForward; self.ropeBackward = ropeBackward
        self.attentionForwardTrain = attentionForwardTrain; self.attentionBackward = attentionBackward
        self.swigluForward = swigluForward; self.swigluBackward = swigluBackward
        self.addInplace = addInplace; self.axpy = axpy; self.scale = scale; self.mulInplace = mulInplace
        self.xentForwardBackward = xentForwardBackward; self.adamwStep = adamwStep; self.sumsq = sumsq
        self.ropeCache = ropeCache; self.packed = packed; self.family = family
    }

    // MARK: - helpers

    /// Device memory for `count` floats (at least one).
    public func allocFloats(_ count: Int) throws -> FPtr {
        let bytes = max(1, count) * 4
        guard let p = alloc(bytes) else {
            throw EngineError(.io, "\(name): cannot allocate \(bytes) bytes of device memory\(syncFn().map { " (\($0))" } ?? "")")
        }
        return p.bindMemory(to: Float.self, capacity: max(1, count))
    }

    public func allocInt32(_ count: Int) throws -> UnsafeMutablePointer<Int32> {
        let bytes = max(1, count) * 4
        guard let p = alloc(bytes) else { throw EngineError(.io, "\(name): cannot allocate \(bytes) bytes of device memory") }
        return p.bindMemory(to: Int32.self, capacity: max(1, count))
    }

    public func copy(_ dst: UnsafeMutableRawPointer, _ src: UnsafeRawPointer, bytes: Int, _ kind: CopyKind) throws {
        guard bytes > 0 else { return }
        guard copyFn(dst, src, bytes, kind) == 0 else {
            throw EngineError(.io, "\(name): copy of \(bytes) bytes (\(kind)) failed\(syncFn().map { ": \($0)" } ?? "")")
        }
    }

    /// h2d of `count` elements of `T`.
    public func upload<T>(_ dst: UnsafeMutablePointer<T>, from src: UnsafePointer<T>, count: Int) throws {
        try copy(UnsafeMutableRawPointer(dst), UnsafeRawPointer(src), bytes: count * MemoryLayout<T>.stride, .hostToDevice)
    }

    /// d2h of `count` elements of `T`.
    public func download<T>(_ dst: UnsafeMutablePointer<T>, from src: UnsafePointer<T>, count: Int) throws {
        try copy(UnsafeMutableRawPointer(dst), UnsafeRawPointer(src), bytes: count * MemoryLayout<T>.stride, .deviceToHost)
    }

    /// d2d of `count` floats.
    public func copyFloats(_ dst: FPtr, from src: CFPtr, count: Int) throws {
        try copy(UnsafeMutableRawPointer(dst), UnsafeRawPointer(src), bytes: count * 4, .deviceToDevice)
    }

    public func zero(_ p: FPtr, count: Int) throws {
        guard count > 0 else { return }
        guard memsetFn(UnsafeMutableRawPointer(p), 0, count * 4) == 0 else { throw EngineError(.io, "\(name): memset of \(count * 4) bytes failed") }
    }

    /// Throws the first error the backend recorded since the last sync.
    public func sync(_ what: String) throws {
        if let why = syncFn() { throw EngineError(.internal, "\(name) \(what): \(why)") }
    }

    /// Whether the GEMMs accept `type`.
    public func supports(_ type: GGMLType) -> Bool { weightTypes?.contains(type) ?? true }
}

// MARK: - CPU

extension KernelTable {
    /// The CKernels functions; host memory (64-byte aligned), used in place.
    public static let cpu = KernelTable(
        name: "cpu", hostAddressable: true, weightTypes: nil,
        alloc: { UnsafeMutableRawPointer.allocate(byteCount: max(1, $0), alignment: 64) },
        free: { $0.deallocate() },
        copy: { d, s, n, _ in d.copyMemory(from: s, byteCount: n); return 0 },
        memset: { d, v, n in d.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: v), count: n); return 0 },
        sync: { nil },
        matmulForward: ck_matmul_forward, matmulBackwardInput: ck_matmul_backward_input,
        matmulBackwardWeight: ck_matmul_backward_weight, matmulForwardBF16: ck_matmul_forward_bf16,
        matmulBackwardInputBF16: ck_matmul_backward_input_bf16, embeddingForward: ck_embedding_forward,
        rmsnormForward: ck_rmsnorm_forward, rmsnormBackward: ck_rmsnorm_backward,
        ropeForward: ck_rope_forward, ropeBackward: ck_rope_backward,
        attentionForwardTrain: ck_attention_forward_train, attentionBackward: ck_attention_backward,
        swigluForward: ck_swiglu_forward, swigluBackward: ck_swiglu_backward,
        addInplace: ck_add_inplace, axpy: ck_axpy, scale: ck_scale, mulInplace: ck_mul_inplace,
        xentForwardBackward: ck_xent_forward_backward, adamwStep: ck_adamw_step, sumsq: ck_sumsq,
        ropeCache: RopeCache(table: ck_rope_table, forward: ck_rope_forward_cached, backward: ck_rope_backward_cached,
                             tableFreq: ck_rope_table_freq),
        packed: PackedGEMM(size: ck_matmul_packed_size, pack: ck_matmul_pack, forward: ck_matmul_forward_packed),
        family: FamilyOps(gegluForward: ck_geglu_forward, gegluBackward: ck_geglu_backward,
                          attentionForwardTrainWindow: ck_attention_forward_train_window,
                          attentionBackwardWindow: ck_attention_backward_window))
}
