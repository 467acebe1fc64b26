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

extension SHA256 {
    /// Hex digest of the floats' little-endian bytes (Engine's SHA256).
    static func hex(_ floats: [Float]) -> String { floats.withUnsafeBytes { hex($0) } }
}

