// WeightConversion — a copy of a model's matrices in another storage type: f32 / bf16 for plain
// LoRA over a float copy, NF4 for QLoRA over a float base (a quantized GGUF's own blocks need no copy).

import CKernels

extension LlamaModel {
    /// The model with every decoder and head matrix stored as `type` (F32, BF16 or NF4), dequantized once.
    /// Norm vectors are already f32. The embedding keeps its type (it is only looked up, never multiplied,
    /// unless tied to the LM head — then the head copy is converted too). NF4 (QLoRA) quantizes the
    /// decoder matrices only; the LM head keeps its type, as bitsandbytes' QLoRA leaves `lm_head` alone.
    public func convertingMatrices(to type: GGMLType) throws -> LlamaModel {
        guard type == .f32 || type == .bf16 || type == .nf4 else {
            throw EngineError(.invalidArgument, "base weights can be converted to f32, bf16 or nf4, not \(type.name)")
        }
        var owned: [UnsafeMutableRawPointer] = []
        func convert(_ w: WeightMatrix) throws -> WeightMatrix {
            if w.type == type { return w }
            let outRow = Int(ck_type_row_bytes(Int32(type.rawValue), Int64(w.cols)))
            let dst = UnsafeMutableRawPointer.allocate(byteCount: max(1, outRow * w.rows), alignment: 64)
            owned.append(dst)
            let row = UnsafeMutablePointer<Float>.allocate(capacity: w.cols)
            defer { row.deallocate() }
            for r in 0..<w.rows {
                guard ck_dequantize_row(Int32(w.type.rawValue), w.data + r * w.rowBytes, row, Int64(w.cols)) == 0,
                      ck_quantize_row(Int32(type.rawValue), row, dst + r * outRow, Int64(w.cols)) == 0 else {
                    throw EngineError(.unsupported, "cannot convert \(w.type.name) weights to \(type.name)")
                }
            }
            return WeightMatrix(type: type, rows: w.rows, cols: w.cols, data: UnsafeRawPointer(dst))
        }
        let w = weights
        let layers = try w.layers.map { l in
            var n = LayerWeights(attnNorm: l.attnNorm, wq: try convert(l.wq), wk: try convert(l.wk), wv: try convert(l.wv),
                                 wo: try convert(l.wo), ffnNorm: l.ffnNorm, wGate: try convert(l.wGate),
                                 wUp: try convert(l.wUp), wDown: try convert(l.wDown), bq: l.bq, bk: l.bk, bv: l.bv)
            // The family's vectors (Qwen3/Gemma 3 q/k norms, Gemma's post norms) carry over unchanged.
            n.qNorm = l.qNorm; n.kNorm = l.kNorm; n.postAttnNorm = l.postAttnNorm; n.postFFNNorm = l.postFFNNorm
            return n
        }
        let head = type == .nf4 ? w.lmHead : try convert(w.lmHead)
        let converted = LlamaWeights(embed: w.embed, layers: layers, finalNorm: w.finalNorm, lmHead: head,
                                     ropeFreqFactors: w.ropeFreqFactors, owners: [w], owned: owned)
        return LlamaModel(config: config, tokenizer: tokenizer, weights: converted, source: source, format: format, adapter: adapter)
    }

    /// True if the decoder matrices are stored as floats (f32/f16/bf16), e.g. a safetensors model.
    public var hasFloatMatrices: Bool {
        weights.layers.allSatisfy { l in [l.wq, l.wk, l.wv, l.wo, l.wGate, l.wUp, l.wDown].allSatisfy { [.f32, .f16, .bf16].contains($0.type) } }
    }

    /// Bytes of all weight matrices and vectors as held now.
    public var weightBytes: Int {
        let w = weights
        func m(_ x: WeightMatrix) -> Int { x.rowBytes * x.rows }
        var total = m(w.embed) + (w.lmHead.data == w.embed.data ? 0 : m(w.lmHead)) + 4 * w.finalNorm.count
        for l in w.layers {
            total += m(l.wq) + m(l.wk) + m(l.wv) + m(l.wo) + m(l.wGate) + m(l.wUp) + m(l.wDown)
            total += 4 * (l.attnNorm.count + l.ffnNorm.count)
        }
        return total
    }
}
