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
// Qwen2's frozen q/k/v biases are added inside the base GEMMs (the kernels' bias argument): they need
// no gradient and do not change dX, so backward is unchanged.
//
// The families follow the model description (LlamaConfig) as the inference forward does:
//   qkNorm (Qwen3, Gemma 3): q, k = rmsnorm per head [N·H, D] before RoPE; the raw projections and
//     their rstd are saved, backward is the RMSNorm dX (weights frozen).
//   sandwichNorms (Gemma 3): the o-proj and down-proj outputs are RMS-normed before the residual add;
//     the raw outputs and rstd are saved, d(raw) = rmsnorm dX of d(residual).
//   activation .geluTanh: GeGLU forward/backward (the table's `family` ops).
//   embeddingScale: x0 = embed[ids]·s (the embeddings are frozen: nothing flows back).
//   queryPreAttnScalar ≠ D: q·√(D/s) after RoPE (the kernels scale by D^-½), dq scaled the same.
//   per-layer RoPE: sliding layers rotate with their own θ (a second cos/sin table).
//   slidingWindow: on sliding layers a segment longer than the window attends within it
//     (ck_attention_forward_train_window / ck_attention_backward_window).
// A tied head is the embedding matrix itself (no copy): the loss GEMMs read its stored blocks, except that
// a head whose f32 panels fit `packedHeadLimit` (SmolLM2's) is packed once (V·C floats) for the
// f32-product forward; a large vocabulary (Qwen2.5, Gemma 3) never gets an f32 copy.

import CKernels
import Foundation

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

/// Saved activations and gradient scratch for up to `capacity` rows, in the memory of the graph's
/// `KernelTable` (host memory on the CPU, device memory on CUDA). Every op goes through the table;
/// host data reaches the device only through its copies: the batch's ids/positions/targets per
/// micro-batch, dropout masks (generated on the host from the counter-based hash), the frozen
/// weights once (`DeviceWeights`), and back: the per-row losses of each LM-head chunk.
final class TrainGraph {
    let model: LlamaModel
    let lora: LoRAAdapter
    let k: KernelTable
    /// The frozen base at device addresses.
    let weights: DeviceWeights
    /// LoRA parameters in device memory (`lora.params` itself on a host-addressable table): the
    /// optimizer updates these; `pullParams`/`pushParams` move them to/from `lora.params`.
    let params: FPtr
    /// Gradient of every LoRA parameter (device), same layout as `lora.params`; accumulated by `backward`.
    let grad: FPtr
    let dropout: LoRADropout?
    /// Dropout is applied in training forwards only (and then in the matching backward).
    private var dropoutActive = false
    private(set) var capacity = 0

    // Saved forward state, per layer.
    private var xIn: [FPtr] = [], xMid: [FPtr] = []
    private var xb1: [FPtr] = [], xb2: [FPtr] = []
    private var rstd1: [FPtr] = [], rstd2: [FPtr] = []
    private var q: [FPtr] = [], kk: [FPtr] = [], v: [FPtr] = []
    private var att: [FPtr] = [], lse: [FPtr] = []
    private var gate: [FPtr] = [], up: [FPtr] = []
    /// q/k before their per-head norm and the norms' rstd (qkNorm only).
    private var qRaw: [FPtr] = [], kRaw: [FPtr] = [], qRstd: [FPtr] = [], kRstd: [FPtr] = []
    /// o-proj / down-proj outputs before the post norms, and their rstd (sandwichNorms only).
    private var oRaw: [FPtr] = [], fRaw: [FPtr] = [], rstdPA: [FPtr] = [], rstdPF: [FPtr] = []
    /// Backward scratch of the q/k norms (qkNorm only).
    private var dqn: FPtr, dkn: FPtr
    /// LoRA u = x̃·Aᵀ per slot [N, r].
    private var loraU: [FPtr] = []
    private var xLast: FPtr, xFinal: FPtr, rstdF: FPtr
    // Backward scratch.
    private var dx: FPtr, dxb: FPtr, tmpC: FPtr, dq: FPtr, dk: FPtr, dv: FPtr, dgate: FPtr, dup: FPtr, act: FPtr
    private var dropped: FPtr, maskBuf: FPtr
    /// Where dropout masks are generated (host): `maskBuf` itself on a host-addressable table.
    private var hostMask: FPtr
    private var hostMaskOwned: FPtr?
    // Batch inputs on the device.
    private var ids: UnsafeMutablePointer<Int32>, pos: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>
    private var owned: [UnsafeMutableRawPointer] = []
    private let scratch: DeviceLoRAScratch

    /// Rows of logits computed at once by the LM head + loss.
    static let headChunk = 256
    private let logits: FPtr
    /// Per-row losses of one chunk (device) and their host copy.
    private let losses: FPtr
    private var hostLosses = [Float](repeating: 0, count: TrainGraph.headChunk)
    /// Target rows gathered for the LM head when some positions have none (prompt tokens, the last
    /// token of a row): their hidden states, targets and dX, one chunk at a time.
    private let headX: FPtr, headDX: FPtr, headTargets: UnsafeMutablePointer<Int32>
    /// Whether the LM head skips positions without a target (default); off, it runs on every row of a
    /// chunk that has one (the comparison the tests make).
    var gathersTargetRows = true

    /// Base GEMMs with bf16 products (`matmul_forward_bf16` / `matmul_backward_input_bf16`).
    private let bf16Products: Bool

    /// RoPE cos/sin per (position, pair) for positions 0..<ropePositions (`rope_table`), built on
    /// first use and grown when a batch reaches further, when the table has the cached RoPE ops;
    /// otherwise every RoPE call computes its angles (`rope_forward` with θ).
    private var ropeTable: FPtr?
    private var ropePositions = 0
    /// The sliding layers' table (their own θ), when they rotate differently from the global layers.
    private var localRopeTable: FPtr?
    private let separateLocalRope: Bool

    /// The frozen LM head dequantized and packed once (`matmul_pack`) for the f32-product loss
    /// chunks, when the table has the packed GEMM and the panels fit `packedHeadLimit`; nil until
    /// the first loss.
    private var packedHead: FPtr?

    /// Largest packed LM head (bytes of f32 panels) worth keeping. Packing saves each loss chunk
    /// the head's dequantization, ~0.4 % of the chunk's FLOPs at 256 rows, but costs V·C·4 bytes
    /// beside the stored head: SmolLM2's 49,152 × 576 is 113 MB, Qwen2.5's 151,936 × 896 would be
    /// 544 MB beside its 144 MB Q8_0 head (and Gemma 3's 262,144 × 640, 671 MB). Above the limit the
    /// chunks run the plain GEMM on the stored blocks, dequantizing tile by tile — the same bits
    /// (ck_matmul_forward_packed equals ck_matmul_forward on every CPU path). `TUNE_PACKED_HEAD_MB`
    /// overrides the default (benchmarks: 0 never packs); tests set the instance's limit.
    static let defaultPackedHeadLimit: Int = {
        if let e = ProcessInfo.processInfo.environment["TUNE_PACKED_HEAD_MB"], let mb = Int(e), mb >= 0 { return mb << 20 }
        return 256 << 20
    }()
    var packedHeadLimit = TrainGraph.defaultPackedHeadLimit

    /// True when the loss chunks run the packed LM head (the table has the packed GEMM, f32 products,
    /// and the panels fit `packedHeadLimit`).
    var usesPackedHead: Bool {
        guard !bf16Products, let pk = k.packed else { return false }
        let head = weights.lmHead
        return Int(pk.size(Int64(head.cols), Int64(head.rows))) * MemoryLayout<Float>.size <= packedHeadLimit
    }

    /// Builds the graph on `kernels`; throws when that backend cannot run this model or adapter
    /// (a weight type its GEMMs do not decode, dropout without `mul_inplace`), before any work.
    init(model: LlamaModel, lora: LoRAAdapter, dropoutSeed: UInt64, bf16Products: Bool = false, kernels k: KernelTable = .cpu) throws {
        if model.rope.global.invFreq != nil, k.ropeCache?.tableFreq == nil {
            throw EngineError(.unsupported, "not supported on \(k.name) yet: scaled RoPE (rope_scaling / rope_freqs.weight); train with --backend cpu")
        }
        let c = model.config
        // The description and the weights must agree: a norm the config asks for and the layer lacks
        // would otherwise be skipped silently.
        for (l, lw) in model.weights.layers.enumerated() {
            if c.qkNorm != (lw.qNorm != nil && lw.kNorm != nil) {
                throw EngineError(.internal, "\(model.source): layer \(l) \(c.qkNorm ? "lacks" : "has unexpected") q/k norm weights")
            }
            if c.sandwichNorms != (lw.postAttnNorm != nil && lw.postFFNNorm != nil) {
                throw EngineError(.internal, "\(model.source): layer \(l) \(c.sandwichNorms ? "lacks" : "has unexpected") post-attention/post-FFN norm weights")
            }
        }
        let sliding = (0..<c.numLayers).contains { c.isSliding(layer: $0) }
        if k.family == nil, c.activation != .silu || sliding {
            let what = [c.activation != .silu ? "\(c.activation.rawValue) (geglu_backward)" : nil,
                        sliding ? "sliding-window attention (attention_forward_train_window)" : nil].compactMap { $0 }
            throw EngineError(.unsupported, "not supported on \(k.name) yet: training \(c.architecture.rawValue) needs \(what.joined(separator: " and ")), which the library lacks; train with --backend cpu")
        }
        if lora.config.dropout > 0, k.mulInplace == nil {
            throw EngineError(.unsupported, "not supported on \(k.name) yet: LoRA dropout (the library has no mul_inplace); train with --lora-dropout 0 or --backend cpu")
        }
        self.bf16Products = bf16Products
        separateLocalRope = sliding && model.rope.local != model.rope.global
        self.model = model
        self.lora = lora
        self.k = k
        weights = try DeviceWeights(model: model, kernels: k)
        var owned: [UnsafeMutableRawPointer] = []
        func alloc(_ n: Int) throws -> FPtr {
            let p = try k.allocFloats(n)
            owned.append(UnsafeMutableRawPointer(p))
            return p
        }
        do {
            let n = max(1, lora.count)
            grad = try alloc(n)
            try k.zero(grad, count: n)
            if k.hostAddressable { params = lora.params } else {
                params = try alloc(n)
                try k.upload(params, from: CFPtr(lora.params), count: n)
            }
            logits = try alloc(Self.headChunk * model.config.vocabSize)
            losses = try alloc(Self.headChunk)
            headX = try alloc(Self.headChunk * model.config.hiddenSize)
            headDX = try alloc(Self.headChunk * model.config.hiddenSize)
            let ht = try k.allocInt32(Self.headChunk)
            owned.append(UnsafeMutableRawPointer(ht))
            headTargets = ht
            let one = try alloc(1)
            xLast = one; xFinal = one; rstdF = one; dx = one; dxb = one; tmpC = one; dq = one; dk = one; dv = one
            dgate = one; dup = one; act = one; dropped = one; maskBuf = one; hostMask = one; dqn = one; dkn = one
            let i = try k.allocInt32(1)
            owned.append(UnsafeMutableRawPointer(i))
            ids = i; pos = i; targets = i
        } catch {
            owned.forEach { k.free($0) }
            throw error
        }
        self.persistent = owned
        scratch = DeviceLoRAScratch(k)
        dropout = lora.config.dropout > 0 ? LoRADropout(p: Float(lora.config.dropout), seed: dropoutSeed) : nil
    }

    /// Allocations that live as long as the graph (grad, params copy, logits, losses).
    private var persistent: [UnsafeMutableRawPointer] = []

    deinit {
        releaseBuffers()
        persistent.forEach { k.free($0) }
        if let ropeTable { k.free(UnsafeMutableRawPointer(ropeTable)) }
        if let localRopeTable { k.free(UnsafeMutableRawPointer(localRopeTable)) }
        if let packedHead { k.free(UnsafeMutableRawPointer(packedHead)) }
        hostMaskOwned?.deallocate()
    }

    /// Copies the device parameters into `lora.params` (before saving or checkpointing).
    func pullParams() throws {
        guard !k.hostAddressable else { return }
        try k.download(lora.params, from: CFPtr(params), count: max(1, lora.count))
    }

    /// Copies `lora.params` to the device (after loading a checkpoint into them).
    func pushParams() throws {
        guard !k.hostAddressable else { return }
        try k.upload(params, from: CFPtr(lora.params), count: max(1, lora.count))
    }

    /// Makes the RoPE table cover positions 0..<`needed` (grown to a power of two, capped at the
    /// model's context length; positions were checked against it).
    private func ensureRopeTable(_ needed: Int, _ cache: KernelTable.RopeCache) throws -> FPtr {
        if let ropeTable, needed <= ropePositions { return ropeTable }
        let c = model.config
        var p = 64
        while p < needed { p *= 2 }
        p = max(needed, min(p, c.contextLength))
        if let ropeTable { k.free(UnsafeMutableRawPointer(ropeTable)) }
        if let localRopeTable { k.free(UnsafeMutableRawPointer(localRopeTable)) }
        ropeTable = nil
        localRopeTable = nil
        func build(_ plan: RoPEPlan) throws -> FPtr {
            let t = try k.allocFloats(p * c.headDim)
            if let inv = plan.invFreq, let tableFreq = cache.tableFreq {   // checked at init
                inv.withUnsafeBufferPointer { tableFreq(t, Int64(p), Int64(c.headDim), $0.baseAddress) }
            } else {
                cache.table(t, Int64(p), Int64(c.headDim), plan.theta)
            }
            return t
        }
        let t = try build(model.rope.global)
        ropeTable = t
        if separateLocalRope { localRopeTable = try build(model.rope.local) }
        ropePositions = p
        return t
    }

    /// The LM head packed for the table's packed GEMM (packed on first use; the base is frozen).
    private func headPacked(_ pk: KernelTable.PackedGEMM) throws -> FPtr {
        if let packedHead { return packedHead }
        let head = weights.lmHead
        let p = try k.allocFloats(Int(pk.size(Int64(head.cols), Int64(head.rows))))
        guard pk.pack(p, head.data, Int32(head.type.rawValue), Int64(head.cols), Int64(head.rows)) == 0 else {
            k.free(UnsafeMutableRawPointer(p))
            throw EngineError(.unsupported, "LM head type \(head.type.name) with \(head.cols) columns is not supported by the kernels")
        }
        packedHead = p
        return p
    }

    private func releaseBuffers() {
        owned.forEach { k.free($0) }
        owned = []
        hostMaskOwned?.deallocate()
        hostMaskOwned = nil
    }

    /// Bytes held for activations at the current capacity (for reporting).
    private(set) var activationBytes = 0

    /// Makes room for `n` rows.
    func reserve(_ n: Int) throws {
        guard n > capacity else { return }
        releaseBuffers()
        capacity = 0
        let c = model.config, C = c.hiddenSize, F = c.intermediateSize, L = c.numLayers
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        var bytes = 0
        func alloc(_ width: Int) throws -> FPtr {
            let p = try k.allocFloats(n * width)
            owned.append(UnsafeMutableRawPointer(p))
            bytes += n * width * 4
            return p
        }
        func perLayer(_ width: Int) throws -> [FPtr] { try (0..<L).map { _ in try alloc(width) } }
        xIn = try perLayer(C); xMid = try perLayer(C); xb1 = try perLayer(C); xb2 = try perLayer(C)
        rstd1 = try perLayer(1); rstd2 = try perLayer(1)
        q = try perLayer(qDim); kk = try perLayer(kvDim); v = try perLayer(kvDim)
        att = try perLayer(qDim); lse = try perLayer(c.numHeads)
        gate = try perLayer(F); up = try perLayer(F)
        loraU = try lora.slots.map { _ in try alloc(lora.rank) }
        if c.qkNorm {
            qRaw = try perLayer(qDim); kRaw = try perLayer(kvDim)
            qRstd = try perLayer(c.numHeads); kRstd = try perLayer(c.numKVHeads)
            dqn = try alloc(qDim); dkn = try alloc(kvDim)
        }
        if c.sandwichNorms {
            oRaw = try perLayer(C); fRaw = try perLayer(C); rstdPA = try perLayer(1); rstdPF = try perLayer(1)
        }
        xLast = try alloc(C); xFinal = try alloc(C); rstdF = try alloc(1)
        dx = try alloc(C); dxb = try alloc(max(C, qDim)); tmpC = try alloc(max(C, qDim, F))
        dq = try alloc(qDim); dk = try alloc(kvDim); dv = try alloc(kvDim)
        dgate = try alloc(F); dup = try alloc(F); act = try alloc(F)
        let widest = max(C, qDim, F)
        dropped = try alloc(widest); maskBuf = try alloc(widest)
        if k.hostAddressable { hostMask = maskBuf } else if dropout != nil {
            hostMaskOwned = .allocate(capacity: n * widest)
            hostMask = hostMaskOwned!
        }
        func allocInt32() throws -> UnsafeMutablePointer<Int32> {
            let i = try k.allocInt32(n)
            owned.append(UnsafeMutableRawPointer(i))
            return i
        }
        ids = try allocInt32(); pos = try allocInt32(); targets = try allocInt32()
        activationBytes = bytes
        capacity = n
    }

    // MARK: - Forward

    private func base(_ out: FPtr, _ inp: CFPtr, _ w: WeightMatrix, _ n: Int, bias: FPtr? = nil) throws {
        let rc = (bf16Products ? k.matmulForwardBF16 : k.matmulForward)(out, inp, w.data, Int32(w.type.rawValue), bias.map { CFPtr($0) },
                                                                     Int64(n), Int64(w.cols), Int64(w.rows))
        guard rc == 0 else {
            throw EngineError(.unsupported, "matmul: weight type \(w.type.name) with \(w.cols) columns is not supported by the kernels")
        }
    }

    /// The LoRA input for a slot: x itself, or dropout(x) written to `dropped` (mask kept in `maskBuf`).
    private func loraInput(_ x: CFPtr, _ s: LoRASlot, rows n: Int, step: Int) throws -> CFPtr {
        guard let dropout, dropoutActive, let mul = k.mulInplace else { return x }
        let count = n * s.inFeatures
        dropout.mask(hostMask, count: count, step: step, layer: s.layer, target: s.dropoutTarget)
        if !k.hostAddressable { try k.upload(maskBuf, from: CFPtr(hostMask), count: count) }
        try k.copyFloats(dropped, from: x, count: count)
        mul(dropped, maskBuf, Int64(count))
        return CFPtr(dropped)
    }

    /// out = x·Wᵀ (+ frozen bias) + the LoRA path. The bias needs no gradient and leaves dX unchanged.
    private func forwardLinear(_ out: FPtr, _ x: CFPtr, _ w: WeightMatrix,
                               layer: Int, target: LoRATarget, rows n: Int, step: Int, bias: FPtr? = nil) throws {
        try base(out, x, w, n, bias: bias)
        guard let s = lora.slot(layer: layer, target: target), let si = lora.slotIndex[layer][target] else { return }
        let inp = try loraInput(x, s, rows: n, step: step)
        try lora.addForward(s, k: k, params: params, out: out, inp: inp, rows: n, scratch: scratch, saveU: loraU[si])
    }

    /// RoPE of layer `l` on `x` [n, heads, D] in place (forward or backward), cached when the table can.
    private func rope(_ x: FPtr, heads: Int, rows n: Int, layer l: Int, backward: Bool) {
        let c = model.config
        let local = c.isSliding(layer: l)
        if let cache = k.ropeCache, let tab = local && separateLocalRope ? localRopeTable : ropeTable {
            (backward ? cache.backward : cache.forward)(x, pos, tab, Int64(n), Int64(heads), Int64(c.headDim))
        } else {   // no table: θ only (scaled frequencies need the table; checked at init)
            let theta = model.ropePlan(layer: l).theta
            (backward ? k.ropeBackward : k.ropeForward)(x, pos, Int64(n), Int64(heads), Int64(c.headDim), theta)
        }
    }

    /// √(D / query_pre_attn_scalar): the factor on q after RoPE (1 when the scalar is D or absent).
    private var queryScale: Float {
        let c = model.config
        guard let s = c.queryPreAttnScalar, s != Float(c.headDim) else { return 1 }
        return (Float(c.headDim) / s).squareRoot()
    }

    /// The window of layer `l` for a segment of `count` rows, 0 when it clips nothing.
    private func window(layer l: Int, count: Int) -> Int {
        let c = model.config
        return c.isSliding(layer: l) && count > c.slidingWindow ? c.slidingWindow : 0
    }

    /// Runs the decoder over `batch`, saving what backward needs. Returns nothing; `loss` follows.
    func forward(_ batch: TrainBatch, step: Int, training: Bool) throws {
        dropoutActive = training
        let c = model.config, n = batch.count, C = c.hiddenSize, D = c.headDim, H = c.numHeads, Hkv = c.numKVHeads
        let qDim = H * D, kvDim = Hkv * D, F = c.intermediateSize
        guard n > 0 else { throw EngineError(.invalidArgument, "training batch has no tokens") }
        try reserve(n)
        let w = weights
        for p in batch.pos where Int(p) >= c.contextLength {
            throw EngineError(.invalidArgument, "a training sequence reaches position \(p), beyond the model's context length \(c.contextLength)")
        }
        try batch.pos.withUnsafeBufferPointer { try k.upload(pos, from: $0.baseAddress!, count: n) }
        try batch.ids.withUnsafeBufferPointer { try k.upload(ids, from: $0.baseAddress!, count: n) }
        if let cache = k.ropeCache { _ = try ensureRopeTable(Int(batch.pos.max() ?? 0) + 1, cache) }
        let rc = k.embeddingForward(xIn[0], ids, w.embed.data, Int32(w.embed.type.rawValue), Int64(n), Int64(C))
        guard rc == 0 else { throw EngineError(.unsupported, "embedding type \(w.embed.type.name) is not supported") }
        if c.embeddingScale != 1 { k.scale(xIn[0], c.embeddingScale, Int64(n * C)) }
        let qk = c.qkNorm, sandwich = c.sandwichNorms, qs = queryScale

        for l in 0..<c.numLayers {
            let lw = w.layers[l]
            k.rmsnormForward(xb1[l], rstd1[l], xIn[l], lw.attnNorm, c.rmsNormEps, Int64(n), Int64(C))
            try forwardLinear(qk ? qRaw[l] : q[l], xb1[l], lw.wq, layer: l, target: .q, rows: n, step: step, bias: lw.bq)
            try forwardLinear(qk ? kRaw[l] : kk[l], xb1[l], lw.wk, layer: l, target: .k, rows: n, step: step, bias: lw.bk)
            try forwardLinear(v[l], xb1[l], lw.wv, layer: l, target: .v, rows: n, step: step, bias: lw.bv)
            if qk, let qn = lw.qNorm, let kn = lw.kNorm {
                k.rmsnormForward(q[l], qRstd[l], qRaw[l], qn, c.rmsNormEps, Int64(n * H), Int64(D))
                k.rmsnormForward(kk[l], kRstd[l], kRaw[l], kn, c.rmsNormEps, Int64(n * Hkv), Int64(D))
            }
            rope(q[l], heads: H, rows: n, layer: l, backward: false)
            rope(kk[l], heads: Hkv, rows: n, layer: l, backward: false)
            if qs != 1 { k.scale(q[l], qs, Int64(n * qDim)) }
            for seg in batch.segments {
                let win = window(layer: l, count: seg.count)
                let args = (att[l] + seg.start * qDim, lse[l] + seg.start * H, CFPtr(q[l] + seg.start * qDim),
                            CFPtr(kk[l] + seg.start * kvDim), CFPtr(v[l] + seg.start * kvDim))
                if win > 0, let fam = k.family {
                    fam.attentionForwardTrainWindow(args.0, args.1, args.2, args.3, args.4,
                                                    Int64(seg.count), Int64(H), Int64(Hkv), Int64(D), Int64(win))
                } else {
                    k.attentionForwardTrain(args.0, args.1, args.2, args.3, args.4, Int64(seg.count), Int64(H), Int64(Hkv), Int64(D))
                }
            }
            try forwardLinear(sandwich ? oRaw[l] : tmpC, att[l], lw.wo, layer: l, target: .o, rows: n, step: step)
            if sandwich, let pn = lw.postAttnNorm {
                k.rmsnormForward(tmpC, rstdPA[l], oRaw[l], pn, c.rmsNormEps, Int64(n), Int64(C))
            }
            try k.copyFloats(xMid[l], from: xIn[l], count: n * C)
            k.addInplace(xMid[l], tmpC, Int64(n * C))

            k.rmsnormForward(xb2[l], rstd2[l], xMid[l], lw.ffnNorm, c.rmsNormEps, Int64(n), Int64(C))
            try forwardLinear(gate[l], xb2[l], lw.wGate, layer: l, target: .gate, rows: n, step: step)
            try forwardLinear(up[l], xb2[l], lw.wUp, layer: l, target: .up, rows: n, step: step)
            activate(gate[l], up[l], count: n * F)
            try forwardLinear(sandwich ? fRaw[l] : tmpC, act, lw.wDown, layer: l, target: .down, rows: n, step: step)
            if sandwich, let pn = lw.postFFNNorm {
                k.rmsnormForward(tmpC, rstdPF[l], fRaw[l], pn, c.rmsNormEps, Int64(n), Int64(C))
            }
            let next = l + 1 < c.numLayers ? xIn[l + 1] : xLast
            try k.copyFloats(next, from: xMid[l], count: n * C)
            k.addInplace(next, tmpC, Int64(n * C))
        }
        k.rmsnormForward(xFinal, rstdF, xLast, w.finalNorm, c.rmsNormEps, Int64(n), Int64(C))
    }

    /// act = silu(gate)·up or gelu_tanh(gate)·up, per the model's activation.
    private func activate(_ g: CFPtr, _ u: CFPtr, count: Int) {
        switch model.config.activation {
        case .silu: k.swigluForward(act, g, u, Int64(count))
        case .geluTanh: k.family!.gegluForward(act, g, u, Int64(count))   // checked at init
        }
    }

    // MARK: - Loss and backward

    /// Cross-entropy over the batch's targets, chunk by chunk through the LM head. Returns the summed
    /// loss (nats) and the number of targets. With `gradScale` non-nil the gradient d(loss·gradScale)/dx
    /// of the final-normed hidden states is left in `dxb` for `backward`.
    /// Positions without a target (a prompt's tokens under loss masking, each row's last token) need no
    /// logits: when there are any, the target rows are gathered into chunks of `headChunk` and only they
    /// go through the head (PEFT computes logits for every position), their dX scattered back.
    func loss(_ batch: TrainBatch, gradScale: Float?) throws -> (sum: Double, count: Int) {
        let n = batch.count, C = model.config.hiddenSize
        let rows = batch.targets.indices.filter { batch.targets[$0] >= 0 }
        var sum = 0.0, count = 0
        if gathersTargetRows && rows.count < n {
            if gradScale != nil { try k.zero(dxb, count: n * C) }
            var start = 0
            while start < rows.count {
                let chunk = rows[start..<min(rows.count, start + Self.headChunk)]
                for (j, r) in chunk.enumerated() { try k.copyFloats(headX + j * C, from: xFinal + r * C, count: C) }
                let tg = chunk.map { batch.targets[$0] }
                try tg.withUnsafeBufferPointer { try k.upload(headTargets, from: $0.baseAddress!, count: tg.count) }
                let (s, got) = try headLoss(x: headX, targets: headTargets, hostTargets: tg[...], dx: gradScale != nil ? headDX : nil, gradScale: gradScale)
                if gradScale != nil {
                    for (j, r) in chunk.enumerated() { try k.copyFloats(dxb + r * C, from: headDX + j * C, count: C) }
                }
                sum += s; count += got
                start += chunk.count
            }
            return (sum, count)
        }
        try batch.targets.withUnsafeBufferPointer { try k.upload(targets, from: $0.baseAddress!, count: n) }
        var start = 0
        while start < n {
            let m = min(Self.headChunk, n - start)
            if !batch.targets[start..<(start + m)].contains(where: { $0 >= 0 }) {
                if gradScale != nil { try k.zero(dxb + start * C, count: m * C) }
            } else {
                let (s, got) = try headLoss(x: xFinal + start * C, targets: targets + start, hostTargets: batch.targets[start..<(start + m)],
                                            dx: gradScale != nil ? dxb + start * C : nil, gradScale: gradScale)
                sum += s; count += got
            }
            start += m
        }
        return (sum, count)
    }

    /// LM head + cross-entropy on `hostTargets.count` ≤ `headChunk` consecutive rows of `x` (device
    /// `targets`, the same values on the host): the summed loss of the rows with a target and their
    /// count; with `dx`, the gradient of the rows (scaled by `gradScale`) is written there.
    private func headLoss(x: FPtr, targets: UnsafeMutablePointer<Int32>, hostTargets: ArraySlice<Int32>, dx: FPtr?,
                          gradScale: Float?) throws -> (Double, Int) {
        let C = model.config.hiddenSize, V = model.config.vocabSize, head = weights.lmHead, rows = hostTargets.count
        if !usesPackedHead {
            try base(logits, x, head, rows)
        } else if let pk = k.packed {
            let rc = pk.forward(logits, x, try headPacked(pk), nil, Int64(rows), Int64(C), Int64(V))
            guard rc == 0 else { throw EngineError(.internal, "packed LM head forward failed (rc \(rc))") }
        }
        let got = k.xentForwardBackward(losses, logits, targets, gradScale ?? 0, Int64(rows), Int64(V))
        try hostLosses.withUnsafeMutableBufferPointer { try k.download($0.baseAddress!, from: CFPtr(losses), count: rows) }
        var sum = 0.0
        for (r, t) in hostTargets.enumerated() where t >= 0 { sum += Double(hostLosses[r]) }
        if let dx {
            let rc = (bf16Products ? k.matmulBackwardInputBF16 : k.matmulBackwardInput)(
                dx, logits, head.data, Int32(head.type.rawValue), Int64(rows), Int64(C), Int64(V), 0)
            guard rc == 0 else { throw EngineError(.unsupported, "LM head type \(head.type.name) has no backward kernel") }
        }
        return (sum, Int(got))
    }

    private func backwardInput(_ dinp: FPtr, _ dout: CFPtr, _ w: WeightMatrix, rows n: Int, accumulate: Bool) throws {
        let rc = (bf16Products ? k.matmulBackwardInputBF16 : k.matmulBackwardInput)(
            dinp, dout, w.data, Int32(w.type.rawValue), Int64(n), Int64(w.cols), Int64(w.rows), accumulate ? 1 : 0)
        guard rc == 0 else { throw EngineError(.unsupported, "backward: weight type \(w.type.name) is not supported by the kernels") }
    }

    /// dX through a frozen linear plus its LoRA path (parameter grads into `grad`).
    private func backwardLinear(_ dinp: FPtr, _ dout: CFPtr, _ x: CFPtr,
                                _ w: WeightMatrix, layer: Int, target: LoRATarget, rows n: Int, step: Int, accumulate: Bool,
                                needInputGrad: Bool = true) throws {
        if needInputGrad { try backwardInput(dinp, dout, w, rows: n, accumulate: accumulate) }
        guard let s = lora.slot(layer: layer, target: target), let si = lora.slotIndex[layer][target] else { return }
        let inp = try loraInput(x, s, rows: n, step: step)
        try lora.addBackward(s, k: k, params: params, grad: grad, dout: dout, u: loraU[si], inp: inp,
                             dinp: needInputGrad ? dinp : nil, rows: n, scratch: scratch,
                             dinpMask: dropout != nil && dropoutActive ? CFPtr(maskBuf) : nil)
    }

    /// Backpropagates the gradient left in `dxb` by `loss(_:gradScale:)` down to the embeddings,
    /// accumulating LoRA gradients into `grad`.
    func backward(_ batch: TrainBatch, step: Int) throws {
        let c = model.config, n = batch.count, C = c.hiddenSize, D = c.headDim, H = c.numHeads, Hkv = c.numKVHeads
        let qDim = H * D, kvDim = Hkv * D, F = c.intermediateSize
        let w = weights
        let qk = c.qkNorm, sandwich = c.sandwichNorms, qs = queryScale
        // Final norm.
        k.rmsnormBackward(dx, nil, dxb, xLast, w.finalNorm, rstdF, Int64(n), Int64(C))

        for l in stride(from: c.numLayers - 1, through: 0, by: -1) {
            let lw = w.layers[l]
            // FFN: out = xMid + down(silu(gate)·up); dx holds d(out).
            activate(gate[l], up[l], count: n * F)
            var dF = CFPtr(dx)
            if sandwich, let pn = lw.postFFNNorm {   // out = xMid + norm(f): d(f) into dxb
                k.rmsnormBackward(dxb, nil, dx, fRaw[l], pn, rstdPF[l], Int64(n), Int64(C))
                dF = CFPtr(dxb)
            }
            try backwardLinear(tmpC, dF, act, lw.wDown, layer: l, target: .down, rows: n, step: step, accumulate: false)
            switch c.activation {
            case .silu: k.swigluBackward(dgate, dup, tmpC, gate[l], up[l], Int64(n * F))
            case .geluTanh: k.family!.gegluBackward(dgate, dup, tmpC, gate[l], up[l], Int64(n * F))
            }
            try backwardLinear(dxb, dgate, xb2[l], lw.wGate, layer: l, target: .gate, rows: n, step: step, accumulate: false)
            try backwardLinear(dxb, dup, xb2[l], lw.wUp, layer: l, target: .up, rows: n, step: step, accumulate: true)
            k.rmsnormBackward(tmpC, nil, dxb, xMid[l], lw.ffnNorm, rstd2[l], Int64(n), Int64(C))
            k.addInplace(dx, tmpC, Int64(n * C))          // dx = d(xMid)

            // Attention: xMid = xIn + o(att).
            var dO = CFPtr(dx)
            if sandwich, let pn = lw.postAttnNorm {   // xMid = xIn + norm(o): d(o) into tmpC
                k.rmsnormBackward(tmpC, nil, dx, oRaw[l], pn, rstdPA[l], Int64(n), Int64(C))
                dO = CFPtr(tmpC)
            }
            try backwardLinear(dxb, dO, att[l], lw.wo, layer: l, target: .o, rows: n, step: step, accumulate: false)
            for seg in batch.segments {
                let s = seg.start, win = window(layer: l, count: seg.count)
                if win > 0, let fam = k.family {
                    fam.attentionBackwardWindow(dq + s * qDim, dk + s * kvDim, dv + s * kvDim, dxb + s * qDim, q[l] + s * qDim,
                                                kk[l] + s * kvDim, v[l] + s * kvDim, att[l] + s * qDim, lse[l] + s * H,
                                                Int64(seg.count), Int64(H), Int64(Hkv), Int64(D), Int64(win))
                } else {
                    k.attentionBackward(dq + s * qDim, dk + s * kvDim, dv + s * kvDim, dxb + s * qDim, q[l] + s * qDim,
                                        kk[l] + s * kvDim, v[l] + s * kvDim, att[l] + s * qDim, lse[l] + s * H,
                                        Int64(seg.count), Int64(H), Int64(Hkv), Int64(D))
                }
            }
            if qs != 1 { k.scale(dq, qs, Int64(n * qDim)) }
            rope(dq, heads: H, rows: n, layer: l, backward: true)
            rope(dk, heads: Hkv, rows: n, layer: l, backward: true)
            var dqIn = dq, dkIn = dk
            if qk, let qn = lw.qNorm, let kn = lw.kNorm {   // through the per-head norms (weights frozen)
                k.rmsnormBackward(dqn, nil, dq, qRaw[l], qn, qRstd[l], Int64(n * H), Int64(D))
                k.rmsnormBackward(dkn, nil, dk, kRaw[l], kn, kRstd[l], Int64(n * Hkv), Int64(D))
                dqIn = dqn; dkIn = dkn
            }
            // Below layer 0 are the frozen embeddings: its input gradient is never used.
            let below = l > 0
            try backwardLinear(dxb, dqIn, xb1[l], lw.wq, layer: l, target: .q, rows: n, step: step, accumulate: false, needInputGrad: below)
            try backwardLinear(dxb, dkIn, xb1[l], lw.wk, layer: l, target: .k, rows: n, step: step, accumulate: true, needInputGrad: below)
            try backwardLinear(dxb, dv, xb1[l], lw.wv, layer: l, target: .v, rows: n, step: step, accumulate: true, needInputGrad: below)
            guard below else { break }
            k.rmsnormBackward(tmpC, nil, dxb, xIn[l], lw.attnNorm, rstd1[l], Int64(n), Int64(C))
            k.addInplace(dx, tmpC, Int64(n * C))          // dx = d(xIn)
        }
    }

    /// Zeroes the gradient buffer.
    func zeroGrad() throws { try k.zero(grad, count: max(1, lora.count)) }

    /// The gradient, copied to the host.
    func gradToHost() throws -> [Float] {
        var g = [Float](repeating: 0, count: lora.count)
        try g.withUnsafeMutableBufferPointer { if $0.count > 0 { try k.download($0.baseAddress!, from: CFPtr(grad), count: $0.count) } }
        return g
    }
}

// MARK: - Public gradient entry point

/// Loss and LoRA gradients for a set of sequences in one pass (no optimizer step): what the gradient
/// checks and the PEFT parity test compare against references.
public enum LoRAGradients {
    /// Mean cross-entropy over the target tokens of `sequences` (one micro-batch) and its gradient with
    /// respect to every parameter of `lora` (flat, `lora.params` layout). `model`'s own adapter is ignored.
    /// Dropout, when the adapter's config has it, uses the masks of optimizer step `step`.
    /// `bf16Products`: base GEMMs with bf16 products, as `TrainingOptions.bf16Products`.
    /// `backend`: where the graph runs (its `kernelTable()`); the result is copied back to the host.
    /// `packedHeadLimit`: bytes of f32 panels up to which the LM head is packed (default
    /// `TrainGraph.defaultPackedHeadLimit`; the results are the same bits either way on the CPU).
    /// `gatherTargetRows`: the LM head runs only on positions with a target (default; false: on every
    /// row of a chunk that has one, the comparison the tests make).
    public static func compute(model: LlamaModel, lora: LoRAAdapter, sequences: [DatasetExample],
                               dropoutSeed: UInt64 = 0, step: Int = 0,
                               bf16Products: Bool = false,
                               backend: any Backend = CPUBackend(),
                               packedHeadLimit: Int? = nil, gatherTargetRows: Bool = true) throws -> (loss: Double, targets: Int, grad: [Float]) {
        let graph = try TrainGraph(model: model.with(adapter: nil), lora: lora, dropoutSeed: dropoutSeed, bf16Products: bf16Products,
                                   kernels: try backend.kernelTable())
        if let packedHeadLimit { graph.packedHeadLimit = packedHeadLimit }
        graph.gathersTargetRows = gatherTargetRows
        let batch = TrainBatch(sequences[...])
        let targets = batch.targetCount
        guard targets > 0 else { throw EngineError(.invalidArgument, "no target tokens in the sequences") }
        try graph.forward(batch, step: step, training: true)
        let r = try graph.loss(batch, gradScale: Float(1.0 / Double(targets)))
        try graph.backward(batch, step: step)
        let grad = try graph.gradToHost()
        try graph.k.sync("training step")
        return (r.sum / Double(targets), targets, grad)
    }
}
