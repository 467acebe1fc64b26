// BackendSelector — turns TUNE_BACKEND / --backend into a Backend, with at most one notice per
// process explaining a fallback to the CPU. Engine never prints: the notice is returned, the CLI
// writes it to stderr as "tune: <notice>".
import Foundation

/// What the caller will run, so the selector can refuse work that has no CUDA path yet.
public enum BackendWorkload: String, Sendable {
    /// The LoRA training graph (Engine/Train) through the backend's `KernelTable`.
    case training
    /// Single kernels (parity checks, kernel benchmarks): any backend that supports the op.
    case kernels
}

/// The chosen backend plus the fallback notice (nil if there is nothing to say or it was already said).
public struct BackendResolution: Sendable {
    public let backend: any Backend
    public let notice: String?
    /// What was asked for (`auto` lets the trainer fall back to the CPU for a run CUDA cannot do).
    public var request: BackendRequest = .auto
}

public final class BackendSelector: @unchecked Sendable { // state behind `lock`
    /// The process-wide selector (its notice is given once per process).
    public static let shared = BackendSelector()

    private let lock = NSLock()
    private var noticeGiven = false
    private let loadCUDA: @Sendable ([String: String]) -> Result<CUDABackend, CUDAUnavailable>
    private let hasNVIDIADriver: @Sendable () -> Bool

    /// - Parameters:
    ///   - loadCUDA: how to get the CUDA backend (default: `CUDABackend.load(environment:)`).
    ///   - hasNVIDIADriver: whether this machine has an NVIDIA driver (default: `NVIDIADriver.isPresent()`);
    ///     without one, auto's fall back to the CPU is the expected case and says nothing.
    public init(loadCUDA: @escaping @Sendable ([String: String]) -> Result<CUDABackend, CUDAUnavailable> = { CUDABackend.load(environment: $0) },
                hasNVIDIADriver: @escaping @Sendable () -> Bool = { NVIDIADriver.isPresent() }) {
        self.loadCUDA = loadCUDA
        self.hasNVIDIADriver = hasNVIDIADriver
    }

    /// Resolves `request` (default: `TUNE_BACKEND`, else auto) for `workload`.
    /// - auto: CUDA if it loads, else CPU — with one notice saying why only where CUDA was to be expected
    ///   (the machine has an NVIDIA driver, or `TUNE_CUDA_LIB` names a library); on a machine without a
    ///   driver the CPU is picked silently. (A training run CUDA cannot do — e.g. NF4 weights — falls back
    ///   in `LoRATrainer`, which gives its own one-line notice.)
    /// - cpu: CPU, silently. - cuda: CUDA, or an error carrying the reason.
    public func resolve(_ request: BackendRequest? = nil, for workload: BackendWorkload,
                        environment env: [String: String] = ProcessInfo.processInfo.environment) throws -> BackendResolution {
        let req = try request ?? BackendRequest.fromEnvironment(env) ?? .auto
        if req == .cpu { return BackendResolution(backend: CPUBackend(), notice: nil, request: .cpu) }
        switch loadCUDA(env) {
        case .failure(let why):
            if req == .cuda {
                throw EngineError(.unsupported, "backend cuda requested but the CUDA backend is unavailable (\(why.reason))")
            }
            let expected = !(env["TUNE_CUDA_LIB"] ?? "").isEmpty || hasNVIDIADriver()
            guard expected else { return BackendResolution(backend: CPUBackend(), notice: nil, request: .auto) }
            return cpu(notice: "CUDA backend unavailable (\(why.reason)); running on CPU")
        case .success(let cuda):
            return BackendResolution(backend: cuda, notice: nil, request: req)
        }
    }

    private func cpu(notice: String) -> BackendResolution {
        lock.lock()
        defer { lock.unlock() }
        let first = !noticeGiven
        noticeGiven = true
        return BackendResolution(backend: CPUBackend(), notice: first ? notice : nil, request: .auto)
    }
}

/// Whether this machine has an NVIDIA driver, i.e. whether a GPU run was to be expected.
public enum NVIDIADriver {
    /// Where the driver shows itself: the kernel module's /proc entry, or the user-space libcuda.so.1
    /// (the driver's library, not the toolkit's link stub) in the usual library directories (WSL included).
    public static let probes = [
        "/proc/driver/nvidia/version",
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
        "/usr/lib64/libcuda.so.1", "/usr/lib/libcuda.so.1", "/usr/local/nvidia/lib64/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1",
    ]

    public static func isPresent(probes: [String] = probes) -> Bool {
        probes.contains { FileManager.default.fileExists(atPath: $0) }
    }
}
