// OpsTests.swift — embedding, RMSNorm, RoPE, SwiGLU, add and log-softmax: fast vs ref vs
// Swift formulas (HF transformers' float32 semantics where it matters).
import CKernels
import Foundation
import Testing

@Suite("elementwise and norms") struct OpsTests {
    @Test("embedding rows equal the reference dequantization", arguments: weightTypes.map(\.name))
    func embedding(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        var rng = RNG(11)
        let (V, C) = (23, 64)
        let table = randomWeights(type: type, N: V, K: C, rng: &rng)
        let all = dequantized(table, type: type, N: V, K: C)
        let ids: [Int32] = [0, 22, 5, 5, 17]
        var want = [Float]()
        for id in ids { want += all[Int(id) * C..<(Int(id) + 1) * C] }
        for ref in [false, true] {
            var out = [Float](repeating: .nan, count: ids.count * C)
            let rc = table.withUnsafeBytes { tp in
                ref ? ck_embedding_forward_ref(&out, ids, tp.baseAddress, type, Int64(ids.count), Int64(C))
                    : ck_embedding_forward(&out, ids, tp.baseAddress, type, Int64(ids.count), Int64(C))
            }
            #expect(rc == 0)
            if ref {
                expectIdentical(out, want, "embedding \(typeName) ref")
            } else { // the fast dequantizer may fuse q*d+m, so allow a rounding difference
                expectClose(out, want, atol: 1e-7, rtol: 1e-6, "embedding \(typeName) fast")
            }
            let bad = table.withUnsafeBytes { tp in ck_embedding_forward(&out, [-1], tp.baseAddress, type, 1, Int64(C)) }
            #expect(bad == -1)
        }
    }

    @Test("rmsnorm matches x / sqrt(mean(x²) + eps) * w", arguments: [(1, 576), (3, 64), (17, 13), (2, 1)])
    func rmsnorm(T: Int, C: Int) {
        var rng = RNG(UInt64(T * 1000 + C))
        let x = rng.floats(T * C, -3, 3), w = rng.floats(C, 0.5, 1.5)
        let eps: Float = 1e-5
        var want = [Float](repeating: 0, count: T * C), wantR = [Float](repeating: 0, count: T)
        for t in 0..<T {
            var ss = 0.0
            for i in 0..<C { ss += Double(x[t * C + i]) * Double(x[t * C + i]) }
            let r = 1 / (ss / Double(C) + Double(eps)).squareRoot()
            wantR[t] = Float(r)
            for i in 0..<C { want[t * C + i] = Float(Double(x[t * C + i]) * r * Double(w[i])) }
        }
        var fast = [Float](repeating: .nan, count: T * C), ref = fast
        var rf = [Float](repeating: .nan, count: T), rr = rf
        ck_rmsnorm_forward(&fast, &rf, x, w, eps, Int64(T), Int64(C))
        ck_rmsnorm_forward_ref(&ref, &rr, x, w, eps, Int64(T), Int64(C))
        expectClose(fast, want, atol: 1e-6, rtol: 1e-5, "rmsnorm fast T=\(T) C=\(C)")
        expectClose(ref, want, atol: 1e-6, rtol: 1e-5, "rmsnorm ref")
        expectClose(rf, wantR, rtol: 1e-6, "rstd fast")
        expectClose(rr, wantR, rtol: 1e-6, "rstd ref")
        var noR = [Float](repeating: .nan, count: T * C)
        ck_rmsnorm_forward(&noR, nil, x, w, eps, Int64(T), Int64(C)) // rstd may be NULL
        expectIdentical(noR, fast, "rmsnorm without rstd")
    }

    /// HF LlamaRotaryEmbedding in float32: inv_freq = 1/theta^(2i/D), angle = pos·inv_freq,
    /// q·cos + rotate_half(q)·sin.
    private func hfRope(_ x: [Float], pos: [Int32], T: Int, H: Int, D: Int, theta: Float) -> [Float] {
        var out = x
        let half = D / 2
        for t in 0..<T {
            for i in 0..<half {
                let invFreq: Float = 1 / Foundation.pow(theta, Float(2 * i) / Float(D))
                let angle = Float(pos[t]) * invFreq
                let c = Foundation.cos(angle), s = Foundation.sin(angle)
                for h in 0..<H {
                    let b = (t * H + h) * D
                    let x1 = x[b + i], x2 = x[b + i + half]
                    out[b + i] = x1 * c - x2 * s
                    out[b + i + half] = x2 * c + x1 * s
                }
            }
        }
        return out
    }

    @Test("rope matches HF float32 rotate_half", arguments: [(1, 9, 64), (17, 3, 64), (5, 2, 6), (3, 1, 34)])
    func rope(T: Int, H: Int, D: Int) {
        var rng = RNG(UInt64(T * H * D))
        let x = rng.floats(T * H * D, -2, 2)
        let pos: [Int32] = (0..<T).map { Int32($0 * 391 % 8192) } // includes large positions
        for theta: Float in [10_000, 100_000] {
            let want = hfRope(x, pos: pos, T: T, H: H, D: D, theta: theta)
            var fast = x, ref = x
            ck_rope_forward(&fast, pos, Int64(T), Int64(H), Int64(D), theta)
            ck_rope_forward_ref(&ref, pos, Int64(T), Int64(H), Int64(D), theta)
            expectClose(fast, want, atol: 2e-6, rtol: 2e-6, "rope fast T=\(T) H=\(H) D=\(D) theta=\(theta)")
            expectClose(ref, want, atol: 2e-6, rtol: 2e-6, "rope ref")
            expectIdentical(fast, ref, "rope fast vs ref")
        }
    }

    @Test("swiglu matches silu(gate) * up", arguments: [1, 7, 8, 100, 40_001])
    func swiglu(n: Int) {
        var rng = RNG(UInt64(n))
        var g = rng.floats(n, -12, 12)
        if n > 10 { g[3] = 100; g[4] = -100; g[5] = 0 } // saturation must not produce NaN
        let u = rng.floats(n, -2, 2)
        let want = (0..<n).map { Float(Double(g[$0]) / (1 + exp(-Double(g[$0]))) * Double(u[$0])) }
        var fast = [Float](repeating: .nan, count: n), ref = fast
        ck_swiglu_forward(&fast, g, u, Int64(n))
        ck_swiglu_forward_ref(&ref, g, u, Int64(n))
        expectClose(fast, want, atol: 1e-6, rtol: 1e-5, "swiglu fast n=\(n)")
        expectClose(ref, want, atol: 1e-6, rtol: 1e-5, "swiglu ref n=\(n)")
    }

    @Test("add_inplace is exact", arguments: [1, 9, 70_000])
    func add(n: Int) {
        var rng = RNG(UInt64(n) + 3)
        let x = rng.floats(n), y = rng.floats(n)
        let want = zip(x, y).map { $0 + $1 }
        var fast = x, ref = x
        ck_add_inplace(&fast, y, Int64(n))
        ck_add_inplace_ref(&ref, y, Int64(n))
        expectIdentical(fast, want, "add fast")
        expectIdentical(ref, want, "add ref")
    }

    @Test("log_softmax is accurate to ~1e-6 and stable", arguments: [(1, 49_152), (3, 17), (2, 1), (4, 1000)])
    func logSoftmax(T: Int, V: Int) {
        var rng = RNG(UInt64(T * V))
        var x = rng.floats(T * V, -15, 15)
        for i in stride(from: 0, to: x.count, by: 2 * V) { x[i] += 1000 } // large offsets on some rows
        var want = [Float](repeating: 0, count: T * V)
        for t in 0..<T {
            let row = x[t * V..<(t + 1) * V].map(Double.init)
            let m = row.max()!
            let lse = m + Foundation.log(row.reduce(0) { $0 + exp($1 - m) })
            for i in 0..<V { want[t * V + i] = Float(row[i] - lse) }
        }
        var fast = [Float](repeating: .nan, count: T * V), ref = fast
        ck_log_softmax_forward(&fast, x, Int64(T), Int64(V))
        ck_log_softmax_forward_ref(&ref, x, Int64(T), Int64(V))
        expectClose(fast, want, atol: 1e-6, rtol: 2.5e-7, "log_softmax fast T=\(T) V=\(V)")
        expectClose(ref, want, atol: 1e-6, rtol: 2.5e-7, "log_softmax ref")
        var inPlace = x
        inPlace.withUnsafeMutableBufferPointer { ck_log_softmax_forward($0.baseAddress, $0.baseAddress, Int64(T), Int64(V)) }
        expectIdentical(inPlace, fast, "log_softmax in place")
    }
}
