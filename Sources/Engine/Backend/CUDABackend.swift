// CUDABackend — libtunecuda.so (cuda/, built by `make -C cuda`) loaded with dlopen at run time, never
// linked. Loading checks, in order: the file loads, it exports tunecuda_abi_version() equal to
// `abiVersion` (= TUNECUDA_ABI_VERSION in cuda/tunecuda.h), it exports the lifecycle and memory
// functions, and tunecuda_init() finds a usable GPU. Each failure is one reason string, which the
// selector turns into the single "running on CPU" line.
#if canImport(Glibc)
import Glibc
#endif
import Foundation

public final class CUDABackend: Backend, @unchecked Sendable { // immutable after init; the C library is not re-entrant, callers serialize
    /// The ABI this build of tune speaks; must equal TUNECUDA_ABI_VERSION in cuda/tunecuda.h (a test checks).
    public static let abiVersion: Int32 = 2

    /// Where the library was loaded from.
    public let path: String
    public let device: String
    public var name: String { "cuda" }
    private let ops: Set<BackendOp>
    private let handle: UnsafeMutableRawPointer
    private let tableLock = NSLock()
    private var table: KernelTable?

    private typealias InitFn = @convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Int32
    private typealias InfoFn = @convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Void
    private typealias MallocFn = @convention(c) (Int) -> UnsafeMutableRawPointer?
    private typealias FreeFn = @convention(c) (UnsafeMutableRawPointer?) -> Void
    private typealias MemcpyFn = @convention(c) (UnsafeMutableRawPointer?, UnsafeRawPointer?, Int, Int32) -> Int32
    private typealias SyncFn = @convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Int32
    private typealias MatmulFn = @convention(c) (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeRawPointer?, Int32,
                                                 UnsafePointer<Float>?, Int64, Int64, Int64) -> Int32
    private let malloc: MallocFn, free: FreeFn, memcpy: MemcpyFn, sync: SyncFn
    private let matmul: MatmulFn?

    /// Candidate library paths, in order: `TUNE_CUDA_LIB` alone if set; else next to the executable,
    /// then `cuda/build/` of the source tree this tune was built from.
    public static func candidatePaths(environment env: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        if let p = env["TUNE_CUDA_LIB"], !p.isEmpty { return [p] }
        var paths: [String] = []
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        paths.append(exe.deletingLastPathComponent().appendingPathComponent("libtunecuda.so").path)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        paths.append(root.appendingPathComponent("cuda/build/libtunecuda.so").path)
        return paths
    }

    /// Loads the first candidate that exists (see `candidatePaths`). Returns the backend, or the one-line
    /// reason it is unavailable.
    public static func load(environment env: [String: String] = ProcessInfo.processInfo.environment) -> Result<CUDABackend, CUDAUnavailable> {
        let paths = candidatePaths(environment: env)
        let explicit = env["TUNE_CUDA_LIB"].map { !$0.isEmpty } ?? false
        guard let path = explicit ? paths.first : paths.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            return .failure(CUDAUnavailable("libtunecuda.so not found (looked in \(paths.joined(separator: ", ")); build it with scripts/setup-cuda && make -C cuda, or set TUNE_CUDA_LIB)"))
        }
        return load(path: path)
    }

    /// Loads the library at `path`, checks its ABI version and symbols, and initializes the device.
    public static func load(path: String) -> Result<CUDABackend, CUDAUnavailable> {
        guard let h = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            var why = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            if why.hasPrefix(path + ": ") { why.removeFirst(path.count + 2) } // glibc repeats the path
            return .failure(CUDAUnavailable("cannot load \(path): \(why)"))
        }
        // Handles are kept for the process's lifetime: CUDA libraries do not unload cleanly.
        func sym<T>(_ name: String, _: T.Type) -> T? {
            dlsym(h, name).map { unsafeBitCast($0, to: T.self) }
        }
        typealias VersionFn = @convention(c) () -> Int32
        guard let version = sym("tunecuda_abi_version", VersionFn.self) else {
            return .failure(CUDAUnavailable("\(path) is not a tune CUDA library (no tunecuda_abi_version)"))
        }
        let v = version()
        guard v == abiVersion else {
            return .failure(CUDAUnavailable("\(path) has ABI version \(v), this tune needs \(abiVersion) (rebuild it: make -C cuda)"))
        }
        let required = ["tunecuda_init", "tunecuda_device_info", "tcu_malloc", "tcu_free", "tcu_memcpy", "tcu_sync"]
        if let missing = required.first(where: { dlsym(h, $0) == nil }) {
            return .failure(CUDAUnavailable("\(path) lacks \(missing) (ABI version \(v) but incomplete; rebuild it: make -C cuda)"))
        }
        let initFn = sym("tunecuda_init", InitFn.self)!
        var buf = [CChar](repeating: 0, count: 512)
        let rc = buf.withUnsafeMutableBufferPointer { initFn($0.baseAddress, $0.count) }
        guard rc == 0 else {
            let why = cString(buf)
            return .failure(CUDAUnavailable(why.isEmpty ? "tunecuda_init failed with code \(rc)" : why))
        }
        let info = sym("tunecuda_device_info", InfoFn.self)!
        buf = [CChar](repeating: 0, count: 512)
        buf.withUnsafeMutableBufferPointer { info($0.baseAddress, $0.count) }
        let ops = Set(BackendOp.allCases.filter { dlsym(h, $0.cudaSymbol) != nil })
        return .success(CUDABackend(path: path, device: cString(buf), ops: ops, handle: h,
                                    malloc: sym("tcu_malloc", MallocFn.self)!, free: sym("tcu_free", FreeFn.self)!,
                                    memcpy: sym("tcu_memcpy", MemcpyFn.self)!, sync: sym("tcu_sync", SyncFn.self)!,
                                    matmul: sym(BackendOp.matmulForward.cudaSymbol, MatmulFn.self)))
    }

    private init(path: String, device: String, ops: Set<BackendOp>, handle: UnsafeMutableRawPointer, malloc: MallocFn, free: FreeFn, memcpy: MemcpyFn,
                 sync: SyncFn, matmul: MatmulFn?) {
        self.path = path
        self.device = device
        self.ops = ops
        self.handle = handle
        self.malloc = malloc
        self.free = free
        self.memcpy = memcpy
        self.sync = sync
        self.matmul = matmul
    }

    public func supports(_ op: BackendOp) -> Bool { ops.contains(op) }

    /// The training graph's table over this library (built once; throws naming a missing tcu_ symbol).
    public func kernelTable() throws -> KernelTable {
        try tableLock.withLock {
            if let table { return table }
            let t = try KernelTable.cuda(handle: handle, path: path)
            table = t
            return t
        }
    }

    public func matmulForward(inp: [Float], weight: [UInt8], wtype: Int32, bias: [Float]?, T: Int, K: Int, N: Int) throws -> [Float] {
        try BackendShapes.checkMatmul(inp: inp, weight: weight, wtype: wtype, bias: bias, T: T, K: K, N: N)
        guard let matmul else { throw EngineError(.unsupported, "\(path) has no \(BackendOp.matmulForward.cudaSymbol)") }
        let dx = try upload(inp), dw = try upload(weight), db = try bias.map(upload)
        defer { free(dx); free(dw); if let db { free(db) } }
        let dout = try deviceAlloc(T * N * 4)
        defer { free(dout) }
        let rc = matmul(dout.assumingMemoryBound(to: Float.self), UnsafePointer(dx.assumingMemoryBound(to: Float.self)), dw, wtype,
                        db.map { UnsafePointer($0.assumingMemoryBound(to: Float.self)) }, Int64(T), Int64(K), Int64(N))
        var out = [Float](repeating: 0, count: T * N)
        if rc == 0 { _ = out.withUnsafeMutableBytes { memcpy($0.baseAddress, dout, $0.count, 1) } }
        try check("matmul_forward")
        guard rc == 0 else { throw EngineError(.unsupported, "cuda matmul_forward: weight type \(wtype) with K=\(K) is not supported") }
        return out
    }

    // MARK: - memory

    private func deviceAlloc(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        guard let p = malloc(bytes) else { try check("tcu_malloc"); throw EngineError(.io, "cuda: cannot allocate \(bytes) bytes") }
        return p
    }

    private func upload<T>(_ a: [T]) throws -> UnsafeMutableRawPointer {
        let p = try deviceAlloc(max(1, a.count * MemoryLayout<T>.stride))
        let rc = a.withUnsafeBytes { memcpy(p, $0.baseAddress, $0.count, 0) }
        if rc != 0 { free(p); try check("upload"); throw EngineError(.io, "cuda: upload of \(a.count) elements failed") }
        return p
    }

    /// Throws the library's first recorded error since the last check, if any.
    private func check(_ what: String) throws {
        var buf = [CChar](repeating: 0, count: 512)
        let rc = buf.withUnsafeMutableBufferPointer { sync($0.baseAddress, $0.count) }
        if rc != 0 { throw EngineError(.internal, "cuda \(what): \(cString(buf))") }
    }
}

/// The NUL-terminated string in `buf` (C out-parameter) as a Swift String.
private func cString(_ buf: [CChar]) -> String {
    String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Why the CUDA backend is not in use: one line, e.g. "no CUDA-capable device".
public struct CUDAUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
