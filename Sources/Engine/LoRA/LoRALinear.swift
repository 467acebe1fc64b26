// LoRALinear — the LoRA side path of one linear layer, forward and backward, on the kernel module.
//
//   forward:  u = x̃·Aᵀ  [T, r];   y += s · u·Bᵀ            (x̃ = x, or dropout(x) in training)
//   backward: dB += s · dYᵀ·u;    du = s · dY·B;   dA += duᵀ·x̃;   dx += du·A (⊙ dropout mask)
//
// Dropout masks are not stored: `LoRADropout` regenerates them from (seed, step, layer, target)
// with a counter-based hash, so the backward pass sees the exact mask the forward used.

import CKernels

/// Scratch for the LoRA side paths of `rows` token rows: `u` [rows, r] and `tmp` [rows, maxWidth].
final class LoRAScratch {
    private(set) var capacity = 0
    private(set) var u = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var tmp = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private(set) var tmp2 = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    deinit { u.deallocate(); tmp.deallocate(); tmp2.deallocate() }

    /// Room for `rows` rows of rank `r` and width up to `width`.
    func reserve(rows: Int, rank r: Int, width: Int) {
        let need = rows * max(width, r)
        guard need > capacity else { return }
        u.deallocate(); tmp.deallocate(); tmp2.deallocate()
        u = .allocate(capacity: need)
        tmp = .allocate(capacity: need)
        tmp2 = .allocate(capacity: need)
        capacity = need
    }
}

/// Counter-based dropout masks (keep with probability 1 − p, kept values scaled by 1/(1 − p)).
struct LoRADropout {
    let p: Float
    let seed: UInt64

    /// Writes the mask of (`step`, `layer`, `target`) into `out`: 1/(1−p) where an element is kept, 0
    /// where it is dropped (x̃ = x ⊙ mask). `ck_dropout_mask` (threaded, vectorized) computes `hash` below
    /// for every index; `maskReference` is the same in Swift, the oracle the tests compare with.
    func mask(_ out: UnsafeMutablePointer<Float>, count: Int, step: Int, layer: Int, target: LoRATarget) {
        ck_dropout_mask(out, Int64(count), key(step: step, layer: layer, target: target), threshold, 1 / (1 - p))
    }

    func maskReference(count: Int, step: Int, layer: Int, target: LoRATarget) -> [Float] {
        let inv = 1 / (1 - p), key = key(step: step, layer: layer, target: target)
        return (0..<count).map { LoRADropout.hash(key, UInt64($0)) <= threshold ? inv : 0 }
    }

    private var threshold: UInt32 { UInt32(Double(1 - p) * 4294967296.0 - 1) }

    private func key(step: Int, layer: Int, target: LoRATarget) -> UInt64 {
        var g = SplitMix64(seed: seed ^ (UInt64(step) &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(layer) << 40)
                           ^ (UInt64(LoRATarget.allCases.firstIndex(of: target)!) << 56))
        return g.next()
    }

    @inline(__always) static func hash(_ key: UInt64, _ i: UInt64) -> UInt32 {
        var z = key &+ i &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return UInt32(truncatingIfNeeded: (z ^ (z >> 31)) >> 32)
    }
}

extension LoRAAdapter {
    /// `out [rows, slot.out] += scale · (inp·Aᵀ)·Bᵀ`. When `saveU` is given, u = inp·Aᵀ `[rows, r]`
    /// is written there (the training forward keeps it for the backward pass).
    func addForward(_ s: LoRASlot, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int,
                    scratch: LoRAScratch, saveU: UnsafeMutablePointer<Float>? = nil) {
        let r = rank
        scratch.reserve(rows: rows, rank: r, width: s.outFeatures)
        let u = saveU ?? scratch.u
        ck_matmul_forward(u, inp, a(s), Int32(CK_TYPE_F32.rawValue), nil, Int64(rows), Int64(s.inFeatures), Int64(r))
        ck_matmul_forward(scratch.tmp, u, b(s), Int32(CK_TYPE_F32.rawValue), nil, Int64(rows), Int64(r), Int64(s.outFeatures))
        ck_axpy(out, scratch.tmp, scale, Int64(rows * s.outFeatures))
    }

    /// Backward of `addForward` for upstream gradient `dout [rows, out]`, with u saved by the forward
    /// and `inp` the (dropped-out) input the forward used. Accumulates into `grad` (same layout as
    /// `params`) and, when `dinp` is non-nil, adds du·A to `dinp [rows, in]` (multiplied by `dinpMask`
    /// elementwise if given — the dropout mask scaled by 1/(1 − p)).
    func addBackward(_ s: LoRASlot, grad: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, u: UnsafePointer<Float>,
                     inp: UnsafePointer<Float>, dinp: UnsafeMutablePointer<Float>?, rows: Int, scratch: LoRAScratch,
                     dinpMask: UnsafePointer<Float>? = nil) {
        let r = rank, sc = scale, f32 = Int32(CK_TYPE_F32.rawValue)
        scratch.reserve(rows: rows, rank: r, width: max(s.outFeatures, s.inFeatures))
        // dB += s·dYᵀ·u  ==  dYᵀ·(s·u)
        let su = scratch.u
        su.update(from: u, count: rows * r)
        ck_scale(su, sc, Int64(rows * r))
        ck_matmul_backward_weight(grad + s.bOffset, dout, su, Int64(rows), Int64(r), Int64(s.outFeatures))
        // du = s·dY·B  [rows, r]
        let du = scratch.tmp
        ck_matmul_backward_input(du, dout, b(s), f32, Int64(rows), Int64(r), Int64(s.outFeatures), 0)
        ck_scale(du, sc, Int64(rows * r))
        // dA += duᵀ·x̃
        ck_matmul_backward_weight(grad + s.aOffset, du, inp, Int64(rows), Int64(s.inFeatures), Int64(r))
        guard let dinp else { return }
        if let dinpMask {
            let t = scratch.tmp2
            ck_matmul_backward_input(t, du, a(s), f32, Int64(rows), Int64(s.inFeatures), Int64(r), 0)
            ck_mul_inplace(t, dinpMask, Int64(rows * s.inFeatures))
            ck_add_inplace(dinp, t, Int64(rows * s.inFeatures))
        } else {
            ck_matmul_backward_input(dinp, du, a(s), f32, Int64(rows), Int64(s.inFeatures), Int64(r), 1)
        }
    }
}
