// GGUFFuzzTests — thousands of seeded mutations of valid GGUF files (byte flips, edge-value
// counts/lengths, truncation, insertion, deletion): each must throw an EngineError or parse
// into tensors that all lie inside the file. Never a crash or a hang.

import Foundation
import Testing
import Engine

// MARK: - Mutator

private struct Mutator {
    var rng: SplitMix64
    static let edge64: [UInt64] = [0, 1, 2, 0xff, 0xffff_ffff, 0x1_0000_0000, .max, .max - 1, UInt64(Int64.max),
                                   0x8000_0000_0000_0000, 1 << 40]
    static let edge32: [UInt32] = [0, 1, 2, 3, 4, 5, 8, 9, 10, 12, 13, 30, 31, 1234, .max, 0x8000_0000]

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(rng.next() % UInt64(n)) }

    /// An offset biased towards the header/metadata/tensor-info region.
    mutating func offset(_ size: Int, headerEnd: Int) -> Int {
        below(4) == 0 ? below(size) : below(min(size, headerEnd))
    }

    mutating func mutate(_ b: inout [UInt8], headerEnd: Int) {
        for _ in 0 ..< 1 + below(3) {
            guard !b.isEmpty else { return }
            switch below(6) {
            case 0:
                let o = offset(b.count, headerEnd: headerEnd)
                b[o] ^= UInt8(truncatingIfNeeded: 1 << below(8)) | UInt8(truncatingIfNeeded: below(2) == 0 ? 0 : rng.next())
            case 1:
                var v = Self.edge64[below(Self.edge64.count)]
                if below(4) == 0 { v = UInt64(max(0, b.count + below(64) - 32)) }
                let o = offset(b.count, headerEnd: headerEnd)
                for i in 0 ..< 8 where o + i < b.count { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
            case 2:
                let v = Self.edge32[below(Self.edge32.count)]
                let o = offset(b.count, headerEnd: headerEnd)
                for i in 0 ..< 4 where o + i < b.count { b[o + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
            case 3:
                b.removeLast(b.count - below(b.count))
            case 4:
                let o = offset(b.count, headerEnd: headerEnd)
                b.insert(contentsOf: (0 ..< 1 + below(16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: o)
            default:
                let o = offset(b.count, headerEnd: headerEnd)
                b.removeSubrange(o ..< min(b.count, o + 1 + below(16)))
            }
        }
    }
}

// MARK: - Tests

@Suite struct GGUFFuzzTests {
    private func fuzz(base: [UInt8], iterations: Int, seed: UInt64) throws -> (parsed: Int, rejected: Int) {
        let dir = try TestPaths.tempDir()
        let path = dir.appendingPathComponent("fuzz.gguf").path
        let headerEnd = try GGUFFile(path: { try Data(base).write(to: URL(fileURLWithPath: path)); return path }()).dataOffset
        var m = Mutator(rng: .init(seed: seed))
        var parsed = 0, rejected = 0
        for i in 0 ..< iterations {
            var b = base
            m.mutate(&b, headerEnd: headerEnd)
            try Data(b).write(to: URL(fileURLWithPath: path))
            do {
                let f = try GGUFFile(path: path)
                parsed += 1
                for t in f.tensors {
                    #expect(t.offset >= 0 && f.dataOffset + t.offset + t.byteCount <= b.count, "iteration \(i): \(t.name)")
                    #expect(f.data(for: t).count == t.byteCount)
                }
                if let t = f.tensors.first(where: { $0.type.isSupported && $0.byteCount < 1 << 16 }) {
                    #expect(try f.dequantize(t).count == t.elementCount)
                }
            } catch let e as EngineError {
                rejected += 1
                #expect(!e.message.isEmpty && !e.message.contains("\n"), "iteration \(i): \(e.message)")
            }
        }
        return (parsed, rejected)
    }

    @Test(.timeLimit(.minutes(2)))
    func fuzzSampleFile() throws {
        let r = try fuzz(base: try sampleWriter().serialized(), iterations: 3000, seed: 1)
        #expect(r.parsed + r.rejected == 3000)
        #expect(r.parsed > 0 && r.rejected > 1000)
    }

    @Test(.timeLimit(.minutes(2)))
    func fuzzTinyLlama() throws {
        let path = try TestPaths.tempDir().appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: path, config: .tiny, seed: 3)
        let base = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let r = try fuzz(base: base, iterations: 400, seed: 2)
        #expect(r.parsed + r.rejected == 400)
    }
}
