// AttentionTests.swift — causal GQA attention, fast and ref, vs a straightforward Swift
// softmax(QKᵀ/√D + causal mask)·V, including the KV-cache case (pos0 > 0) and Tkv > pos0+T.
import CKernels
import Foundation
import Testing

/// Full-matrix oracle in Double: scores for every key, causal mask as -inf, softmax, ·V.
private func swiftAttention(q: [Float], k: [Float], v: [Float], T: Int, Tkv: Int, pos0: Int,
                            H: Int, Hkv: Int, D: Int) -> [Float] {
    var out = [Float](repeating: 0, count: T * H * D)
    let scale = 1 / Double(D).squareRoot()
    for t in 0..<T {
        for h in 0..<H {
            let hk = h / (H / Hkv)
            var scores = [Double](repeating: -.infinity, count: Tkv)
            for j in 0..<Tkv where j <= pos0 + t {
                var s = 0.0
                for d in 0..<D { s += Double(q[(t * H + h) * D + d]) * Double(k[(j * Hkv + hk) * D + d]) }
                scores[j] = s * scale
            }
            let m = scores.max()!
            let p = scores.map { exp($0 - m) }
            let z = p.reduce(0, +)
            for d in 0..<D {
                var o = 0.0
                for j in 0..<Tkv { o += p[j] * Double(v[(j * Hkv + hk) * D + d]) }
                out[(t * H + h) * D + d] = Float(o / z)
            }
        }
    }
    return out
}

@Suite("attention") struct AttentionTests {
    struct Shape: CustomStringConvertible, Sendable {
        let T, Tkv, pos0, H, Hkv, D: Int
        var description: String { "T=\(T) Tkv=\(Tkv) pos0=\(pos0) H=\(H) Hkv=\(Hkv) D=\(D)" }
    }

    static let shapes: [Shape] = [
        Shape(T: 1, Tkv: 1, pos0: 0, H: 9, Hkv: 3, D: 64),    // first token
        Shape(T: 1, Tkv: 131, pos0: 130, H: 9, Hkv: 3, D: 64), // decode with KV cache, > 2 chunks of keys
        Shape(T: 17, Tkv: 17, pos0: 0, H: 9, Hkv: 3, D: 64),  // prompt
        Shape(T: 5, Tkv: 90, pos0: 70, H: 4, Hkv: 2, D: 20),  // cached prefix, keys past pos0+T ignored, D tail
        Shape(T: 3, Tkv: 3, pos0: 0, H: 6, Hkv: 1, D: 8),     // multi-query
        Shape(T: 2, Tkv: 7, pos0: 4, H: 2, Hkv: 2, D: 3),     // D < 8
    ]

    @Test("fast and ref match the Swift softmax(QKᵀ/√D + mask)·V", arguments: shapes)
    func matchesOracle(s: Shape) {
        var rng = RNG(UInt64(s.T * 7919 + s.Tkv * 31 + s.D))
        let q = rng.floats(s.T * s.H * s.D, -2, 2)
        let k = rng.floats(s.Tkv * s.Hkv * s.D, -2, 2)
        let v = rng.floats(s.Tkv * s.Hkv * s.D, -1, 1)
        let want = swiftAttention(q: q, k: k, v: v, T: s.T, Tkv: s.Tkv, pos0: s.pos0, H: s.H, Hkv: s.Hkv, D: s.D)
        var fast = [Float](repeating: .nan, count: want.count), ref = fast
        ck_attention_forward(&fast, q, k, v, Int64(s.T), Int64(s.Tkv), Int64(s.pos0), Int64(s.H), Int64(s.Hkv), Int64(s.D))
        ck_attention_forward_ref(&ref, q, k, v, Int64(s.T), Int64(s.Tkv), Int64(s.pos0), Int64(s.H), Int64(s.Hkv), Int64(s.D))
        expectClose(fast, want, atol: 2e-6, rtol: 1e-5, "attention fast \(s)")
        expectClose(ref, want, atol: 1e-6, rtol: 1e-6, "attention ref \(s)")
    }

    @Test("a token's output does not depend on later keys (causality)")
    func causal() {
        var rng = RNG(99)
        let (T, H, Hkv, D) = (6, 4, 2, 16)
        let q = rng.floats(T * H * D), k = rng.floats(T * Hkv * D)
        let v = rng.floats(T * Hkv * D)
        var k2 = k, v2 = v
        for i in (4 * Hkv * D)..<k.count { k2[i] += 5; v2[i] -= 3 } // change keys/values 4 and 5
        var a = [Float](repeating: 0, count: T * H * D), b = a
        ck_attention_forward(&a, q, k, v, Int64(T), Int64(T), 0, Int64(H), Int64(Hkv), Int64(D))
        ck_attention_forward(&b, q, k2, v2, Int64(T), Int64(T), 0, Int64(H), Int64(Hkv), Int64(D))
        expectIdentical(Array(a[0..<(4 * H * D)]), Array(b[0..<(4 * H * D)]), "rows 0..3 unchanged")
        #expect(a[(4 * H * D)...] != b[(4 * H * D)...])
    }

    @Test("invalid shapes leave out untouched")
    func invalidShapes() {
        let q = [Float](repeating: 1, count: 2 * 3 * 8), kv = [Float](repeating: 1, count: 4 * 2 * 8)
        for (Tkv, H, Hkv) in [(1, 3, 2), (4, 3, 0), (1, 4, 2)] as [(Int64, Int64, Int64)] { // H % Hkv, Hkv = 0, Tkv < pos0+T
            var fast = [Float](repeating: 7, count: q.count), ref = fast
            ck_attention_forward(&fast, q, kv, kv, 2, Tkv, 0, H, Hkv, 8)
            ck_attention_forward_ref(&ref, q, kv, kv, 2, Tkv, 0, H, Hkv, 8)
            #expect(fast.allSatisfy { $0 == 7 } && ref.allSatisfy { $0 == 7 }, "Tkv=\(Tkv) H=\(H) Hkv=\(Hkv)")
        }
    }
}
