// Safetensors — read (mmap, validated) and write (atomic) HF safetensors files with F32/F16/BF16 tensors.
//
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
// `{"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}`,
// then the data section; `data_offsets` are relative to its start (8 + N). Everything read from the
// file is validated before use, so a damaged file gives one EngineError line naming file and tensor.

import CKernels
import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

// MARK: - Types

/// Element types this engine reads and writes. Other safetensors dtypes (I8, F64, ...) are rejected.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"

    /// Bytes per element.
    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Absolute byte offsets of the tensor's data in the file.
    public let byteRange: Range<Int>

    public init(name: String, dtype: SafetensorsDType, shape: [Int], byteRange: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
    }

    /// Number of elements (product of the shape; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// Largest header accepted (the reference implementation's limit).
let safetensorsMaxHeaderBytes = 100_000_000

// MARK: - Reader

/// A safetensors file mapped read-only into memory. The mapping lives as long as this object.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    /// Tensor entries sorted by name.
    public let tensors: [SafetensorsTensorInfo]
    /// The header's `__metadata__` map (empty if absent).
    public let metadata: [String: String]

    private let base: UnsafeRawPointer?
    private let size: Int
    private let index: [String: Int]

    /// Maps and validates `path`: header length, JSON, dtypes, shapes, offsets inside the data section,
    /// no overlapping tensors, and byte size == element count × dtype size.
    public init(path: String) throws {
        self.path = path
        let mapping = try HFMappedFile(path: path)
        let (tensors, metadata) = try Self.parse(mapping.bytes, file: path)
        self.base = mapping.take()
        self.size = mapping.size
        self.tensors = tensors
        self.metadata = metadata
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// The entry named `named`, or nil.
    public func tensor(named: String) -> SafetensorsTensorInfo? { index[named].map { tensors[$0] } }

    /// The raw little-endian bytes of `info` (valid while this object lives). An entry that is not one of
    /// this file's `tensors` (e.g. taken from another file) gives an empty buffer.
    public func data(for info: SafetensorsTensorInfo) -> UnsafeRawBufferPointer {
        guard let base, let i = index[info.name], tensors[i] == info else {
            return UnsafeRawBufferPointer(start: nil, count: 0)
        }
        return UnsafeRawBufferPointer(start: base + info.byteRange.lowerBound, count: info.byteRange.count)
    }

    /// The tensor's values converted to f32 (row-major, as stored).
    public func floats(_ t: SafetensorsTensorInfo) throws -> [Float] {
        guard let i = index[t.name], tensors[i] == t else {
            throw EngineError(.invalidArgument, "\(path): tensor '\(t.name)': entry does not belong to this file")
        }
        return SafetensorsCodec.decode(data(for: t), dtype: t.dtype, count: t.elementCount)
    }

    // MARK: - Header parsing

    private static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws
        -> ([SafetensorsTensorInfo], [String: String]) {
        guard bytes.count >= 8 else {
            throw EngineError.format(file, "truncated: \(bytes.count) bytes, need at least 8 for the header length")
        }
        let rawLen = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self).littleEndian
        guard rawLen <= UInt64(safetensorsMaxHeaderBytes) else {
            throw EngineError.format(file, "header length \(rawLen) exceeds the \(safetensorsMaxHeaderBytes)-byte limit")
        }
        let headerLen = Int(rawLen)
        guard headerLen >= 2, 8 + headerLen <= bytes.count else {
            throw EngineError.format(file, "header length \(headerLen) does not fit in the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + headerLen
        let dataSize = bytes.count - dataStart
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<dataStart])
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw EngineError.format(file, "header is not a JSON object (first byte is not '{')")
        }
        guard let parsed = try? JSONDecoder().decode(HFJSON.self, from: Data(headerBytes)), case .object(let json) = parsed else {
            throw EngineError.format(file, "header is not valid JSON (\(headerLen) bytes)")
        }

        var metadata: [String: String] = [:]
        if let meta = json["__metadata__"], meta != .null {
            guard case .object(let m) = meta else {
                throw EngineError.format(file, "\"__metadata__\" is not an object of strings")
            }
            for (k, v) in m {
                guard case .string(let s) = v else {
                    throw EngineError.format(file, "\"__metadata__\" value for '\(k)' is not a string")
                }
                metadata[k] = s
            }
        }

        var tensors: [SafetensorsTensorInfo] = []
        for (name, value) in json where name != "__metadata__" {
            tensors.append(try parseEntry(name: name, value: value, dataStart: dataStart, dataSize: dataSize, file: file))
        }
        tensors.sort { $0.name < $1.name }

        // No two tensors may share bytes (empty tensors occupy nothing).
        let byOffset = tensors.filter { !$0.byteRange.isEmpty }.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (a, b) in zip(byOffset, byOffset.dropFirst()) where b.byteRange.lowerBound < a.byteRange.upperBound {
            throw EngineError.format(file, "tensor '\(b.name)': data overlaps tensor '\(a.name)'")
        }
        return (tensors, metadata)
    }

    private static func parseEntry(name: String, value: HFJSON, dataStart: Int, dataSize: Int, file: String) throws
        -> SafetensorsTensorInfo {
        func fail(_ what: String) -> EngineError { EngineError.format(file, "tensor '\(name)': \(what)") }
        guard case .object(let entry) = value else { throw fail("entry is not a JSON object") }
        guard let dtypeName = entry["dtype"]?.string else { throw fail("missing or non-string \"dtype\"") }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw EngineError(.unsupported, "\(file): tensor '\(name)': unsupported dtype \(dtypeName) (supported: F32, F16, BF16)")
        }
        guard let shape = entry["shape"]?.intArray, shape.allSatisfy({ $0 >= 0 }) else {
            throw fail("\"shape\" is not an array of non-negative integers")
        }
        guard let offs = entry["data_offsets"]?.intArray, offs.count == 2 else {
            throw fail("\"data_offsets\" is not an array of two integers")
        }
        let (begin, end) = (offs[0], offs[1])
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw fail("data_offsets [\(begin), \(end)] out of range (data section is \(dataSize) bytes)")
        }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw fail("shape \(shape) overflows") }
            count = p
        }
        let (bytesNeeded, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !o, bytesNeeded == end - begin else {
            throw fail("\(end - begin) data bytes but shape \(shape) of \(dtypeName) needs \(o ? "too many" : String(bytesNeeded))")
        }
        return SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin)..<(dataStart + end))
    }
}

// MARK: - Writer

/// Builds a safetensors file in memory and writes it atomically.
public struct SafetensorsWriter {
    private var metadata: [String: String]
    private var entries: [String: (dtype: SafetensorsDType, shape: [Int], bytes: [UInt8])] = [:]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    /// Adds a tensor, converting `values` to `dtype` (round-to-nearest-even for F16/BF16).
    /// Throws on a duplicate or reserved name, a negative dimension, or `values.count != prod(shape)`.
    public mutating func add(name: String, shape: [Int], values: [Float], dtype: SafetensorsDType) throws {
        guard !name.isEmpty, name != "__metadata__" else {
            throw EngineError(.invalidArgument, "safetensors: invalid tensor name '\(name)'")
        }
        guard entries[name] == nil else {
            throw EngineError(.invalidArgument, "safetensors: duplicate tensor name '\(name)'")
        }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard d >= 0, !o else { throw EngineError(.invalidArgument, "safetensors: tensor '\(name)': invalid shape \(shape)") }
            count = p
        }
        guard count == values.count else {
            throw EngineError(.invalidArgument,
                              "safetensors: tensor '\(name)': shape \(shape) has \(count) elements but \(values.count) values were given")
        }
        entries[name] = (dtype, shape, SafetensorsCodec.encode(values, dtype: dtype))
    }

    /// Writes the file: header with `__metadata__` first then tensors sorted by name, padded with spaces
    /// to a multiple of 8 bytes; data in the same order. Atomic (temp file in the same directory, fsync, rename).
    public func write(to path: String) throws {
        let names = entries.keys.sorted()
        var parts: [String] = []
        if !metadata.isEmpty {
            let kv = metadata.keys.sorted().map { "\(hfJSONString($0)):\(hfJSONString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(kv.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            let e = entries[name]!
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append("\(hfJSONString(name)):{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
        }
        var header = Array("{\(parts.joined(separator: ","))}".utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        var prefix = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { prefix = Array($0) }
        try HFAtomicWriter.write(path: path, chunks: [prefix, header] + names.map { entries[$0]!.bytes })
    }
}

// MARK: - Element conversion

enum SafetensorsCodec {
    /// Little-endian bytes of `values` in `dtype`.
    static func encode(_ values: [Float], dtype: SafetensorsDType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
        out.withUnsafeMutableBytes { dst in
            switch dtype {
            case .f32:
                for (i, v) in values.enumerated() { dst.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .f16:
                for (i, v) in values.enumerated() { dst.storeBytes(of: ck_fp32_to_fp16(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .bf16:
                for (i, v) in values.enumerated() { dst.storeBytes(of: ck_fp32_to_bf16(v).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        }
        return out
    }

    /// `count` values of `dtype` from little-endian `bytes` (which may be unaligned), as f32.
    static func decode(_ bytes: UnsafeRawBufferPointer, dtype: SafetensorsDType, count: Int) -> [Float] {
        precondition(bytes.count >= count * dtype.byteSize, "SafetensorsCodec.decode: buffer too small")
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            initialized = count
            guard count > 0, let src = bytes.baseAddress, let dst = out.baseAddress else { return }
            switch dtype {
            case .f32:
                UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: 4 * count)
            case .f16, .bf16:
                // Aligned data goes through the C kernels (fast even in debug builds); else element-wise.
                let type = Int32(dtype == .f16 ? CK_TYPE_F16.rawValue : CK_TYPE_BF16.rawValue)
                if Int(bitPattern: src) % 2 == 0, ck_dequantize_row(type, src, dst, Int64(count)) == 0 { return }
                let convert = dtype == .f16 ? ck_fp16_to_fp32 : ck_bf16_to_fp32
                for i in 0..<count {
                    out[i] = convert(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                }
            }
        }
    }
}
