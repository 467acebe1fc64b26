// Support.swift — shared helpers for the CKernels tests: deterministic RNG, random ggml
// weight rows, C-call wrappers and tolerance checks that report the max difference.
import CKernels
import Engine
import Foundation
import Testing

/// Engine's seeded SplitMix64 with test-data helpers.
struct RNG {
    var base: SplitMix64
    init(_ seed: UInt64) { base = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { base.next() }
    mutating func float(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
    mutating func floats(_ n: Int, _ lo: Float = -1, _ hi: Float = 1) -> [Float] {
        (0..<n).map { _ in float(lo, hi) }
    }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

/// The weight types the matmul must handle, as ggml type ids.
let weightTypes: [(name: String, id: Int32)] = [
    ("f32", Int32(CK_TYPE_F32.rawValue)), ("f16", Int32(CK_TYPE_F16.rawValue)),
    ("bf16", Int32(CK_TYPE_BF16.rawValue)), ("q4_0", Int32(CK_TYPE_Q4_0.rawValue)),
    ("q4_1", Int32(CK_TYPE_Q4_1.rawValue)), ("q8_0", Int32(CK_TYPE_Q8_0.rawValue)),
    ("nf4", Int32(CK_TYPE_NF4.rawValue)), // 64-element blocks: shapes with K % 64 != 0 are skipped for it
]

private func putU16(_ h: UInt16, _ bytes: inout [UInt8], _ at: Int) {
    bytes[at] = UInt8(h & 0xff)
    bytes[at + 1] = UInt8(h >> 8)
}

/// N random rows of K elements of `type`: float types hold values in [-0.5, 0.5]; quantized
/// blocks get random quants (and random 6-/8-bit sub-block scales for the K-quants) with small
/// sane f16 scales (and mins for q4_1, super-block min scales for q4_K/q5_K).
func randomWeights(type: Int32, N: Int, K: Int, rng: inout RNG) -> [UInt8] {
    let rowBytes = Int(ck_type_row_bytes(type, Int64(K)))
    precondition(rowBytes > 0, "bad type/K")
    var bytes = [UInt8](repeating: 0, count: rowBytes * N)
    switch type {
    case Int32(CK_TYPE_F32.rawValue):
        let f = rng.floats(N * K, -0.5, 0.5)
        bytes.withUnsafeMutableBytes { raw in f.withUnsafeBytes { raw.copyMemory(from: $0) } }
    case Int32(CK_TYPE_F16.rawValue):
        for i in 0..<(N * K) { putU16(ck_fp32_to_fp16(rng.float(-0.5, 0.5)), &bytes, 2 * i) }
    case Int32(CK_TYPE_BF16.rawValue):
        for i in 0..<(N * K) { putU16(ck_fp32_to_bf16(rng.float(-0.5, 0.5)), &bytes, 2 * i) }
    case Int32(CK_TYPE_NF4.rawValue): // f32 absmax per block: quantize random floats instead of random bytes
        let f = rng.floats(N * K, -0.5, 0.5)
        bytes.withUnsafeMutableBytes { precondition(ck_quantize_row(type, f, $0.baseAddress, Int64(N * K)) == 0) }
    default:
        for i in bytes.indices { bytes[i] = rng.byte() }
        let blockBytes = Int(ck_type_block_bytes(type))
        for b in 0..<(bytes.count / blockBytes) {
            let d = rng.float(0.002, 0.03) * (rng.next() & 1 == 0 ? 1 : -1)
            // the f16 scale sits at the block's start, except for q6_K (its last two bytes)
            let dAt = type == Int32(CK_TYPE_Q6_K.rawValue) ? blockBytes - 2 : 0
            putU16(ck_fp32_to_fp16(d), &bytes, b * blockBytes + dAt)
            if type == Int32(CK_TYPE_Q4_1.rawValue) { putU16(ck_fp32_to_fp16(rng.float(-0.2, 0.05)), &bytes, b * blockBytes + 2) }
            if type == Int32(CK_TYPE_Q4_K.rawValue) || type == Int32(CK_TYPE_Q5_K.rawValue) { // super-block scale of the mins
                putU16(ck_fp32_to_fp16(rng.float(0.0005, 0.005)), &bytes, b * blockBytes + 2)
            }
        }
    }
    return bytes
}

/// Dequantizes all N rows with the reference dequantizer.
func dequantized(_ w: [UInt8], type: Int32, N: Int, K: Int) -> [Float] {
    let rowBytes = Int(ck_type_row_bytes(type, Int64(K)))
    var out = [Float](repeating: 0, count: N * K)
    w.withUnsafeBytes { wp in
        out.withUnsafeMutableBufferPointer { op in
            for n in 0..<N {
                let rc = ck_dequantize_row_ref(type, wp.baseAddress! + n * rowBytes, op.baseAddress! + n * K, Int64(K))
                precondition(rc == 0)
            }
        }
    }
    return out
}

/// Calls the fast or the reference matmul; outputs start as NaN so unwritten ones show.
func matmul(ref: Bool, x: [Float], w: [UInt8], type: Int32, bias: [Float]?, T: Int, K: Int, N: Int) -> (out: [Float], rc: Int32) {
    var out = [Float](repeating: .nan, count: T * N)
    let rc = x.withUnsafeBufferPointer { xp in
        w.withUnsafeBytes { wp in
            out.withUnsafeMutableBufferPointer { op in
                let o = op.baseAddress
                let call = { (bp: UnsafePointer<Float>?) -> Int32 in
                    ref ? ck_matmul_forward_ref(o, xp.baseAddress, wp.baseAddress, type, bp, Int64(T), Int64(K), Int64(N))
                        : ck_matmul_forward(o, xp.baseAddress, wp.baseAddress, type, bp, Int64(T), Int64(K), Int64(N))
                }
                if let bias { return bias.withUnsafeBufferPointer { call($0.baseAddress) } }
                return call(nil)
            }
        }
    }
    return (out, rc)
}

/// Expects |got - want| <= atol + rtol * |want| everywhere (`tol` per element replaces atol);
/// on failure records one issue with the max difference and where it is.
func expectClose(_ got: [Float], _ want: [Float], atol: Double = 0, rtol: Double = 0, tol: [Double]? = nil,
                 _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard got.count == want.count else {
        Issue.record("\(what): count \(got.count) != \(want.count)", sourceLocation: sourceLocation)
        return
    }
    var maxDiff = 0.0, worst = -1, worstExcess = 0.0, bad = 0
    for i in got.indices {
        let d = abs(Double(got[i]) - Double(want[i]))
        let limit = (tol?[i] ?? atol) + rtol * abs(Double(want[i]))
        if !(d <= limit) {
            bad += 1
            let excess = d.isNaN ? .infinity : d - limit
            if worst < 0 || excess > worstExcess { worst = i; worstExcess = excess }
        }
        if d > maxDiff || d.isNaN { maxDiff = d.isNaN ? .nan : max(maxDiff, d) }
    }
    if bad > 0 {
        Issue.record("\(what): \(bad)/\(got.count) out of tolerance, maxdiff \(maxDiff); worst at \(worst): got \(got[worst]) want \(want[worst])",
                     sourceLocation: sourceLocation)
    }
}

/// Bitwise equality (NaN-safe), reporting the first mismatch.
func expectIdentical(_ a: [Float], _ b: [Float], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let ai = a.map(\.bitPattern), bi = b.map(\.bitPattern)
    if ai != bi {
        let i = (0..<min(a.count, b.count)).first { ai[$0] != bi[$0] } ?? min(a.count, b.count)
        Issue.record("\(what): not bit-identical (first at \(i): \(i < a.count ? a[i] : .nan) vs \(i < b.count ? b[i] : .nan))",
                     sourceLocation: sourceLocation)
    }
}

// MARK: - Matmul oracle

/// Swift oracle on the reference-dequantized weights, plus per-output tolerances scaled by
/// Σ|x·w| (the size of the rounding error of any summation order).
func matmulOracle(x: [Float], wf: [Float], bias: [Float]?, T: Int, K: Int, N: Int) -> (out: [Float], tol: [Double]) {
    var out = [Float](repeating: 0, count: T * N), tol = [Double](repeating: 0, count: T * N)
    for t in 0..<T {
        for n in 0..<N {
            var s = 0.0, a = 0.0
            for k in 0..<K {
                let p = Double(x[t * K + k]) * Double(wf[n * K + k])
                s += p
                a += abs(p)
            }
            let b = Double(bias?[n] ?? 0)
            out[t * N + n] = Float(s + b)
            tol[t * N + n] = 1e-5 * (a + abs(b)) + 1e-6
        }
    }
    return (out, tol)
}
