// GGUFParser — bounds-checked decoding of a GGUF header, metadata and tensor infos from
// mapped bytes. Every read is checked; every count/length is checked against the bytes
// left before anything is allocated; errors are one line naming the file and the place.

// MARK: - Cursor

/// A little-endian reader over a byte buffer that throws instead of reading past the end.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var offset = 0
    /// What is being read, for error messages ("key 'general.name'").
    var context = "header"

    var remaining: Int { bytes.count - offset }

    func fail(_ what: String) -> EngineError { .format(file, what) }

    mutating func need(_ n: Int, _ what: String) throws {
        guard n >= 0, n <= remaining else {
            throw fail("truncated at offset \(offset) reading \(what) of \(context): need \(n) bytes, \(max(remaining, 0)) left")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ what: String) throws -> T {
        try need(MemoryLayout<T>.size, what)
        var v: T = 0
        withUnsafeMutableBytes(of: &v) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + MemoryLayout<T>.size]))
        }
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    /// A u64 count/length that must fit in the remaining bytes at `minSize` bytes per item.
    mutating func count(_ what: String, minSize: Int) throws -> Int {
        let at = offset
        let raw = try read(UInt64.self, what)
        let limit = UInt64(max(remaining, 0)) / UInt64(max(minSize, 1))
        guard raw <= limit else {
            throw fail("\(what) of \(context) at offset \(at) is \(raw), but only \(remaining) bytes remain (at most \(limit) possible; truncated or corrupt file)")
        }
        return Int(raw)
    }

    mutating func string(_ what: String) throws -> String {
        let n = try count("\(what) length", minSize: 1)
        let raw = UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + n])
        guard let s = GGUFCursor.decodeUTF8(raw) else {
            throw fail("\(what) of \(context) at offset \(offset) is not valid UTF-8")
        }
        offset += n
        return s
    }

    /// `s` made safe for a one-line message: control and line-separator characters escaped,
    /// long strings shortened.
    static func printable(_ s: String) -> String {
        var out = ""
        for (i, u) in s.unicodeScalars.enumerated() {
            if i == 64 { out += "…"; break }
            let v = u.value
            if v < 0x20 || (0x7f ... 0x9f).contains(v) || v == 0x2028 || v == 0x2029 {
                out += "\\u{" + String(v, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    /// Strict UTF-8 decoding: nil if the bytes are not valid UTF-8.
    static func decodeUTF8(_ raw: UnsafeRawBufferPointer) -> String? {
        let s = String(decoding: raw, as: UTF8.self)
        if raw.allSatisfy({ $0 < 0x80 }) { return s }
        return s.utf8.elementsEqual(raw) ? s : nil
    }
}

// MARK: - Values

/// GGUF metadata value type ids.
enum GGUFValueType: UInt32 {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64

    /// Smallest encoded size of one value of this type (for array-length checks).
    var minSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }

    static let names = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
                        "string", "array", "uint64", "int64", "float64"]
}

extension GGUFCursor {
    static let maxArrayDepth = 8

    mutating func valueType(_ what: String) throws -> GGUFValueType {
        let at = offset
        let raw = try read(UInt32.self, what)
        guard let t = GGUFValueType(rawValue: raw) else {
            throw fail("\(context): unknown value type \(raw) at offset \(at), expected 0...12")
        }
        return t
    }

    mutating func value(_ type: GGUFValueType, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, "uint8"))
        case .int8: return .int8(try read(Int8.self, "int8"))
        case .uint16: return .uint16(try read(UInt16.self, "uint16"))
        case .int16: return .int16(try read(Int16.self, "int16"))
        case .uint32: return .uint32(try read(UInt32.self, "uint32"))
        case .int32: return .int32(try read(Int32.self, "int32"))
        case .uint64: return .uint64(try read(UInt64.self, "uint64"))
        case .int64: return .int64(try read(Int64.self, "int64"))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, "float32")))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, "float64")))
        case .bool:
            let at = offset
            let b = try read(UInt8.self, "bool")
            guard b <= 1 else { throw fail("\(context): bool at offset \(at) is \(b), expected 0 or 1") }
            return .bool(b == 1)
        case .string: return .string(try string("string"))
        case .array:
            guard depth < Self.maxArrayDepth else {
                throw fail("\(context): arrays nested deeper than \(Self.maxArrayDepth) levels at offset \(offset)")
            }
            let et = try valueType("array element type")
            let n = try count("array length", minSize: et.minSize)
            var items: [GGUFValue] = []
            items.reserveCapacity(min(n, 1 << 16))  // n is bounded by the file; cap the up-front allocation
            for _ in 0 ..< n { items.append(try value(et, depth: depth + 1)) }
            return .array(elementType: et.rawValue, items)
        }
    }
}

// MARK: - Whole header

/// Everything before the tensor data, validated.
struct GGUFHeader {
    var version: UInt32 = 0
    var metadata: [String: GGUFValue] = [:]
    var keys: [String] = []
    var tensors: [GGUFTensorInfo] = []
    var alignment = 32
    var dataOffset = 0

    init(bytes: UnsafeRawBufferPointer, file: String) throws {
        var c = GGUFCursor(bytes: bytes, file: file)
        if bytes.isEmpty { throw c.fail("file is empty (0 bytes), expected a GGUF header") }
        guard bytes.count >= 4 else { throw c.fail("file is \(bytes.count) bytes, too small for a GGUF header (24 bytes)") }
        let magic = Array(bytes[0 ..< 4])
        guard magic == Array("GGUF".utf8) else {
            let hex = magic.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            let shown = magic.map { (0x20 ..< 0x7f).contains($0) ? String(UnicodeScalar($0)) : "." }.joined()
            throw c.fail("bad magic \(hex.joined(separator: " ")) (\"\(shown)\"), expected 47 47 55 46 (\"GGUF\"); not a GGUF file")
        }
        c.offset = 4
        version = try c.read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            let hint = version.byteSwapped == 2 || version.byteSwapped == 3 ? " (big-endian file?)" : ""
            throw c.fail("unsupported GGUF version \(version)\(hint), expected 2 or 3")
        }
        let nTensors = try c.count("tensor count", minSize: 32)
        let nKV = try c.count("metadata count", minSize: 13)

        keys.reserveCapacity(min(nKV, 1 << 12))
        for i in 0 ..< nKV {
            c.context = "metadata entry #\(i)"
            let key = try c.string("key")
            let shown = GGUFCursor.printable(key)
            c.context = "key '\(shown)'"
            guard metadata[key] == nil else { throw c.fail("duplicate metadata key '\(shown)'") }
            let t = try c.valueType("value type")
            metadata[key] = try c.value(t)
            keys.append(key)
        }
        if let a = metadata["general.alignment"] {
            guard case .uint32(let v) = a, v > 0, v & (v - 1) == 0 else {
                throw c.fail("key 'general.alignment' is \(GGUFCursor.printable("\(a)")), expected a uint32 power of two")
            }
            alignment = Int(v)
        }

        var names = Set<String>()
        tensors.reserveCapacity(min(nTensors, 1 << 12))
        for i in 0 ..< nTensors {
            c.context = "tensor info #\(i)"
            let name = try c.string("name")
            let shown = GGUFCursor.printable(name)
            c.context = "tensor '\(shown)'"
            guard names.insert(name).inserted else { throw c.fail("duplicate tensor name '\(shown)'") }
            tensors.append(try Self.tensorInfo(&c, name: name, alignment: alignment))
        }
        c.context = "tensor data"
        let (padded, o) = c.offset.addingReportingOverflow(alignment - 1)
        guard !o else { throw c.fail("offset overflow") }
        dataOffset = padded / alignment * alignment
        try checkRanges(c, fileSize: bytes.count)
    }

    private static func tensorInfo(_ c: inout GGUFCursor, name: String, alignment: Int) throws -> GGUFTensorInfo {
        let shown = GGUFCursor.printable(name)
        let nDims = try c.read(UInt32.self, "n_dims")
        guard (1 ... 4).contains(nDims) else {
            throw c.fail("tensor '\(shown)': n_dims is \(nDims), expected 1...4")
        }
        var shape: [Int] = []
        var elements = 1
        for d in 0 ..< Int(nDims) {
            let raw = try c.read(UInt64.self, "ne[\(d)]")
            guard raw <= UInt64(Int64.max) else {
                throw c.fail("tensor '\(shown)': dimension \(d) is \(Int64(bitPattern: raw)) (negative), expected >= 0")
            }
            let (m, o) = elements.multipliedReportingOverflow(by: Int(raw))
            guard !o else { throw c.fail("tensor '\(shown)': element count overflows (shape \(shape + [Int(raw)]))") }
            elements = m
            shape.append(Int(raw))
        }
        let typeAt = c.offset
        let type = GGMLType(rawValue: try c.read(UInt32.self, "type"))
        guard type.isKnown else {
            throw c.fail("tensor '\(shown)': unknown tensor type \(type.rawValue) at offset \(typeAt), expected a ggml type id")
        }
        guard shape[0] % type.blockSize == 0 else {
            throw c.fail("tensor '\(shown)': row length ne[0]=\(shape[0]) is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        guard let bytes = type.byteCount(elements: elements) else {
            throw c.fail("tensor '\(shown)': byte size of \(elements) \(type.name) elements overflows")
        }
        let rawOffset = try c.read(UInt64.self, "data offset")
        guard rawOffset <= UInt64(Int64.max / 2) else {
            throw c.fail("tensor '\(shown)': data offset \(rawOffset) is beyond any file")
        }
        let offset = Int(rawOffset)
        guard offset % alignment == 0 else {
            throw c.fail("tensor '\(shown)': data offset \(offset) is not a multiple of the alignment \(alignment)")
        }
        var info = GGUFTensorInfo(name: name, shape: shape, type: type, offset: offset)
        info.elementCount = elements
        info.byteCount = bytes
        return info
    }

    /// Every tensor's data lies inside the file and no two tensors overlap.
    private func checkRanges(_ c: GGUFCursor, fileSize: Int) throws {
        if tensors.isEmpty { return }
        guard dataOffset <= fileSize else {
            throw c.fail("tensor data section starts at \(dataOffset), past end of file (\(fileSize) bytes)")
        }
        for t in tensors {
            let start = dataOffset + t.offset
            let (end, o) = start.addingReportingOverflow(t.byteCount)
            guard !o, end <= fileSize else {
                throw c.fail("tensor '\(GGUFCursor.printable(t.name))': data [\(start), \(o ? Int.max : end)) extends past end of file (\(fileSize) bytes)")
            }
        }
        let sorted = tensors.filter { $0.byteCount > 0 }.sorted { $0.offset < $1.offset }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.offset < a.offset + a.byteCount {
            throw c.fail("tensor '\(GGUFCursor.printable(b.name))' data at +\(b.offset) overlaps tensor '\(GGUFCursor.printable(a.name))' [+\(a.offset), +\(a.offset + a.byteCount))")
        }
    }
}
