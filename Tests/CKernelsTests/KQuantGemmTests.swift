// KQuantGemmTests.swift — QLoRA over the block types a Q4_K_M / Q5_K_M / Q6_K GGUF mixes (Q4_K,
// Q5_K, Q6_K, and Q5_0 / Q8_0 where a row is not a multiple of 256, e.g. Qwen2.5-0.5B's 896):
// the dequantizers' fast paths bit-identical to their references, and the training GEMMs in both
// directions (Y = X·Wᵀ and dX = dY·W, weight tiles dequantized inside the kernel) against their
// `_ref` oracles on random blocks and odd shapes, with 1, 2 and 3 threads giving the same bits.
// Runs under the active ISA: `TUNE_KERNELS=avx512|avx2|ref swift test --filter KQuantGemmTests`.
import CKernels
import Testing

private let activeISA = String(cString: ck_isa_name(ck_isa_active()))

/// The K-quant file types and the legacy blocks they fall back to.
let kquantTypes: [(name: String, id: Int32)] = [
    ("q4_K", Int32(CK_TYPE_Q4_K.rawValue)), ("q5_K", Int32(CK_TYPE_Q5_K.rawValue)),
    ("q6_K", Int32(CK_TYPE_Q6_K.rawValue)), ("q5_0", Int32(CK_TYPE_Q5_0.rawValue)),
    ("q8_0", Int32(CK_TYPE_Q8_0.rawValue)),
]

/// (T, K, N) per block size: odd T and N, K a few blocks (896 = Qwen2.5-0.5B's width for 32-blocks).
private func shapes(blockSize bs: Int) -> [(Int, Int, Int)] {
    bs == 256 ? [(1, 256, 7), (5, 512, 33), (37, 768, 65), (130, 256, 97), (13, 1280, 40)]
              : [(1, 32, 7), (5, 96, 33), (37, 896, 65), (130, 64, 97), (13, 896, 40)]
}

@Suite("K-quant GEMMs (q4_K, q5_K, q6_K, q5_0, q8_0) vs _ref") struct KQuantGemmTests {
    @Test("dequantize_row fast path is bit-identical to the reference", arguments: kquantTypes.map(\.name))
    func dequantize(typeName: String) {
        let type = kquantTypes.first { $0.name == typeName }!.id
        let bs = Int(ck_type_block_size(type))
        var rng = RNG(0x4b51 + UInt64(type))
        for blocks in [1, 3, 17] {
            let K = blocks * bs
            let w = randomWeights(type: type, N: 1, K: K, rng: &rng)
            var fast = [Float](repeating: .nan, count: K), ref = [Float](repeating: .nan, count: K)
            w.withUnsafeBytes { wp in
                #expect(ck_dequantize_row(type, wp.baseAddress, &fast, Int64(K)) == 0)
                #expect(ck_dequantize_row_ref(type, wp.baseAddress, &ref, Int64(K)) == 0)
            }
            #expect(ref.allSatisfy { $0.isFinite }, "\(typeName): random blocks must dequantize to finite values")
            expectIdentical(fast, ref, "dequantize \(typeName) K=\(K) [\(activeISA)]")
        }
    }

    @Test("forward Y = X·Wᵀ vs _ref and the Swift oracle, bias, thread invariance", arguments: kquantTypes.map(\.name))
    func forward(typeName: String) {
        let type = kquantTypes.first { $0.name == typeName }!.id
        var rng = RNG(0x4b52 + UInt64(type))
        for (T, K, N) in shapes(blockSize: Int(ck_type_block_size(type))) {
            let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let bias: [Float]? = N % 2 == 1 ? rng.floats(N) : nil
            let what = "forward \(typeName) T=\(T) K=\(K) N=\(N) bias=\(bias != nil) [\(activeISA)]"
            let fast = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
            let ref = matmul(ref: true, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
            #expect(fast.rc == 0 && ref.rc == 0, "\(what): rc \(fast.rc) / \(ref.rc)")
            let oracle = matmulOracle(x: x, wf: dequantized(w, type: type, N: N, K: K), bias: bias, T: T, K: K, N: N)
            expectClose(ref.out, oracle.out, tol: oracle.tol, what + " (ref vs oracle)")
            expectClose(fast.out, ref.out, tol: oracle.tol, what)
            expectThreadInvariant(what) { matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N).out }
        }
    }

    @Test("dX = dY·W vs _ref, overwrite and accumulate, thread invariance", arguments: kquantTypes.map(\.name))
    func backwardInputK(typeName: String) {
        let type = kquantTypes.first { $0.name == typeName }!.id
        var rng = RNG(0x4b53 + UInt64(type))
        for (T, K, N) in shapes(blockSize: Int(ck_type_block_size(type))) + [(7, Int(ck_type_block_size(type)) * 2, 4099)] {
            let dout = rng.floats(T * N), w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let initial: [Float]? = T % 2 == 1 ? rng.floats(T * K) : nil
            let what = "dX \(typeName) T=\(T) K=\(K) N=\(N) acc=\(initial != nil) [\(activeISA)]"
            let fast = backwardInput(ref: false, dout: dout, w: w, type: type, initial: initial, T: T, K: K, N: N)
            let ref = backwardInput(ref: true, dout: dout, w: w, type: type, initial: initial, T: T, K: K, N: N)
            #expect(fast.rc == 0 && ref.rc == 0, "\(what): rc \(fast.rc) / \(ref.rc)")
            // tolerance ~ rounding of a float sum of N terms
            let wf = dequantized(w, type: type, N: N, K: K)
            var tol = [Double](repeating: 1e-6, count: T * K)
            for t in 0..<T { for n in 0..<N {
                let g = 2e-6 * abs(Double(dout[t * N + n]))
                for k in 0..<K { tol[t * K + k] += g * abs(Double(wf[n * K + k])) }
            } }
            if let initial { for i in tol.indices { tol[i] += 1e-6 * abs(Double(initial[i])) } }
            expectClose(fast.out, ref.out, tol: tol, what)
            expectThreadInvariant(what) {
                backwardInput(ref: false, dout: dout, w: w, type: type, initial: initial, T: T, K: K, N: N).out
            }
        }
    }

    @Test("packed LM-head forward over K-quant blocks = the unpacked forward", arguments: kquantTypes.map(\.name))
    func packed(typeName: String) {
        let type = kquantTypes.first { $0.name == typeName }!.id
        let K = Int(ck_type_block_size(type)) * 3, N = 70, T = 25
        var rng = RNG(0x4b54 + UInt64(type))
        let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
        var panels = [Float](repeating: .nan, count: Int(ck_matmul_packed_size(Int64(K), Int64(N))))
        var out = [Float](repeating: .nan, count: T * N)
        let rc = w.withUnsafeBytes { wp in ck_matmul_pack(&panels, wp.baseAddress, type, Int64(K), Int64(N)) }
        #expect(rc == 0)
        #expect(ck_matmul_forward_packed(&out, x, panels, nil, Int64(T), Int64(K), Int64(N)) == 0)
        let direct = matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
        if ck_isa_active() == Int32(CK_ISA_REF.rawValue) {
            expectClose(out, direct.out, rtol: 1e-5, "packed \(typeName) [\(activeISA)]")
        } else {
            expectIdentical(out, direct.out, "packed \(typeName) [\(activeISA)]")
        }
    }
}
