// GemvInt8Tests.swift — the opt-in int8 decode path (gemv_q8.c): activation quantization
// (round trip within d/2, llama.cpp's half-away-from-zero rounding, SIMD bytes == ref bytes),
// every SIMD kernel bit-identical to the scalar reference for Q4_0/Q4_1/Q8_0 over shapes with
// short last row tiles and short last block groups, bias on/off, 1 and 2 threads; closeness to
// the exact float path; and the thread-local switch in ck_matmul_forward (off by default).
import CKernels
import Engine
import Foundation
import Testing

private let int8Types = weightTypes.filter { ["q4_0", "q4_1", "q8_0"].contains($0.name) }

/// (K, N): K/32 = 1, 2, 9, 18, 48 blocks (last group of 8 short except for 48); N below, at and
/// above the 8-row task tile.
private let int8Shapes = [(32, 1), (64, 7), (288, 8), (576, 33), (1536, 17)]

/// Quantizes x with the reference or the dispatching quantizer; returns the raw blocks.
private func quantizeQ8(_ x: [Float], ref: Bool) -> (rc: Int32, bytes: [UInt8]) {
    var out = [UInt8](repeating: 0xAA, count: x.count / 32 * MemoryLayout<ck_block_q8x>.size)
    let rc = out.withUnsafeMutableBytes { o in
        ref ? ck_quantize_row_q8_ref(x, Int64(x.count), o.baseAddress) : ck_quantize_row_q8(x, Int64(x.count), o.baseAddress)
    }
    return (rc, out)
}

/// Block b of a quantized row: (d, sum, qs).
private func q8Block(_ bytes: [UInt8], _ b: Int) -> (d: Float, sum: Int32, qs: [Int8]) {
    bytes.withUnsafeBytes { raw in
        let base = b * MemoryLayout<ck_block_q8x>.size
        let d = raw.loadUnaligned(fromByteOffset: base + MemoryLayout<ck_block_q8x>.offset(of: \.d)!, as: Float.self)
        let sum = raw.loadUnaligned(fromByteOffset: base + MemoryLayout<ck_block_q8x>.offset(of: \.sum)!, as: Int32.self)
        let q0 = base + MemoryLayout<ck_block_q8x>.offset(of: \.qs)!
        return (d, sum, (0..<32).map { Int8(bitPattern: raw[q0 + $0]) })
    }
}

/// out [N] from ck_gemv_q8_with(kernel) (NaN-initialized so unwritten outputs show).
private func gemvQ8(kernel: Int32, x: [Float], w: [UInt8], type: Int32, bias: [Float]?, K: Int, N: Int) -> (out: [Float], rc: Int32) {
    var out = [Float](repeating: .nan, count: N)
    let rc = w.withUnsafeBytes { wp in
        out.withUnsafeMutableBufferPointer { op in
            if let bias {
                return ck_gemv_q8_with(kernel, op.baseAddress, x, wp.baseAddress, type, bias, Int64(K), Int64(N))
            }
            return ck_gemv_q8_with(kernel, op.baseAddress, x, wp.baseAddress, type, nil, Int64(K), Int64(N))
        }
    }
    return (out, rc)
}

private let simdKernels: [Int32] = [Int32(CK_Q8_KERNEL_AVX2.rawValue), Int32(CK_Q8_KERNEL_VNNI.rawValue)]
private let refKernel = Int32(CK_Q8_KERNEL_REF.rawValue)

@Suite("int8 decode path (gemv_q8)") struct GemvInt8Tests {
    @Test("quantize_row_q8: |x − d·q| <= d/2, Σq, max |q| = 127, zero block, SIMD bytes == ref")
    func quantizeRoundTrip() {
        var rng = RNG(0x1a8)
        // blocks at very different scales, one all-zero block, one with a single nonzero value
        var x = rng.floats(32 * 6, -1, 1)
        for j in 32..<64 { x[j] *= 1e-4 }
        for j in 64..<96 { x[j] *= 300 }
        for j in 96..<128 { x[j] = 0 }
        for j in 128..<160 { x[j] = j == 140 ? -0.75 : 0 }
        let (rc, bytes) = quantizeQ8(x, ref: true)
        #expect(rc == 0)
        for b in 0..<(x.count / 32) {
            let (d, sum, qs) = q8Block(bytes, b)
            let xs = x[(32 * b)..<(32 * b + 32)]
            let amax = xs.map { abs($0) }.max()!
            #expect(d == amax / 127, "block \(b): d = max|x|/127")
            #expect(sum == qs.reduce(Int32(0)) { $0 + Int32($1) }, "block \(b): sum = Σq")
            #expect(qs.allSatisfy { abs(Int($0)) <= 127 })
            if amax == 0 {
                #expect(qs.allSatisfy { $0 == 0 }, "zero block quantizes to zeros")
                continue
            }
            #expect(qs.map { abs(Int($0)) }.max() == 127, "block \(b): the largest element maps to ±127")
            for (j, v) in xs.enumerated() {
                let err = abs(Double(v) - Double(d) * Double(qs[j]))
                // d/2 from rounding, plus the float rounding of x·(1/d) (a few ulps of |x|)
                #expect(err <= 0.5 * Double(d) + 4e-7 * Double(abs(v)), "block \(b) element \(j): |x − d·q| = \(err), d = \(d)")
            }
        }
        let simd = quantizeQ8(x, ref: false)
        #expect(simd.rc == 0 && simd.bytes == bytes, "dispatching quantizer writes the reference bytes")
        #expect(quantizeQ8([Float](repeating: 1, count: 48), ref: true).rc == -1, "K % 32 != 0 is refused")
    }

    @Test("quantize_row_q8 rounds half away from zero (roundf), like llama.cpp")
    func quantizeTies() {
        // max |x| = 127 gives d = 1 and 1/d = 1, so x·(1/d) = x exactly: ±k.5 are true ties
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127
        let ties: [(Float, Int8)] = [(0.5, 1), (-0.5, -1), (1.5, 2), (2.5, 3), (-2.5, -3), (4.5, 5), (-6.5, -7), (0.49999997, 0)]
        for (i, (v, _)) in ties.enumerated() { x[1 + i] = v }
        for ref in [true, false] {
            let (rc, bytes) = quantizeQ8(x, ref: ref)
            #expect(rc == 0)
            let (d, _, qs) = q8Block(bytes, 0)
            #expect(d == 1)
            for (i, (v, want)) in ties.enumerated() {
                #expect(qs[1 + i] == want, "\(ref ? "ref" : "dispatch"): round(\(v)) = \(qs[1 + i]), want \(want)")
            }
        }
    }

    @Test("SIMD kernels == ref bit for bit (shapes, bias on/off, 1 and 2 threads)", arguments: int8Types.map(\.name))
    func simdEqualsRef(typeName: String) {
        let type = int8Types.first { $0.name == typeName }!.id
        var rng = RNG(0x8d07 + UInt64(type))
        let saved = ck_get_threads()
        defer { ck_set_threads(saved) }
        let kernels = simdKernels.filter { ck_gemv_q8_kernel_available($0) == 1 }
        #expect(ck_gemv_q8_kernel_available(refKernel) == 1)
        for (K, N) in int8Shapes {
            for withBias in [false, true] {
                // activations at the scale of a normed hidden state, with one outlier per row
                var x = rng.floats(K, -2, 2)
                x[K / 3] = 9
                let w = randomWeights(type: type, N: N, K: K, rng: &rng)
                let bias: [Float]? = withBias ? rng.floats(N) : nil
                let what = "\(typeName) K=\(K) N=\(N) bias=\(withBias)"
                ck_set_threads(1)
                let ref = gemvQ8(kernel: refKernel, x: x, w: w, type: type, bias: bias, K: K, N: N)
                #expect(ref.rc == 0 && ref.out.allSatisfy(\.isFinite), "ref \(what)")
                for threads in [1, 2] {
                    ck_set_threads(Int32(threads))
                    let refT = gemvQ8(kernel: refKernel, x: x, w: w, type: type, bias: bias, K: K, N: N)
                    expectIdentical(refT.out, ref.out, "ref, \(threads) threads vs 1: " + what)
                    for k in kernels {
                        let got = gemvQ8(kernel: k, x: x, w: w, type: type, bias: bias, K: K, N: N)
                        #expect(got.rc == 0)
                        let name = String(cString: ck_gemv_q8_kernel_name(k))
                        expectIdentical(got.out, ref.out, "\(name), \(threads) threads: " + what)
                    }
                }
            }
        }
    }

    @Test("int8 result within 1e-2 relative L2 of the exact float path", arguments: int8Types.map(\.name))
    func closeToExact(typeName: String) {
        // Each activation moves by at most d/2 = max|x_block|/254; for x uniform in [-1, 1] the
        // rounding error is ~uniform with std (1/127)/√12 ≈ 0.0023 against std(x) ≈ 0.58, so a sum
        // against independent weights moves by ≈ 0.4% of its size (relative L2 over the outputs).
        // 1e-2 leaves 2.5× headroom; a wrong scale, sign, min term or block order is off by O(1).
        let type = int8Types.first { $0.name == typeName }!.id
        var rng = RNG(0x7e57 + UInt64(type))
        for (K, N) in [(576, 64), (1536, 48), (288, 40)] {
            let x = rng.floats(K)
            let w = randomWeights(type: type, N: N, K: K, rng: &rng)
            let fast = gemvQ8(kernel: Int32(ck_gemv_q8_kernel()), x: x, w: w, type: type, bias: nil, K: K, N: N)
            let exact = matmul(ref: true, x: x, w: w, type: type, bias: nil, T: 1, K: K, N: N)
            #expect(fast.rc == 0 && exact.rc == 0)
            var num = 0.0, den = 0.0
            for n in 0..<N {
                num += pow(Double(fast.out[n]) - Double(exact.out[n]), 2)
                den += pow(Double(exact.out[n]), 2)
            }
            let rel = (num / den).squareRoot()
            #expect(rel <= 1e-2, "\(typeName) K=\(K) N=\(N): relative L2 \(rel)")
            #expect(rel > 0, "\(typeName) K=\(K) N=\(N): int8 equal to the exact path (not quantizing?)")
        }
    }

    @Test("ck_matmul_forward: T = 1 uses the int8 path only while this thread opted in")
    func threadLocalSwitch() {
        var rng = RNG(0x5117)
        let (K, N) = (576, 19), type = Int32(CK_TYPE_Q4_1.rawValue)
        let x = rng.floats(K), w = randomWeights(type: type, N: N, K: K, rng: &rng)
        let bias = rng.floats(N)
        #expect(ck_get_fast_decode() == 0, "off by default")
        let exact = matmul(ref: false, x: x, w: w, type: type, bias: bias, T: 1, K: K, N: N)
        let int8 = gemvQ8(kernel: Int32(ck_gemv_q8_kernel()), x: x, w: w, type: type, bias: bias, K: K, N: N)
        let routed = Kernels.withFastInference {
            #expect(ck_get_fast_decode() == 1)
            // another thread does not see this thread's switch
            let other = fastDecodeOnAnotherThread()
            #expect(other == 0, "the switch is per thread")
            return matmul(ref: false, x: x, w: w, type: type, bias: bias, T: 1, K: K, N: N)
        }
        #expect(ck_get_fast_decode() == 0, "withFastInference restores the previous value")
        expectIdentical(routed.out, int8.out, "switch on: T = 1 equals ck_gemv_q8")
        #expect(routed.out != exact.out, "switch on: not the exact path")
        expectIdentical(matmul(ref: false, x: x, w: w, type: type, bias: bias, T: 1, K: K, N: N).out, exact.out,
                        "switch off again: the exact path")
        // T > 1, and weights the int8 path does not take, stay exact with the switch on
        let x2 = rng.floats(2 * K)
        let t2 = matmul(ref: false, x: x2, w: w, type: type, bias: nil, T: 2, K: K, N: N)
        let t2on = Kernels.withFastInference { matmul(ref: false, x: x2, w: w, type: type, bias: nil, T: 2, K: K, N: N) }
        expectIdentical(t2on.out, t2.out, "T = 2 ignores the switch")
        let f32 = Int32(CK_TYPE_F32.rawValue), wf = randomWeights(type: f32, N: N, K: K, rng: &rng)
        let fOff = matmul(ref: false, x: x, w: wf, type: f32, bias: nil, T: 1, K: K, N: N)
        let fOn = Kernels.withFastInference { matmul(ref: false, x: x, w: wf, type: f32, bias: nil, T: 1, K: K, N: N) }
        expectIdentical(fOn.out, fOff.out, "f32 weights ignore the switch")
        // nesting restores the outer value
        Kernels.withFastInference {
            Kernels.withFastInference {}
            #expect(ck_get_fast_decode() == 1, "inner withFastInference restores the outer (on) value")
        }
    }

    @Test("unsupported inputs are refused")
    func refusals() {
        let x = [Float](repeating: 0.5, count: 64)
        let q8 = Int32(CK_TYPE_Q8_0.rawValue), f32 = Int32(CK_TYPE_F32.rawValue), q3k = Int32(CK_TYPE_Q3_K.rawValue)
        #expect(ck_gemv_q8_supported(q8, 64) == 1)
        #expect(ck_gemv_q8_supported(q8, 48) == 0)
        #expect(ck_gemv_q8_supported(f32, 64) == 0)
        #expect(ck_gemv_q8_supported(q3k, 256) == 0)
        var rng = RNG(3)
        let w = randomWeights(type: q8, N: 2, K: 64, rng: &rng)
        #expect(gemvQ8(kernel: refKernel, x: x, w: w, type: f32, bias: nil, K: 64, N: 2).rc == -1)
        #expect(gemvQ8(kernel: 7, x: x, w: w, type: q8, bias: nil, K: 64, N: 2).rc == -1, "unknown kernel")
        #expect(String(cString: ck_gemv_q8_kernel_name(refKernel)) == "int8-ref")
        #expect(String(cString: ck_gemv_q8_kernel_name(9)) == "unknown")
    }
}

/// ck_get_fast_decode() as seen from a new thread.
private func fastDecodeOnAnotherThread() -> Int32 {
    final class Box: @unchecked Sendable { var value: Int32 = -1; let done = DispatchSemaphore(value: 0) }
    let box = Box()
    Thread.detachNewThread {
        box.value = ck_get_fast_decode()
        box.done.signal()
    }
    box.done.wait()
    return box.value
}
