// GGUFReaderTests — GGUF writer→reader round trips (every metadata type, tensors, alignment),
// one-line error messages for broken files, TinyLlama files, and the real SmolLM2 model.

import Foundation
import Testing
import Engine

// MARK: - Builders

/// A small file with every metadata value type, nested arrays and three tensors.
func sampleWriter(alignment: UInt32? = nil) throws -> GGUFWriter {
    var w = GGUFWriter()
    if let alignment { w.set("general.alignment", .uint32(alignment)) }
    w.set("u8", .uint8(200)); w.set("i8", .int8(-100)); w.set("u16", .uint16(60000)); w.set("i16", .int16(-30000))
    w.set("u32", .uint32(4_000_000_000)); w.set("i32", .int32(-2_000_000_000))
    w.set("u64", .uint64(.max)); w.set("i64", .int64(.min))
    w.set("f32", .float32(-1.5e-7)); w.set("f64", .float64(.pi)); w.set("yes", .bool(true)); w.set("no", .bool(false))
    w.set("str", .string("héllo ✓ 𝄞")); w.set("empty", .string(""))
    w.set("ints", .array(elementType: 5, [.int32(1), .int32(-2), .int32(3)]))
    w.set("strs", .array(elementType: 8, [.string("a"), .string(""), .string("Ġt")]))
    w.set("none", .array(elementType: 6, []))
    w.set("nested", .array(elementType: 9, [.array(elementType: 0, [.uint8(1), .uint8(2)]),
                                             .array(elementType: 8, [.string("x")])]))
    try w.addTensor(name: "a.f32", shape: [4, 3], values: (0 ..< 12).map { Float($0) - 5.5 }, type: .f32)
    try w.addTensor(name: "b.q8_0", shape: [64, 2], values: (0 ..< 128).map { sin(Float($0)) }, type: .q8_0)
    try w.addTensor(name: "c.f16", shape: [5], values: [1, -2, 0.5, 65504, 0], type: .f16)
    return w
}

private func writeBytes(_ bytes: [UInt8], _ name: String = "x.gguf") throws -> String {
    let path = try TestPaths.tempDir().appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

private func error(_ path: String) -> EngineError? {
    do { _ = try GGUFFile(path: path); return nil } catch let e as EngineError { return e } catch { return nil }
}

// MARK: - Round trips

@Suite struct GGUFReaderTests {
    @Test(arguments: [nil, UInt32(64)])
    func writerReaderRoundTrip(alignment: UInt32?) throws {
        let w = try sampleWriter(alignment: alignment)
        let path = try TestPaths.tempDir().appendingPathComponent("rt.gguf").path
        try w.write(to: path)
        let f = try GGUFFile(path: path)
        #expect(f.version == 3)
        #expect(f.metadataKeys == w.metadataKeys)
        #expect(f.metadata == w.metadata)
        #expect(f.alignment == Int(alignment ?? 32))
        #expect(f.dataOffset % f.alignment == 0)
        #expect(f.tensors.map(\.name) == ["a.f32", "b.q8_0", "c.f16"])
        let a = try #require(f.tensor(named: "a.f32"))
        #expect(a.shape == [4, 3] && a.type == .f32 && a.elementCount == 12 && a.byteCount == 48)
        #expect(try f.dequantize(a) == (0 ..< 12).map { Float($0) - 5.5 })
        let b = try #require(f.tensor(named: "b.q8_0"))
        #expect(b.byteCount == 4 * 34 && b.offset % f.alignment == 0)
        let bv = try f.dequantize(b)
        #expect(zip(bv, (0 ..< 128).map { sin(Float($0)) }).allSatisfy { abs($0 - $1) < 0.01 })
        #expect(sameBits(bv, try f.dequantizeReference(b)))
        #expect(try f.dequantize(#require(f.tensor(named: "c.f16"))) == [1, -2, 0.5, 65504, 0])
        #expect(f.tensor(named: "missing") == nil)
        // Raw bytes survive unchanged, and re-serializing gives the identical file.
        var w2 = GGUFWriter()
        for k in f.metadataKeys { w2.set(k, f.metadata[k]!) }
        for t in f.tensors { try w2.addTensor(name: t.name, shape: t.shape, type: t.type, bytes: Array(f.data(for: t))) }
        #expect(try w2.serialized() == Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    /// gguf-py wrote this file; parsing it and writing it again (re-quantizing "src.f32" with
    /// ck_quantize_row for every other tensor) must give the same bytes.
    @Test func writerMatchesGGUFPy() throws {
        let path = TestPaths.fixtures.appendingPathComponent("writer_sample.gguf").path
        let f = try GGUFFile(path: path)
        #expect(f.metadataKeys.count == 18)  // gguf-py drops the empty string "t.empty"
        #expect(f.metadata["t.nested"] == .array(elementType: 9, [.array(elementType: 5, [.int32(1), .int32(2)]),
                                                                   .array(elementType: 5, [.int32(3)])]))
        #expect(f.metadata["t.u64"] == .uint64(.max) && f.metadata["t.str"] == .string("héllo ✓ 𝄞"))
        let src = try f.dequantize(#require(f.tensor(named: "src.f32")))
        var w = GGUFWriter()
        for k in f.metadataKeys { w.set(k, f.metadata[k]!) }
        for t in f.tensors { try w.addTensor(name: t.name, shape: t.shape, values: src, type: t.type) }
        #expect(try w.serialized() == Array(try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    @Test func writerRejectsBadInput() throws {
        var w = GGUFWriter()
        #expect(throws: EngineError.self) { try w.addTensor(name: "t", shape: [33], values: .init(repeating: 0, count: 33), type: .q4_0) }
        #expect(throws: EngineError.self) { try w.addTensor(name: "t", shape: [4], values: [1, 2, 3], type: .f32) }
        #expect(throws: EngineError.self) { try w.addTensor(name: "t", shape: [256], values: .init(repeating: 0, count: 256), type: .q4_K) }
        try w.addTensor(name: "t", shape: [1], values: [1], type: .f32)
        #expect(throws: EngineError.self) { try w.addTensor(name: "t", shape: [1], values: [1], type: .f32) }
        w.set("bad", .array(elementType: 4, [.int32(1)]))
        #expect(throws: EngineError.self) { try w.serialized() }
    }

    // MARK: - Errors

    @Test func foreignTensorInfoGivesEmptyData() throws {
        let path = try TestPaths.tempDir().appendingPathComponent("s.gguf").path
        try sampleWriter().write(to: path)
        let f = try GGUFFile(path: path)
        let bogus = GGUFTensorInfo(name: "z", shape: [1 << 40], type: .f32, offset: 0)
        #expect(f.data(for: bogus).isEmpty)
        #expect(throws: EngineError.self) { try f.dequantize(bogus) }
    }

    @Test func missingFile() {
        let e = error("/nonexistent/dir/model.gguf")
        #expect(e?.kind == .io)
        #expect(e?.message.hasPrefix("/nonexistent/dir/model.gguf: cannot open") == true, "\(String(describing: e))")
    }

    @Test func emptyFile() throws {
        let e = error(try writeBytes([]))
        #expect(e?.kind == .format && e?.message.contains("file is empty (0 bytes)") == true, "\(String(describing: e))")
    }

    @Test func badMagic() throws {
        let e = error(try writeBytes(Array("GGML".utf8) + [UInt8](repeating: 0, count: 40)))
        #expect(e?.message.contains("bad magic 47 47 4d 4c (\"GGML\"), expected 47 47 55 46") == true, "\(String(describing: e))")
    }

    @Test func truncatedAndUnsupportedVersion() throws {
        let full = try sampleWriter().serialized()
        let e = error(try writeBytes(Array(full[..<300])))
        #expect(e?.message.contains("truncated at offset") == true, "\(String(describing: e))")
        let e2 = error(try writeBytes(Array(full[..<(full.count - 25)])))
        #expect(e2?.message.contains("extends past end of file") == true, "\(String(describing: e2))")
        var v = full
        v[4] = 4
        let e3 = error(try writeBytes(v))
        #expect(e3?.message.hasSuffix("unsupported GGUF version 4, expected 2 or 3") == true, "\(String(describing: e3))")
        v[4] = 0; v[7] = 3
        #expect(error(try writeBytes(v))?.message.contains("big-endian") == true)
    }

    @Test func unknownTensorTypeAndBadDims() throws {
        var w = GGUFWriter()
        try w.addTensor(name: "t", shape: [4], values: [1, 2, 3, 4], type: .f32)
        let ok = try w.serialized()
        var b = ok
        // header 24 bytes; tensor info: name (8 + 1), n_dims (4), ne[0] (8), then the type.
        b[45] = 0xd2; b[46] = 0x04
        let e = error(try writeBytes(b, "model.gguf"))
        #expect(e?.message.hasSuffix("model.gguf: tensor 't': unknown tensor type 1234 at offset 45, expected a ggml type id") == true,
                "\(String(describing: e))")
        b = ok; b[33] = 5
        #expect(error(try writeBytes(b))?.message.contains("n_dims is 5, expected 1...4") == true)
        b = ok; b[44] = 0xff
        #expect(error(try writeBytes(b))?.message.contains("negative") == true)
        b = ok; b[45] = 2   // q4_0 with ne[0] = 4
        #expect(error(try writeBytes(b))?.message.contains("not a multiple of the q4_0 block size 32") == true)
        b = ok; b[49] = 8   // offset 8 with alignment 32
        #expect(error(try writeBytes(b))?.message.contains("not a multiple of the alignment 32") == true)
        b = ok; b[16] = 0xff; b[23] = 0x0f // huge metadata count
        #expect(error(try writeBytes(b))?.message.contains("metadata count") == true)
    }

    @Test func corruptEntries() throws {
        var w = GGUFWriter()
        w.set("k1", .uint8(1)); w.set("k2", .uint8(2))
        try w.addTensor(name: "x", shape: [8], values: .init(repeating: 1, count: 8), type: .f32)
        try w.addTensor(name: "y", shape: [8], values: .init(repeating: 2, count: 8), type: .f32)
        // header 24; "k1" entry 24..<39 (8 + 2 + 4 + 1); "k2" entry 39..<54, its name chars at 47, 48.
        var b = try w.serialized()
        b[48] = UInt8(ascii: "1")
        #expect(error(try writeBytes(b))?.message.contains("duplicate metadata key 'k1'") == true)
        // tensor infos: "x" 54..<87, "y" 87..<120 (8 + 1 + 4 + 8 + 4 + 8); y's offset (32) is at 112.
        b = try w.serialized()
        #expect(b[112] == 32)
        b[112] = 0
        let e = error(try writeBytes(b))
        #expect(e?.message.contains("overlaps tensor 'x'") == true, "\(String(describing: e))")
        b = try w.serialized()
        b[95] = UInt8(ascii: "x")  // second tensor's name
        #expect(error(try writeBytes(b))?.message.contains("duplicate tensor name 'x'") == true)
        b = try w.serialized()
        b[32] = 0xff               // first key's first byte
        #expect(error(try writeBytes(b))?.message.contains("key of metadata entry #0 at offset 32 is not valid UTF-8") == true)
        b = try w.serialized()
        for i in 24 ..< 32 { b[i] = 0xff }  // first key's length
        let e4 = error(try writeBytes(b))
        #expect(e4?.message.contains("key length of metadata entry #0 at offset 24 is 18446744073709551615, but only") == true,
                "\(String(describing: e4))")
        b = try w.serialized()
        b[34] = 13                 // first value's type
        #expect(error(try writeBytes(b))?.message.contains("unknown value type 13") == true)
    }
}
