// DispatchTests.swift — ISA detection/forcing and thread-count invariance (outputs must be
// bit-identical for 1, 2 and 3 threads). Settings changed here are restored afterwards;
// other tests tolerate the change since it never alters results.
import CKernels
import Foundation
import Testing

@Suite("dispatch and threads", .serialized) struct DispatchTests {
    @Test("ISA detection, names and forcing")
    func isa() {
        let detected = Int(ck_isa_detected()), active = Int(ck_isa_active())
        #expect((0...2).contains(detected))
        #expect(active <= detected)
        if ProcessInfo.processInfo.environment["TUNE_KERNELS"] == nil {
            #expect(active == detected, "default: the best ISA the CPU has")
        }
        #expect(String(cString: ck_isa_name(0)) == "ref")
        #expect(String(cString: ck_isa_name(1)) == "avx2")
        #expect(String(cString: ck_isa_name(2)) == "avx512")
        #expect(String(cString: ck_isa_name(9)) == "unknown")
        #expect(ck_set_isa(7) == -1)
        #expect(ck_set_isa(-1) == -1)
        if detected < 2 { #expect(ck_set_isa(2) == -1) }
        #expect(Int(ck_isa_active()) == active) // failed sets change nothing

        // With ISA=ref the dispatching entry point must produce exactly the _ref result.
        var rng = RNG(5)
        let (T, K, N) = (3, 64, 20), type = Int32(CK_TYPE_Q8_0.rawValue)
        let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
        #expect(ck_set_isa(0) == 0)
        #expect(ck_isa_active() == 0)
        let viaDispatch = matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
        #expect(ck_set_isa(Int32(active)) == 0)
        let ref = matmul(ref: true, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
        expectIdentical(viaDispatch.out, ref.out, "ISA=ref dispatches to the reference")
        #expect(Int(ck_isa_active()) == active)
    }

    @Test("ck_set_threads clamps and reports")
    func threadSetting() {
        let saved = ck_get_threads()
        #expect(saved >= 1)
        ck_set_threads(0)
        #expect(ck_get_threads() == 1)
        ck_set_threads(3)
        #expect(ck_get_threads() == 3)
        ck_set_threads(saved)
    }

    /// Runs `body` with 1, 2 and 3 threads and expects bit-identical outputs.
    private func invariant(_ what: String, _ body: () -> [Float]) {
        let saved = ck_get_threads()
        defer { ck_set_threads(saved) }
        ck_set_threads(1)
        let one = body()
        for n: Int32 in [2, 3] {
            ck_set_threads(n)
            expectIdentical(body(), one, "\(what): \(n) threads vs 1")
        }
    }

    @Test("outputs are bit-identical for 1, 2 and 3 threads")
    func threadInvariance() {
        var rng = RNG(2024)
        for (T, K, N) in [(1, 96, 70), (17, 64, 45), (4, 576, 130), (100, 64, 20)] { // last: rows split across tasks
            for (name, type) in weightTypes where K % Int(ck_type_block_size(type)) == 0 {
                let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
                invariant("matmul \(name) T=\(T) K=\(K) N=\(N)") {
                    matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N).out
                }
            }
        }
        let (T, Tkv, pos0, H, Hkv, D) = (7, 80, 73, 9, 3, 64)
        let q = rng.floats(T * H * D), k = rng.floats(Tkv * Hkv * D), v = rng.floats(Tkv * Hkv * D)
        invariant("attention") {
            var o = [Float](repeating: 0, count: T * H * D)
            ck_attention_forward(&o, q, k, v, Int64(T), Int64(Tkv), Int64(pos0), Int64(H), Int64(Hkv), Int64(D))
            return o
        }
        let big = rng.floats(40_000, -10, 10), other = rng.floats(40_000)
        invariant("rmsnorm") {
            var o = [Float](repeating: 0, count: big.count)
            ck_rmsnorm_forward(&o, nil, big, Array(other[0..<400]), 1e-5, 100, 400)
            return o
        }
        invariant("swiglu") {
            var o = [Float](repeating: 0, count: big.count)
            ck_swiglu_forward(&o, big, other, Int64(big.count))
            return o
        }
        invariant("add") {
            var o = big
            ck_add_inplace(&o, other, Int64(big.count))
            return o
        }
        invariant("log_softmax") {
            var o = [Float](repeating: 0, count: big.count)
            ck_log_softmax_forward(&o, big, 8, 5000)
            return o
        }
        invariant("rope") {
            var o = big
            let pos = (0..<625).map { Int32($0 * 3) }
            ck_rope_forward(&o, pos, 625, 1, 64, 10_000)
            return o
        }
    }

    @Test("concurrent callers (pool busy -> inline fallback) get the sequential results")
    func concurrentCallers() async {
        var rng = RNG(77)
        let (T, K, N) = (9, 96, 50), type = Int32(CK_TYPE_Q4_0.rawValue)
        let cases = (0..<6).map { _ in (x: rng.floats(T * K), w: randomWeights(type: type, N: N, K: K, rng: &rng)) }
        let want = cases.map { matmul(ref: false, x: $0.x, w: $0.w, type: type, bias: nil, T: T, K: K, N: N).out }
        let got = await withTaskGroup(of: (Int, [Float]).self) { group in
            for (i, c) in cases.enumerated() {
                group.addTask {
                    var last = [Float]()
                    for _ in 0..<20 { last = matmul(ref: false, x: c.x, w: c.w, type: type, bias: nil, T: T, K: K, N: N).out }
                    return (i, last)
                }
            }
            var r = [[Float]](repeating: [], count: cases.count)
            for await (i, o) in group { r[i] = o }
            return r
        }
        for i in cases.indices { expectIdentical(got[i], want[i], "concurrent caller \(i)") }
    }
}
