// FamilyOpsTests.swift — the kernels the Qwen3 / Gemma 3 / Llama 3.x families added: sliding-window attention
// (fast vs ref vs a Swift oracle with the window mask, thread invariance), RoPE with explicit inverse frequencies
// (equal to θ-RoPE when given θ's frequencies; table variant identical), and GeGLU vs a Double oracle.
import CKernels
import Foundation
import Testing

/// softmax(QKᵀ/√D + causal and window mask)·V in Double: key j visible to the query at position p iff
/// j <= p and p - j < window (window <= 0: no window).
private func windowOracle(q: [Float], k: [Float], v: [Float], T: Int, Tkv: Int, pos0: Int, H: Int, Hkv: Int, D: Int,
                          window: Int) -> [Float] {
    var out = [Float](repeating: 0, count: T * H * D)
    for t in 0..<T {
        let p = pos0 + t
        for h in 0..<H {
            let hk = h / (H / Hkv)
            let keys = (0...p).filter { window <= 0 || p - $0 < window }
            let s = keys.map { j in (0..<D).reduce(0.0) { $0 + Double(q[(t * H + h) * D + $1]) * Double(k[(j * Hkv + hk) * D + $1]) } / Double(D).squareRoot() }
            let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
            for d in 0..<D {
                out[(t * H + h) * D + d] = Float(zip(keys, e).reduce(0.0) { $0 + $1.1 * Double(v[($1.0 * Hkv + hk) * D + d]) } / z)
            }
        }
    }
    return out
}

@Suite("family ops") struct FamilyOpsTests {
    @Test("sliding-window attention: fast and ref match the masked oracle; window 0 is plain attention",
          arguments: [(T: 40, pos0: 0, window: 8), (T: 1, pos0: 150, window: 64), (T: 9, pos0: 70, window: 5),
                      (T: 70, pos0: 0, window: 100), (T: 33, pos0: 3, window: 0)])
    func windowAttention(_ s: (T: Int, pos0: Int, window: Int)) {
        let (H, Hkv, D) = (4, 2, 24), Tkv = s.pos0 + s.T
        var rng = RNG(UInt64(s.T * 31 + s.window))
        let q = rng.floats(s.T * H * D, -2, 2), k = rng.floats(Tkv * Hkv * D, -2, 2), v = rng.floats(Tkv * Hkv * D)
        let want = windowOracle(q: q, k: k, v: v, T: s.T, Tkv: Tkv, pos0: s.pos0, H: H, Hkv: Hkv, D: D, window: s.window)
        var fast = [Float](repeating: .nan, count: want.count), ref = fast, plain = fast
        ck_attention_forward_window(&fast, q, k, v, Int64(s.T), Int64(Tkv), Int64(s.pos0), Int64(H), Int64(Hkv), Int64(D), Int64(s.window))
        ck_attention_forward_window_ref(&ref, q, k, v, Int64(s.T), Int64(Tkv), Int64(s.pos0), Int64(H), Int64(Hkv), Int64(D), Int64(s.window))
        expectClose(fast, want, atol: 2e-6, rtol: 1e-5, "window fast \(s)")
        expectClose(ref, want, atol: 1e-6, rtol: 1e-6, "window ref \(s)")
        if s.window == 0 || s.window >= Tkv {
            ck_attention_forward(&plain, q, k, v, Int64(s.T), Int64(Tkv), Int64(s.pos0), Int64(H), Int64(Hkv), Int64(D))
            expectIdentical(fast, plain, "a window that clips nothing equals plain attention")
        }
        let before = ck_get_threads()
        defer { ck_set_threads(before) }
        for n: Int32 in [1, 3] {
            ck_set_threads(n)
            var again = [Float](repeating: .nan, count: want.count)
            ck_attention_forward_window(&again, q, k, v, Int64(s.T), Int64(Tkv), Int64(s.pos0), Int64(H), Int64(Hkv), Int64(D), Int64(s.window))
            expectIdentical(again, fast, "\(n) threads")
        }
    }

    @Test("RoPE with explicit frequencies: θ's frequencies give ck_rope_forward's bits; fast = ref; the table agrees")
    func ropeFrequencies() {
        let (T, H, D) = (13, 3, 64)
        var rng = RNG(5)
        let x = rng.floats(T * H * D)
        let pos = (0..<T).map { Int32($0 * 37 % 200) }
        var inv = [Float](repeating: 0, count: D / 2)
        ck_rope_inv_freq(&inv, Int64(D), 500_000)
        var a = x, b = x
        ck_rope_forward(&a, pos, Int64(T), Int64(H), Int64(D), 500_000)
        ck_rope_forward_freq(&b, pos, Int64(T), Int64(H), Int64(D), inv)
        expectIdentical(a, b, "θ frequencies")
        // Scaled (llama3-like: every other frequency divided by 8).
        let scaled = inv.enumerated().map { $0.offset % 2 == 0 ? $0.element / 8 : $0.element }
        var fast = x, ref = x, cached = x
        ck_rope_forward_freq(&fast, pos, Int64(T), Int64(H), Int64(D), scaled)
        ck_rope_forward_freq_ref(&ref, pos, Int64(T), Int64(H), Int64(D), scaled)
        expectIdentical(fast, ref, "scaled fast vs ref")
        var tab = [Float](repeating: 0, count: 200 * D)
        ck_rope_table_freq(&tab, 200, Int64(D), scaled)
        ck_rope_forward_cached(&cached, pos, tab, Int64(T), Int64(H), Int64(D))
        expectIdentical(cached, fast, "table vs direct")
        #expect(fast != a, "scaling must change the rotation")
    }

    @Test("GeGLU: gelu_tanh(gate)·up within 2 ulp-ish of a Double oracle; fast (logistic form) ≈ ref (tanh), thread invariant")
    func geglu() {
        var rng = RNG(8)
        let n = 40_003
        let g = rng.floats(n, -6, 6), u = rng.floats(n, -2, 2)
        var fast = [Float](repeating: .nan, count: n), ref = fast
        ck_geglu_forward(&fast, g, u, Int64(n))
        ck_geglu_forward_ref(&ref, g, u, Int64(n))
        expectClose(fast, ref, atol: 1e-6, rtol: 1e-5, "fast vs ref")
        expectThreadInvariant("geglu forward") {
            var o = [Float](repeating: .nan, count: n)
            ck_geglu_forward(&o, g, u, Int64(n))
            return o
        }
        let want = zip(g, u).map { gf, uf -> Float in
            let x = Double(gf)
            return Float(0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) * Double(uf))
        }
        expectClose(fast, want, atol: 1e-6, rtol: 1e-5, "geglu vs oracle")
    }
}
