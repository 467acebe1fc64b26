// MergeSupport — fixtures for the merge tests: the committed mergekit fixtures, random PEFT adapters
// on the tiny model, temp dirs.
import Engine
import Foundation
import TuneKit

enum MergeFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let dir = root.appendingPathComponent("Tests/Fixtures/merge")

    static func tempDir() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tune-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A random PEFT adapter (A and B both random, so ΔW ≠ 0) for `config`, saved to `dir`.
    @discardableResult
    static func randomAdapter(_ dir: String, config: LlamaConfig, rank: Int, targets: [LoRATarget] = LoRATarget.allCases,
                              seed: UInt64, scale: Float = 0.05) throws -> LoRAAdapter {
        let a = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: Double(2 * rank), targets: targets), model: config)
        var rng = SplitMix64(seed: seed)
        for i in 0..<a.count { a.params[i] = scale * rng.symmetric() }
        try a.save(directory: dir, baseModel: "tiny")
        return a
    }

    /// All tensors of a safetensors file as f32.
    static func tensors(_ path: String) throws -> [String: [Float]] {
        let f = try SafetensorsFile(path: path)
        var out: [String: [Float]] = [:]
        for t in f.tensors { out[t.name] = try f.floats(t) }
        return out
    }
}
