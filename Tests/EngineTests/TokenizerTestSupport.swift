// TokenizerTestSupport — TEST-ONLY helpers: a minimal GGUF metadata reader (header + KV section only;
// to be replaced by Engine's GGUFFile after merge), fixture paths and the fixture file model.

import Engine
import Foundation

// MARK: - Paths

/// Package root, derived from this file's location (Tests/EngineTests/…).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let smolLMPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let smolLMAvailable = FileManager.default.fileExists(atPath: smolLMPath)
let tokenizerFixturePath = packageRoot.appendingPathComponent("Tests/Fixtures/tokenizer/smollm2.json").path

/// The real SmolLM2 tokenizer, loaded once per test process.
let smolLMTokenizer: Result<BPETokenizer, Error> = Result {
    try BPETokenizer(ggufMetadata: loadGGUFMetadataForTests(path: smolLMPath))
}

// MARK: - Fixture model

struct TokenizerFixture: Decodable {
    struct Case: Decodable { var text: String; var ids: [Int32]; var tokens: [String] }
    struct Chat: Decodable {
        var messages: [ChatMessage]
        var add_generation_prompt: Bool
        var text: String
        var ids: [Int32]
    }
    struct Split: Decodable { var text: String; var smollm: [String]; var llama3: [String] }
    struct Template: Decodable {
        struct Render: Decodable { var messages: [ChatMessage]; var add_generation_prompt: Bool; var text: String }
        var name: String
        var template: String
        var renders: [Render]
    }
    var chat_template: String
    var cases: [Case]
    var chats: [Chat]
    var pre_tokenizer_splits: [Split]
    var templates: [Template]

    static func load() throws -> TokenizerFixture {
        try JSONDecoder().decode(TokenizerFixture.self, from: Data(contentsOf: URL(fileURLWithPath: tokenizerFixturePath)))
    }
}

// MARK: - Minimal GGUF metadata reader (tests only)

/// Reads the metadata key/values of a GGUF file (v2/v3, little-endian). Tensor info is not read.
func loadGGUFMetadataForTests(path: String) throws -> [String: GGUFValue] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    return try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) throws -> [String: GGUFValue] in
        var pos = 0
        func need(_ n: Int) throws {
            guard n >= 0, pos + n <= raw.count else { throw EngineError(.format, "\(path): truncated GGUF metadata at \(pos)") }
        }
        func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
            try need(MemoryLayout<T>.size)
            defer { pos += MemoryLayout<T>.size }
            return T(littleEndian: raw.loadUnaligned(fromByteOffset: pos, as: T.self))
        }
        func string() throws -> String {
            let n = Int(try read(UInt64.self))
            try need(n)
            defer { pos += n }
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[pos..<pos + n]), as: UTF8.self)
        }
        func value(_ type: UInt32) throws -> GGUFValue {
            switch type {
            case 0: return .uint8(try read(UInt8.self))
            case 1: return .int8(try read(Int8.self))
            case 2: return .uint16(try read(UInt16.self))
            case 3: return .int16(try read(Int16.self))
            case 4: return .uint32(try read(UInt32.self))
            case 5: return .int32(try read(Int32.self))
            case 6: return .float32(Float(bitPattern: try read(UInt32.self)))
            case 7: return .bool(try read(UInt8.self) != 0)
            case 8: return .string(try string())
            case 9:
                let elementType = try read(UInt32.self)
                let count = Int(try read(UInt64.self))
                guard count <= raw.count else { throw EngineError(.format, "\(path): bad array length \(count)") }
                var items: [GGUFValue] = []
                items.reserveCapacity(count)
                for _ in 0..<count { items.append(try value(elementType)) }
                return .array(elementType: elementType, items)
            case 10: return .uint64(try read(UInt64.self))
            case 11: return .int64(try read(Int64.self))
            case 12: return .float64(Double(bitPattern: try read(UInt64.self)))
            default: throw EngineError(.format, "\(path): unknown GGUF value type \(type)")
            }
        }
        guard try read(UInt32.self) == 0x4655_4747 else { throw EngineError(.format, "\(path): not a GGUF file") }
        let version = try read(UInt32.self)
        guard version == 2 || version == 3 else { throw EngineError(.unsupported, "\(path): GGUF version \(version)") }
        _ = try read(UInt64.self)  // tensor count
        let kvCount = try read(UInt64.self)
        var meta: [String: GGUFValue] = [:]
        for _ in 0..<kvCount {
            let key = try string()
            meta[key] = try value(try read(UInt32.self))
        }
        return meta
    }
}
