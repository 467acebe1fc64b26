// MatmulTests.swift — ck_matmul_forward (fast) vs ck_matmul_forward_ref vs a Swift double
// oracle, for every weight type and awkward shapes; error returns.
import CKernels
import Testing


@Suite("matmul") struct MatmulTests {
    // (T, K, N): T=1 (generation), T not a multiple of the 3-row micro-kernel, N not a multiple of
    // 4 or of the 16-row tile, K = one block, odd block counts, a real model width, and T >= 96
    // with few tiles (input rows split across tasks).
    static let shapes: [(Int, Int, Int)] = [(1, 32, 5), (3, 96, 17), (17, 64, 33), (4, 576, 37), (1, 160, 70), (2, 32, 1), (100, 32, 20),
                                            (5, 128, 19), (100, 192, 20)]

    @Test("fast vs ref vs Swift oracle", arguments: weightTypes.map(\.name))
    func fastVsRef(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        var rng = RNG(0x5eed + UInt64(type))
        for (T, K, N) in Self.shapes where K % Int(ck_type_block_size(type)) == 0 {
            let x = rng.floats(T * K)
            let w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let bias: [Float]? = (T + N) % 2 == 0 ? rng.floats(N) : nil
            let fast = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
            let ref = matmul(ref: true, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N)
            #expect(fast.rc == 0 && ref.rc == 0)
            let want = matmulOracle(x: x, wf: dequantized(w, type: type, N: N, K: K), bias: bias, T: T, K: K, N: N)
            let what = "\(typeName) T=\(T) K=\(K) N=\(N) bias=\(bias != nil)"
            expectClose(ref.out, want.out, tol: want.tol, "ref vs oracle " + what)
            expectClose(fast.out, want.out, tol: want.tol, "fast vs oracle " + what)
            expectClose(fast.out, ref.out, tol: want.tol, "fast vs ref " + what)
        }
    }

    @Test("float weights with K not a multiple of 8 (scalar tails)", arguments: [1, 7, 13, 37, 100])
    func oddK(K: Int) {
        var rng = RNG(UInt64(K))
        for (name, type) in weightTypes where ck_type_block_size(type) == 1 {
            let T = 5, N = 9
            let x = rng.floats(T * K)
            let w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let fast = matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
            let ref = matmul(ref: true, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
            #expect(fast.rc == 0 && ref.rc == 0)
            let want = matmulOracle(x: x, wf: dequantized(w, type: type, N: N, K: K), bias: nil, T: T, K: K, N: N)
            expectClose(fast.out, want.out, tol: want.tol, "fast \(name) K=\(K)")
            expectClose(ref.out, want.out, tol: want.tol, "ref \(name) K=\(K)")
        }
    }

    @Test("larger prompt-like shape: T=64, K=576, N=100, q4_1, relative error ~1e-5")
    func promptShape() {
        var rng = RNG(42)
        let (T, K, N) = (64, 576, 100), type = Int32(CK_TYPE_Q4_1.rawValue)
        let x = rng.floats(T * K)
        let w = randomWeights(type: type, N: N, K: K, rng: &rng)
        let fast = matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
        let ref = matmul(ref: true, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
        #expect(fast.rc == 0 && ref.rc == 0)
        let scale = Double(ref.out.map { abs($0) }.max()!)
        expectClose(fast.out, ref.out, atol: 1e-5 * scale, "fast vs ref T=64")
    }

    @Test("bad type or K returns -1 and leaves out untouched")
    func errors() {
        var rng = RNG(7)
        let x = rng.floats(2 * 48)
        let w = [UInt8](repeating: 0, count: 4096)
        for ref in [false, true] {
            let badK = matmul(ref: ref, x: x, w: w, type: Int32(CK_TYPE_Q4_0.rawValue), bias: nil, T: 2, K: 48, N: 3)
            #expect(badK.rc == -1)
            #expect(badK.out.allSatisfy { $0.isNaN })
            let badType = matmul(ref: ref, x: x, w: w, type: 99, bias: nil, T: 2, K: 32, N: 3)
            #expect(badType.rc == -1)
        }
        // Empty outputs are fine.
        #expect(matmul(ref: false, x: x, w: w, type: Int32(CK_TYPE_F32.rawValue), bias: nil, T: 0, K: 32, N: 3).rc == 0)
    }
}
