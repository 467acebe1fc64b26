// FamilyTrainOpsTests.swift — the training kernels Gemma 3 added: ck_geglu_backward (fast vs `_ref` vs
// float64 finite differences, thread invariance) and the sliding-window twins of the training attention
// (ck_attention_forward_train_window / ck_attention_backward_window: finite differences of a windowed
// float64 oracle, fast vs `_ref`, a window that clips nothing gives the plain kernels' bits, thread invariance).
import CKernels
import Foundation
import Testing

private func geluTanh(_ x: Double) -> Double {
    0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
}

private func central(_ x: [Float], _ f: ([Double]) -> Double) -> [Float] {
    var x = x.map(Double.init)
    return x.indices.map { i in
        let v = x[i]; x[i] = v + 1e-5; let a = f(x); x[i] = v - 1e-5; let b = f(x); x[i] = v
        return Float((a - b) / 2e-5)
    }
}

private struct WinAtt { var out: [Float], lse: [Float], dq: [Float], dk: [Float], dv: [Float] }

private func windowAttention(ref: Bool, q: [Float], k: [Float], v: [Float], dout: [Float],
                             T: Int, H: Int, Hkv: Int, D: Int, window: Int) -> WinAtt {
    var out = [Float](repeating: .nan, count: T * H * D), lse = [Float](repeating: .nan, count: T * H)
    var dq = out, dk = [Float](repeating: .nan, count: T * Hkv * D), dv = dk
    let (t, h, hk, d, w) = (Int64(T), Int64(H), Int64(Hkv), Int64(D), Int64(window))
    (ref ? ck_attention_forward_train_window_ref : ck_attention_forward_train_window)(&out, &lse, q, k, v, t, h, hk, d, w)
    (ref ? ck_attention_backward_window_ref : ck_attention_backward_window)(&dq, &dk, &dv, dout, q, k, v, out, lse, t, h, hk, d, w)
    return WinAtt(out: out, lse: lse, dq: dq, dk: dk, dv: dv)
}

@Suite("family training kernels") struct FamilyTrainOpsTests {
    @Test("geglu backward: fast = ref (close), both match float64 finite differences, thread invariant")
    func gegluBackward() {
        var rng = RNG(0x6e6)
        let n = 37
        let g = rng.floats(n, -5, 5), u = rng.floats(n), r = rng.floats(n)
        func f(_ g: [Double], _ u: [Double]) -> Double {
            (0..<n).reduce(0.0) { $0 + geluTanh(g[$1]) * u[$1] * Double(r[$1]) }
        }
        let wantG = central(g) { f($0, u.map(Double.init)) }, wantU = central(u) { f(g.map(Double.init), $0) }
        for ref in [false, true] {
            var dg = [Float](repeating: .nan, count: n), du = dg
            (ref ? ck_geglu_backward_ref : ck_geglu_backward)(&dg, &du, r, g, u, Int64(n))
            expectClose(dg, wantG, atol: 1e-4, rtol: 1e-3, "dgate ref=\(ref)")
            expectClose(du, wantU, atol: 1e-4, rtol: 1e-3, "dup ref=\(ref)")
        }
        // dup is exactly gelu_tanh(g)·dout: the forward kernel's output with up = dout.
        var fwd = [Float](repeating: 0, count: n), dg = fwd, du = fwd
        ck_geglu_forward(&fwd, g, r, Int64(n))
        ck_geglu_backward(&dg, &du, r, g, u, Int64(n))
        expectClose(du, fwd, atol: 1e-6, rtol: 1e-6, "dup = geglu_forward(gate, dout)")

        let big = 3 * 8192 + 77
        let G = rng.floats(big, -8, 8), U = rng.floats(big), R = rng.floats(big)
        func run(_ ref: Bool) -> [Float] {
            var a = [Float](repeating: .nan, count: big), b = a
            (ref ? ck_geglu_backward_ref : ck_geglu_backward)(&a, &b, R, G, U, Int64(big))
            return a + b
        }
        expectClose(run(false), run(true), atol: 1e-6, rtol: 1e-5, "fast vs ref n=\(big)")
        expectThreadInvariant("geglu backward") { run(false) }
    }

    @Test("windowed training attention: gradients match float64 finite differences of the windowed oracle")
    func windowGradcheck() {
        var rng = RNG(0x51d)
        let (T, H, Hkv, D, W) = (7, 4, 2, 4, 3)
        let q = rng.floats(T * H * D, -2, 2), k = rng.floats(T * Hkv * D, -2, 2), v = rng.floats(T * Hkv * D), r = rng.floats(T * H * D)
        func loss(_ q: [Double], _ k: [Double], _ v: [Double]) -> Double {
            var s = 0.0
            for t in 0..<T { for h in 0..<H {
                let hk = h / (H / Hkv), keys = Array(max(0, t - W + 1)...t)
                let sc = keys.map { j in (0..<D).reduce(0.0) { $0 + q[(t * H + h) * D + $1] * k[(j * Hkv + hk) * D + $1] } / Double(D).squareRoot() }
                let m = sc.max()!, z = sc.reduce(0.0) { $0 + exp($1 - m) }
                for i in 0..<D {
                    let o = keys.indices.reduce(0.0) { $0 + exp(sc[$1] - m) / z * v[(keys[$1] * Hkv + hk) * D + i] }
                    s += o * Double(r[(t * H + h) * D + i])
                }
            } }
            return s
        }
        let dq = central(q) { loss($0, k.map(Double.init), v.map(Double.init)) }
        let dk = central(k) { loss(q.map(Double.init), $0, v.map(Double.init)) }
        let dv = central(v) { loss(q.map(Double.init), k.map(Double.init), $0) }
        for ref in [false, true] {
            let a = windowAttention(ref: ref, q: q, k: k, v: v, dout: r, T: T, H: H, Hkv: Hkv, D: D, window: W)
            expectClose(a.dq, dq, atol: 1e-4, rtol: 1e-3, "dq ref=\(ref)")
            expectClose(a.dk, dk, atol: 1e-4, rtol: 1e-3, "dk ref=\(ref)")
            expectClose(a.dv, dv, atol: 1e-4, rtol: 1e-3, "dv ref=\(ref)")
        }
        // The windowed forward equals the inference kernel's window (same masking rule).
        let a = windowAttention(ref: false, q: q, k: k, v: v, dout: r, T: T, H: H, Hkv: Hkv, D: D, window: W)
        var inf = [Float](repeating: 0, count: T * H * D)
        ck_attention_forward_window_ref(&inf, q, k, v, Int64(T), Int64(T), 0, Int64(H), Int64(Hkv), Int64(D), Int64(W))
        expectClose(a.out, inf, atol: 2e-6, "train window vs inference window")
    }

    @Test("windowed training attention: fast vs ref, no-op windows are the plain kernels, thread invariance",
          arguments: [(T: 40, window: 8), (T: 77, window: 33), (T: 130, window: 64), (T: 20, window: 20), (T: 9, window: 0)])
    func windowFastVsRef(_ s: (T: Int, window: Int)) {
        var rng = RNG(UInt64(s.T * 7 + s.window))
        let (H, Hkv, D) = (6, 2, 32), T = s.T
        let q = rng.floats(T * H * D), k = rng.floats(T * Hkv * D), v = rng.floats(T * Hkv * D), g = rng.floats(T * H * D)
        let f = windowAttention(ref: false, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D, window: s.window)
        let r = windowAttention(ref: true, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D, window: s.window)
        expectClose(f.out, r.out, atol: 2e-6, "out")
        expectClose(f.lse, r.lse, atol: 2e-6, "lse")
        expectClose(f.dq, r.dq, atol: 1e-5, rtol: 1e-4, "dq")
        expectClose(f.dk, r.dk, atol: 1e-5, rtol: 1e-4, "dk")
        expectClose(f.dv, r.dv, atol: 1e-5, rtol: 1e-4, "dv")
        if s.window == 0 || s.window >= T {
            var out = [Float](repeating: .nan, count: T * H * D), lse = [Float](repeating: .nan, count: T * H)
            var dq = out, dk = [Float](repeating: .nan, count: T * Hkv * D), dv = dk
            ck_attention_forward_train(&out, &lse, q, k, v, Int64(T), Int64(H), Int64(Hkv), Int64(D))
            ck_attention_backward(&dq, &dk, &dv, g, q, k, v, out, lse, Int64(T), Int64(H), Int64(Hkv), Int64(D))
            expectIdentical(f.out + f.lse + f.dq + f.dk + f.dv, out + lse + dq + dk + dv, "a window that clips nothing is the plain kernel")
        } else {
            let plain = windowAttention(ref: true, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D, window: 0)
            #expect(zip(plain.out, r.out).map { abs($0 - $1) }.max()! > 1e-4, "the window must change the output")
        }
        expectThreadInvariant("window attention T=\(T) W=\(s.window)") {
            let a = windowAttention(ref: false, q: q, k: k, v: v, dout: g, T: T, H: H, Hkv: Hkv, D: D, window: s.window)
            return a.out + a.lse + a.dq + a.dk + a.dv
        }
    }
}
