// SafetensorsTests — safetensors round trips (F32/F16/BF16), reading a file written by the Python
// safetensors library, writer layout, and one-line errors for damaged headers.

import CKernels
import Engine
import Foundation
import Testing

// MARK: - Support

/// Temp directories and fixture paths shared by the Formats tests.
enum FormatsTestSupport {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Runs `body` with a fresh temp directory that is removed afterwards.
    static func withTempDir<T>(_ body: (String) throws -> T) throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-formats-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try body(dir)
    }

    /// Bytes of a safetensors file with the given header JSON (length prefix computed) and data section.
    static func rawFile(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out += $0 }
        return out + h + data
    }

    /// The EngineError thrown by opening `bytes` as a safetensors file.
    static func openError(_ bytes: [UInt8]) throws -> (EngineError, String) {
        try withTempDir { dir in
            let path = dir + "/bad.safetensors"
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            do {
                _ = try SafetensorsFile(path: path)
            } catch let e as EngineError {
                return (e, path)
            }
            Issue.record("opening \(path) did not throw")
            return (EngineError(.internal, ""), path)
        }
    }
}

/// k * 0.25 - 1 — exactly representable in F32, F16 and BF16.
private func quarterSteps(_ n: Int) -> [Float] { (0..<n).map { Float($0) * 0.25 - 1 } }

// MARK: - Round trips

@Test func safetensorsRoundTripAllDTypes() throws {
    try FormatsTestSupport.withTempDir { dir in
        let path = dir + "/m.safetensors"
        // Values that need rounding in the 16-bit types, plus specials.
        let awkward: [Float] = [0, -0.0, 1, -2.5, 3.14159265, 1e-8, 65504, 70000, -1e30, .infinity, 1.0009766, 0.1]
        var w = SafetensorsWriter(metadata: ["format": "pt", "quote\"d": "line\nbreak"])
        try w.add(name: "w.f32", shape: [3, 4], values: awkward, dtype: .f32)
        try w.add(name: "w.f16", shape: [12], values: awkward, dtype: .f16)
        try w.add(name: "w.bf16", shape: [2, 2, 3], values: awkward, dtype: .bf16)
        try w.add(name: "scalar", shape: [], values: [7], dtype: .f32)
        try w.add(name: "empty", shape: [0, 5], values: [], dtype: .f16)
        try w.write(to: path)

        let f = try SafetensorsFile(path: path)
        #expect(f.tensors.map(\.name) == ["empty", "scalar", "w.bf16", "w.f16", "w.f32"])
        #expect(f.metadata == ["format": "pt", "quote\"d": "line\nbreak"])
        let f32 = try #require(f.tensor(named: "w.f32"))
        #expect(f32.dtype == .f32 && f32.shape == [3, 4] && f32.byteRange.count == 48)
        #expect(try f.floats(f32).map(\.bitPattern) == awkward.map(\.bitPattern))
        let f16 = try #require(f.tensor(named: "w.f16"))
        #expect(try f.floats(f16).map(\.bitPattern) == awkward.map { ck_fp16_to_fp32(ck_fp32_to_fp16($0)).bitPattern })
        let bf16 = try #require(f.tensor(named: "w.bf16"))
        #expect(bf16.shape == [2, 2, 3])
        #expect(try f.floats(bf16).map(\.bitPattern) == awkward.map { ck_bf16_to_fp32(ck_fp32_to_bf16($0)).bitPattern })
        #expect(try f.floats(#require(f.tensor(named: "scalar"))) == [7])
        let empty = try #require(f.tensor(named: "empty"))
        let emptyValues = try f.floats(empty)
        #expect(empty.shape == [0, 5] && empty.byteRange.isEmpty && emptyValues.isEmpty)
        // Raw bytes are little-endian in the stored dtype.
        let raw = f.data(for: f16)
        #expect(raw.count == 24)
        #expect(raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self) == ck_fp32_to_fp16(1))
        #expect(f.tensor(named: "missing") == nil)
    }
}

@Test func safetensorsUnalignedData() throws {
    // Header length 61 (odd) puts every tensor at an odd file offset.
    var header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"f":{"dtype":"F32","shape":[1],"data_offsets":[6,10]}}"#
    if header.utf8.count % 2 == 0 { header += " " }
    let data: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x40, 0x40, 0x00, 0x00, 0x20, 0x41]  // 1, -2 | 3 | 10
    try FormatsTestSupport.withTempDir { dir in
        let path = dir + "/odd.safetensors"
        _ = FileManager.default.createFile(atPath: path, contents: Data(FormatsTestSupport.rawFile(header: header, data: data)))
        let f = try SafetensorsFile(path: path)
        #expect(try f.floats(#require(f.tensor(named: "h"))) == [1, -2])
        #expect(try f.floats(#require(f.tensor(named: "b"))) == [3])
        #expect(try f.floats(#require(f.tensor(named: "f"))) == [10])
        // An entry from another file is refused, not misread.
        let foreign = SafetensorsTensorInfo(name: "h", dtype: .f32, shape: [1], byteRange: 0..<4)
        #expect(throws: EngineError.self) { try f.floats(foreign) }
        #expect(f.data(for: foreign).isEmpty)
    }
}

@Test func safetensorsReadsPythonWrittenFile() throws {
    let path = FormatsTestSupport.fixtures.appendingPathComponent("safetensors/python_small.safetensors").path
    let f = try SafetensorsFile(path: path)
    #expect(f.metadata == ["format": "pt", "note": "tune"])
    #expect(f.tensors.map(\.name) == ["a.f32", "b.f16", "c.bf16", "d.scalar"])
    let expect: [(String, SafetensorsDType, [Int])] = [("a.f32", .f32, [2, 3]), ("b.f16", .f16, [4]),
                                                        ("c.bf16", .bf16, [2, 2, 2]), ("d.scalar", .f32, [])]
    for (name, dtype, shape) in expect {
        let t = try #require(f.tensor(named: name))
        #expect(t.dtype == dtype && t.shape == shape, "\(name)")
        let values = try f.floats(t)
        if name == "d.scalar" { #expect(values == [3.5]) } else { #expect(values == quarterSteps(t.elementCount), "\(name)") }
    }
}

@Test func safetensorsWriterLayout() throws {
    try FormatsTestSupport.withTempDir { dir in
        let path = dir + "/layout.safetensors"
        var w = SafetensorsWriter(metadata: ["k": "v"])
        try w.add(name: "z", shape: [1], values: [1], dtype: .bf16)
        try w.add(name: "a", shape: [3], values: [1, 2, 3], dtype: .f32)
        try w.write(to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        #expect(n % 8 == 0)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        #expect(trimmed == #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"#
            + #""z":{"dtype":"BF16","shape":[1],"data_offsets":[12,14]}}"#)
        #expect(header.dropFirst(trimmed.count).allSatisfy { $0 == " " })
        #expect(bytes.count == 8 + n + 14)
        // Atomic write: only the target remains; rewriting replaces it.
        try w.write(to: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["layout.safetensors"])
    }
}

@Test func safetensorsWriterRejectsBadInput() throws {
    var w = SafetensorsWriter()
    try w.add(name: "x", shape: [2], values: [1, 2], dtype: .f32)
    #expect(throws: EngineError.self) { try w.add(name: "x", shape: [1], values: [1], dtype: .f32) }
    #expect(throws: EngineError.self) { try w.add(name: "y", shape: [2, 2], values: [1, 2, 3], dtype: .f16) }
    #expect(throws: EngineError.self) { try w.add(name: "y", shape: [-1], values: [], dtype: .f16) }
    #expect(throws: EngineError.self) { try w.add(name: "__metadata__", shape: [1], values: [1], dtype: .f32) }
    #expect(throws: EngineError.self) { try w.write(to: "/nonexistent-dir-tune/x.safetensors") }
}

// MARK: - Header validation

/// Asserts `bytes` fails to open with a one-line error naming the file and every string in `mentions`.
private func expectOpenError(_ bytes: [UInt8], kind: EngineError.Kind = .format, mentions: [String],
                             sourceLocation: SourceLocation = #_sourceLocation) throws {
    let (e, path) = try FormatsTestSupport.openError(bytes)
    #expect(e.kind == kind, "\(e.message)", sourceLocation: sourceLocation)
    #expect(!e.message.contains("\n"), "\(e.message)", sourceLocation: sourceLocation)
    #expect(e.message.contains(path), "\(e.message)", sourceLocation: sourceLocation)
    for m in mentions { #expect(e.message.contains(m), "\(e.message) lacks \(m)", sourceLocation: sourceLocation) }
}

private let data8 = [UInt8](repeating: 0, count: 8)

@Test func safetensorsTruncatedFile() throws {
    try expectOpenError([1, 2, 3], mentions: ["truncated"])
    try expectOpenError([], mentions: ["truncated"])
}

@Test func safetensorsHeaderLengthBeyondFile() throws {
    let bytes = FormatsTestSupport.rawFile(header: #"{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                                           data: data8, declaredLength: 4096)
    try expectOpenError(bytes, mentions: ["header length 4096"])
    try expectOpenError(FormatsTestSupport.rawFile(header: "{}", data: [], declaredLength: UInt64.max), mentions: ["header length"])
}

@Test func safetensorsBadJSON() throws {
    try expectOpenError(FormatsTestSupport.rawFile(header: #"{"t":{"dtype":"F32","#, data: data8), mentions: ["JSON"])
    try expectOpenError(FormatsTestSupport.rawFile(header: #"["t"]   "#, data: data8), mentions: ["JSON"])
}

@Test func safetensorsOffsetOutOfRange() throws {
    let h = #"{"weight.x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: h, data: data8), mentions: ["'weight.x'", "out of range"])
    let reversed = #"{"weight.y":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: reversed, data: data8), mentions: ["'weight.y'"])
}

@Test func safetensorsOverlap() throws {
    let h = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: h, data: data8), mentions: ["'b'", "overlaps", "'a'"])
}

@Test func safetensorsUnsupportedDType() throws {
    let h = #"{"q.weight":{"dtype":"I8","shape":[8],"data_offsets":[0,8]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: h, data: data8), kind: .unsupported, mentions: ["'q.weight'", "I8"])
    let h64 = #"{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: h64, data: data8), kind: .unsupported, mentions: ["'d'", "F64"])
}

@Test func safetensorsShapeSizeMismatch() throws {
    let h = #"{"emb":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: h, data: data8), mentions: ["'emb'", "shape [3]"])
    let huge = #"{"emb":{"dtype":"F32","shape":[9223372036854775807,4],"data_offsets":[0,8]}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: huge, data: data8), mentions: ["'emb'", "overflows"])
}

@Test func safetensorsIllTypedEntries() throws {
    let cases: [(String, String)] = [
        (#"{"s":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, "shape"),
        (#"{"s":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, "shape"),
        (#"{"s":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, "shape"),
        (#"{"s":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, "data_offsets"),
        (#"{"s":{"shape":[2],"data_offsets":[0,8]}}"#, "dtype"),
        (#"{"s":[1,2]}"#, "not a JSON object"),
    ]
    for (h, what) in cases {
        try expectOpenError(FormatsTestSupport.rawFile(header: h, data: data8), mentions: ["'s'", what])
    }
    let meta = #"{"__metadata__":{"k":1}}"#
    try expectOpenError(FormatsTestSupport.rawFile(header: meta, data: []), mentions: ["__metadata__", "'k'"])
}

@Test func safetensorsMissingFileIsIOError() {
    #expect(throws: EngineError(.io, "/nonexistent/tune.safetensors: cannot open (No such file or directory)")) {
        _ = try SafetensorsFile(path: "/nonexistent/tune.safetensors")
    }
}
