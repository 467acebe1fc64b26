// PrepareSupport — shared fixtures for the prepare-stage tests: a tiny model's tokenizer, temp files,
// the committed sample dataset.
import Foundation
import Engine
import TuneKit

enum PrepareFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let shippingDocs = root.appendingPathComponent("datasets/shipping-docs")
    static let badRows = shippingDocs.appendingPathComponent("bad-rows.jsonl").path
    static let realModel = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    static var hasRealModel: Bool { FileManager.default.fileExists(atPath: realModel) }

    /// The tiny byte-level tokenizer (ChatML template with SmolLM2's default system prompt),
    /// loaded from a real GGUF file written to a temp dir.
    static let tiny: DatasetTokenizer = {
        let dir = try! tempDir()
        let path = dir.appendingPathComponent("tiny.gguf").path
        try! TinyLlama.writeGGUF(to: path, config: .tiny, seed: 1, weightType: .f32)
        return try! DatasetTokenizer.load(modelPath: path)
    }()

    static func tempDir() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tune-prepare-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes `lines` (joined with "\n") to a temp file and returns its path.
    static func jsonl(_ lines: [String], name: String = "data.jsonl") throws -> String {
        let path = try tempDir().appendingPathComponent(name).path
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A chat row as one JSON line.
    static func chat(_ user: String, _ assistant: String, system: String? = nil) -> String {
        var m: [[String: String]] = [["role": "user", "content": user], ["role": "assistant", "content": assistant]]
        if let system { m.insert(["role": "system", "content": system], at: 0) }
        let data = try! JSONSerialization.data(withJSONObject: ["messages": m], options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// Config with near-dedup and the random split off unless a test turns them on.
    static func config(evalFraction: Double = 0) -> PrepareConfig {
        var c = PrepareConfig()
        c.split.evalFraction = evalFraction
        return c
    }
}
