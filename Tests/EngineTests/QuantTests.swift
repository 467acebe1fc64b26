// QuantTests — ggml quant kernels: parity with gguf-py fixtures (dequantize and quantize,
// bit for bit), fast path == reference on random blocks, quantize→dequantize error bounds.

import CKernels
import Foundation
import Engine
import Testing

// MARK: - Helpers

private func dequant(_ type: GGMLType, _ raw: [UInt8], _ n: Int, reference: Bool) -> [Float]? {
    var out = [Float](repeating: .nan, count: n)
    let rc = raw.withUnsafeBytes { src in
        out.withUnsafeMutableBufferPointer { dst in
            reference ? ck_dequantize_row_ref(Int32(type.rawValue), src.baseAddress, dst.baseAddress, Int64(n))
                : ck_dequantize_row(Int32(type.rawValue), src.baseAddress, dst.baseAddress, Int64(n))
        }
    }
    return rc == 0 ? out : nil
}

private func quant(_ type: GGMLType, _ x: [Float]) -> [UInt8]? {
    guard let bytes = type.byteCount(elements: x.count) else { return nil }
    var out = [UInt8](repeating: 0, count: bytes)
    let rc = x.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBytes { ck_quantize_row(Int32(type.rawValue), src.baseAddress, $0.baseAddress, Int64(x.count)) }
    }
    return rc == 0 ? out : nil
}

private let fixtureTypes = ["f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]
private let allTypes: [GGMLType] = [.f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K]

// MARK: - Tests

@Suite struct QuantTests {
    @Test(arguments: fixtureTypes)
    func dequantizeMatchesGGUFPy(_ name: String) throws {
        let fx = try QuantFixture("deq_\(name).bin", magic: "CKDQ")
        #expect(fx.type.isSupported)
        #expect(fx.type.byteCount(elements: fx.count) == fx.raw.count)
        let ref = try #require(dequant(fx.type, fx.raw, fx.count, reference: true))
        let fast = try #require(dequant(fx.type, fx.raw, fx.count, reference: false))
        #expect(sameBits(ref, fx.floats), "\(name): reference differs from gguf-py")
        #expect(sameBits(fast, fx.floats), "\(name): fast path differs from gguf-py")
    }

    @Test(arguments: ["f16", "bf16", "q4_0", "q4_1", "q8_0"])
    func quantizeMatchesGGUFPy(_ name: String) throws {
        let fx = try QuantFixture("qnt_\(name).bin", magic: "CKQZ")
        let ours = try #require(quant(fx.type, fx.floats))
        #expect(ours == fx.raw, "\(name): ck_quantize_row bytes differ from gguf-py quantize")
    }

    @Test(arguments: allTypes)
    func fastEqualsReferenceOnRandomBlocks(_ type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 99)
        for blocks in [1, 3, 17] {
            let n = blocks * type.blockSize * (type.blockSize == 1 ? 37 : 1)
            let raw = (0 ..< type.byteCount(elements: n)!).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let ref = try #require(dequant(type, raw, n, reference: true))
            let fast = try #require(dequant(type, raw, n, reference: false))
            #expect(sameBits(ref, fast), "\(type) fast != ref for \(blocks) blocks")
        }
    }

    @Test(arguments: [(GGMLType.f32, Float(0)), (.f16, 1e-3), (.bf16, 8e-3), (.q8_0, 8e-3), (.q4_1, 0.07), (.q4_0, 0.15)])
    func quantizeRoundTripError(_ type: GGMLType, _ tolerance: Float) throws {
        var rng = SplitMix64(seed: 7)
        let x = (0 ..< 1024).map { _ in rng.symmetric() }
        let q = try #require(quant(type, x))
        let y = try #require(dequant(type, q, x.count, reference: true))
        let maxErr = zip(x, y).map { abs($0 - $1) }.max() ?? 0
        #expect(maxErr <= tolerance, "\(type): max error \(maxErr) > \(tolerance)")
    }

    @Test func typeTraitsAgreeWithKernels() {
        for t in allTypes {
            #expect(Int(ck_type_block_size(Int32(t.rawValue))) == t.blockSize, "\(t)")
            #expect(Int(ck_type_block_bytes(Int32(t.rawValue))) == t.blockBytes, "\(t)")
            #expect(String(cString: ck_type_name(Int32(t.rawValue))) == t.name)
            #expect(t.isSupported)
        }
        #expect(!GGMLType(rawValue: 16).isSupported && GGMLType(rawValue: 16).name == "iq2_xxs")
        #expect(!GGMLType(rawValue: 1234).isKnown && GGMLType(rawValue: 1234).name == "type#1234")
        #expect(ck_dequantize_row(2, nil, nil, 33) == -1)  // not a multiple of the block size
        #expect(ck_quantize_row(12, nil, nil, 256) == -1)  // q4_K quantization unsupported
    }

    @Test func sha256KnownAnswers() {
        #expect(Array("abc".utf8).withUnsafeBytes { SHA256.hex($0) } == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect([UInt8]().withUnsafeBytes { SHA256.hex($0) } == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = [UInt8](repeating: 0x61, count: 1000)
        #expect(long.withUnsafeBytes { SHA256.hex($0) } == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    @Test func halfConversionsRoundTrip() {
        for bits in stride(from: 0, through: 0xffff, by: 1) where (bits & 0x7c00) != 0x7c00 {
            let h = UInt16(bits)
            #expect(ck_fp32_to_fp16(ck_fp16_to_fp32(h)) == h)
        }
        #expect(ck_fp32_to_fp16(65520) == 0x7c00)     // rounds to +inf
        #expect(ck_fp32_to_fp16(5.960464477539063e-08 / 2) == 0) // tie to even at the smallest subnormal
        #expect(ck_fp32_to_bf16(1.00390625) == 0x3f80) // tie to even
    }
}

// MARK: - NF4 (bitsandbytes' blockwise 4-bit NormalFloat)

/// `Tests/Fixtures/nf4/nf4.json`, written by scripts/reference/nf4_fixtures.py with bitsandbytes.
private struct NF4Fixture: Decodable {
    let bitsandbytes: String
    let blocksize: Int
    let levels: [Float]
    let x: [Float]
    let absmax: [Float]
    let packed: [UInt8]
    let dequantized: [Float]
}

@Suite struct NF4Tests {
    private func fixture() throws -> NF4Fixture {
        let url = TestPaths.root.appendingPathComponent("Tests/Fixtures/nf4/nf4.json")
        return try JSONDecoder().decode(NF4Fixture.self, from: Data(contentsOf: url))
    }

    @Test func levelsAreBitsandbytesCodeBook() throws {
        let fx = try fixture()
        let ours = Array(UnsafeBufferPointer(start: ck_nf4_levels(), count: 16))
        #expect(sameBits(ours, fx.levels))
        #expect(GGMLType.nf4.blockSize == fx.blocksize && GGMLType.nf4.blockBytes == 36 && GGMLType.nf4.name == "nf4")
        #expect(!GGMLType.nf4.isKnown, "NF4 is tune-private: GGUF files must not carry it")
    }

    @Test func quantizeMatchesBitsandbytes() throws {
        let fx = try fixture()
        let q = try #require(quant(.nf4, fx.x))
        #expect(q.count == fx.absmax.count * 36)
        for b in fx.absmax.indices {
            let block = Array(q[b * 36 ..< (b + 1) * 36])
            let d = block[0 ..< 4].withUnsafeBytes { $0.loadUnaligned(as: Float.self) }
            #expect(d.bitPattern == fx.absmax[b].bitPattern, "block \(b): absmax \(d) != \(fx.absmax[b])")
            #expect(Array(block[4...]) == Array(fx.packed[b * 32 ..< (b + 1) * 32]), "block \(b): codes differ from bitsandbytes")
        }
        let ref = try #require(dequant(.nf4, q, fx.x.count, reference: true))
        let fast = try #require(dequant(.nf4, q, fx.x.count, reference: false))
        #expect(sameBits(ref, fx.dequantized), "reference dequantization differs from bitsandbytes")
        #expect(sameBits(fast, fx.dequantized), "fast dequantization differs from bitsandbytes")
    }

    @Test func roundTripErrorAndZeroBlock() throws {
        var rng = SplitMix64(seed: 11)
        let x = (0 ..< 1024).map { _ in rng.symmetric() }
        let q = try #require(quant(.nf4, x))
        let y = try #require(dequant(.nf4, q, x.count, reference: false))
        // The widest gap between levels is 1 − 0.7230 (and 0.6962 − 1 below): error ≤ half of it × absmax.
        for b in 0 ..< 16 {
            let amax = x[b * 64 ..< (b + 1) * 64].map { abs($0) }.max()!
            let err = (b * 64 ..< (b + 1) * 64).map { abs(x[$0] - y[$0]) }.max()!
            #expect(err <= 0.1524 * amax + 1e-6, "block \(b): error \(err) for absmax \(amax)")
        }
        let zeros = try #require(quant(.nf4, [Float](repeating: 0, count: 64)))
        #expect(try #require(dequant(.nf4, zeros, 64, reference: true)).allSatisfy { $0 == 0 })
    }
}
