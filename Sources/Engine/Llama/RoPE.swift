// RoPE — how one layer rotates q and k: the kernel's θ, or explicit inverse frequencies when the family
// scales them (HF `rope_scaling` llama3/linear, GGUF `rope_freqs.weight`). Sliding-window layers may have
// their own θ (Gemma 3's local layers use 10,000 and no scaling).

import CKernels

/// The RoPE of one kind of layer.
struct RoPEPlan: Sendable, Equatable {
    let theta: Float
    /// [D/2] inverse frequencies; nil: the kernel computes θ^(-2i/D) itself.
    let invFreq: [Float]?

    /// Rotates x [rows, heads, D] in place at positions `pos`.
    func apply(_ x: UnsafeMutablePointer<Float>, pos: UnsafePointer<Int32>, rows: Int, heads: Int, headDim: Int) {
        if let invFreq {
            invFreq.withUnsafeBufferPointer {
                ck_rope_forward_freq(x, pos, Int64(rows), Int64(heads), Int64(headDim), $0.baseAddress)
            }
        } else {
            ck_rope_forward(x, pos, Int64(rows), Int64(heads), Int64(headDim), theta)
        }
    }
}

extension LlamaConfig {
    /// θ^(-2i/D) for i < D/2, computed by the kernel (the same float32 values its RoPE uses).
    static func inverseFrequencies(headDim: Int, theta: Float) -> [Float] {
        var out = [Float](repeating: 0, count: headDim / 2)
        out.withUnsafeMutableBufferPointer { ck_rope_inv_freq($0.baseAddress, Int64(headDim), theta) }
        return out
    }

    /// The RoPE of global layers (with scaling: `ropeScaling`, else GGUF's per-pair divisors `freqFactors`)
    /// and of sliding-window layers (their own θ, unscaled).
    func ropePlans(freqFactors: [Float]?) -> (global: RoPEPlan, local: RoPEPlan) {
        var global = RoPEPlan(theta: ropeTheta, invFreq: nil)
        if let ropeScaling {
            global = RoPEPlan(theta: ropeTheta,
                              invFreq: ropeScaling.apply(to: Self.inverseFrequencies(headDim: headDim, theta: ropeTheta)))
        } else if let freqFactors {
            let base = Self.inverseFrequencies(headDim: headDim, theta: ropeTheta)
            global = RoPEPlan(theta: ropeTheta, invFreq: zip(base, freqFactors).map { $0 / $1 })
        }
        return (global, RoPEPlan(theta: ropeLocalTheta ?? ropeTheta, invFreq: nil))
    }
}
