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

    /// Packed bf16 panels give ck_matmul_forward_bf16's bits (same panels, same micro-kernel); on the fast
    /// path ck_matmul_forward routes tile-stage shapes there exactly when ck_fast_gemm_bf16 says so, and
    /// leaves the fused small-T rows exact; with the switch off nothing changes.
    @Test("packed bf16 panels and the fast path's routing", arguments: weightTypes.map(\.name))
    func packedAndFastRouting(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        let bs = Int(ck_type_block_size(type))
        var rng = RNG(0x5eed + UInt64(type))
        for (T, K, N) in Self.shapes + [(16, 256, 70), (3, 256, 40)] where K % bs == 0 {
            let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let bias: [Float]? = N % 2 == 0 ? rng.floats(N) : nil
            let what = "\(typeName) T=\(T) K=\(K) N=\(N)"
            func run(fast: Bool, _ f: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeRawPointer?, Int32, UnsafePointer<Float>?, Int64, Int64, Int64) -> Int32) -> [Float] {
                var out = [Float](repeating: .nan, count: T * N)
                ck_set_fast_decode(fast ? 1 : 0)
                defer { ck_set_fast_decode(0) }
                let rc = w.withUnsafeBytes { wp in f(&out, x, wp.baseAddress, type, bias, Int64(T), Int64(K), Int64(N)) }
                #expect(rc == 0, "\(what)")
                return out
            }
            let exact = run(fast: false, ck_matmul_forward), bf16 = run(fast: false, ck_matmul_forward_bf16)
            var packed = [UInt32](repeating: 0xffff_ffff, count: Int(ck_matmul_packed_bf16_size(Int64(K), Int64(N))))
            let prc = w.withUnsafeBytes { ck_matmul_pack_bf16(&packed, $0.baseAddress, type, Int64(K), Int64(N)) }
            if ck_bf16_products_available() != 0 {
                #expect(prc == 0, "\(what)")
                var out = [Float](repeating: .nan, count: T * N)
                #expect(ck_matmul_forward_packed_bf16(&out, x, packed, bias, Int64(T), Int64(K), Int64(N)) == 0)
                #expect(out == bf16, "packed bf16 vs per-call bf16 \(what)")
            } else {
                #expect(prc == -1, "no bf16 products on this CPU: packing must refuse (\(what))")
            }
            ck_set_fast_decode(1)
            let tiled = ck_matmul_forward_is_tiled(type, Int64(T), Int64(K), Int64(N)), viaBF16 = ck_matmul_forward_is_bf16(type, Int64(T), Int64(K), Int64(N))
            ck_set_fast_decode(0)
            #expect(tiled + viaBF16 <= 1, "\(what): one path at a time")
            #expect(ck_matmul_forward_is_bf16(type, Int64(T), Int64(K), Int64(N)) == 0, "\(what): bf16 only on the fast path")
            let fast = run(fast: true, ck_matmul_forward)
            if viaBF16 == 1 {
                #expect(ck_fast_gemm_bf16() != 0)
                #expect(fast == bf16, "fast path takes the bf16 GEMM \(what)")
            } else if T > 1 {
                #expect(fast == exact, "fast path stays exact where it does not take bf16 \(what)")
            }
            #expect(run(fast: false, ck_matmul_forward) == exact, "switch off again \(what)")
        }
    }
}
