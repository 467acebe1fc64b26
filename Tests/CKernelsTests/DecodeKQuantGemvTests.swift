// DecodeKQuantGemvTests.swift — both decode GEMV paths for the weight types a Q4_K_M / Q5_K_M
// GGUF adds to Q4_0/Q4_1/Q8_0: Q5_0 and the K-quants Q4_K, Q5_K, Q6_K.
//  * exact fused path (gemv_q.c, via ck_matmul_forward, T = 1..8): within the rounding tolerance
//    of dequantize + a double dot (matmulOracle) and of ck_matmul_forward_ref; for T = 1 bit for bit
//    equal to dequantize (ck_dequantize_row_ref) then the documented lane-order FMA dot of the
//    active ISA; 1, 2 and 3 threads identical; dispatch takes it (not the tile path).
//  * int8 path (gemv_q8.c): every SIMD kernel bit-identical to the scalar reference on odd shapes,
//    bias on/off, 1 and 2 threads; within 1e-2 relative L2 of the exact path.
// Runs under the active ISA: `TUNE_KERNELS=avx512|avx2|ref swift test --filter DecodeKQuantGemv`.
import CKernels
import Testing

private let decodeTypes: [(name: String, id: Int32)] = [
    ("q5_0", Int32(CK_TYPE_Q5_0.rawValue)), ("q4_K", Int32(CK_TYPE_Q4_K.rawValue)),
    ("q5_K", Int32(CK_TYPE_Q5_K.rawValue)), ("q6_K", Int32(CK_TYPE_Q6_K.rawValue)),
]
private let isa = ck_isa_active()
private let isaName = String(cString: ck_isa_name(isa))

/// (K, N): 1, 3, 9 (Q5_0: 1, 3, 28 = Qwen2.5-0.5B's 896) blocks; odd N around the 64-row task.
private func decodeShapes(_ type: Int32) -> [(Int, Int)] {
    ck_type_block_size(type) == 256 ? [(256, 7), (768, 65), (2304, 33)] : [(32, 7), (96, 65), (896, 33)]
}

private func typeID(_ name: String) -> Int32 { decodeTypes.first { $0.name == name }!.id }

/// ck_hsum8's order.
private func hsum8(_ v: [Float]) -> Float {
    let s = (0..<4).map { v[$0] + v[$0 + 4] }
    return (s[0] + s[2]) + (s[1] + s[3])
}

/// The exact fused T = 1 result from dequantized weights, in the kernels' lane order: AVX2 keeps
/// four 8-lane FMA chains (chain i takes elements 8i..8i+7 of every 32-element unit), AVX-512
/// four 16-lane chains (even / odd unit × first / second 16); chains summed pairwise, then the
/// fixed horizontal sum.
private func laneOrderDot(_ w: ArraySlice<Float>, _ x: [Float], avx512: Bool) -> Float {
    let K = x.count, base = w.startIndex
    let width = avx512 ? 16 : 8
    var acc = [[Float]](repeating: [Float](repeating: 0, count: width), count: 4)
    for u in 0..<(K / 32) {
        for j in 0..<32 {
            let chain = avx512 ? (u % 2) * 2 + j / 16 : j / 8
            let lane = j % width, k = 32 * u + j
            acc[chain][lane] = acc[chain][lane].addingProduct(w[base + k], x[k])
        }
    }
    let s = (0..<width).map { (acc[0][$0] + acc[1][$0]) + (acc[2][$0] + acc[3][$0]) }
    return avx512 ? hsum8((0..<8).map { s[$0] + s[$0 + 8] }) : hsum8(s)
}

private func gemvQ8(kernel: Int32, x: [Float], w: [UInt8], type: Int32, bias: [Float]?, K: Int, N: Int) -> (out: [Float], rc: Int32) {
    var out = [Float](repeating: .nan, count: N)
    let rc = w.withUnsafeBytes { wp in
        out.withUnsafeMutableBufferPointer { op in
            if let bias { return ck_gemv_q8_with(kernel, op.baseAddress, x, wp.baseAddress, type, bias, Int64(K), Int64(N)) }
            return ck_gemv_q8_with(kernel, op.baseAddress, x, wp.baseAddress, type, nil, Int64(K), Int64(N))
        }
    }
    return (out, rc)
}

@Suite("decode GEMV for Q5_0 and K-quants (exact fused and int8)") struct DecodeKQuantGemvTests {
    @Test("exact fused: T = 1..8 vs oracle and ref, T = 1 lane-order bit-exact", arguments: decodeTypes.map(\.name))
    func exact(typeName: String) {
        let type = typeID(typeName)
        var rng = RNG(0xd3c0 + UInt64(type))
        for (K, N) in decodeShapes(type) {
            let w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let wf = dequantized(w, type: type, N: N, K: K)
            for T in [1, 2, 3, 5, 8] {
                let x = rng.floats(T * K)
                let bias: [Float]? = T == 2 ? rng.floats(N) : nil
                let what = "\(typeName) T=\(T) K=\(K) N=\(N) [\(isaName)]"
                if isa != Int32(CK_ISA_REF.rawValue) {
                    #expect(ck_matmul_forward_is_tiled(type, Int64(T), Int64(K), Int64(N)) == 0, "fused path taken: \(what)")
                }
                let fast = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
                let ref = matmul(ref: true, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
                #expect(fast.rc == 0 && ref.rc == 0)
                let want = matmulOracle(x: x, wf: wf, bias: bias, T: T, K: K, N: N)
                expectClose(fast.out, want.out, tol: want.tol, "fast vs oracle " + what)
                expectClose(fast.out, ref.out, tol: want.tol, "fast vs ref " + what)
                if T == 1 && isa != Int32(CK_ISA_REF.rawValue) {
                    let avx512 = isa == Int32(CK_ISA_AVX512.rawValue)
                    let lane = (0..<N).map { laneOrderDot(wf[($0 * K)..<($0 * K + K)], x, avx512: avx512) }
                    expectIdentical(fast.out, lane, "dequantize-then-dot in lane order " + what)
                }
            }
        }
    }

    @Test("exact fused: 1, 2 and 3 threads bit-identical")
    func exactThreads() {
        var rng = RNG(0x7b3)
        let saved = ck_get_threads()
        defer { ck_set_threads(saved) }
        for (_, type) in decodeTypes {
            let K = Int(ck_type_block_size(type)) * 9, N = 131
            let w = randomWeights(type: type, N: N, K: K, rng: &rng)
            for T in [1, 3] {
                let x = rng.floats(T * K)
                var outs: [[Float]] = []
                for n in [1, 2, 3] {
                    ck_set_threads(Int32(n))
                    outs.append(matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N).out)
                }
                expectIdentical(outs[0], outs[1], "T=\(T) 1 vs 2 threads")
                expectIdentical(outs[0], outs[2], "T=\(T) 1 vs 3 threads")
            }
        }
    }

    @Test("int8: SIMD kernels == ref bit for bit (shapes, bias on/off, 1 and 2 threads)", arguments: decodeTypes.map(\.name))
    func int8EqualsRef(typeName: String) {
        let type = typeID(typeName)
        var rng = RNG(0x8e17 + UInt64(type))
        let saved = ck_get_threads()
        defer { ck_set_threads(saved) }
        let refKernel = Int32(CK_Q8_KERNEL_REF.rawValue)
        let kernels = [Int32(CK_Q8_KERNEL_AVX2.rawValue), Int32(CK_Q8_KERNEL_VNNI.rawValue)].filter { ck_gemv_q8_kernel_available($0) == 1 }
        for (K, N) in decodeShapes(type) {
            #expect(ck_gemv_q8_supported(type, Int64(K)) == 1)
            for withBias in [false, true] {
                var x = rng.floats(K, -2, 2)
                x[K / 3] = 9
                let w = randomWeights(type: type, N: N, K: K, rng: &rng)
                let bias: [Float]? = withBias ? rng.floats(N) : nil
                let what = "\(typeName) K=\(K) N=\(N) bias=\(withBias)"
                ck_set_threads(1)
                let ref = gemvQ8(kernel: refKernel, x: x, w: w, type: type, bias: bias, K: K, N: N)
                #expect(ref.rc == 0 && ref.out.allSatisfy(\.isFinite), "ref \(what)")
                for threads in [1, 2] {
                    ck_set_threads(Int32(threads))
                    expectIdentical(gemvQ8(kernel: refKernel, x: x, w: w, type: type, bias: bias, K: K, N: N).out, ref.out,
                                    "ref, \(threads) threads vs 1: " + what)
                    for k in kernels {
                        let got = gemvQ8(kernel: k, x: x, w: w, type: type, bias: bias, K: K, N: N)
                        #expect(got.rc == 0)
                        expectIdentical(got.out, ref.out, "\(String(cString: ck_gemv_q8_kernel_name(k))), \(threads) threads: " + what)
                    }
                }
            }
        }
    }

    @Test("int8 within 1e-2 relative L2 of the exact path; routed by ck_matmul_forward under the switch",
          arguments: decodeTypes.map(\.name))
    func int8CloseToExact(typeName: String) {
        // The activation rounding (|x − d·q| <= max|x_block|/254) moves each output by ~0.3-0.5% of
        // its size (GemvInt8Tests.closeToExact has the estimate); a wrong scale, min, offset or
        // sub-block order is off by O(1).
        let type = typeID(typeName)
        var rng = RNG(0x7e58 + UInt64(type))
        for (K, N) in decodeShapes(type) where K >= 96 {
            let x = rng.floats(K)
            let w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let fast = gemvQ8(kernel: Int32(ck_gemv_q8_kernel()), x: x, w: w, type: type, bias: nil, K: K, N: N)
            let exact = matmul(ref: true, x: x, w: w, type: type, bias: nil, T: 1, K: K, N: N)
            #expect(fast.rc == 0 && exact.rc == 0)
            var num = 0.0, den = 0.0
            for n in 0..<N {
                num += (Double(fast.out[n]) - Double(exact.out[n])) * (Double(fast.out[n]) - Double(exact.out[n]))
                den += Double(exact.out[n]) * Double(exact.out[n])
            }
            let rel = (num / den).squareRoot()
            #expect(rel <= 1e-2 && rel > 0, "\(typeName) K=\(K) N=\(N): relative L2 \(rel)")
            ck_set_fast_decode(1)
            let routed = matmul(ref: false, x: x, w: w, type: type, bias: nil, T: 1, K: K, N: N)
            ck_set_fast_decode(0)
            expectIdentical(routed.out, fast.out, "fast decode on: ck_matmul_forward T = 1 is ck_gemv_q8 (\(typeName) K=\(K))")
        }
    }

    @Test("support predicates: K-quants need K % 256 == 0")
    func predicates() {
        #expect(ck_gemv_q8_supported(typeID("q5_0"), 96) == 1)
        #expect(ck_gemv_q8_supported(typeID("q5_0"), 80) == 0)
        for name in ["q4_K", "q5_K", "q6_K"] {
            #expect(ck_gemv_q8_supported(typeID(name), 512) == 1)
            #expect(ck_gemv_q8_supported(typeID(name), 896) == 0)
        }
        #expect(ck_gemv_q8_supported(Int32(CK_TYPE_Q3_K.rawValue), 256) == 0)
        #expect(ck_gemv_q8_supported(Int32(CK_TYPE_Q5_1.rawValue), 64) == 0)
    }
}
