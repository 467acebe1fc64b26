// StreamingWriters — GGUF and safetensors files written one tensor at a time, so a merge of a
// large model holds one matrix in memory, not the whole output. The header (all names, shapes and
// types) is declared up front; tensors then arrive in declared order. Atomic: a temp file beside the
// target, fsync, rename on `finish()`; a writer dropped before `finish()` removes its temp file.

import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output file being streamed: temp file + ordered tensor list.
final class StreamingFile {
    let path: String
    let tmp: String
    private var fd: Int32
    private(set) var finished = false

    init(path: String) throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        tmp = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw EngineError(.io, "\(path): cannot create temp file (\(String(cString: strerror(errno))))") }
    }

    deinit {
        if !finished { close(fd); unlink(tmp) }
    }

    func write(_ buf: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < buf.count {
            let n = streamPosixWrite(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw EngineError(.io, "\(path): write failed (\(String(cString: strerror(errno))))") }
            off += n
        }
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func finish() throws {
        guard fsync(fd) == 0 else { throw EngineError(.io, "\(path): fsync failed (\(String(cString: strerror(errno))))") }
        close(fd)
        finished = true
        guard rename(tmp, path) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(tmp)
            throw EngineError(.io, "\(path): rename failed (\(msg))")
        }
    }
}

@inline(__always) private func streamPosixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Darwin)
    Darwin.write(fd, p, n)
    #else
    Glibc.write(fd, p, n)
    #endif
}

// MARK: - GGUF

/// A GGUF v3 file streamed tensor by tensor. Metadata and tensor descriptors go first (offsets follow
/// from the declared types), then each tensor's data, aligned to `general.alignment` (default 32).
public final class GGUFStreamWriter {
    public struct Tensor: Sendable {
        public var name: String
        /// GGUF order: ne[0] (the row length) first.
        public var shape: [Int]
        public var type: GGMLType
        public init(name: String, shape: [Int], type: GGMLType) {
            self.name = name
            self.shape = shape
            self.type = type
        }
    }

    private let file: StreamingFile
    private let tensors: [Tensor]
    private let alignment: Int
    private var next = 0
    private var written = 0

    /// Writes the header of a file holding `tensors` (in this order) with `metadata` (keys in `keys` order).
    public init(path: String, keys: [String], metadata: [String: GGUFValue], tensors: [Tensor]) throws {
        var header = GGUFWriter()
        for k in keys { if let v = metadata[k] { header.set(k, v) } }
        alignment = header.alignment
        self.tensors = tensors
        var out: [UInt8] = Array("GGUF".utf8)
        out.le(UInt32(3))
        out.le(UInt64(tensors.count))
        out.le(UInt64(header.metadataKeys.count))
        for key in header.metadataKeys {
            out.str(key)
            let v = header.metadata[key]!
            out.le(GGUFWriter.typeID(v))
            try GGUFWriter.encode(v, into: &out, key: key)
        }
        var offset = 0
        var seen = Set<String>()
        for t in tensors {
            guard seen.insert(t.name).inserted else { throw EngineError(.invalidArgument, "duplicate tensor name '\(t.name)'") }
            let info = GGUFTensorInfo(name: t.name, shape: t.shape, type: t.type, offset: 0)
            guard t.type.isKnown, !t.shape.isEmpty, t.shape[0] % t.type.blockSize == 0, info.byteCount > 0 || info.elementCount == 0 else {
                throw EngineError(.invalidArgument, "tensor '\(t.name)': shape \(t.shape) cannot be stored as \(t.type.name) (row length must be a multiple of \(t.type.blockSize))")
            }
            out.str(t.name)
            out.le(UInt32(t.shape.count))
            for d in t.shape { out.le(UInt64(d)) }
            out.le(t.type.rawValue)
            out.le(UInt64(offset))
            offset += (info.byteCount + alignment - 1) / alignment * alignment
        }
        out.pad(to: alignment)
        file = try StreamingFile(path: path)
        try file.write(out)
        written = out.count
    }

    /// Bytes the next declared tensor needs.
    private func expect(_ name: String) throws -> (Tensor, Int) {
        guard next < tensors.count else { throw EngineError(.internal, "GGUF stream: tensor '\(name)' beyond the \(tensors.count) declared") }
        let t = tensors[next]
        guard t.name == name else { throw EngineError(.internal, "GGUF stream: got '\(name)', expected '\(t.name)' next") }
        let n = GGUFTensorInfo(name: t.name, shape: t.shape, type: t.type, offset: 0).byteCount
        return (t, n)
    }

    /// Writes the next tensor from already-encoded bytes.
    public func write(name: String, bytes: UnsafeRawBufferPointer) throws {
        let (_, n) = try expect(name)
        guard bytes.count == n else { throw EngineError(.internal, "GGUF stream: '\(name)' has \(bytes.count) bytes, expected \(n)") }
        try file.write(bytes)
        let pad = (alignment - n % alignment) % alignment
        if pad > 0 { try file.write([UInt8](repeating: 0, count: pad)) }
        next += 1
    }

    /// Writes the next tensor from f32 values, converted to its declared type with `ck_quantize_row`
    /// (ggml's reference rounding and block layout).
    public func write(name: String, values: [Float]) throws {
        let (t, n) = try expect(name)
        guard t.type.canQuantize else { throw EngineError(.unsupported, "tensor '\(name)': cannot encode \(t.type.name)") }
        var bytes = [UInt8](repeating: 0, count: n)
        let rc = values.withUnsafeBufferPointer { src in
            bytes.withUnsafeMutableBytes { ck_quantize_row(Int32(t.type.rawValue), src.baseAddress, $0.baseAddress, Int64(values.count)) }
        }
        guard rc == 0 else { throw EngineError(.internal, "tensor '\(name)': quantization to \(t.type.name) failed") }
        try bytes.withUnsafeBytes { try write(name: name, bytes: $0) }
    }

    /// Checks every declared tensor was written, then fsyncs and renames into place.
    public func finish() throws {
        guard next == tensors.count else {
            throw EngineError(.internal, "GGUF stream: \(next) of \(tensors.count) tensors written")
        }
        try file.finish()
    }
}

// MARK: - Safetensors

/// A safetensors file streamed tensor by tensor; tensors are declared up front and written in that order.
public final class SafetensorsStreamWriter {
    public struct Tensor: Sendable {
        public var name: String
        public var shape: [Int]
        public var dtype: SafetensorsDType
        public init(name: String, shape: [Int], dtype: SafetensorsDType) {
            self.name = name
            self.shape = shape
            self.dtype = dtype
        }
        var count: Int { shape.reduce(1, *) }
    }

    private let file: StreamingFile
    private let tensors: [Tensor]
    private var next = 0

    public init(path: String, tensors: [Tensor], metadata: [String: String] = [:]) throws {
        var parts: [String] = []
        if !metadata.isEmpty {
            let kv = metadata.keys.sorted().map { "\(hfJSONString($0)):\(hfJSONString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(kv.joined(separator: ","))}")
        }
        var offset = 0
        var seen = Set<String>()
        for t in tensors {
            guard !t.name.isEmpty, t.name != "__metadata__", seen.insert(t.name).inserted else {
                throw EngineError(.invalidArgument, "safetensors: invalid or duplicate tensor name '\(t.name)'")
            }
            let bytes = t.count * t.dtype.byteSize
            parts.append("\(hfJSONString(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array("{\(parts.joined(separator: ","))}".utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        var prefix: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { prefix = Array($0) }
        self.tensors = tensors
        file = try StreamingFile(path: path)
        try file.write(prefix + header)
    }

    /// Writes the next declared tensor, converting f32 `values` to its dtype (round-to-nearest-even).
    public func write(name: String, values: [Float]) throws {
        guard next < tensors.count, tensors[next].name == name else {
            throw EngineError(.internal, "safetensors stream: got '\(name)', expected '\(next < tensors.count ? tensors[next].name : "nothing")' next")
        }
        let t = tensors[next]
        guard values.count == t.count else {
            throw EngineError(.internal, "safetensors stream: '\(name)' has \(values.count) values, shape \(t.shape) needs \(t.count)")
        }
        try file.write(SafetensorsCodec.encode(values, dtype: t.dtype))
        next += 1
    }

    public func finish() throws {
        guard next == tensors.count else { throw EngineError(.internal, "safetensors stream: \(next) of \(tensors.count) tensors written") }
        try file.finish()
    }
}
