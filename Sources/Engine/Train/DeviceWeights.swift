// DeviceWeights — the frozen base model as the training graph's kernels see it: every matrix and
// RMSNorm weight (and q/k/v bias) at a device address of the graph's `KernelTable`. On a host-addressable table (CPU)
// the matrices are the model's own memory (no copy); on a device they are uploaded once per graph
// (a tied LM head shares the embedding's upload). The RMSNorm weights ([Float] arrays) are always
// copied into table memory so every op gets a stable pointer of the right kind.
//
// Construction is where a backend that cannot run this model says so: a weight type its GEMMs do
// not decode is refused with the type, the tensor and the way out (`--backend cpu`).

struct DeviceLayer {
    let attnNorm: FPtr, ffnNorm: FPtr
    let wq: WeightMatrix, wk: WeightMatrix, wv: WeightMatrix, wo: WeightMatrix
    let wGate: WeightMatrix, wUp: WeightMatrix, wDown: WeightMatrix
    /// Frozen q/k/v biases in table memory (nil when the model has none).
    var bq: FPtr? = nil, bk: FPtr? = nil, bv: FPtr? = nil
    /// Frozen per-head q/k norm weights [D] and Gemma's post-attention / post-FFN norm weights [C] (nil when absent).
    var qNorm: FPtr? = nil, kNorm: FPtr? = nil, postAttnNorm: FPtr? = nil, postFFNNorm: FPtr? = nil
}

final class DeviceWeights {
    let k: KernelTable
    let embed: WeightMatrix, lmHead: WeightMatrix
    let finalNorm: FPtr
    let layers: [DeviceLayer]
    /// Device bytes of uploaded matrices (0 on a host-addressable table).
    private(set) var uploadedBytes = 0
    private var owned: [UnsafeMutableRawPointer] = []

    init(model: LlamaModel, kernels k: KernelTable) throws {
        self.k = k
        let w = model.weights
        var uploads: [UnsafeRawPointer: UnsafeRawPointer] = [:]
        var owned: [UnsafeMutableRawPointer] = []
        var bytes = 0
        func matrix(_ m: WeightMatrix, _ what: String) throws -> WeightMatrix {
            guard k.supports(m.type) else {
                owned.forEach { k.free($0) }
                owned = []
                let ok = (k.weightTypes ?? []).map(\.name).sorted().joined(separator: ", ")
                throw EngineError(.unsupported, "not supported on \(k.name) yet: weight type \(m.type.name) (\(what)); the \(k.name) GEMMs decode \(ok). "
                                  + "Train with --backend cpu, or with base weights the backend decodes (e.g. --base-weights quantized on a Q4_0/Q4_1/Q8_0 model, or f32/bf16)")
            }
            if k.hostAddressable { return m }
            if let d = uploads[m.data] { return WeightMatrix(type: m.type, rows: m.rows, cols: m.cols, data: d) }
            let n = m.rows * m.rowBytes
            guard let d = k.alloc(n) else {
                throw EngineError(.io, "\(k.name): cannot allocate \(n) bytes for \(what)\(k.syncFn().map { " (\($0))" } ?? "")")
            }
            owned.append(d)
            try k.copy(d, m.data, bytes: n, .hostToDevice)
            bytes += n
            uploads[m.data] = UnsafeRawPointer(d)
            return WeightMatrix(type: m.type, rows: m.rows, cols: m.cols, data: UnsafeRawPointer(d))
        }
        func norm(_ v: [Float]) throws -> FPtr {
            let d = try k.allocFloats(v.count)
            owned.append(UnsafeMutableRawPointer(d))
            try v.withUnsafeBufferPointer { try k.upload(d, from: $0.baseAddress!, count: v.count) }
            return d
        }
        let e: WeightMatrix, h: WeightMatrix, fn: FPtr, ls: [DeviceLayer]
        do {
            e = try matrix(w.embed, "token_embd")
            h = try matrix(w.lmHead, "output (LM head)")
            fn = try norm(w.finalNorm)
            ls = try w.layers.enumerated().map { l, lw in
                var d = DeviceLayer(attnNorm: try norm(lw.attnNorm), ffnNorm: try norm(lw.ffnNorm),
                            wq: try matrix(lw.wq, "blk.\(l).attn_q"), wk: try matrix(lw.wk, "blk.\(l).attn_k"),
                            wv: try matrix(lw.wv, "blk.\(l).attn_v"), wo: try matrix(lw.wo, "blk.\(l).attn_output"),
                            wGate: try matrix(lw.wGate, "blk.\(l).ffn_gate"), wUp: try matrix(lw.wUp, "blk.\(l).ffn_up"),
                            wDown: try matrix(lw.wDown, "blk.\(l).ffn_down"))
                d.bq = try lw.bq.map(norm); d.bk = try lw.bk.map(norm); d.bv = try lw.bv.map(norm)
                d.qNorm = try lw.qNorm.map(norm); d.kNorm = try lw.kNorm.map(norm)
                d.postAttnNorm = try lw.postAttnNorm.map(norm); d.postFFNNorm = try lw.postFFNNorm.map(norm)
                return d
            }
        } catch {
            owned.forEach { k.free($0) }
            owned = []
            throw error
        }
        embed = e; lmHead = h; finalNorm = fn; layers = ls
        self.owned = owned
        uploadedBytes = bytes
    }

    deinit { owned.forEach { k.free($0) } }
}
