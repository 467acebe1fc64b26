// PackedWeights — the model's weight matrices dequantized and packed once into a GEMM's panels, for
// forwards whose matmuls run a tile GEMM at small row counts: the batched steps of continuous batching
// (16 sequences = 16 rows), where ck_matmul_forward would dequantize and pack all of W again for every
// call (about a third of a 16-row step on SmolLM2). Two kinds, each used only where ck_matmul_forward
// would run the path it reproduces bit for bit, so results do not change:
//   f32 panels  (ck_matmul_pack, 4 bytes a weight)   where the exact tile path runs (ck_matmul_forward_is_tiled)
//   bf16 panels (ck_matmul_pack_bf16, 2 bytes)       where the fast path's bf16 GEMM runs (ck_matmul_forward_is_bf16)
// Off until a budget is set (`LlamaModel.packWeights(upToBytes:)`); matrices are packed in the order
// they are first used until the budget is spent, and the rest keep the per-call path. Shared by a base
// model and its adapters (it lives on LlamaWeights).

import CKernels
import Foundation

final class PackedWeights: @unchecked Sendable {
    /// Which GEMM a matrix's panels are for.
    enum Kind: Hashable { case f32, bf16 }
    private struct Key: Hashable { let data: UnsafeRawPointer; let rows: Int; let cols: Int; let kind: Kind }
    private let lock = NSLock()
    private var panels: [Key: UnsafeMutableRawPointer] = [:]
    private var skipped = Set<Key>()
    private var limit = 0
    private(set) var usedBytes = 0

    deinit { for p in panels.values { p.deallocate() } }

    /// Allows up to `bytes` of panels (never lowers an earlier budget: panels already packed stay).
    func allow(_ bytes: Int) { lock.lock(); limit = max(limit, bytes); lock.unlock() }

    var budget: Int { lock.lock(); defer { lock.unlock() }; return limit }

    /// The panels of `w` and their kind when a matmul of `rows` rows on the calling thread would run the
    /// GEMM they reproduce and they fit the budget (packed on first use); nil otherwise.
    func panels(for w: WeightMatrix, rows: Int) -> (kind: Kind, panels: UnsafeRawPointer)? {
        let t = Int32(w.type.rawValue), T = Int64(rows), K = Int64(w.cols), N = Int64(w.rows)
        let kind: Kind
        if ck_matmul_forward_is_tiled(t, T, K, N) == 1 { kind = .f32 }
        else if ck_matmul_forward_is_bf16(t, T, K, N) == 1 { kind = .bf16 }
        else { return nil }
        let key = Key(data: w.data, rows: w.rows, cols: w.cols, kind: kind)
        lock.lock()
        defer { lock.unlock() }
        guard limit > 0 else { return nil }
        if let p = panels[key] { return (kind, UnsafeRawPointer(p)) }
        if skipped.contains(key) { return nil }
        let bytes = kind == .f32 ? Int(ck_matmul_packed_size(K, N)) * 4 : Int(ck_matmul_packed_bf16_size(K, N)) * 4
        guard bytes > 0, usedBytes + bytes <= limit else { skipped.insert(key); return nil }
        let p = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let rc = kind == .f32 ? ck_matmul_pack(p.assumingMemoryBound(to: Float.self), w.data, t, K, N)
                              : ck_matmul_pack_bf16(p.assumingMemoryBound(to: UInt32.self), w.data, t, K, N)
        guard rc == 0 else {
            p.deallocate()
            skipped.insert(key)
            return nil
        }
        panels[key] = p
        usedBytes += bytes
        return (kind, UnsafeRawPointer(p))
    }
}

extension LlamaModel {
    /// Lets the tile-GEMM matmuls of this model (and of its adapters: the weights are shared) keep up to
    /// `bytes` of packed panels (see PackedWeights). Continuous batching turns it on for the models it
    /// serves; the results are the same with or without.
    public func packWeights(upToBytes bytes: Int) { weights.packed.allow(bytes) }

    /// Bytes of packed panels held so far.
    public var packedWeightBytes: Int { weights.packed.usedBytes }
}
