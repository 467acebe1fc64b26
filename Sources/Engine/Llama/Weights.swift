// Weights — the frozen base model as views into its file: quantized matrices stay in their stored type.

import CKernels

/// A 2-D weight matrix `[rows, cols]` (PyTorch `nn.Linear` layout: rows = out features) stored as
/// rows of a ggml type. `data` points into a memory-mapped model file or into a buffer owned by
/// the `LlamaWeights` that holds it.
public struct WeightMatrix: @unchecked Sendable {
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let data: UnsafeRawPointer

    /// Bytes of one row.
    public var rowBytes: Int { Int(ck_type_row_bytes(Int32(type.rawValue), Int64(cols))) }

    /// Rows `start ..< start + count` as a matrix of their own (a view: rows are contiguous and blocks never
    /// span rows, so a fused projection splits without copying).
    public func rows(_ start: Int, _ count: Int) -> WeightMatrix {
        WeightMatrix(type: type, rows: count, cols: cols, data: data.advanced(by: start * rowBytes))
    }
}

/// The weights of one decoder layer.
public struct LayerWeights: @unchecked Sendable {
    public let attnNorm: [Float]     // [C]
    public let wq: WeightMatrix      // [H*D, C]   (HF row order: rotate_half RoPE)
    public let wk: WeightMatrix      // [Hkv*D, C] (HF row order)
    public let wv: WeightMatrix      // [Hkv*D, C]
    public let wo: WeightMatrix      // [C, H*D]
    public let ffnNorm: [Float]      // [C]
    public let wGate: WeightMatrix   // [F, C]
    public let wUp: WeightMatrix     // [F, C]
    public let wDown: WeightMatrix   // [C, F]
    /// q/k/v projection biases ([H*D], [Hkv*D], [Hkv*D], HF row order) when the model has them.
    public var bq: [Float]? = nil
    public var bk: [Float]? = nil
    public var bv: [Float]? = nil
    /// Per-head RMSNorm weights of q and k ([D] each; Qwen3, Gemma 3).
    public var qNorm: [Float]? = nil
    public var kNorm: [Float]? = nil
    /// Gemma's norms of the attention output and of the FFN output, before each residual add ([C]).
    public var postAttnNorm: [Float]? = nil
    public var postFFNNorm: [Float]? = nil
}

/// All weights of a Llama model. Keeps the files it points into alive and frees the buffers it owns.
public final class LlamaWeights: @unchecked Sendable {
    public let embed: WeightMatrix       // [V, C]
    public let layers: [LayerWeights]
    public let finalNorm: [Float]        // [C]
    public let lmHead: WeightMatrix      // [V, C] (the embedding when tied)
    /// GGUF `rope_freqs.weight` ([D/2]): llama.cpp's per-pair RoPE frequency divisors (Llama 3.1+ scaling).
    public let ropeFreqFactors: [Float]?
    private let owners: [AnyObject]
    private let owned: [UnsafeMutableRawPointer]
    /// Matrices packed for the tile GEMM, when a budget allows (PackedWeights.swift).
    let packed = PackedWeights()

    init(embed: WeightMatrix, layers: [LayerWeights], finalNorm: [Float], lmHead: WeightMatrix,
         ropeFreqFactors: [Float]? = nil, owners: [AnyObject], owned: [UnsafeMutableRawPointer]) {
        self.ropeFreqFactors = ropeFreqFactors
        self.embed = embed
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
        self.owners = owners
        self.owned = owned
    }

    deinit { owned.forEach { $0.deallocate() } }
}

// MARK: - GGUF Q/K row order

/// llama.cpp's converter permutes the rows of Q and K so that its interleaved RoPE equals HF's
/// rotate_half RoPE: inside each head of `D` rows, HF row `j*D/2 + i` is stored at GGUF row `2i + j`.
/// Undo it so one RoPE convention (and PEFT's LoRA shapes) holds for every source format.
/// Moving whole rows is exact for every type, quantized or not: blocks never span rows.
func unpermuteRowsFromGGUF(_ w: WeightMatrix, heads: Int) throws -> (WeightMatrix, UnsafeMutableRawPointer) {
    guard heads > 0, w.rows % heads == 0, (w.rows / heads) % 2 == 0 else {
        throw EngineError(.format, "cannot un-permute a [\(w.rows), \(w.cols)] Q/K matrix into \(heads) heads")
    }
    let d = w.rows / heads, half = d / 2, rb = w.rowBytes
    let out = UnsafeMutableRawPointer.allocate(byteCount: rb * w.rows, alignment: 64)
    for h in 0..<heads {
        for j in 0..<2 {
            for i in 0..<half {
                let dst = h * d + j * half + i, src = h * d + 2 * i + j
                out.advanced(by: dst * rb).copyMemory(from: w.data.advanced(by: src * rb), byteCount: rb)
            }
        }
    }
    return (WeightMatrix(type: w.type, rows: w.rows, cols: w.cols, data: UnsafeRawPointer(out)), out)
}
