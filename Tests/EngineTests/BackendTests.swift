// BackendTests — the Backend seam without a GPU: TUNE_BACKEND parsing, the selector's one-line notice,
// dlopen failures (missing file, wrong ABI version, missing symbols, init failure) against tiny fake
// libraries built here with `cc -shared`, a fake "device" whose memory is host memory so the CUDA
// backend's upload → op → download path runs for real, and the ABI constant vs cuda/tunecuda.h.
// With a GPU and a built cuda/build/libtunecuda.so, the same matmul runs on CPU and CUDA and is compared.
import CKernels
import Engine
import Foundation
import Testing

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
private let cc: String? = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
private let realLib = root.appendingPathComponent("cuda/build/libtunecuda.so").path

/// Builds a shared library from C source in a fresh temp dir; returns its path.
private func buildFake(_ name: String, _ source: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-fakecuda-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let c = dir.appendingPathComponent("\(name).c"), so = dir.appendingPathComponent("lib\(name).so")
    try source.write(to: c, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: cc!)
    p.arguments = ["-shared", "-fPIC", "-O1", "-o", so.path, c.path]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw EngineError(.internal, "cc failed for \(name)") }
    return so.path
}

/// A fake libtunecuda: the lifecycle/memory functions over host memory and a naive f32 matmul_forward.
private let abi = Int(CUDABackend.abiVersion)

private func fakeSource(abi: Int, initResult: Int = 0, why: String = "", omit: String = "") -> String {
    var s = """
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <stdint.h>
    int tunecuda_abi_version(void) { return \(abi); }
    int tunecuda_init(char *why, size_t n) { snprintf(why, n, "%s", "\(why)"); return \(initResult); }
    void tunecuda_device_info(char *b, size_t n) { snprintf(b, n, "Fake GPU (host memory)"); }
    void *tcu_malloc(size_t b) { return malloc(b ? b : 1); }
    void tcu_free(void *p) { free(p); }
    int tcu_memcpy(void *d, const void *s, size_t b, int kind) { memcpy(d, s, b); return 0; }
    int tcu_matmul_forward(float *out, const float *x, const void *w, int wt, const float *bias, int64_t T, int64_t K, int64_t N) {
        if (wt != 0) return -1;
        const float *W = w;
        for (int64_t t = 0; t < T; t++) for (int64_t n = 0; n < N; n++) {
            float s = bias ? bias[n] : 0; for (int64_t k = 0; k < K; k++) s += x[t*K+k] * W[n*K+k]; out[t*N+n] = s; }
        return 0;
    }
    """
    if omit != "tcu_sync" { s += "\nint tcu_sync(char *why, size_t n) { if (why && n) why[0] = 0; return 0; }\n" }
    return s
}

private func reason<T>(_ r: Result<T, CUDAUnavailable>) -> String? {
    if case .failure(let e) = r { return e.reason }
    return nil
}

private func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in s = s &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: s >> 11) % 2000) / 1000 - 1 }
}

private func nmse(_ a: [Float], _ b: [Float]) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
    return den > 0 ? num / den : num
}

@Suite struct BackendTests {
    @Test func requestParsesTuneBackend() throws {
        #expect(try BackendRequest.fromEnvironment([:]) == nil)
        #expect(try BackendRequest.fromEnvironment(["TUNE_BACKEND": "CUDA"]) == .cuda)
        #expect(throws: EngineError.self) { try BackendRequest.fromEnvironment(["TUNE_BACKEND": "gpu"]) }
        do { _ = try BackendRequest.fromEnvironment(["TUNE_BACKEND": "gpu"]) } catch let e as EngineError {
            #expect(e.message == "TUNE_BACKEND: expected cpu, cuda or auto, got 'gpu'")
        }
    }

    @Test func cpuSupportsEveryCPUOp() {
        let cpu = CPUBackend()
        #expect(cpu.name == "cpu")
        for op in BackendOp.allCases { #expect(cpu.supports(op) == (op != .matmulBackwardWeightBF16), "\(op)") }
    }

    @Test func autoFallsBackWithOneNoticePerSelector() throws {
        // A machine with an NVIDIA driver, where CUDA was to be expected: the fall back says why, once.
        let sel = BackendSelector(loadCUDA: { _ in .failure(CUDAUnavailable("no CUDA-capable device")) }, hasNVIDIADriver: { true })
        let first = try sel.resolve(.auto, for: .training, environment: [:])
        #expect(first.backend.name == "cpu")
        #expect(first.notice == "CUDA backend unavailable (no CUDA-capable device); running on CPU")
        let second = try sel.resolve(nil, for: .kernels, environment: [:])
        #expect(second.backend.name == "cpu")
        #expect(second.notice == nil, "the notice is given once per process")
    }

    @Test func autoWithoutADriverIsSilentUnlessALibraryIsNamed() throws {
        let sel = BackendSelector(loadCUDA: { _ in .failure(CUDAUnavailable("libtunecuda.so not found")) }, hasNVIDIADriver: { false })
        let r = try sel.resolve(nil, for: .training, environment: ["TUNE_BACKEND": "auto"])
        #expect(r.backend.name == "cpu" && r.notice == nil, "no driver: the CPU is the expected backend, nothing to say")
        // Naming a library (TUNE_CUDA_LIB) asks for CUDA: its failure is worth the line even without a driver.
        let named = try sel.resolve(nil, for: .training, environment: ["TUNE_CUDA_LIB": "/x/libtunecuda.so"])
        #expect(named.backend.name == "cpu" && named.notice == "CUDA backend unavailable (libtunecuda.so not found); running on CPU")
        #expect(throws: EngineError.self) { try sel.resolve(.cuda, for: .training, environment: [:]) }
        #expect(NVIDIADriver.isPresent(probes: ["/nonexistent/nvidia"]) == false)
        #expect(NVIDIADriver.isPresent(probes: ["/nonexistent/nvidia", "/proc/self/status"]) == true)
    }

    @Test func cpuRequestNeverProbesCUDA() throws {
        let sel = BackendSelector { _ in Issue.record("CUDA was probed"); return .failure(CUDAUnavailable("x")) }
        let r = try sel.resolve(nil, for: .training, environment: ["TUNE_BACKEND": "cpu"])
        #expect(r.backend.name == "cpu" && r.notice == nil)
    }

    @Test func cudaRequestFailsWithTheReason() {
        let sel = BackendSelector { _ in .failure(CUDAUnavailable("CUDA driver too old (driver supports CUDA 12.2, this library needs 13.0)")) }
        do {
            _ = try sel.resolve(.cuda, for: .kernels, environment: [:])
            Issue.record("expected an error")
        } catch let e as EngineError {
            #expect(e.message == "backend cuda requested but the CUDA backend is unavailable (CUDA driver too old (driver supports CUDA 12.2, this library needs 13.0))")
        } catch { Issue.record("\(error)") }
    }

    @Test func missingLibraryIsOneReason() {
        let env = ["TUNE_CUDA_LIB": "/nonexistent/libtunecuda.so"]
        #expect(CUDABackend.candidatePaths(environment: env) == ["/nonexistent/libtunecuda.so"])
        let why = reason(CUDABackend.load(environment: env)) ?? ""
        #expect(why.hasPrefix("cannot load /nonexistent/libtunecuda.so: "), "\(why)")
        #expect(!why.contains("\n"))
        #expect(CUDABackend.candidatePaths(environment: [:]).last == realLib)
    }

    @Test func abiVersionMatchesTheHeader() throws {
        let header = try String(contentsOf: root.appendingPathComponent("cuda/tunecuda.h"), encoding: .utf8)
        let line = header.split(separator: "\n").first { $0.hasPrefix("#define TUNECUDA_ABI_VERSION ") }
        #expect(line.map { Int32($0.split(separator: " ").last!) } == CUDABackend.abiVersion)
        for op in BackendOp.allCases where op != .logSoftmaxForward {
            #expect(header.contains(" \(op.cudaSymbol)("), "cuda/tunecuda.h does not declare \(op.cudaSymbol)")
        }
        for sym in KernelTable.cudaSymbols { #expect(header.contains("\(sym)("), "cuda/tunecuda.h does not declare \(sym)") }
    }

    @Test(.enabled(if: cc != nil, "no C compiler (cc/gcc/clang) to build the fake libraries")) func wrongABIIsRefused() throws {
        let path = try buildFake("wrongabi", fakeSource(abi: 999))
        #expect(reason(CUDABackend.load(path: path)) == "\(path) has ABI version 999, this tune needs \(abi) (rebuild it: make -C cuda)")
        let noVersion = try buildFake("notcuda", "int something(void) { return 0; }")
        #expect(reason(CUDABackend.load(path: noVersion)) == "\(noVersion) is not a tune CUDA library (no tunecuda_abi_version)")
        let partial = try buildFake("partial", fakeSource(abi: abi, omit: "tcu_sync"))
        #expect(reason(CUDABackend.load(path: partial))?.hasPrefix("\(partial) lacks tcu_sync") == true)
    }

    @Test(.enabled(if: cc != nil, "no C compiler (cc/gcc/clang) to build the fake libraries")) func initFailureReasonReachesTheNotice() throws {
        let path = try buildFake("nodevice", fakeSource(abi: abi, initResult: 2, why: "no CUDA-capable device"))
        #expect(reason(CUDABackend.load(path: path)) == "no CUDA-capable device")
        let sel = BackendSelector { CUDABackend.load(environment: $0) }
        let r = try sel.resolve(nil, for: .training, environment: ["TUNE_CUDA_LIB": path])
        #expect(r.backend.name == "cpu")
        #expect(r.notice == "CUDA backend unavailable (no CUDA-capable device); running on CPU")
    }

    @Test(.enabled(if: cc != nil, "no C compiler (cc/gcc/clang) to build the fake libraries")) func loadedBackendRunsOpsAndTrainingNeedsTheWholeTable() throws {
        let path = try buildFake("fakegpu", fakeSource(abi: abi))
        let cuda = try CUDABackend.load(path: path).get()
        #expect(cuda.device == "Fake GPU (host memory)")
        #expect(cuda.supports(.matmulForward) && !cuda.supports(.rmsnormForward))
        // upload → tcu_matmul_forward → download, compared with the CPU kernel
        let (T, K, N) = (5, 32, 7)
        let x = randomFloats(T * K, seed: 1), w = randomFloats(N * K, seed: 2), b = randomFloats(N, seed: 3)
        let wBytes = w.withUnsafeBytes { Array($0) }
        let got = try cuda.matmulForward(inp: x, weight: wBytes, wtype: 0, bias: b, T: T, K: K, N: N)
        let want = try CPUBackend().matmulForward(inp: x, weight: wBytes, wtype: 0, bias: b, T: T, K: K, N: N)
        #expect(nmse(got, want) < 1e-10)
        #expect(throws: EngineError.self) { try cuda.matmulForward(inp: x, weight: [1, 2], wtype: 0, bias: nil, T: T, K: K, N: N) }

        let sel = BackendSelector { _ in .success(cuda) }
        #expect(try sel.resolve(.auto, for: .kernels, environment: [:]).backend.name == "cuda")
        let train = try sel.resolve(.cuda, for: .training, environment: [:])
        #expect(train.backend.name == "cuda" && train.notice == nil && train.request == .cuda)
        // The fake library has only matmul_forward: the training graph's table is refused, naming the gap.
        do {
            _ = try train.backend.kernelTable()
            Issue.record("expected an error")
        } catch let e as EngineError {
            #expect(e.message == "not supported on CUDA yet: \(path) lacks tcu_memset, which the training graph needs (rebuild it: make -C cuda)")
        }
    }

    /// The real library (built by `make -C cuda`): it must pass the ABI and symbol checks; without a GPU
    /// it stops at init with a reason, with one it must match the CPU GEMM (f32 and fused Q4_1).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: realLib), "cuda/build/libtunecuda.so not built (scripts/setup-cuda && make -C cuda)"))
    func realLibraryLoadsOrSaysWhy() throws {
        switch CUDABackend.load(path: realLib) {
        case .failure(let why):
            #expect(!why.reason.contains("ABI") && !why.reason.contains("lacks") && !why.reason.hasPrefix("cannot load"), "\(why)")
            #expect(!why.reason.isEmpty && !why.reason.contains("\n"))
        case .success(let cuda):
            for op in BackendOp.allCases where op != .logSoftmaxForward { #expect(cuda.supports(op), "\(op)") }
            _ = try cuda.kernelTable() // every symbol the training graph needs
            let (T, K, N) = (77, 128, 130)
            let x = randomFloats(T * K, seed: 4), w = randomFloats(N * K, seed: 5)
            for type in [Int32(0), 3] { // f32, q4_1
                var wq = [UInt8](repeating: 0, count: Int(ck_type_row_bytes(type, Int64(K))) * N)
                let rb = Int(ck_type_row_bytes(type, Int64(K)))
                for n in 0..<N {
                    w.withUnsafeBufferPointer { src in
                        wq.withUnsafeMutableBytes { dst in _ = ck_quantize_row(type, src.baseAddress! + n * K, dst.baseAddress! + n * rb, Int64(K)) }
                    }
                }
                let got = try cuda.matmulForward(inp: x, weight: wq, wtype: type, bias: nil, T: T, K: K, N: N)
                let want = try CPUBackend().matmulForward(inp: x, weight: wq, wtype: type, bias: nil, T: T, K: K, N: N)
                #expect(nmse(got, want) < 1e-9, "type \(type)")
            }
        }
    }
}
