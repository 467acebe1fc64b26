// GGUFWriter — builds a GGUF v3 file: metadata in insertion order, tensors from f32 values
// (quantized with ck_quantize_row, ggml's reference rounding) or raw bytes, data aligned to
// `general.alignment` (default 32). Written atomically: temp file in the same directory,
// fsync, rename.

import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - GGUFWriter

/// Accumulates metadata and tensors, then serializes them as GGUF v3.
public struct GGUFWriter: Sendable {
    public private(set) var metadataKeys: [String] = []
    public private(set) var metadata: [String: GGUFValue] = [:]
    private var tensors: [(name: String, shape: [Int], type: GGMLType, bytes: [UInt8])] = []

    public init() {}

    /// Data alignment: `general.alignment` if set (a uint32), else 32.
    public var alignment: Int {
        if case .uint32(let a)? = metadata["general.alignment"], a > 0 { return Int(a) }
        return 32
    }

    /// Names of the tensors added so far, in order.
    public var tensorNames: [String] { tensors.map(\.name) }

    /// Sets a metadata value. A new key goes last; an existing key keeps its position.
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if metadata.updateValue(value, forKey: key) == nil { metadataKeys.append(key) }
    }

    /// Adds a tensor from f32 values (row-major, `shape` in GGUF order: ne[0] first),
    /// converted to `type` with `ck_quantize_row`.
    public mutating func addTensor(name: String, shape: [Int], values: [Float], type: GGMLType = .f32) throws {
        let info = try check(name: name, shape: shape, type: type)
        guard values.count == info.elementCount else {
            throw EngineError(.invalidArgument, "tensor '\(name)': \(values.count) values given, shape \(shape) needs \(info.elementCount)")
        }
        guard type.canQuantize else {
            throw EngineError(.unsupported, "tensor '\(name)': cannot quantize to \(type.name) (supported: f32, f16, bf16, q4_0, q4_1, q8_0)")
        }
        var bytes = [UInt8](repeating: 0, count: info.byteCount)
        let rc = values.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBytes { dst in
                ck_quantize_row(Int32(type.rawValue), src.baseAddress, dst.baseAddress, Int64(values.count))
            }
        }
        guard rc == 0 else { throw EngineError(.internal, "tensor '\(name)': quantization to \(type.name) failed") }
        tensors.append((name, shape, type, bytes))
    }

    /// Adds a tensor whose data is already encoded in `type` (`bytes.count` must match).
    public mutating func addTensor(name: String, shape: [Int], type: GGMLType, bytes: [UInt8]) throws {
        let info = try check(name: name, shape: shape, type: type)
        guard bytes.count == info.byteCount else {
            throw EngineError(.invalidArgument, "tensor '\(name)': \(bytes.count) bytes given, \(type.name) shape \(shape) needs \(info.byteCount)")
        }
        tensors.append((name, shape, type, bytes))
    }

    private func check(name: String, shape: [Int], type: GGMLType) throws -> GGUFTensorInfo {
        guard !tensors.contains(where: { $0.name == name }) else {
            throw EngineError(.invalidArgument, "duplicate tensor name '\(name)'")
        }
        guard (1 ... 4).contains(shape.count), shape.allSatisfy({ $0 >= 0 }) else {
            throw EngineError(.invalidArgument, "tensor '\(name)': shape \(shape) must have 1...4 non-negative dims")
        }
        guard type.isKnown, shape[0] % type.blockSize == 0 else {
            throw EngineError(.invalidArgument, "tensor '\(name)': ne[0]=\(shape[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        let info = GGUFTensorInfo(name: name, shape: shape, type: type, offset: 0)
        guard info.elementCount > 0 || shape.contains(0) else {
            throw EngineError(.invalidArgument, "tensor '\(name)': shape \(shape) overflows")
        }
        return info
    }

    // MARK: - Serialization

    /// The complete file contents.
    public func serialized() throws -> [UInt8] {
        let align = alignment
        guard align > 0, align & (align - 1) == 0 else {
            throw EngineError(.invalidArgument, "general.alignment \(align) is not a power of two")
        }
        var out: [UInt8] = Array("GGUF".utf8)
        out.le(UInt32(3))
        out.le(UInt64(tensors.count))
        out.le(UInt64(metadataKeys.count))
        for key in metadataKeys {
            out.str(key)
            guard let v = metadata[key] else { continue }
            out.le(Self.typeID(v))
            try Self.encode(v, into: &out, key: key)
        }
        var offset = 0
        for t in tensors {
            out.str(t.name)
            out.le(UInt32(t.shape.count))
            for d in t.shape { out.le(UInt64(d)) }
            out.le(t.type.rawValue)
            out.le(UInt64(offset))
            offset += (t.bytes.count + align - 1) / align * align
        }
        out.pad(to: align)
        for t in tensors {
            out.append(contentsOf: t.bytes)
            out.pad(to: align)
        }
        return out
    }

    /// Writes the file atomically: a temp file next to `path`, fsync, then rename.
    public func write(to path: String) throws {
        let bytes = try serialized()
        var dir = ".", base = path
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
            base = String(path[path.index(after: slash)...])
        }
        let tmp = "\(dir)/.\(base).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EngineError(.io, "\(path): cannot create temp file \(tmp) (\(String(cString: strerror(errno))))") }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        var written = 0
        let err: String? = bytes.withUnsafeBytes { buf in
            guard let p = buf.baseAddress else { return nil }
            while written < buf.count {
                let n = Glibc_write(fd, p + written, buf.count - written)
                if n < 0 { if errno == EINTR { continue }; return String(cString: strerror(errno)) }
                written += n
            }
            return fsync(fd) == 0 ? nil : String(cString: strerror(errno))
        }
        close(fd)
        if let err { throw EngineError(.io, "\(path): write failed (\(err))") }
        guard rename(tmp, path) == 0 else {
            throw EngineError(.io, "\(path): cannot rename temp file into place (\(String(cString: strerror(errno))))")
        }
        ok = true
    }

    // MARK: - Value encoding

    static func typeID(_ v: GGUFValue) -> UInt32 {
        switch v {
        case .uint8: 0
        case .int8: 1
        case .uint16: 2
        case .int16: 3
        case .uint32: 4
        case .int32: 5
        case .float32: 6
        case .bool: 7
        case .string: 8
        case .array: 9
        case .uint64: 10
        case .int64: 11
        case .float64: 12
        }
    }

    static func encode(_ v: GGUFValue, into out: inout [UInt8], key: String) throws {
        switch v {
        case .uint8(let x): out.le(x)
        case .int8(let x): out.le(x)
        case .uint16(let x): out.le(x)
        case .int16(let x): out.le(x)
        case .uint32(let x): out.le(x)
        case .int32(let x): out.le(x)
        case .uint64(let x): out.le(x)
        case .int64(let x): out.le(x)
        case .float32(let x): out.le(x.bitPattern)
        case .float64(let x): out.le(x.bitPattern)
        case .bool(let x): out.append(x ? 1 : 0)
        case .string(let s): out.str(s)
        case .array(let et, let items):
            guard et <= 12 else { throw EngineError(.invalidArgument, "key '\(key)': array element type \(et) is not a GGUF value type") }
            out.le(et)
            out.le(UInt64(items.count))
            for item in items {
                guard typeID(item) == et else {
                    throw EngineError(.invalidArgument, "key '\(key)': array of type \(et) holds a value of type \(typeID(item))")
                }
                try encode(item, into: &out, key: key)
            }
        }
    }
}

// MARK: - Byte helpers

private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int { write(fd, p, n) }

/// Little-endian GGUF encoding helpers, shared by GGUFWriter and the streaming GGUF writer.
extension [UInt8] {
    mutating func le<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    mutating func str(_ s: String) {
        le(UInt64(s.utf8.count))
        append(contentsOf: s.utf8)
    }
    mutating func pad(to align: Int) {
        let r = count % align
        if r != 0 { append(contentsOf: repeatElement(0, count: align - r)) }
    }
}
