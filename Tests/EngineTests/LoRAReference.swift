// LoRAReference — an independent float64 Llama + LoRA forward and loss, written naively from the
// HF definitions (rotate_half RoPE incl. llama3/linear scaling, causal GQA, SwiGLU, tied or untied head, q/k/v biases when the weights have them), for gradient checks by central
// finite differences. It reads TinyLlama's HF-order float weights directly, not the engine's loader.
// Qwen3 / Gemma 3 as their HF modeling files: per-head q/k RMSNorm before RoPE, Gemma's (1 + w) norms
// over the raw HF weights, post-attention / post-feedforward norms, GeGLU (tanh), embeddings × √C,
// attention scale query_pre_attn_scalar^-½, sliding-window layers with their own RoPE θ.

import Foundation
import Testing
import Engine

struct LoRAReference {
    let c: LlamaConfig
    let w: [String: [Double]]
    let slots: [LoRASlot]
    let rank: Int
    let scale: Double

    init(config: LlamaConfig, weights: [String: (shape: [Int], values: [Float])], lora: LoRAAdapter) {
        c = config
        w = weights.mapValues { $0.values.map(Double.init) }
        slots = lora.slots
        rank = lora.rank
        scale = Double(lora.scale)
    }

    /// y[n, out] = x[n, in]·Wᵀ (+ LoRA of (layer, target) when adapted).
    private func linear(_ x: [[Double]], _ name: String, layer: Int, target: LoRATarget, params: [Double]) -> [[Double]] {
        let W = w["model.layers.\(layer).\(target.module).weight"]!
        let (out, inF) = target.shape(c)
        let b = w["model.layers.\(layer).\(target.module).bias"]   // qwen2's q/k/v biases
        var y = x.map { row in (0..<out).map { o in (0..<inF).reduce(b?[o] ?? 0.0) { $0 + row[$1] * W[o * inF + $1] } } }
        if let s = slots.first(where: { $0.layer == layer && $0.target == target }) {
            for (t, row) in x.enumerated() {
                let u = (0..<rank).map { j in (0..<inF).reduce(0.0) { $0 + row[$1] * params[s.aOffset + j * inF + $1] } }
                for o in 0..<out { y[t][o] += scale * (0..<rank).reduce(0.0) { $0 + u[$1] * params[s.bOffset + o * rank + $1] } }
            }
        }
        return y
    }

    /// A norm weight as the model multiplies by it: Gemma's HF weights are w of (1 + w).
    private func normWeight(_ name: String) -> [Double] {
        let g = w[name]!
        return c.architecture == .gemma3 ? g.map { 1 + $0 } : g
    }

    /// RMSNorm of every `width`-wide piece of each row (per head for q/k norm).
    private func headNorm(_ x: [[Double]], _ g: [Double], width: Int) -> [[Double]] {
        x.map { row in
            stride(from: 0, to: row.count, by: width).flatMap { s in rmsnorm([Array(row[s..<(s + width)])], g)[0] }
        }
    }

    private func rmsnorm(_ x: [[Double]], _ g: [Double]) -> [[Double]] {
        x.map { row in
            let ms = row.reduce(0) { $0 + $1 * $1 } / Double(row.count)
            let r = 1 / (ms + Double(c.rmsNormEps)).squareRoot()
            return row.indices.map { row[$0] * r * g[$0] }
        }
    }

    private func rope(_ x: inout [[Double]], heads: Int, layer l: Int) {
        let D = c.headDim
        let sliding = c.isSliding(layer: l)
        let theta = Double(sliding ? (c.ropeLocalTheta ?? c.ropeTheta) : c.ropeTheta)
        // Scaled RoPE (llama3/linear, global layers): the float32 inverse frequencies transformers computes.
        let scaled: [Double]? = sliding ? nil : c.ropeScaling.map { s in
            s.apply(to: (0..<(D / 2)).map { Float(1 / pow(Double(c.ropeTheta), 2 * Double($0) / Double(D))) }).map(Double.init)
        }
        for t in x.indices {
            for h in 0..<heads {
                for i in 0..<(D / 2) {
                    let f = scaled?[i] ?? pow(theta, -2 * Double(i) / Double(D)), a = Double(t) * f
                    let x0 = x[t][h * D + i], x1 = x[t][h * D + i + D / 2]
                    x[t][h * D + i] = x0 * cos(a) - x1 * sin(a)
                    x[t][h * D + i + D / 2] = x1 * cos(a) + x0 * sin(a)
                }
            }
        }
    }

    /// Summed loss over the targets of one segment (ids) with mask, and the target count.
    private func segmentLoss(_ ids: [Int32], _ mask: [UInt8], params: [Double]) -> (Double, Int) {
        let C = c.hiddenSize, D = c.headDim, H = c.numHeads, Hkv = c.numKVHeads, V = c.vocabSize
        let E = w["model.embed_tokens.weight"]!
        let es = Double(c.embeddingScale)
        var x = ids.map { id in (0..<C).map { E[Int(id) * C + $0] * es } }
        let n = ids.count
        let gemma = c.architecture == .gemma3
        let attScale = 1 / Double(c.queryPreAttnScalar ?? Float(D)).squareRoot()
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            let h = rmsnorm(x, normWeight(p + "input_layernorm.weight"))
            var q = linear(h, "q", layer: l, target: .q, params: params)
            var k = linear(h, "k", layer: l, target: .k, params: params)
            let v = linear(h, "v", layer: l, target: .v, params: params)
            if c.qkNorm {
                q = headNorm(q, normWeight(p + "self_attn.q_norm.weight"), width: D)
                k = headNorm(k, normWeight(p + "self_attn.k_norm.weight"), width: D)
            }
            rope(&q, heads: H, layer: l)
            rope(&k, heads: Hkv, layer: l)
            let window = c.isSliding(layer: l) ? c.slidingWindow : Int.max
            var att = [[Double]](repeating: [Double](repeating: 0, count: H * D), count: n)
            for t in 0..<n {
                let keys = Array(max(0, t - window + 1)...t)   // t − u < window
                for hh in 0..<H {
                    let kh = hh / (H / Hkv)
                    let s = keys.map { u in (0..<D).reduce(0.0) { $0 + q[t][hh * D + $1] * k[u][kh * D + $1] } * attScale }
                    let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
                    for d in 0..<D { att[t][hh * D + d] = keys.indices.reduce(0.0) { $0 + e[$1] / z * v[keys[$1]][kh * D + d] } }
                }
            }
            var o = linear(att, "o", layer: l, target: .o, params: params)
            if gemma { o = rmsnorm(o, normWeight(p + "post_attention_layernorm.weight")) }
            for t in 0..<n { for i in 0..<C { x[t][i] += o[t][i] } }
            let h2 = rmsnorm(x, normWeight(p + (gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")))
            let g = linear(h2, "gate", layer: l, target: .gate, params: params)
            let u = linear(h2, "up", layer: l, target: .up, params: params)
            let act = zip(g, u).map { gr, ur in
                gr.indices.map { i -> Double in
                    let z = gr[i]
                    switch c.activation {
                    case .silu: return z / (1 + exp(-z)) * ur[i]
                    case .geluTanh: return 0.5 * z * (1 + tanh((2 / Double.pi).squareRoot() * (z + 0.044715 * z * z * z))) * ur[i]
                    }
                }
            }
            var dn = linear(act, "down", layer: l, target: .down, params: params)
            if gemma { dn = rmsnorm(dn, normWeight(p + "post_feedforward_layernorm.weight")) }
            for t in 0..<n { for i in 0..<C { x[t][i] += dn[t][i] } }
        }
        let xf = rmsnorm(x, normWeight("model.norm.weight"))
        let head = w["lm_head.weight"] ?? E   // untied head (Llama 3.x tiny) or the embedding
        var sum = 0.0, count = 0
        for t in 0..<(n - 1) where mask[t + 1] != 0 {
            let logits = (0..<V).map { vv in (0..<C).reduce(0.0) { $0 + xf[t][$1] * head[vv * C + $1] } }
            let m = logits.max()!
            let lse = m + log(logits.reduce(0.0) { $0 + exp($1 - m) })
            sum += lse - logits[Int(ids[t + 1])]
            count += 1
        }
        return (sum, count)
    }

    /// Mean loss over all targets of `sequences` (segments attend only within themselves).
    func loss(_ sequences: [DatasetExample], params: [Double]) -> Double {
        var sum = 0.0, count = 0
        for e in sequences {
            for seg in e.segments {
                let (s, k) = segmentLoss(Array(e.ids[seg]), Array(e.mask[seg]), params: params)
                sum += s
                count += k
            }
        }
        return sum / Double(count)
    }
}

extension LoRAReference {
    /// The float64 loss at the adapter's parameters equals `loss` within 1e-4, and `grad` matches central
    /// differences of it (ε = 1e-5, relative error < 2e-3) at two seeded entries of every slot's A and of its B.
    func expectFiniteDifferences(_ seqs: [DatasetExample], loss: Double, grad: [Float], lora: LoRAAdapter) {
        var p = (0..<lora.count).map { Double(lora.params[$0]) }
        let refLoss = self.loss(seqs, params: p)
        #expect(abs(loss - refLoss) < 1e-4, "loss \(loss) vs float64 reference \(refLoss)")
        var rng = SplitMix64(seed: 3)
        var worst = 0.0
        for s in lora.slots {
            for (off, n) in [(s.aOffset, lora.rank * s.inFeatures), (s.bOffset, lora.rank * s.outFeatures)] {
                for _ in 0..<2 {
                    let i = off + Int(rng.next() % UInt64(n))
                    let eps = 1e-5, keep = p[i]
                    p[i] = keep + eps; let up = self.loss(seqs, params: p)
                    p[i] = keep - eps; let dn = self.loss(seqs, params: p)
                    p[i] = keep
                    let fd = (up - dn) / (2 * eps)
                    let err = abs(Double(grad[i]) - fd) / max(1e-3, abs(fd))
                    worst = max(worst, err)
                    #expect(err < 2e-3, "layer \(s.layer) \(s.target.rawValue) param \(i - off): grad \(grad[i]) vs FD \(fd)")
                }
            }
        }
        #expect(worst < 2e-3)
    }
}
