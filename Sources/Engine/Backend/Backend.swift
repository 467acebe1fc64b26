// Backend — the one seam between the model code and the kernels that run it. CPU (CKernels) is
// always there; CUDA (libtunecuda.so, dlopen'ed) is optional and says why when it is not used.
//
//     let r = try BackendSelector.shared.resolve(for: .training)   // TUNE_BACKEND=cpu|cuda|auto
//     if let line = r.notice { print("tune: \(line)", to: &stderr) } // at most once per process
//     r.backend.supports(.matmulForward)                            // ask before dispatching an op

/// One kernel entry point of the C ABI. The raw value is the op's name shared by both modules:
/// `ck_<raw>` in ckernels.h (CPU) and `tcu_<raw>` in cuda/tunecuda.h (CUDA), same signature.
public enum BackendOp: String, CaseIterable, Sendable {
    case matmulForward = "matmul_forward"
    case matmulBackwardInput = "matmul_backward_input"
    case matmulBackwardWeight = "matmul_backward_weight"
    case matmulForwardBF16 = "matmul_forward_bf16"
    case matmulBackwardInputBF16 = "matmul_backward_input_bf16"
    case matmulBackwardWeightBF16 = "matmul_backward_weight_bf16" // CUDA only (CPU's dW GEMM is f32)
    case embeddingForward = "embedding_forward"
    case rmsnormForward = "rmsnorm_forward"
    case rmsnormBackward = "rmsnorm_backward"
    case ropeForward = "rope_forward"
    case ropeBackward = "rope_backward"
    case attentionForward = "attention_forward"
    case attentionForwardTrain = "attention_forward_train"
    case attentionBackward = "attention_backward"
    case swigluForward = "swiglu_forward"
    case swigluBackward = "swiglu_backward"
    case addInplace = "add_inplace"
    case axpy = "axpy"
    case scale = "scale"
    case mulInplace = "mul_inplace"             // CUDA since ABI v2 (LoRA dropout)
    case logSoftmaxForward = "log_softmax_forward" // CPU only
    case xentForwardBackward = "xent_forward_backward"
    case adamwStep = "adamw_step"
    case sumsq = "sumsq"

    /// The CPU kernel's C symbol, e.g. `ck_matmul_forward`.
    public var cpuSymbol: String { "ck_" + rawValue }
    /// The CUDA launcher's C symbol, e.g. `tcu_matmul_forward`.
    public var cudaSymbol: String { "tcu_" + rawValue }
}

/// A place kernels run. Implementations: `CPUBackend` (always available), `CUDABackend`.
public protocol Backend: Sendable {
    /// "cpu" or "cuda".
    var name: String { get }
    /// One line describing the hardware ("x86-64, avx512, 16 threads"; "NVIDIA H100 …, sm_90").
    var device: String { get }
    /// Whether this backend implements `op`.
    func supports(_ op: BackendOp) -> Bool
    /// out [T, N] = inp [T, K] · Wᵀ (+ bias [N]), W [N, K] rows of ggml type `wtype` (bytes as in GGUF),
    /// on host arrays (the CUDA backend uploads, runs, downloads): the op every backend is tested on.
    func matmulForward(inp: [Float], weight: [UInt8], wtype: Int32, bias: [Float]?, T: Int, K: Int, N: Int) throws -> [Float]
    /// The functions the training graph calls (KernelTable.swift); throws when this backend cannot
    /// offer every op the graph needs (the reason names what is missing).
    func kernelTable() throws -> KernelTable
}

/// What the user asked for: `TUNE_BACKEND` or `--backend`.
public enum BackendRequest: String, CaseIterable, Sendable {
    /// CUDA when it loads and initializes, else CPU with a one-line notice saying why.
    case auto
    /// CPU only; CUDA is never probed.
    case cpu
    /// CUDA or an error with the reason.
    case cuda

    /// Parses `TUNE_BACKEND` (nil when unset or empty).
    public static func fromEnvironment(_ env: [String: String]) throws -> BackendRequest? {
        guard let raw = env["TUNE_BACKEND"], !raw.isEmpty else { return nil }
        guard let r = BackendRequest(rawValue: raw.lowercased()) else {
            throw EngineError(.invalidArgument, "TUNE_BACKEND: expected cpu, cuda or auto, got '\(raw)'")
        }
        return r
    }
}
