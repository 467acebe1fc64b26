// CPUBackend — the CKernels module behind the Backend seam: always available, every op but the
// CUDA-only bf16 weight-gradient GEMM.
import CKernels

public struct CPUBackend: Backend {
    public init() {}
    public var name: String { "cpu" }
    public var device: String { "CPU kernels \(Kernels.active.rawValue), \(Kernels.threads) threads" }

    public func supports(_ op: BackendOp) -> Bool { op != .matmulBackwardWeightBF16 }

    public func kernelTable() throws -> KernelTable { .cpu }

    public func matmulForward(inp: [Float], weight: [UInt8], wtype: Int32, bias: [Float]?, T: Int, K: Int, N: Int) throws -> [Float] {
        try BackendShapes.checkMatmul(inp: inp, weight: weight, wtype: wtype, bias: bias, T: T, K: K, N: N)
        var out = [Float](repeating: 0, count: T * N)
        let rc = out.withUnsafeMutableBufferPointer { o in
            inp.withUnsafeBufferPointer { x in
                weight.withUnsafeBytes { w in
                    if let bias {
                        bias.withUnsafeBufferPointer { b in
                            ck_matmul_forward(o.baseAddress, x.baseAddress, w.baseAddress, wtype, b.baseAddress, Int64(T), Int64(K), Int64(N))
                        }
                    } else {
                        ck_matmul_forward(o.baseAddress, x.baseAddress, w.baseAddress, wtype, nil, Int64(T), Int64(K), Int64(N))
                    }
                }
            }
        }
        guard rc == 0 else { throw EngineError(.unsupported, "cpu matmul_forward: weight type \(wtype) with K=\(K) is not supported") }
        return out
    }
}

/// Argument checks shared by the backends' host-array entry points.
enum BackendShapes {
    static func checkMatmul(inp: [Float], weight: [UInt8], wtype: Int32, bias: [Float]?, T: Int, K: Int, N: Int) throws {
        guard T >= 0, K > 0, N > 0 else { throw EngineError(.invalidArgument, "matmul_forward: bad shape T=\(T) K=\(K) N=\(N)") }
        guard inp.count == T * K else { throw EngineError(.invalidArgument, "matmul_forward: inp has \(inp.count) floats, expected T·K = \(T * K)") }
        let rowBytes = Int(ck_type_row_bytes(wtype, Int64(K)))
        guard rowBytes > 0 else { throw EngineError(.unsupported, "matmul_forward: weight type \(wtype) with K=\(K) is not supported") }
        guard weight.count == N * rowBytes else {
            throw EngineError(.invalidArgument, "matmul_forward: weight has \(weight.count) bytes, expected N·row bytes = \(N * rowBytes)")
        }
        if let bias, bias.count != N { throw EngineError(.invalidArgument, "matmul_forward: bias has \(bias.count) floats, expected N = \(N)") }
    }
}
