// Forward — the decoder forward pass over one or more sequences, each with its own KV cache. One pass
// for every family; the config switches the few places where families differ (see LlamaConfig):
//
//   x = embed[ids] · embeddingScale                                   (Gemma: √C)
//   per layer (x is the residual stream [T, C]):
//     xb = rmsnorm(x) · attn_norm;  q,k,v = xb·Wqᵀ (+bq), xb·Wkᵀ (+bk), xb·Wvᵀ (+bv, qwen2)
//     q, k = rmsnorm per head · q_norm, k_norm                         (qwen3, gemma3)
//     rope(q), rope(k) with the layer's plan (θ, scaled frequencies, or the sliding layers' θ)
//     append k,v to the cache;  att = causal GQA attention (within the window on sliding layers)
//     o = att·Woᵀ;  o = rmsnorm(o) · post_attention_norm (gemma3);  x += o
//     xb = rmsnorm(x) · ffn_norm;  f = (act(xb·Wgateᵀ) ⊙ xb·Wupᵀ)·Wdownᵀ   (act: silu, or gelu_tanh for gemma3)
//     f = rmsnorm(f) · post_ffw_norm (gemma3);  x += f
//   x = rmsnorm(x) · final_norm. The LM head is applied by the caller, only on the rows it needs.

import CKernels

/// Scratch activations for `rows` token rows, grown on demand and reused across calls.
final class Activations {
    private(set) var rows = 0
    private var buffers: [UnsafeMutablePointer<Float>] = []
    var x, xb, xb2, q, k, v, att, gate, up: UnsafeMutablePointer<Float>
    var pos: UnsafeMutablePointer<Int32>
    let lora = LoRAScratch()

    init() {
        let empty = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        x = empty; xb = empty; xb2 = empty; q = empty; k = empty; v = empty; att = empty; gate = empty; up = empty
        pos = .allocate(capacity: 1)
        buffers = [empty]
    }

    deinit { free() }

    private func free() {
        buffers.forEach { $0.deallocate() }
        buffers = []
        pos.deallocate()
    }

    /// Makes room for `n` rows of a model with config `c`.
    func reserve(_ n: Int, _ c: LlamaConfig) {
        guard n > rows else { return }
        free()
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        func alloc(_ width: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n * width)
            buffers.append(p)
            return p
        }
        x = alloc(c.hiddenSize)                 // residual stream   [n, C]
        xb = alloc(max(c.hiddenSize, qDim))     // normed input      [n, C]
        xb2 = alloc(c.hiddenSize)               // block output      [n, C]
        q = alloc(qDim)                         // queries           [n, H, D]
        k = alloc(kvDim)                        // new keys          [n, Hkv, D]
        v = alloc(kvDim)                        // new values        [n, Hkv, D]
        att = alloc(qDim)                       // attention output  [n, H*D]
        gate = alloc(c.intermediateSize)        // gate / SwiGLU     [n, F]
        up = alloc(c.intermediateSize)          // up projection     [n, F]
        pos = .allocate(capacity: n)            // absolute positions [n]
        rows = n
    }
}

/// y[T, N] = x[T, K] · Wᵀ (+ bias [N]) through the kernel module (on `packed` panels of W when they are
/// held for the path it takes: the same bits); throws if the kernel rejects the weight type.
@inline(__always)
func matmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: WeightMatrix, rows t: Int,
            bias: UnsafePointer<Float>? = nil, packed: PackedWeights? = nil) throws {
    if let (kind, p) = packed?.panels(for: w, rows: t) {
        let T = Int64(t), K = Int64(w.cols), N = Int64(w.rows)
        let rc = kind == .f32 ? ck_matmul_forward_packed(out, inp, p.assumingMemoryBound(to: Float.self), bias, T, K, N)
                              : ck_matmul_forward_packed_bf16(out, inp, p.assumingMemoryBound(to: UInt32.self), bias, T, K, N)
        if rc == 0 { return }
    }
    let rc = ck_matmul_forward(out, inp, w.data, Int32(w.type.rawValue), bias, Int64(t), Int64(w.cols), Int64(w.rows))
    guard rc == 0 else {
        throw EngineError(.unsupported, "matmul: weight type \(w.type.name) with \(w.cols) columns is not supported by the kernels")
    }
}

extension LlamaModel {
    /// `out [rows, ·] = inp·Wᵀ (+ bias)` plus the adapter's LoRA path for (`layer`, `target`) when there is one
    /// (PEFT order: the base layer with its bias, then the LoRA term).
    @inline(__always)
    func linear(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: WeightMatrix, rows: Int,
                layer: Int, target: LoRATarget, acts: Activations, bias: [Float]? = nil) throws {
        if let bias {
            try bias.withUnsafeBufferPointer { try matmul(out, inp, w, rows: rows, bias: $0.baseAddress, packed: weights.packed) }
        } else {
            try matmul(out, inp, w, rows: rows, packed: weights.packed)
        }
        if let adapter, let s = adapter.slot(layer: layer, target: target) {
            adapter.addForward(s, out: out, inp: inp, rows: rows, scratch: acts.lora)
        }
    }

    /// Runs the decoder over new tokens of several sessions at once (their rows are batched through
    /// every GEMM; attention stays per session). Appends to each session's KV cache and returns the
    /// final-normed hidden states `[Σ tokens, C]`, valid until the next call with `acts`.
    func forwardHidden(_ batch: [(session: LlamaSession, tokens: [Int32])], acts: Activations) throws
        -> UnsafeMutablePointer<Float> {
        let c = config, C = c.hiddenSize, D = c.headDim, H = c.numHeads, Hkv = c.numKVHeads
        let kvDim = Hkv * D
        let total = batch.reduce(0) { $0 + $1.tokens.count }
        guard total > 0 else { throw EngineError(.invalidArgument, "forward: no tokens") }
        acts.reserve(total, c)

        // Embeddings and positions.
        var row = 0
        for (s, toks) in batch {
            guard s.position + toks.count <= c.contextLength else {
                throw EngineError(.invalidArgument,
                                  "sequence of \(s.position + toks.count) tokens exceeds the context length \(c.contextLength)")
            }
            for (i, id) in toks.enumerated() {
                guard id >= 0, Int(id) < c.vocabSize else {
                    throw EngineError(.invalidArgument, "token id \(id) is outside the vocabulary [0, \(c.vocabSize))")
                }
                acts.pos[row + i] = Int32(s.position + i)
            }
            try s.reserve(s.position + toks.count)
            let rc = toks.withUnsafeBufferPointer {
                ck_embedding_forward(acts.x + row * C, $0.baseAddress, weights.embed.data,
                                     Int32(weights.embed.type.rawValue), Int64(toks.count), Int64(C))
            }
            guard rc == 0 else { throw EngineError(.unsupported, "embedding type \(weights.embed.type.name) is not supported") }
            row += toks.count
        }
        if c.embeddingScale != 1 { scale(acts.x, count: total * C, by: c.embeddingScale) }

        for (l, w) in weights.layers.enumerated() {
            w.attnNorm.withUnsafeBufferPointer {
                ck_rmsnorm_forward(acts.xb, nil, acts.x, $0.baseAddress, c.rmsNormEps, Int64(total), Int64(C))
            }
            try linear(acts.q, acts.xb, w.wq, rows: total, layer: l, target: .q, acts: acts, bias: w.bq)
            try linear(acts.k, acts.xb, w.wk, rows: total, layer: l, target: .k, acts: acts, bias: w.bk)
            try linear(acts.v, acts.xb, w.wv, rows: total, layer: l, target: .v, acts: acts, bias: w.bv)
            if let qn = w.qNorm, let kn = w.kNorm {
                qn.withUnsafeBufferPointer {
                    ck_rmsnorm_forward(acts.q, nil, acts.q, $0.baseAddress, c.rmsNormEps, Int64(total * H), Int64(D))
                }
                kn.withUnsafeBufferPointer {
                    ck_rmsnorm_forward(acts.k, nil, acts.k, $0.baseAddress, c.rmsNormEps, Int64(total * Hkv), Int64(D))
                }
            }
            let rope = ropePlan(layer: l)
            rope.apply(acts.q, pos: acts.pos, rows: total, heads: H, headDim: D)
            rope.apply(acts.k, pos: acts.pos, rows: total, heads: Hkv, headDim: D)
            if let s = c.queryPreAttnScalar, s != Float(D) {   // the kernel scales by D^-½
                scale(acts.q, count: total * H * D, by: (Float(D) / s).squareRoot())
            }
            let window = c.isSliding(layer: l) ? Int64(c.slidingWindow) : 0
            row = 0
            for (s, toks) in batch {
                let n = toks.count, p0 = s.position
                let kc = s.kCache[l], vc = s.vCache[l]
                (kc + p0 * kvDim).update(from: acts.k + row * kvDim, count: n * kvDim)
                (vc + p0 * kvDim).update(from: acts.v + row * kvDim, count: n * kvDim)
                ck_attention_forward_window(acts.att + row * H * D, acts.q + row * H * D, kc, vc,
                                            Int64(n), Int64(p0 + n), Int64(p0), Int64(H), Int64(Hkv), Int64(D), window)
                row += n
            }
            try linear(acts.xb2, acts.att, w.wo, rows: total, layer: l, target: .o, acts: acts)
            if let pn = w.postAttnNorm {
                pn.withUnsafeBufferPointer {
                    ck_rmsnorm_forward(acts.xb2, nil, acts.xb2, $0.baseAddress, c.rmsNormEps, Int64(total), Int64(C))
                }
            }
            ck_add_inplace(acts.x, acts.xb2, Int64(total * C))

            w.ffnNorm.withUnsafeBufferPointer {
                ck_rmsnorm_forward(acts.xb, nil, acts.x, $0.baseAddress, c.rmsNormEps, Int64(total), Int64(C))
            }
            try linear(acts.gate, acts.xb, w.wGate, rows: total, layer: l, target: .gate, acts: acts)
            try linear(acts.up, acts.xb, w.wUp, rows: total, layer: l, target: .up, acts: acts)
            switch c.activation {
            case .silu: ck_swiglu_forward(acts.gate, acts.gate, acts.up, Int64(total * c.intermediateSize))
            case .geluTanh: ck_geglu_forward(acts.gate, acts.gate, acts.up, Int64(total * c.intermediateSize))
            }
            try linear(acts.xb2, acts.gate, w.wDown, rows: total, layer: l, target: .down, acts: acts)
            if let pn = w.postFFNNorm {
                pn.withUnsafeBufferPointer {
                    ck_rmsnorm_forward(acts.xb2, nil, acts.xb2, $0.baseAddress, c.rmsNormEps, Int64(total), Int64(C))
                }
            }
            ck_add_inplace(acts.x, acts.xb2, Int64(total * C))
        }
        for (s, toks) in batch { s.position += toks.count }
        weights.finalNorm.withUnsafeBufferPointer {
            ck_rmsnorm_forward(acts.x, nil, acts.x, $0.baseAddress, c.rmsNormEps, Int64(total), Int64(C))
        }
        return acts.x
    }

    /// Logits `[rows, V]` for `rows` hidden states `[rows, C]`.
    func lmHead(_ hidden: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>) throws {
        try matmul(out, hidden, weights.lmHead, rows: rows, packed: weights.packed)
    }
}

/// x[i] *= s for i < count.
@inline(__always)
func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by s: Float) {
    for i in 0..<count { x[i] *= s }
}
