// KQuantTrainingTests — QLoRA keeps every base tensor in its own GGUF block type: the loss and LoRA
// gradients over a model's quantized blocks (K-quants and the Q5_0/Q8_0 fallbacks of a Q4_K_M file)
// equal those over an f32 copy of the same weights, i.e. LoRA over the dequantized base (what PEFT
// trains on), and a large-vocabulary LM head is read from its stored blocks, not packed into f32.
// The Qwen2.5-Coder-0.5B Q4_K_M case runs when that file is present (`scripts/setup --model
// qwen2.5-coder-0.5b` puts it in models/, or TUNE_TEST_QWEN_GGUF names it).
import Engine
import Foundation
import Testing

private let qwenPath: String? = {
    let fm = FileManager.default
    let inModels: String = TestPaths.root.appendingPathComponent("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").path
    let candidates: [String] = [ProcessInfo.processInfo.environment["TUNE_TEST_QWEN_GGUF"], inModels].compactMap { $0 }
    return candidates.first { fm.fileExists(atPath: $0) }
}()

@Suite("QLoRA over K-quant blocks")
struct KQuantTrainingTests {
    @Test("the LM head read from its stored blocks = the packed f32 head, bit for bit", arguments: [GGMLType.f32, .q4_1, .q8_0])
    func unpackedHeadMatchesPacked(type: GGMLType) throws {
        let model = try LoRATestModel.load(type: type)
        let seqs = LoRATestModel.sequences
        let packed = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(), sequences: seqs, packedHeadLimit: .max)
        let plain = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(), sequences: seqs, packedHeadLimit: 0)
        #expect(plain.loss == packed.loss)
        #expect(plain.grad == packed.grad)
    }

    @Test("Qwen2.5-0.5B Q4_K_M: loss and LoRA gradients over its q4_K/q6_K/q5_0/q8_0 blocks = over an f32 copy",
          .enabled(if: qwenPath != nil, "needs the Qwen2.5-Coder-0.5B Q4_K_M GGUF (scripts/setup --model qwen2.5-coder-0.5b)"))
    func qwenKQuantsMatchF32Copy() throws {
        let q = try LlamaModel.load(path: qwenPath!)
        let types = Set(q.weights.layers.flatMap { [$0.wq, $0.wk, $0.wv, $0.wo, $0.wGate, $0.wUp, $0.wDown].map(\.type) })
        #expect(types.isSuperset(of: [.q4_K, .q6_K, .q5_0]), "\(types.map(\.name))")
        let seqs = Self.qwenSequences
        let quant = try LoRAGradients.compute(model: q, lora: try Self.qwenAdapter(q.config), sequences: seqs)
        let f32 = try LoRAGradients.compute(model: try q.convertingMatrices(to: .f32), lora: try Self.qwenAdapter(q.config), sequences: seqs)
        #expect(quant.loss.isFinite && quant.targets == 9)
        // Same f32 weight values, same tile GEMMs: the K-quant tiles are dequantized exactly.
        #expect(quant.loss == f32.loss)
        var num = 0.0, den = 0.0
        for (a, b) in zip(quant.grad, f32.grad) { num += Double(a - b) * Double(a - b); den += Double(b) * Double(b) }
        #expect(den > 0 && num == 0, "rel L2 \(sqrt(num / max(den, 1e-300)))")
    }

    @Test("Qwen2.5-0.5B Q4_K_M on the CUDA op set (checked host double; libtunecuda decodes q4_K/q5_K/q6_K/q5_0 in its tile loaders) = the CPU",
          .enabled(if: qwenPath != nil, "needs the Qwen2.5-Coder-0.5B Q4_K_M GGUF (scripts/setup --model qwen2.5-coder-0.5b)"))
    func qwenKQuantsOnCUDAOpSet() throws {
        let q = try LlamaModel.load(path: qwenPath!)
        let dev = CheckedHostDevice(.cudaOps)
        let a = try LoRAGradients.compute(model: q, lora: try Self.qwenAdapter(q.config), sequences: Self.qwenSequences, backend: dev)
        let b = try LoRAGradients.compute(model: q, lora: try Self.qwenAdapter(q.config), sequences: Self.qwenSequences)
        #expect(abs(a.loss - b.loss) < 1e-5 * b.loss, "\(a.loss) vs \(b.loss)")
        var num = 0.0, den = 0.0
        for (x, y) in zip(a.grad, b.grad) { num += Double(x - y) * Double(x - y); den += Double(y) * Double(y) }
        #expect(den > 0 && num <= 1e-8 * den, "rel L2 \(sqrt(num / max(den, 1e-300)))")
        #expect(dev.violations.isEmpty, "\(dev.violations)")
        #expect(dev.liveAllocations == 0)
    }

    /// Rank 4 on every target with small non-zero B, seeded.
    static func qwenAdapter(_ c: LlamaConfig) throws -> LoRAAdapter {
        let l = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, dropout: 0, useRSLoRA: false, targets: LoRATarget.allCases),
                                model: c, seed: 3)
        var rng = SplitMix64(seed: 11)
        for s in l.slots { for i in 0..<(4 * s.outFeatures) { l.b(s)[i] = 0.02 * rng.symmetric() } }
        return l
    }

    /// A chat turn with nine targets: the LM head runs on the target rows only, and up to 8 rows would take
    /// the fused small-T GEMV on the q8_0 head but the f32 tile GEMM on an f32 copy (both exact to rounding,
    /// not bit for bit); from 9 rows both take the tile GEMM.
    static let qwenSequences = [DatasetExample(ids: [151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198, 19, 13],
                                               mask: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])]
}
