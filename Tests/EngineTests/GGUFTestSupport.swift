// GGUFTestSupport — shared helpers for the GGUF/quant tests: package paths, fixtures,
// temp files, and a small SHA-256 (no CryptoKit on Linux).

import Foundation
import Testing
import Engine

// MARK: - Paths

enum TestPaths {
    /// Package root, found from this file's path (Tests/EngineTests/…).
    static let root: URL = packageRoot
    static let fixtures = root.appendingPathComponent("Tests/Fixtures/dequant")
    static let smolLM2 = smolLMPath
    static var hasSmolLM2: Bool { FileManager.default.fileExists(atPath: smolLM2) }

    /// A fresh temporary directory for one test.
    static func tempDir() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("tune-gguf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

// MARK: - Fixtures

/// One fixture file written by scripts/reference/dequant_fixtures.py.
struct QuantFixture {
    let type: GGMLType
    let count: Int
    let raw: [UInt8]       // quantized bytes
    let floats: [Float]    // dequantized output (CKDQ) or quantizer input (CKQZ)

    init(_ name: String, magic: String) throws {
        let d = try Data(contentsOf: TestPaths.fixtures.appendingPathComponent(name))
        let b = [UInt8](d)
        func u32(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24 }
        try #require(b.count >= 20 && String(decoding: b[0 ..< 4], as: UTF8.self) == magic && u32(4) == 1)
        type = GGMLType(rawValue: UInt32(u32(8)))
        count = u32(12)
        let nBytes = u32(16)
        try #require(b.count == 20 + nBytes + 4 * count)
        let floatsAt = magic == "CKDQ" ? 20 + nBytes : 20
        let rawAt = magic == "CKDQ" ? 20 : 20 + 4 * count
        raw = Array(b[rawAt ..< rawAt + nBytes])
        floats = (0 ..< count).map { Float(bitPattern: UInt32(u32(floatsAt + 4 * $0))) }
    }
}

/// Bitwise float comparison (NaNs of any payload count as equal).
func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
}

// MARK: - SHA-256

enum SHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    /// Hex digest of `bytes`.
    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var tail = Array(bytes[(bytes.count / 64 * 64)...])
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        for i in (0 ..< 8).reversed() { tail.append(UInt8(truncatingIfNeeded: (UInt64(bytes.count) * 8) >> (8 * UInt64(i)))) }
        var w = [UInt32](repeating: 0, count: 64)
        func block(_ p: UnsafeRawBufferPointer) {
            for t in 0 ..< 16 { w[t] = UInt32(p[4 * t]) << 24 | UInt32(p[4 * t + 1]) << 16 | UInt32(p[4 * t + 2]) << 8 | UInt32(p[4 * t + 3]) }
            for t in 16 ..< 64 {
                let s0 = w[t - 15].rotr(7) ^ w[t - 15].rotr(18) ^ (w[t - 15] >> 3)
                let s1 = w[t - 2].rotr(17) ^ w[t - 2].rotr(19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0 ..< 64 {
                let t1 = hh &+ (e.rotr(6) ^ e.rotr(11) ^ e.rotr(25)) &+ ((e & f) ^ (~e & g)) &+ k[t] &+ w[t]
                let t2 = (a.rotr(2) ^ a.rotr(13) ^ a.rotr(22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        var o = 0
        while o + 64 <= bytes.count { block(UnsafeRawBufferPointer(rebasing: bytes[o ..< o + 64])); o += 64 }
        tail.withUnsafeBytes { t in
            var q = 0
            while q < t.count { block(UnsafeRawBufferPointer(rebasing: t[q ..< q + 64])); q += 64 }
        }
        return h.map { String(format: "%08x", $0) }.joined()
    }

    /// Hex digest of the floats' little-endian bytes. Large inputs go through the system
    /// `sha256sum` when present (this Swift version is slow in debug builds).
    static func hex(_ floats: [Float]) -> String {
        if floats.count > 1 << 16, let sys = try? system(floats) { return sys }
        return floats.withUnsafeBytes { hex($0) }
    }

    private static func system(_ floats: [Float]) throws -> String? {
        let tool = "/usr/bin/sha256sum"
        guard FileManager.default.isExecutableFile(atPath: tool) else { return nil }
        let file = try TestPaths.tempDir().appendingPathComponent("floats.bin")
        try floats.withUnsafeBytes { try Data($0).write(to: file) }
        defer { try? FileManager.default.removeItem(at: file) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = [file.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init)
    }
}

extension UInt32 {
    fileprivate func rotr(_ n: UInt32) -> UInt32 { (self >> n) | (self << (32 - n)) }
}
