// TrainGraph — forward with saved activations and explicit backward of the Llama decoder for LoRA
// training (llm.c style: one `_backward` per op, no autograd). The base weights are frozen and keep
// their stored type (QLoRA: the GEMMs dequantize 4-bit blocks inside the kernel in both directions);
// only the LoRA A/B parameters get gradients, while dX flows through every frozen matrix.
//
// A micro-batch is a flat stream of N tokens made of sequences, each made of segments (packed rows).
// Positions restart at every segment and attention never crosses a segment boundary, so a packed
// sequence trains exactly like its rows one by one.
//
// Saved per layer (N rows): residual input, RMSNorm rstd ×2, normed inputs ×2, q/k (after RoPE), v,
// attention output + logsumexp, mid residual, gate, up. SwiGLU's output is recomputed in backward.
// The LM head + cross-entropy run in chunks of rows, so the [N, V] logits never exist at once.

import CKernels

/// One micro-batch flattened for the graph.
struct TrainBatch {
    var ids: [Int32] = []
    var pos: [Int32] = []
    /// Next-token target per row, −1 where no loss is taken.
    var targets: [Int32] = []
    /// Attention segments as (start row, length).
    var segments: [(start: Int, count: Int)] = []

    var count: Int { ids.count }
    var targetCount: Int { targets.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// Flattens sequences; `mask[t] == 1` makes `ids[t]` the target of row t−1 inside its segment.
    init(_ sequences: ArraySlice<DatasetExample>) {
        for e in sequences {
            for seg in e.segments where !seg.isEmpty {
                let base = ids.count
                segments.append((base, seg.count))
                for (i, t) in seg.enumerated() {
                    ids.append(e.ids[t])
                    pos.append(Int32(i))
                    let next = t + 1
                    targets.append(next < seg.upperBound && e.mask[next] != 0 ? e.ids[next] : -1)
                }
            }
        }
    }
}

/// Saved activations and gradient scratch for up to `capacity` rows.
final class TrainGraph {
    let model: LlamaModel
    let lora: LoRAAdapter
    /// Gradient of every LoRA parameter, same layout as `lora.params`; accumulated by `backward`.
    let grad: UnsafeMutablePointer<Float>
    let dropout: LoRADropout?
    /// Dropout is applied in training forwards only (and then in the matching backward).
    private var dropoutActive = false
    private(set) var capacity = 0

    // Saved forward state, per layer.
    private var xIn: [UnsafeMutablePointer<Float>] = [], xMid: [UnsafeMutablePointer<Float>] = []
    private var xb1: [UnsafeMutablePointer<Float>] = [], xb2: [UnsafeMutablePointer<Float>] = []
    private var rstd1: [UnsafeMutablePointer<Float>] = [], rstd2: [UnsafeMutablePointer<Float>] = []
    private var q: [UnsafeMutablePointer<Float>] = [], k: [UnsafeMutablePointer<Float>] = [], v: [UnsafeMutablePointer<Float>] = []
    private var att: [UnsafeMutablePointer<Float>] = [], lse: [UnsafeMutablePointer<Float>] = []
    private var gate: [UnsafeMutablePointer<Float>] = [], up: [UnsafeMutablePointer<Float>] = []
    /// LoRA u = x̃·Aᵀ per slot [N, r].
    private var loraU: [UnsafeMutablePointer<Float>] = []
    private var xLast = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var xFinal = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var rstdF = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    // Backward scratch.
    private var dx = UnsafeMutablePointer<Float>.allocate(capacity: 1), dxb = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var tmpC = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var dq = UnsafeMutablePointer<Float>.allocate(capacity: 1), dk = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var dv = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var dgate = UnsafeMutablePointer<Float>.allocate(capacity: 1), dup = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var act = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var dropped = UnsafeMutablePointer<Float>.allocate(capacity: 1), maskBuf = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var owned: [UnsafeMutablePointer<Float>] = []
    private let scratch = LoRAScratch()
    private var pos = UnsafeMutablePointer<Int32>.allocate(capacity: 1)

    /// Rows of logits computed at once by the LM head + loss.
    static let headChunk = 256
    private let logits: UnsafeMutablePointer<Float>

    /// Base GEMMs with bf16 products (`ck_matmul_forward_bf16` / `ck_matmul_backward_input_bf16`).
    private let bf16Products: Bool

    /// RoPE cos/sin per (position, pair) for positions 0..<ropePositions (`ck_rope_table`), built on
    /// first use and grown when a batch reaches further; replaces the per-call cos/sin of every layer.
    private var ropeTable = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var ropePositions = 0

    /// The frozen LM head dequantized and packed once (`ck_matmul_pack`) for the f32-product loss
    /// chunks, instead of once per chunk inside `ck_matmul_forward`; nil until the first loss.
    private var packedHead: UnsafeMutablePointer<Float>?

    init(model: LlamaModel, lora: LoRAAdapter, dropoutSeed: UInt64, bf16Products: Bool = false) {
        self.bf16Products = bf16Products
        self.model = model
        self.lora = lora
        grad = .allocate(capacity: max(1, lora.count))
        grad.initialize(repeating: 0, count: max(1, lora.count))
        dropout = lora.config.dropout > 0 ? LoRADropout(p: Float(lora.config.dropout), seed: dropoutSeed) : nil
        logits = .allocate(capacity: Self.headChunk * model.config.vocabSize)
    }

    deinit {
        releaseBuffers()
        grad.deallocate()
        logits.deallocate()
        pos.deallocate()
        ropeTable.deallocate()
        packedHead?.deallocate()
    }

    /// Makes the RoPE table cover positions 0..<`needed` (grown to a power of two, capped at the
    /// model's context length; positions were checked against it).
    private func ensureRopeTable(_ needed: Int) {
        guard needed > ropePositions else { return }
        let c = model.config
        var p = 64
        while p < needed { p *= 2 }
        p = max(needed, min(p, c.contextLength))
        ropeTable.deallocate()
        ropeTable = .allocate(capacity: p * c.headDim)
        ck_rope_table(ropeTable, Int64(p), Int64(c.headDim), c.ropeTheta)
        ropePositions = p
    }

    /// The LM head packed for `ck_matmul_forward_packed` (packed on first use; the base is frozen).
    private func headPacked() throws -> UnsafeMutablePointer<Float> {
        if let packedHead { return packedHead }
        let head = model.weights.lmHead
        let p = UnsafeMutablePointer<Float>.allocate(capacity: Int(ck_matmul_packed_size(Int64(head.cols), Int64(head.rows))))
        guard ck_matmul_pack(p, head.data, Int32(head.type.rawValue), Int64(head.cols), Int64(head.rows)) == 0 else {
            p.deallocate()
            throw EngineError(.unsupported, "LM head type \(head.type.name) with \(head.cols) columns is not supported by the kernels")
        }
        packedHead = p
        return p
    }

    private func releaseBuffers() {
        owned.forEach { $0.deallocate() }
        owned = []
    }

    /// Bytes held for activations at the current capacity (for reporting).
    private(set) var activationBytes = 0

    /// Makes room for `n` rows.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        releaseBuffers()
        let c = model.config, C = c.hiddenSize, F = c.intermediateSize, L = c.numLayers
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        var bytes = 0
        func alloc(_ width: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * width))
            owned.append(p)
            bytes += n * width * 4
            return p
        }
        func perLayer(_ width: Int) -> [UnsafeMutablePointer<Float>] { (0..<L).map { _ in alloc(width) } }
        xIn = perLayer(C); xMid = perLayer(C); xb1 = perLayer(C); xb2 = perLayer(C)
        rstd1 = perLayer(1); rstd2 = perLayer(1)
        q = perLayer(qDim); k = perLayer(kvDim); v = perLayer(kvDim)
        att = perLayer(qDim); lse = perLayer(c.numHeads)
        gate = perLayer(F); up = perLayer(F)
        loraU = lora.slots.map { _ in alloc(lora.rank) }
        xLast = alloc(C); xFinal = alloc(C); rstdF = alloc(1)
        dx = alloc(C); dxb = alloc(max(C, qDim)); tmpC = alloc(max(C, qDim, F))
        dq = alloc(qDim); dk = alloc(kvDim); dv = alloc(kvDim)
        dgate = alloc(F); dup = alloc(F); act = alloc(F)
        dropped = alloc(max(C, qDim, F)); maskBuf = alloc(max(C, qDim, F))
        pos.deallocate()
        pos = .allocate(capacity: n)
        activationBytes = bytes
        capacity = n
    }

    // MARK: - Forward

    private func base(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: WeightMatrix, _ n: Int) throws {
        guard bf16Products else { return try matmul(out, inp, w, rows: n) }
        let rc = ck_matmul_forward_bf16(out, inp, w.data, Int32(w.type.rawValue), nil, Int64(n), Int64(w.cols), Int64(w.rows))
        guard rc == 0 else {
            throw EngineError(.unsupported, "matmul: weight type \(w.type.name) with \(w.cols) columns is not supported by the kernels")
        }
    }

    /// The LoRA input for a slot: x itself, or dropout(x) written to `dropped` (mask kept in `maskBuf`).
    private func loraInput(_ x: UnsafePointer<Float>, _ s: LoRASlot, rows n: Int, step: Int) -> UnsafePointer<Float> {
        guard let dropout, dropoutActive else { return x }
        let count = n * s.inFeatures
        maskBuf.update(repeating: 1, count: count)
        dropout.apply(maskBuf, maskBuf, count: count, step: step, layer: s.layer, target: s.target)
        dropped.update(from: x, count: count)
        ck_mul_inplace(dropped, maskBuf, Int64(count))
        return UnsafePointer(dropped)
    }

    private func forwardLinear(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: WeightMatrix,
                               layer: Int, target: LoRATarget, rows n: Int, step: Int) throws {
        try base(out, x, w, n)
        guard let s = lora.slot(layer: layer, target: target), let si = lora.slotIndex[layer][target] else { return }
        let inp = loraInput(x, s, rows: n, step: step)
        lora.addForward(s, out: out, inp: inp, rows: n, scratch: scratch, saveU: loraU[si])
    }

    /// Runs the decoder over `batch`, saving what backward needs. Returns nothing; `loss` follows.
    func forward(_ batch: TrainBatch, step: Int, training: Bool) throws {
        dropoutActive = training
        let c = model.config, n = batch.count, C = c.hiddenSize, D = c.headDim, H = c.numHeads, Hkv = c.numKVHeads
        let qDim = H * D, kvDim = Hkv * D, F = c.intermediateSize
        guard n > 0 else { throw EngineError(.invalidArgument, "training batch has no tokens") }
        reserve(n)
        let w = model.weights
        for (i, p) in batch.pos.enumerated() {
            guard Int(p) < c.contextLength else {
                throw EngineError(.invalidArgument, "a training sequence reaches position \(p), beyond the model's context length \(c.contextLength)")
            }
            pos[i] = p
        }
        ensureRopeTable(Int(batch.pos.max() ?? 0) + 1)
        let rc = batch.ids.withUnsafeBufferPointer {
            ck_embedding_forward(xIn[0], $0.baseAddress, w.embed.data, Int32(w.embed.type.rawValue), Int64(n), Int64(C))
        }
        guard rc == 0 else { throw EngineError(.unsupported, "embedding type \(w.embed.type.name) is not supported") }

        for l in 0..<c.numLayers {
            let lw = w.layers[l]
            lw.attnNorm.withUnsafeBufferPointer { ck_rmsnorm_forward(xb1[l], rstd1[l], xIn[l], $0.baseAddress, c.rmsNormEps, Int64(n), Int64(C)) }
            try forwardLinear(q[l], xb1[l], lw.wq, layer: l, target: .q, rows: n, step: step)
            try forwardLinear(k[l], xb1[l], lw.wk, layer: l, target: .k, rows: n, step: step)
            try forwardLinear(v[l], xb1[l], lw.wv, layer: l, target: .v, rows: n, step: step)
            ck_rope_forward_cached(q[l], pos, ropeTable, Int64(n), Int64(H), Int64(D))
            ck_rope_forward_cached(k[l], pos, ropeTable, Int64(n), Int64(Hkv), Int64(D))
            for seg in batch.segments {
                ck_attention_forward_train(att[l] + seg.start * qDim, lse[l] + seg.start * H, q[l] + seg.start * qDim,
                                           k[l] + seg.start * kvDim, v[l] + seg.start * kvDim,
                                           Int64(seg.count), Int64(H), Int64(Hkv), Int64(D))
            }
            try forwardLinear(tmpC, att[l], lw.wo, layer: l, target: .o, rows: n, step: step)
            xMid[l].update(from: xIn[l], count: n * C)
            ck_add_inplace(xMid[l], tmpC, Int64(n * C))

            lw.ffnNorm.withUnsafeBufferPointer { ck_rmsnorm_forward(xb2[l], rstd2[l], xMid[l], $0.baseAddress, c.rmsNormEps, Int64(n), Int64(C)) }
            try forwardLinear(gate[l], xb2[l], lw.wGate, layer: l, target: .gate, rows: n, step: step)
            try forwardLinear(up[l], xb2[l], lw.wUp, layer: l, target: .up, rows: n, step: step)
            ck_swiglu_forward(act, gate[l], up[l], Int64(n * F))
            try forwardLinear(tmpC, act, lw.wDown, layer: l, target: .down, rows: n, step: step)
            let next = l + 1 < c.numLayers ? xIn[l + 1] : xLast
            next.update(from: xMid[l], count: n * C)
            ck_add_inplace(next, tmpC, Int64(n * C))
        }
        w.finalNorm.withUnsafeBufferPointer { ck_rmsnorm_forward(xFinal, rstdF, xLast, $0.baseAddress, c.rmsNormEps, Int64(n), Int64(C)) }
    }

    // MARK: - Loss and backward

    /// Cross-entropy over the batch's targets, chunk by chunk through the LM head. Returns the summed
    /// loss (nats) and the number of targets. With `gradScale` non-nil the gradient d(loss·gradScale)/dx
    /// of the final-normed hidden states is left in `dxb` for `backward`.
    func loss(_ batch: TrainBatch, gradScale: Float?) throws -> (sum: Double, count: Int) {
        let c = model.config, n = batch.count, C = c.hiddenSize, V = c.vocabSize, head = model.weights.lmHead
        var sum = 0.0, count = 0
        let losses = UnsafeMutablePointer<Float>.allocate(capacity: Self.headChunk)
        defer { losses.deallocate() }
        var start = 0
        while start < n {
            let rows = min(Self.headChunk, n - start)
            let hasTargets = batch.targets[start..<(start + rows)].contains { $0 >= 0 }
            if !hasTargets {
                if gradScale != nil { (dxb + start * C).update(repeating: 0, count: rows * C) }
                start += rows
                continue
            }
            if bf16Products {
                try base(logits, xFinal + start * C, head, rows)
            } else {
                let rc = ck_matmul_forward_packed(logits, xFinal + start * C, try headPacked(), nil, Int64(rows), Int64(C), Int64(V))
                guard rc == 0 else { throw EngineError(.internal, "packed LM head forward failed (rc \(rc))") }
            }
            let k = batch.targets.withUnsafeBufferPointer {
                ck_xent_forward_backward(losses, logits, $0.baseAddress! + start, gradScale ?? 0, Int64(rows), Int64(V))
            }
            for r in 0..<rows where batch.targets[start + r] >= 0 { sum += Double(losses[r]) }
            count += Int(k)
            if gradScale != nil {
                let rc = (bf16Products ? ck_matmul_backward_input_bf16 : ck_matmul_backward_input)(
                    dxb + start * C, logits, head.data, Int32(head.type.rawValue), Int64(rows), Int64(C), Int64(V), 0)
                guard rc == 0 else { throw EngineError(.unsupported, "LM head type \(head.type.name) has no backward kernel") }
            }
            start += rows
        }
        return (sum, count)
    }

    private func backwardInput(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ w: WeightMatrix,
                               rows n: Int, accumulate: Bool) throws {
        let rc = (bf16Products ? ck_matmul_backward_input_bf16 : ck_matmul_backward_input)(
            dinp, dout, w.data, Int32(w.type.rawValue), Int64(n), Int64(w.cols), Int64(w.rows), accumulate ? 1 : 0)
        guard rc == 0 else { throw EngineError(.unsupported, "backward: weight type \(w.type.name) is not supported by the kernels") }
    }

    /// dX through a frozen linear plus its LoRA path (parameter grads into `grad`).
    private func backwardLinear(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                _ w: WeightMatrix, layer: Int, target: LoRATarget, rows n: Int, step: Int, accumulate: Bool,
                                needInputGrad: Bool = true) throws {
        if needInputGrad { try backwardInput(dinp, dout, w, rows: n, accumulate: accumulate) }
        guard let s = lora.slot(layer: layer, target: target), let si = lora.slotIndex[layer][target] else { return }
        let inp = loraInput(x, s, rows: n, step: step)
        lora.addBackward(s, grad: grad, dout: dout, u: loraU[si], inp: inp, dinp: needInputGrad ? dinp : nil, rows: n, scratch: scratch,
                         dinpMask: dropout != nil && dropoutActive ? UnsafePointer(maskBuf) : nil)
    }

    /// Backpropagates the gradient left in `dxb` by `loss(_:gradScale:)` down to the embeddings,
    /// accumulating LoRA gradients into `grad`.
    func backward(_ batch: TrainBatch, step: Int) throws {
        let c = model.config, n = batch.count, C = c.hiddenSize, D = c.headDim, H = c.numHeads, Hkv = c.numKVHeads
        let qDim = H * D, kvDim = Hkv * D, F = c.intermediateSize
        let w = model.weights
        // Final norm.
        w.finalNorm.withUnsafeBufferPointer { ck_rmsnorm_backward(dx, nil, dxb, xLast, $0.baseAddress, rstdF, Int64(n), Int64(C)) }

        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let lw = w.layers[l]
            // FFN: out = xMid + down(silu(gate)·up); dx holds d(out).
            ck_swiglu_forward(act, gate[l], up[l], Int64(n * F))
            try backwardLinear(tmpC, dx, act, lw.wDown, layer: l, target: .down, rows: n, step: step, accumulate: false)
            ck_swiglu_backward(dgate, dup, tmpC, gate[l], up[l], Int64(n * F))
            try backwardLinear(dxb, dgate, xb2[l], lw.wGate, layer: l, target: .gate, rows: n, step: step, accumulate: false)
            try backwardLinear(dxb, dup, xb2[l], lw.wUp, layer: l, target: .up, rows: n, step: step, accumulate: true)
            lw.ffnNorm.withUnsafeBufferPointer { ck_rmsnorm_backward(tmpC, nil, dxb, xMid[l], $0.baseAddress, rstd2[l], Int64(n), Int64(C)) }
            ck_add_inplace(dx, tmpC, Int64(n * C))          // dx = d(xMid)

            // Attention: xMid = xIn + o(att).
            try backwardLinear(dxb, dx, att[l], lw.wo, layer: l, target: .o, rows: n, step: step, accumulate: false)
            for seg in batch.segments {
                let s = seg.start
                ck_attention_backward(dq + s * qDim, dk + s * kvDim, dv + s * kvDim, dxb + s * qDim, q[l] + s * qDim,
                                      k[l] + s * kvDim, v[l] + s * kvDim, att[l] + s * qDim, lse[l] + s * H,
                                      Int64(seg.count), Int64(H), Int64(Hkv), Int64(D))
            }
            ck_rope_backward_cached(dq, pos, ropeTable, Int64(n), Int64(H), Int64(D))
            ck_rope_backward_cached(dk, pos, ropeTable, Int64(n), Int64(Hkv), Int64(D))
            // Below layer 0 are the frozen embeddings: its input gradient is never used.
            let below = l > 0
            try backwardLinear(dxb, dq, xb1[l], lw.wq, layer: l, target: .q, rows: n, step: step, accumulate: false, needInputGrad: below)
            try backwardLinear(dxb, dk, xb1[l], lw.wk, layer: l, target: .k, rows: n, step: step, accumulate: true, needInputGrad: below)
            try backwardLinear(dxb, dv, xb1[l], lw.wv, layer: l, target: .v, rows: n, step: step, accumulate: true, needInputGrad: below)
            guard below else { break }
            lw.attnNorm.withUnsafeBufferPointer { ck_rmsnorm_backward(tmpC, nil, dxb, xIn[l], $0.baseAddress, rstd1[l], Int64(n), Int64(C)) }
            ck_add_inplace(dx, tmpC, Int64(n * C))          // dx = d(xIn)
        }
    }

    /// Zeroes the gradient buffer.
    func zeroGrad() { grad.update(repeating: 0, count: max(1, lora.count)) }
}

// MARK: - Public gradient entry point

/// Loss and LoRA gradients for a set of sequences in one pass (no optimizer step): what the gradient
/// checks and the PEFT parity test compare against references.
public enum LoRAGradients {
    /// Mean cross-entropy over the target tokens of `sequences` (one micro-batch) and its gradient with
    /// respect to every parameter of `lora` (flat, `lora.params` layout). `model`'s own adapter is ignored.
    /// Dropout, when the adapter's config has it, uses the masks of optimizer step `step`.
    /// `bf16Products`: base GEMMs with bf16 products, as `TrainingOptions.bf16Products`.
    public static func compute(model: LlamaModel, lora: LoRAAdapter, sequences: [DatasetExample],
                               dropoutSeed: UInt64 = 0, step: Int = 0,
                               bf16Products: Bool = false) throws -> (loss: Double, targets: Int, grad: [Float]) {
        let graph = TrainGraph(model: model.with(adapter: nil), lora: lora, dropoutSeed: dropoutSeed, bf16Products: bf16Products)
        let batch = TrainBatch(sequences[...])
        let targets = batch.targetCount
        guard targets > 0 else { throw EngineError(.invalidArgument, "no target tokens in the sequences") }
        try graph.forward(batch, step: step, training: true)
        let r = try graph.loss(batch, gradScale: Float(1.0 / Double(targets)))
        try graph.backward(batch, step: step)
        return (r.sum / Double(targets), targets, Array(UnsafeBufferPointer(start: graph.grad, count: lora.count)))
    }
}
