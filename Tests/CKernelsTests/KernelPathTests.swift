// KernelPathTests.swift — the kernels added for issue 2/8's leftovers, each against its `_ref`
// oracle under the active ISA (run the suite with TUNE_KERNELS=avx512|avx2|ref to cover every
// path): the small-N GEMM paths (LoRA rank r as N or K), the packed-weight forward (the loss's LM
// head), RoPE with a cached cos/sin table, and the AVX-512 inference attention and quantized GEMV
// at the model's real widths. Checks that only hold on one path are skipped with a message when
// the active ISA is another one.
import CKernels
import Foundation
import Testing

private let activeISA = String(cString: ck_isa_name(ck_isa_active()))
private let onAVX512 = ck_isa_active() >= 2
private let notAVX512 = "needs the AVX-512 path; active ISA is \(activeISA) (CPU lacks it or TUNE_KERNELS forces another)"

@Suite("kernel paths (small-N, packed, cached RoPE, AVX-512 inference)") struct KernelPathTests {
    /// Attention vs the double-precision reference (online softmax in f32, vector exp ~2 ulp).
    static let attention = (atol: 2e-6, rtol: 1e-5)
    /// Fused GEMV vs the reference: quantized rows dequantized exactly, f32 block sums.
    static let gemv = 2e-6

    // MARK: - small N / small K (LoRA rank r)

    @Test("small-N forward, dX and dW (r = 1..16) vs _ref, with bias and accumulate")
    func smallN() {
        var rng = RNG(0x5a11)
        let f32 = Int32(CK_TYPE_F32.rawValue)
        for (T, width, r) in [(1024, 576, 8), (100, 577, 16), (7, 33, 5), (50, 1536, 8), (3, 64, 1), (49, 40, 13)] {
            let x = rng.floats(T * width), a = rng.floats(r * width), bias = rng.floats(r)
            let what = "T=\(T) width=\(width) r=\(r) [\(activeISA)]"
            // u = x·Aᵀ: N = r
            let fast = matmul(ref: false, x: x, w: a.bytes, type: f32, bias: bias, T: T, K: width, N: r)
            let want = matmulOracle(x: x, wf: a, bias: bias, T: T, K: width, N: r)
            #expect(fast.rc == 0)
            expectClose(fast.out, want.out, tol: want.tol, "forward N=r " + what) // Σ|x·w|-scaled (matmulOracle)
            expectThreadInvariant("forward N=r " + what) { matmul(ref: false, x: x, w: a.bytes, type: f32, bias: bias, T: T, K: width, N: r).out }
            // du = dY·B (B [width, r]): K = r, onto an initial value
            let dy = rng.floats(T * width), b = rng.floats(width * r), initial = rng.floats(T * r)
            func dX(_ f: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafeRawPointer?, Int32, Int64, Int64, Int64, Int32) -> Int32) -> [Float] {
                var o = initial
                #expect(f(&o, dy, b, f32, Int64(T), Int64(r), Int64(width), 1) == 0)
                return o
            }
            let scale = Double(width) * 1e-6
            expectClose(dX(ck_matmul_backward_input), dX(ck_matmul_backward_input_ref), atol: scale, "dX K=r " + what)
            expectThreadInvariant("dX K=r " + what) { dX(ck_matmul_backward_input) }
            // dB += dYᵀ·u (K = r) and dA += duᵀ·x (N = r)
            let u = rng.floats(T * r), dbInit = rng.floats(width * r)
            func dW(_ f: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int64, Int64, Int64) -> Void,
                    _ dout: [Float], _ inp: [Float], K: Int, N: Int) -> [Float] {
                var o = dbInit
                f(&o, dout, inp, Int64(T), Int64(K), Int64(N))
                return o
            }
            let tScale = Double(T) * 1e-6
            expectClose(dW(ck_matmul_backward_weight, dy, u, K: r, N: width), dW(ck_matmul_backward_weight_ref, dy, u, K: r, N: width),
                        atol: tScale, "dW K=r " + what)
            expectClose(dW(ck_matmul_backward_weight, u, dy, K: width, N: r), dW(ck_matmul_backward_weight_ref, u, dy, K: width, N: r),
                        atol: tScale, "dW N=r " + what)
            expectThreadInvariant("dW K=r " + what) { dW(ck_matmul_backward_weight, dy, u, K: r, N: width) }
        }
    }

    // MARK: - packed weights

    @Test("packed forward vs _ref and vs the unpacked forward, every weight type", arguments: weightTypes.map(\.name))
    func packed(typeName: String) {
        let type = weightTypes.first { $0.name == typeName }!.id
        var rng = RNG(0xbac + UInt64(type))
        for (T, K, N) in [(1, 64, 5), (100, 192, 70), (256, 576, 97), (13, 128, 32)] where K % Int(ck_type_block_size(type)) == 0 {
            let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng), bias = rng.floats(N)
            var p = [Float](repeating: .nan, count: Int(ck_matmul_packed_size(Int64(K), Int64(N))))
            #expect(p.count == (N + 31) / 32 * 32 * K)
            #expect(w.withUnsafeBytes { ck_matmul_pack(&p, $0.baseAddress, type, Int64(K), Int64(N)) } == 0)
            func fwd(_ f: (UnsafeMutablePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, Int64, Int64, Int64) -> Int32) -> [Float] {
                var o = [Float](repeating: .nan, count: T * N)
                #expect(f(&o, x, p, bias, Int64(T), Int64(K), Int64(N)) == 0)
                return o
            }
            let what = "\(typeName) T=\(T) K=\(K) N=\(N) [\(activeISA)]"
            let want = matmulOracle(x: x, wf: dequantized(w, type: type, N: N, K: K), bias: bias, T: T, K: K, N: N)
            expectClose(fwd(ck_matmul_forward_packed), want.out, tol: want.tol, "packed vs oracle " + what)
            expectClose(fwd(ck_matmul_forward_packed_ref), want.out, tol: want.tol, "packed ref vs oracle " + what)
            expectThreadInvariant("packed " + what) { fwd(ck_matmul_forward_packed) }
            // Same fmaf chain as ck_matmul_forward's tile path (taken for T > 8 or float weights,
            // except f32 weights with N <= 16, which take the small-N kernel).
            let tilePath = (T > 8 || ck_type_block_size(type) == 1) && !(type == Int32(CK_TYPE_F32.rawValue) && N <= 16)
            if onAVX512 && tilePath {
                let direct = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: T, K: K, N: N).out
                expectIdentical(fwd(ck_matmul_forward_packed), direct, "packed = unpacked " + what)
            }
        }
        #expect(ck_matmul_packed_size(0, 5) == 0)
        var none = [Float](repeating: 0, count: 32)
        #expect(ck_matmul_pack(&none, [UInt8](repeating: 0, count: 64), 999, 16, 1) == -1, "unknown type is an error")
    }

    // MARK: - RoPE table

    @Test("RoPE with the cached table is bit-identical to ck_rope_forward/backward and their refs")
    func ropeCached() {
        var rng = RNG(0x20e)
        for (T, H, D, theta) in [(300, 9, 64, Float(10_000)), (7, 3, 20, 500_000), (33, 2, 6, 10_000)] {
            let P = 1000
            var tab = [Float](repeating: .nan, count: P * D)
            ck_rope_table(&tab, Int64(P), Int64(D), theta)
            let pos = (0..<T).map { Int32(($0 * 37) % P) }, x = rng.floats(T * H * D, -3, 3)
            let what = "T=\(T) H=\(H) D=\(D) theta=\(theta) [\(activeISA)]"
            var a = x, b = x, c = x
            ck_rope_forward_cached(&a, pos, tab, Int64(T), Int64(H), Int64(D))
            ck_rope_forward_cached_ref(&b, pos, tab, Int64(T), Int64(H), Int64(D))
            ck_rope_forward_ref(&c, pos, Int64(T), Int64(H), Int64(D), theta)
            expectIdentical(a, c, "forward cached vs ref " + what)
            expectIdentical(b, c, "forward cached_ref vs ref " + what)
            ck_rope_backward_cached(&a, pos, tab, Int64(T), Int64(H), Int64(D))
            ck_rope_backward_cached_ref(&b, pos, tab, Int64(T), Int64(H), Int64(D))
            ck_rope_backward_ref(&c, pos, Int64(T), Int64(H), Int64(D), theta)
            expectIdentical(a, c, "backward cached vs ref " + what)
            expectIdentical(b, c, "backward cached_ref vs ref " + what)
            expectClose(a, x, atol: 1e-5, "backward undoes forward " + what)
        }
    }

    // MARK: - AVX-512 inference paths

    @Test("inference attention (decode and prompt) vs _ref on the AVX-512 path", .enabled(if: onAVX512, Comment(rawValue: notAVX512)))
    func attention512() {
        var rng = RNG(0xa77)
        for (T, Tkv, pos0, H, Hkv, D) in [(1, 300, 299, 9, 3, 64), (64, 64, 0, 9, 3, 64), (3, 40, 30, 4, 2, 40), (2, 9, 7, 2, 1, 17)] {
            let q = rng.floats(T * H * D, -2, 2), k = rng.floats(Tkv * Hkv * D, -2, 2), v = rng.floats(Tkv * Hkv * D)
            var fast = [Float](repeating: .nan, count: T * H * D), ref = fast
            ck_attention_forward(&fast, q, k, v, Int64(T), Int64(Tkv), Int64(pos0), Int64(H), Int64(Hkv), Int64(D))
            ck_attention_forward_ref(&ref, q, k, v, Int64(T), Int64(Tkv), Int64(pos0), Int64(H), Int64(Hkv), Int64(D))
            expectClose(fast, ref, atol: Self.attention.atol, rtol: Self.attention.rtol, "attention avx512 T=\(T) Tkv=\(Tkv) D=\(D)")
        }
    }

    @Test("fused quantized GEMV (T = 1..8) vs _ref at the model's widths on the AVX-512 path", .enabled(if: onAVX512, Comment(rawValue: notAVX512)))
    func gemv512() {
        var rng = RNG(0x9e)
        for (name, type) in weightTypes where ["q4_0", "q4_1", "q8_0"].contains(name) {
            for (T, K, N) in [(1, 576, 193), (1, 1536, 67), (5, 576, 41), (8, 64, 9)] {
                let x = rng.floats(T * K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
                let fast = matmul(ref: false, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
                let ref = matmul(ref: true, x: x, w: w, type: type, bias: nil, T: T, K: K, N: N)
                let scale = Double(ref.out.map { abs($0) }.max() ?? 1)
                expectClose(fast.out, ref.out, atol: Self.gemv * scale, "gemv avx512 \(name) T=\(T) K=\(K) N=\(N)")
            }
        }
    }
}

private extension Array where Element == Float {
    /// The floats' bytes (f32 weight rows for `matmul`).
    var bytes: [UInt8] { withUnsafeBytes { Array<UInt8>($0) } }
}
