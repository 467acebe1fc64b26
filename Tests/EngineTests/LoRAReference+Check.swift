// LoRAReference+Check — the whole gradient check for one tiny model: a rank-2 adapter on every target with
// B seeded away from zero (and A scaled, to make the LoRA path matter), gradients through the training graph,
// compared with the float64 reference by central differences.

import Testing
import Engine

extension LoRAReference {
    static func checkGradients(model: LlamaModel, config c: LlamaConfig, seed: UInt64, scaleA: Float = 1) throws {
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: LoRATarget.allCases), model: c, seed: 1)
        var rng = SplitMix64(seed: 99)
        for s in lora.slots {
            for i in 0..<(2 * s.outFeatures) { lora.b(s)[i] = 0.3 * rng.symmetric() }
            if scaleA != 1 { for i in 0..<(2 * s.inFeatures) { lora.a(s)[i] *= scaleA } }
        }
        let seqs = LoRATestModel.sequences
        let (loss, _, grad) = try LoRAGradients.compute(model: model, lora: lora, sequences: seqs)
        let ref = LoRAReference(config: c, weights: TinyLlama.weights(config: c, seed: seed), lora: lora)
        ref.expectFiniteDifferences(seqs, loss: loss, grad: grad, lora: lora)
    }
}
