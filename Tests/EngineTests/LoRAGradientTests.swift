// LoRAGradientTests — the training graph's LoRA gradients against central finite differences of an
// independent float64 reference (LoRAReference), plus consistency checks between the training
// graph, the inference forward with an adapter, packing, and dropout.

import Foundation
import Testing
import Engine

enum LoRATestModel {
    static let config = LlamaConfig.tiny
    static let seed: UInt64 = 7

    /// The tiny model written as an F32 GGUF (exact weights) and loaded back through the engine.
    static func load(type: GGMLType = .f32) throws -> LlamaModel {
        let dir = try TestPaths.tempDir()
        let path = dir.appendingPathComponent("tiny-\(type.name).gguf").path
        try TinyLlama.writeGGUF(to: path, config: config, seed: seed, weightType: type)
        return try LlamaModel.load(path: path)
    }

    /// A LoRA with non-zero A and B (so both get gradients) on every target.
    static func adapter(rank: Int = 2, dropout: Double = 0, rs: Bool = false, targets: [LoRATarget] = LoRATarget.allCases) throws -> LoRAAdapter {
        let lora = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: 4, dropout: dropout, useRSLoRA: rs, targets: targets),
                                   model: config, seed: 1)
        var rng = SplitMix64(seed: 99)
        for s in lora.slots {
            for i in 0..<(rank * s.outFeatures) { lora.b(s)[i] = 0.3 * rng.symmetric() }
            for i in 0..<(rank * s.inFeatures) { lora.a(s)[i] *= 3 }
        }
        return lora
    }

    /// Two sequences; the second packs two rows. Masks train the latter part of each row.
    static let sequences: [DatasetExample] = [
        DatasetExample(ids: [5, 17, 40, 99, 3, 250, 8, 61], mask: [0, 0, 0, 1, 1, 1, 1, 1]),
        DatasetExample(ids: [12, 7, 200, 33, 90, 4, 4, 150, 21], mask: [0, 0, 1, 1, 0, 0, 1, 1, 1], segmentStarts: [0, 4]),
    ]
}

@Suite("LoRA gradients")
struct LoRAGradientTests {
    @Test("every sampled LoRA gradient matches float64 central differences")
    func finiteDifferences() throws {
        let model = try LoRATestModel.load()
        let lora = try LoRATestModel.adapter()
        let seqs = LoRATestModel.sequences
        let (loss, _, grad) = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs)
        let ref = LoRAReference(config: LoRATestModel.config,
                                weights: TinyLlama.weights(config: LoRATestModel.config, seed: LoRATestModel.seed), lora: lora)
        ref.expectFiniteDifferences(seqs, loss: loss, grad: grad, lora: lora)
    }

    @Test("training loss equals the inference forward with the adapter applied")
    func trainingMatchesInference() throws {
        let model = try LoRATestModel.load(type: .q4_1)
        let lora = try LoRATestModel.adapter()
        let seq = LoRATestModel.sequences[0]
        let (loss, count, _) = try LoRAGradients.compute(model: model, lora: lora, sequences: [seq])
        let scores = try model.with(adapter: lora).score(ids: seq.ids)
        let picked = (0..<(seq.ids.count - 1)).filter { seq.mask[$0 + 1] != 0 }.map { scores.tokenLogprobs[$0] }
        #expect(count == picked.count)
        #expect(abs(loss + picked.reduce(0, +) / Double(picked.count)) < 1e-4)
    }

    @Test("the LM head on the gathered target rows only = on every row", arguments: [GGMLType.f32, .q8_0])
    func gatheredTargetRows(type: GGMLType) throws {
        let model = try LoRATestModel.load(type: type)
        // Masked prompts, a row's last token and a whole chunk of prompt rows (> headChunk positions
        // without a target before the first one) all skip the head.
        let long = DatasetExample(ids: (0..<300).map { Int32(($0 * 37 + 11) % 250) + 1 },
                                  mask: (0..<300).map { $0 < 270 ? 0 : 1 })
        let seqs = LoRATestModel.sequences + [long]
        let gathered = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(), sequences: seqs)
        let everyRow = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(), sequences: seqs, gatherTargetRows: false)
        #expect(gathered.targets == everyRow.targets && gathered.targets == 5 + 5 + 30)
        #expect(abs(gathered.loss - everyRow.loss) <= 1e-6 * abs(everyRow.loss))
        var num = 0.0, den = 0.0
        for (a, b) in zip(gathered.grad, everyRow.grad) { num += Double(a - b) * Double(a - b); den += Double(b) * Double(b) }
        #expect(den > 0 && (num / den).squareRoot() <= 1e-6, "relative L2 \((num / den).squareRoot())")
    }

    @Test("a packed sequence trains exactly like its rows as separate sequences")
    func packingIsolatesSegments() throws {
        let model = try LoRATestModel.load(type: .q4_1)
        let lora = try LoRATestModel.adapter()
        let packed = LoRATestModel.sequences[1]
        let rows = packed.segments.map { DatasetExample(ids: Array(packed.ids[$0]), mask: Array(packed.mask[$0])) }
        let a = try LoRAGradients.compute(model: model, lora: lora, sequences: [packed])
        let b = try LoRAGradients.compute(model: model, lora: lora, sequences: rows)
        #expect(abs(a.loss - b.loss) < 1e-6)
        let diff = zip(a.grad, b.grad).map { abs($0 - $1) }.max()!
        #expect(diff < 1e-6)
    }

    @Test("dropout: gradients are those of the masked function (same step ⇒ same mask)")
    func dropoutGradients() throws {
        let model = try LoRATestModel.load()
        let lora = try LoRATestModel.adapter(dropout: 0.3, targets: [.q, .down])
        let seqs = LoRATestModel.sequences
        let (loss0, _, grad) = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, dropoutSeed: 5, step: 2)
        let other = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, dropoutSeed: 5, step: 3)
        #expect(loss0 != other.loss, "a different step must draw a different mask")
        // Central differences of the float32 graph itself (same masks), large eps, loose tolerance.
        for s in lora.slots {
            for i in [s.aOffset + 1, s.bOffset + 2] {
                let keep = lora.params[i], eps: Float = 1e-2
                lora.params[i] = keep + eps
                let up = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, dropoutSeed: 5, step: 2).loss
                lora.params[i] = keep - eps
                let dn = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, dropoutSeed: 5, step: 2).loss
                lora.params[i] = keep
                let fd = (up - dn) / Double(2 * eps)
                #expect(abs(Double(grad[i]) - fd) <= 0.03 * abs(fd) + 1e-4, "\(s.target.rawValue) param \(i): \(grad[i]) vs \(fd)")
            }
        }
    }

    @Test("rsLoRA scales by alpha/sqrt(r)")
    func rsloraScale() throws {
        #expect(LoRAConfig(rank: 4, alpha: 8).scale == 2)
        #expect(LoRAConfig(rank: 4, alpha: 8, useRSLoRA: true).scale == 4)
    }

    /// Tolerance of the bf16-product base GEMMs (TrainingOptions.bf16Products) against the f32 graph:
    /// activations and gradients rounded to bf16 before each base product (~2^-9 relative each).
    /// Measured on the tiny model: loss 3e-5 relative; gradient rel L2 0.005 (f32 file), 0.024 (bf16 file).
    static let bf16ProductLossTol = 2e-3    // relative, loss
    static let bf16ProductGradRelL2 = 5e-2  // relative L2 over the whole LoRA gradient

    @Test("bf16 products: loss and LoRA gradient within the bf16 tolerance of the f32 graph, deterministic")
    func bf16Products() throws {
        for type in [GGMLType.f32, .bf16] {
            let model = try LoRATestModel.load(type: type)
            let lora = try LoRATestModel.adapter()
            let seqs = LoRATestModel.sequences
            let f = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs)
            let b = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, bf16Products: true)
            let b2 = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs, bf16Products: true)
            #expect(b.loss == b2.loss && b.grad == b2.grad, "\(type.name): bf16 products are deterministic")
            #expect(abs(b.loss - f.loss) <= Self.bf16ProductLossTol * abs(f.loss), "\(type.name): loss \(b.loss) vs f32 \(f.loss)")
            var num = 0.0, den = 0.0
            for i in f.grad.indices {
                let d = Double(b.grad[i]) - Double(f.grad[i])
                num += d * d
                den += Double(f.grad[i]) * Double(f.grad[i])
            }
            let rel = (num / max(den, 1e-30)).squareRoot()
            #expect(rel < Self.bf16ProductGradRelL2, "\(type.name): gradient rel L2 \(rel)")
        }
    }
}
