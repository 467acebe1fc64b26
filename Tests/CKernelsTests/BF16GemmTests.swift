// BF16GemmTests.swift — the bf16-product GEMMs (ck_matmul_forward_bf16, ck_matmul_backward_input_bf16)
// against their `_ref` oracles (same bf16 roundings, double accumulation) on odd shapes for every
// weight type, their documented distance from the f32 kernels, and thread-count invariance.
import CKernels
import Testing

@Suite("bf16-product GEMMs") struct BF16GemmTests {
    static let shapes: [(Int, Int, Int)] = [(1, 32, 5), (7, 96, 33), (33, 64, 7), (100, 160, 130), (13, 577, 45)]
    /// bf16 rounding of one operand: 2^-9 relative per product.
    static let bf16VsF32 = 8e-3

    @Test("forward and backward input vs _ref and vs f32, every weight type", arguments: weightTypes.map(\.name))
    func vsRef(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        let bs = Int(ck_type_block_size(type))
        var rng = RNG(0xbf + UInt64(type))
        for (T, K, N) in Self.shapes where K % bs == 0 {
            let x = rng.floats(T * K), dy = rng.floats(T * N), w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let bias: [Float]? = T % 2 == 1 ? rng.floats(N) : nil
            let initial: [Float]? = N % 2 == 1 ? rng.floats(T * K) : nil
            func fwd(_ f: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeRawPointer?, Int32, UnsafePointer<Float>?, Int64, Int64, Int64) -> Int32) -> [Float] {
                var out = [Float](repeating: .nan, count: T * N)
                let rc = w.withUnsafeBytes { wp in f(&out, x, wp.baseAddress, type, bias, Int64(T), Int64(K), Int64(N)) }
                #expect(rc == 0)
                return out
            }
            func bwd(_ f: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32) -> [Float] {
                var out = initial ?? [Float](repeating: .nan, count: T * K)
                let rc = w.withUnsafeBytes { wp in f(&out, dy, wp.baseAddress, type, Int64(T), Int64(K), Int64(N), initial == nil ? 0 : 1) }
                #expect(rc == 0)
                return out
            }
            let what = "\(typeName) T=\(T) K=\(K) N=\(N)"
            let f = fwd(ck_matmul_forward_bf16), fr = fwd(ck_matmul_forward_bf16_ref), f32 = fwd(ck_matmul_forward_ref)
            let scaleF = Double(f32.map { abs($0) }.max() ?? 1)
            if ck_bf16_products_available() != 0 {
                expectClose(f, fr, atol: 2e-6 * scaleF, "forward bf16 vs ref " + what)
            }
            expectClose(f, f32, atol: Self.bf16VsF32 * scaleF, "forward bf16 vs f32 " + what)
            let b = bwd(ck_matmul_backward_input_bf16), br = bwd(ck_matmul_backward_input_bf16_ref), b32 = bwd(ck_matmul_backward_input_ref)
            let scaleB = Double(b32.map { abs($0) }.max() ?? 1)
            if ck_bf16_products_available() != 0 {
                expectClose(b, br, atol: 2e-6 * scaleB, "backward input bf16 vs ref " + what)
            }
            expectClose(b, b32, atol: Self.bf16VsF32 * scaleB, "backward input bf16 vs f32 " + what)
            expectThreadInvariant("bf16 forward " + what) { fwd(ck_matmul_forward_bf16) }
            expectThreadInvariant("bf16 backward input " + what) { bwd(ck_matmul_backward_input_bf16) }
        }
    }
}
