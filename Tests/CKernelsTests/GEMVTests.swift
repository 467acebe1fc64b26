// GEMVTests.swift — the fused small-T quantized path of ck_matmul_forward (gemv_q.c): T = 1..8
// on Q4_0/Q4_1/Q8_0 with odd N against the reference and a Swift double oracle, plus
// thread-count invariance.
import CKernels
import Testing

private let quantTypes = weightTypes.filter { ["q4_0", "q4_1", "q8_0"].contains($0.name) }


@Suite("fused small-T quantized matmul") struct GEMVTests {
    @Test("T = 1..8, odd N, fast vs ref vs oracle", arguments: quantTypes.map(\.name))
    func smallT(typeName: String) {
        let type = quantTypes.first { $0.name == typeName }!.id
        var rng = RNG(0x6e3 + UInt64(type))
        for T in 1...8 {
            for (K, N) in [(32, 1), (64, 7), (576, 33), (96, 17)] {
                let x = rng.floats(T * K)
                let w = randomWeights(type: type, N: N, K: K, rng: &rng)
                let bias: [Float]? = T % 2 == 0 ? rng.floats(N) : nil
                let fast = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
                let ref = matmul(ref: true, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
                #expect(fast.rc == 0 && ref.rc == 0)
                let want = matmulOracle(x: x, wf: dequantized(w, type: type, N: N, K: K), bias: bias, T: T, K: K, N: N)
                let what = "\(typeName) T=\(T) K=\(K) N=\(N)"
                expectClose(fast.out, want.out, tol: want.tol, "fast vs oracle " + what)
                expectClose(fast.out, ref.out, tol: want.tol, "fast vs ref " + what)
            }
        }
    }

    @Test("bit-identical for 1, 2 and 3 threads")
    func threads() {
        var rng = RNG(99)
        let saved = ck_get_threads()
        defer { ck_set_threads(saved) }
        for (_, type) in quantTypes {
            let (T, K, N) = (3, 576, 77)
            let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
            var outs: [[Float]] = []
            for n in [1, 2, 3] {
                ck_set_threads(Int32(n))
                outs.append(matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N).out)
            }
            expectIdentical(outs[0], outs[1], "1 vs 2 threads")
            expectIdentical(outs[0], outs[2], "1 vs 3 threads")
        }
    }
}
