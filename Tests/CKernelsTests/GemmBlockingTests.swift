// GemmBlockingTests.swift — the GEMM blockings added for issue [2/8]'s kernel targets, each
// against its `_ref` oracle under the active ISA (run with TUNE_KERNELS=avx512|avx2 to cover
// both): dX with large N (dY blocks packed in register-tile rows, up to 576 columns per task),
// dW with small N (LoRA's dA: one register-tile row per column stripe, inp read in place), and
// the forward's packed [K][32] panels, now also under AVX2 (bit-identical to the packed-weight
// forward there too).
import CKernels
import Testing

private let activeISA = String(cString: ck_isa_name(ck_isa_active()))

@Suite("GEMM blockings (large-N dX, small-N dW, forward panels)") struct GemmBlockingTests {
    @Test("dX with N >= 4096 (packed dY blocks) vs _ref, every weight type, accumulate, thread invariance",
          arguments: weightTypes.map(\.name))
    func largeNInput(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        let bs = Int(ck_type_block_size(type))
        var rng = RNG(0xd1 + UInt64(type))
        for (T, K, N) in [(1, 32, 4096), (7, 577, 4097), (37, 256, 4100), (130, 64, 4096), (13, 640, 4096)] where K % bs == 0 {
            let dout = rng.floats(T * N), w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let initial: [Float]? = T % 2 == 1 ? rng.floats(T * K) : nil
            let what = "\(typeName) T=\(T) K=\(K) N=\(N) acc=\(initial != nil) [\(activeISA)]"
            let fast = backwardInput(ref: false, dout: dout, w: w, type: type, initial: initial, T: T, K: K, N: N)
            let ref = backwardInput(ref: true, dout: dout, w: w, type: type, initial: initial, T: T, K: K, N: N)
            #expect(fast.rc == 0 && ref.rc == 0)
            // tolerance ~ rounding of a float sum of N terms
            let wf = dequantized(w, type: type, N: N, K: K)
            var tol = [Double](repeating: 1e-6, count: T * K)
            for t in 0..<T { for n in 0..<N {
                let g = 2e-6 * abs(Double(dout[t * N + n]))
                for k in 0..<K { tol[t * K + k] += g * abs(Double(wf[n * K + k])) }
            } }
            if let initial { for i in tol.indices { tol[i] += 1e-6 * abs(Double(initial[i])) } }
            expectClose(fast.out, ref.out, tol: tol, "large-N dX " + what)
            if T == 37 || (T == 7 && bs == 1) {
                expectThreadInvariant("large-N dX " + what) {
                    backwardInput(ref: false, dout: dout, w: w, type: type, initial: initial, T: T, K: K, N: N).out
                }
            }
        }
    }

    @Test("dW with N <= 16 and K > 16 (LoRA dA) vs _ref on odd shapes, thread invariance")
    func smallNWeight() {
        var rng = RNG(0xd2)
        for (T, K, N) in [(1, 17, 1), (7, 577, 8), (130, 1536, 16), (33, 100, 5), (1024, 65, 8)] {
            let dout = rng.floats(T * N), inp = rng.floats(T * K), dw0 = rng.floats(N * K)
            let what = "dW T=\(T) K=\(K) N=\(N) [\(activeISA)]"
            let fast = backwardWeight(ref: false, dw: dw0, dout: dout, inp: inp, T: T, K: K, N: N)
            let ref = backwardWeight(ref: true, dw: dw0, dout: dout, inp: inp, T: T, K: K, N: N)
            expectClose(fast, ref, atol: 2e-6 * Double(T) + 1e-6, what)
            expectThreadInvariant(what) { backwardWeight(ref: false, dw: dw0, dout: dout, inp: inp, T: T, K: K, N: N) }
        }
    }

    @Test("forward on packed panels (T >= 12) vs oracle, = the packed-weight forward, every weight type",
          arguments: weightTypes.map(\.name))
    func forwardPanels(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        let bs = Int(ck_type_block_size(type))
        var rng = RNG(0xd3 + UInt64(type))
        for (T, K, N) in [(12, 64, 1), (13, 577, 33), (37, 256, 70), (100, 128, 97), (25, 1536, 8)] where K % bs == 0 {
            let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng), bias = rng.floats(N)
            let what = "\(typeName) T=\(T) K=\(K) N=\(N) [\(activeISA)]"
            let fast = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
            let want = matmulOracle(x: x, wf: dequantized(w, type: type, N: N, K: K), bias: bias, T: T, K: K, N: N)
            #expect(fast.rc == 0)
            expectClose(fast.out, want.out, tol: want.tol, "forward " + what)
            expectThreadInvariant("forward " + what) { matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N).out }
            // The packed forward runs the same fmaf chains, on either SIMD path, except where the
            // forward takes a dot kernel instead: AVX-512 with f32 and N <= 16 (16-lane small-N
            // kernel), AVX2 with N <= 16 (3×4 dot tiles).
            let isa = ck_isa_active()
            let dotPath = N <= 16 && (isa == 1 || type == Int32(CK_TYPE_F32.rawValue))
            if isa >= 1 && !dotPath {
                var p = [Float](repeating: .nan, count: Int(ck_matmul_packed_size(Int64(K), Int64(N))))
                #expect(w.withUnsafeBytes { ck_matmul_pack(&p, $0.baseAddress, type, Int64(K), Int64(N)) } == 0)
                var o = [Float](repeating: .nan, count: T * N)
                #expect(ck_matmul_forward_packed(&o, x, p, bias, Int64(T), Int64(K), Int64(N)) == 0)
                expectIdentical(o, fast.out, "packed = unpacked " + what)
            }
        }
    }
}
