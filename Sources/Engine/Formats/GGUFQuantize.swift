// GGUFQuantize — f32 values to the bytes of any GGUF type tune writes (f32/f16/bf16, q4_0/q4_1/q5_0/q5_1/q8_0,
// q4_K/q5_K/q6_K) with ggml's reference quantizers (ck_quantize_row_any), split across threads by rows.
// Every block depends only on its own values, so the bytes are the same for any thread count.

import CKernels
import Foundation

public enum GGUFQuantize {
    /// True if `encode` can produce `type`.
    public static func canEncode(_ type: GGMLType) -> Bool {
        type.isKnown && type.rawValue <= UInt32(Int32.max) && ck_type_can_quantize_any(Int32(type.rawValue)) != 0
    }

    /// Names of the types `encode` produces, for error messages.
    public static let encodableNames = "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K"

    /// `values` (rows of `rowLength`, GGUF element order) encoded as `type`. `threads` > 1 splits the rows into
    /// contiguous chunks quantized concurrently; `name` only labels errors.
    public static func encode(_ values: UnsafeBufferPointer<Float>, type: GGMLType, rowLength: Int,
                              threads: Int = 1, name: String) throws -> [UInt8] {
        guard canEncode(type) else {
            throw EngineError(.unsupported, "tensor '\(name)': cannot quantize to \(type.name) (supported: \(encodableNames))")
        }
        guard rowLength > 0, values.count % rowLength == 0, rowLength % type.blockSize == 0,
              let total = type.byteCount(elements: values.count) else {
            throw EngineError(.invalidArgument, "tensor '\(name)': row length \(rowLength) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        let rows = values.count / rowLength
        let rowBytes = rowLength / type.blockSize * type.blockBytes
        var out = [UInt8](repeating: 0, count: total)
        guard rows > 0 else { return out }
        // Chunks of whole rows, at least ~64k values each so small tensors stay on one thread.
        let parts = max(1, min(threads, rows, values.count / 65_536))
        let perPart = (rows + parts - 1) / parts
        let failed = out.withUnsafeMutableBytes { dst -> Bool in
            let t = Int32(type.rawValue)
            if parts == 1 {
                return ck_quantize_row_any(t, values.baseAddress!, dst.baseAddress!, Int64(values.count)) != 0
            }
            let (d, s) = (SendableRawPtr(p: dst.baseAddress!), SendableFloatPtr(p: values.baseAddress!))
            let bad = FailureFlag()
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let r0 = p * perPart, r1 = min(rows, r0 + perPart)
                guard r0 < r1 else { return }
                if ck_quantize_row_any(t, s.p + r0 * rowLength, d.p + r0 * rowBytes, Int64((r1 - r0) * rowLength)) != 0 {
                    bad.set()
                }
            }
            return bad.isSet
        }
        guard !failed else { throw EngineError(.internal, "tensor '\(name)': quantization to \(type.name) failed") }
        return out
    }

    /// Convenience over an array.
    public static func encode(_ values: [Float], type: GGMLType, rowLength: Int, threads: Int = 1, name: String) throws -> [UInt8] {
        try values.withUnsafeBufferPointer { try encode($0, type: type, rowLength: rowLength, threads: threads, name: name) }
    }
}

/// Raw pointers handed to concurrentPerform's closure (each iteration touches a disjoint slice of rows).
private struct SendableRawPtr: @unchecked Sendable { let p: UnsafeMutableRawPointer }
private struct SendableFloatPtr: @unchecked Sendable { let p: UnsafePointer<Float> }

/// A set-once flag shared by the quantization workers (a lock, as the failure path is cold).
private final class FailureFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
