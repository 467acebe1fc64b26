// GGUF — a memory-mapped, fully validated GGUF (v2/v3) file: metadata, tensor infos and
// zero-copy access to tensor data, plus dequantization to f32 through the C kernels.

import CKernels

// MARK: - GGUFFile

/// A GGUF file opened with mmap. Everything is validated in `init`: afterwards every
/// tensor's data lies inside the mapping, so `data(for:)` never reads out of bounds.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    /// GGUF format version (2 or 3).
    public let version: UInt32
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Tensor descriptors in file order.
    public let tensors: [GGUFTensorInfo]
    /// `general.alignment`, or 32.
    public let alignment: Int
    /// Absolute file offset of the tensor data section.
    public let dataOffset: Int

    private let file: MappedFile
    private let index: [String: Int]

    /// Opens and validates `path`. Throws an `EngineError` with a one-line message naming
    /// the file, the key or tensor involved, what was found and what was expected.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let h = try GGUFHeader(bytes: file.bytes, file: path)
        version = h.version
        metadata = h.metadata
        metadataKeys = h.keys
        tensors = h.tensors
        alignment = h.alignment
        dataOffset = h.dataOffset
        var idx: [String: Int] = [:]
        for (i, t) in h.tensors.enumerated() { idx[t.name] = i }
        index = idx
    }

    /// Size of the file in bytes.
    public var fileSize: Int { file.bytes.count }

    /// The tensor called `name`, if any.
    public func tensor(named name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// Zero-copy view of a tensor's bytes in the mapping; valid while `self` lives.
    /// Empty if `t` does not describe a range inside this file.
    public func data(for t: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let (start, o1) = dataOffset.addingReportingOverflow(t.offset)
        let (end, o2) = start.addingReportingOverflow(t.byteCount)
        guard !o1, !o2, t.offset >= 0, t.byteCount >= 0, end <= file.bytes.count else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(rebasing: file.bytes[start ..< end])
    }

    /// The tensor as f32 values (GGUF element order), via the dispatching `ck_dequantize_row`.
    public func dequantize(_ t: GGUFTensorInfo) throws -> [Float] { try dequantize(t, reference: false) }

    /// The tensor as f32 values via the naive `ck_dequantize_row_ref` (test oracle).
    public func dequantizeReference(_ t: GGUFTensorInfo) throws -> [Float] { try dequantize(t, reference: true) }

    private func dequantize(_ t: GGUFTensorInfo, reference: Bool) throws -> [Float] {
        guard t.type.isSupported else {
            throw EngineError(.unsupported, "\(path): tensor '\(GGUFCursor.printable(t.name))' has type \(t.type.name), which cannot be dequantized (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_K..q6_K)")
        }
        let src = data(for: t)
        guard t.elementCount > 0 else { return [] }
        guard src.count == t.byteCount, t.type.byteCount(elements: t.elementCount) == t.byteCount else {
            throw EngineError(.invalidArgument, "\(path): tensor '\(GGUFCursor.printable(t.name))' does not describe data inside this file")
        }
        var out = [Float](repeating: 0, count: t.elementCount)
        let rc = out.withUnsafeMutableBufferPointer { dst in
            reference
                ? ck_dequantize_row_ref(Int32(t.type.rawValue), src.baseAddress, dst.baseAddress, Int64(t.elementCount))
                : ck_dequantize_row(Int32(t.type.rawValue), src.baseAddress, dst.baseAddress, Int64(t.elementCount))
        }
        guard rc == 0 else {
            throw EngineError(.internal, "\(path): tensor '\(GGUFCursor.printable(t.name))': dequantization of \(t.type.name) failed")
        }
        return out
    }
}
