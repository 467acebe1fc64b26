// AttentionBackwardTests.swift — ck_attention_forward_train (out vs ck_attention_forward, lse)
// and ck_attention_backward: finite differences in float64 on a tiny GQA shape, fast vs `_ref`
// on odd T, thread-count invariance.
import CKernels
import Foundation
import Testing

private struct Att {
    var out: [Float], lse: [Float], dq: [Float], dk: [Float], dv: [Float]
}

/// Forward-train then backward with the fast or reference kernels.
private func attention(ref: Bool, q: [Float], k: [Float], v: [Float], dout: [Float], T: Int, H: Int, Hkv: Int, D: Int) -> Att {
    var out = [Float](repeating: .nan, count: T * H * D), lse = [Float](repeating: .nan, count: T * H)
    var dq = out, dk = [Float](repeating: .nan, count: T * Hkv * D), dv = dk
    let (t, h, hk, d) = (Int64(T), Int64(H), Int64(Hkv), Int64(D))
    (ref ? ck_attention_forward_train_ref : ck_attention_forward_train)(&out, &lse, q, k, v, t, h, hk, d)
    (ref ? ck_attention_backward_ref : ck_attention_backward)(&dq, &dk, &dv, dout, q, k, v, out, lse, t, h, hk, d)
    return Att(out: out, lse: lse, dq: dq, dk: dk, dv: dv)
}

@Suite("attention training kernels") struct AttentionBackwardTests {
    @Test("gradients match float64 finite differences (T=4, H=4, Hkv=2, D=4)")
    func gradcheck() {
        var rng = RNG(0xa77)
        let (T, H, Hkv, D) = (4, 4, 2, 4)
        let q = rng.floats(T * H * D), k = rng.floats(T * Hkv * D), v = rng.floats(T * Hkv * D), r = rng.floats(T * H * D)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
            var s = 0.0
            let scale = 1 / Double(D).squareRoot()
            for t in 0..<T { for h in 0..<H {
                let hk = h / (H / Hkv)
                let sc = (0...t).map { j in (0..<D).reduce(0.0) { $0 + q[(t * H + h) * D + $1] * k[(j * Hkv + hk) * D + $1] } * scale }
                let m = sc.max()!, z = sc.reduce(0.0) { $0 + exp($1 - m) }
                for i in 0..<D {
                    let o = (0...t).reduce(0.0) { $0 + exp(sc[$1] - m) / z * v[($1 * Hkv + hk) * D + i] }
                    s += o * Double(r[(t * H + h) * D + i])
                }
            } }
            return s
        }
        func num(_ x: [Float], _ f: ([Double]) -> Double) -> [Float] {
            var x = x.map(Double.init)
            return x.indices.map { i in
                let v = x[i]; x[i] = v + 1e-5; let a = f(x); x[i] = v - 1e-5; let b = f(x); x[i] = v
                return Float((a - b) / 2e-5)
            }
        }
        let dq = num(q) { loss($0, k.map(Double.init), v.map(Double.init)) }
        let dk = num(k) { loss(q.map(Double.init), $0, v.map(Double.init)) }
        let dv = num(v) { loss(q.map(Double.init), k.map(Double.init), $0) }
        for ref in [false, true] {
            let a = attention(ref: ref, q: q, k: k, v: v, dout: r, T: T, H: H, Hkv: Hkv, D: D)
            expectClose(a.dq, dq, atol: 1e-4, rtol: 1e-3, "dq ref=\(ref)")
            expectClose(a.dk, dk, atol: 1e-4, rtol: 1e-3, "dk ref=\(ref)")
            expectClose(a.dv, dv, atol: 1e-4, rtol: 1e-3, "dv ref=\(ref)")
        }
    }

    @Test("fast vs ref on odd T, forward_train vs ck_attention_forward, thread invariance", arguments: [1, 7, 33, 77, 130])
    func fastVsRef(T: Int) {
        var rng = RNG(UInt64(T) &* 31)
        let (H, Hkv, D) = (9, 3, 64)
        let q = rng.floats(T * H * D), k = rng.floats(T * Hkv * D), v = rng.floats(T * Hkv * D), g = rng.floats(T * H * D)
        let f = attention(ref: false, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D)
        let r = attention(ref: true, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D)
        expectClose(f.out, r.out, atol: 2e-6, "out")
        expectClose(f.lse, r.lse, atol: 2e-6, "lse")
        expectClose(f.dq, r.dq, atol: 1e-5, rtol: 1e-4, "dq")
        expectClose(f.dk, r.dk, atol: 1e-5, rtol: 1e-4, "dk")
        expectClose(f.dv, r.dv, atol: 1e-5, rtol: 1e-4, "dv")
        var plain = [Float](repeating: 0, count: T * H * D)
        ck_attention_forward_ref(&plain, q, k, v, Int64(T), Int64(T), 0, Int64(H), Int64(Hkv), Int64(D))
        expectClose(f.out, plain, atol: 2e-6, "forward_train vs forward")
        expectThreadInvariant("attention backward") {
            let a = attention(ref: false, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D)
            return a.out + a.lse + a.dq + a.dk + a.dv
        }
    }
}
