// OpProfileTests — `tune bench train --profile`'s instrument: a profiled kernel table changes nothing it
// times (same loss and gradient bits), and what it records adds up: every base GEMM of every layer, the
// LoRA side GEMMs, the LM head and attention, with the GEMMs' floating-point work counted from their shapes.
import Engine
import Foundation
import Testing

@Suite("Op profile (bench train --profile)")
struct OpProfileTests {
    @Test("profiling a LoRA step leaves its results bit-identical and accounts for every GEMM")
    func profiledStepMatchesAndCounts() throws {
        let model = try LoRATestModel.load(type: .q8_0)
        let c = model.config, rank = 2
        let seqs = LoRATestModel.sequences
        let plain = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(rank: rank), sequences: seqs)
        let profile = OpProfile(vocabSize: c.vocabSize, loraRank: rank)
        let timed = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(rank: rank), sequences: seqs,
                                              backend: ProfilingBackend(base: CPUBackend(), profile: profile))
        #expect(timed.loss == plain.loss)
        #expect(timed.grad == plain.grad)

        let rows = Dictionary(uniqueKeysWithValues: profile.rows().map { ($0.op, $0) })
        let T = seqs.reduce(0) { $0 + $1.ids.count }
        // Forward: q, k, v, o, gate, up, down per layer over all T rows, from the q8_0 blocks.
        let fwd = try #require(rows["GEMM fwd q8_0"], "\(rows.keys.sorted())")
        #expect(fwd.calls == 7 * c.numLayers)
        let kv = c.numKVHeads * c.headDim, q = c.numHeads * c.headDim
        let perLayer = q * c.hiddenSize + 2 * kv * c.hiddenSize + c.hiddenSize * q + 3 * c.intermediateSize * c.hiddenSize
        #expect(fwd.flops == 2 * Double(T) * Double(perLayer * c.numLayers))
        #expect(rows["GEMM dX q8_0"].map { $0.calls > 0 && $0.calls <= 7 * c.numLayers } == true)
        // Every LoRA slot: A then B forward (2 GEMMs) and both weight gradients.
        let slots = 7 * c.numLayers
        #expect(rows["LoRA GEMM fwd"]?.calls == 2 * slots)
        #expect(rows["LoRA GEMM dW"]?.calls == 2 * slots)
        #expect(rows.keys.contains { $0.hasPrefix("LM head fwd") } && rows.keys.contains { $0.hasPrefix("LM head dX") })
        #expect(rows["attention fwd"]?.calls ?? 0 > 0 && rows["attention bwd"]?.flops ?? 0 > 0)
        #expect(profile.rows().allSatisfy { $0.seconds >= 0 && $0.calls > 0 })
        #expect(rows["rmsnorm fwd"]?.flops == nil, "only GEMMs and attention count floating-point work")

        profile.reset()
        #expect(profile.rows().isEmpty)
    }
}
