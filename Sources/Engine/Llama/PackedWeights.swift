// PackedWeights — the model's weight matrices dequantized and packed once into the tile GEMM's f32
// panels (ck_matmul_pack), for forwards whose matmuls run the tile path at small row counts: the
// batched steps of continuous batching (16 sequences = 16 rows), where ck_matmul_forward would
// dequantize and pack all of W again for every call (about a third of a 16-row step on SmolLM2).
// Off until a budget is set (`LlamaModel.packWeights(upToBytes:)`): f32 panels are 4 bytes a weight
// (SmolLM2-135M: 538 MB), so matrices are packed in the order they are first used until the budget
// is spent, and the rest keep the per-call path. Shared by a base model and its adapters (it lives on
// LlamaWeights). ck_matmul_forward_packed is bit-identical to the tile path, and panels are used only
// where ck_matmul_forward would run that path (`ck_matmul_forward_is_tiled`): results do not change.

import CKernels
import Foundation

final class PackedWeights: @unchecked Sendable {
    private struct Key: Hashable { let data: UnsafeRawPointer; let rows: Int; let cols: Int }
    private let lock = NSLock()
    private var panels: [Key: UnsafeMutablePointer<Float>] = [:]
    private var skipped = Set<Key>()
    private var limit = 0
    private(set) var usedBytes = 0

    deinit { for p in panels.values { p.deallocate() } }

    /// Allows up to `bytes` of panels (never lowers an earlier budget: panels already packed stay).
    func allow(_ bytes: Int) { lock.lock(); limit = max(limit, bytes); lock.unlock() }

    var budget: Int { lock.lock(); defer { lock.unlock() }; return limit }

    /// The panels of `w` when a matmul of `rows` rows would run the tile path and they fit the budget
    /// (packed on first use); nil otherwise.
    func panels(for w: WeightMatrix, rows: Int) -> UnsafePointer<Float>? {
        guard ck_matmul_forward_is_tiled(Int32(w.type.rawValue), Int64(rows), Int64(w.cols), Int64(w.rows)) == 1 else { return nil }
        let key = Key(data: w.data, rows: w.rows, cols: w.cols)
        lock.lock()
        defer { lock.unlock() }
        guard limit > 0 else { return nil }
        if let p = panels[key] { return UnsafePointer(p) }
        if skipped.contains(key) { return nil }
        let count = Int(ck_matmul_packed_size(Int64(w.cols), Int64(w.rows))), bytes = count * MemoryLayout<Float>.size
        guard count > 0, usedBytes + bytes <= limit else { skipped.insert(key); return nil }
        let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
        guard ck_matmul_pack(p, w.data, Int32(w.type.rawValue), Int64(w.cols), Int64(w.rows)) == 0 else {
            p.deallocate()
            skipped.insert(key)
            return nil
        }
        panels[key] = p
        usedBytes += bytes
        return UnsafePointer(p)
    }
}

extension LlamaModel {
    /// Lets the tile-path matmuls of this model (and of its adapters: the weights are shared) keep up to
    /// `bytes` of packed f32 panels (see PackedWeights). Continuous batching turns it on for the models
    /// it serves; the results are the same with or without.
    public func packWeights(upToBytes bytes: Int) { weights.packed.allow(bytes) }

    /// Bytes of packed panels held so far.
    public var packedWeightBytes: Int { weights.packed.usedBytes }
}
