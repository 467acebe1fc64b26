// PEFTParityTests — tune against PyTorch + PEFT 0.21.2 on the real model (fixtures from
// scripts/reference/lora_fixtures.py): an adapter written by PEFT (r=4 on all 7 targets of layers 0
// and 29, plus an rsLoRA twin) gives the same per-token log-probs in tune's forward, and the LoRA
// gradients of tune's training graph equal PEFT's autograd gradients for the same batch and loss.

import Foundation
import Testing
import Engine

private let loraFixtures = packageRoot.appendingPathComponent("Tests/Fixtures/lora")

private struct ScoreFixture: Decodable {
    struct Text: Decodable {
        var name: String
        var ids: [Int32]
        var base_logprobs: [Double]
        var adapter_logprobs: [Double]
        var rslora_logprobs: [Double]
    }
    var texts: [Text]
}

private struct GradFixture: Decodable {
    var ids: [[Int32]]
    var labels: [[Int32]]
    var loss: Double
    var n_targets: Int
}

@Suite("PEFT parity (real model)", .enabled(if: FileManager.default.fileExists(atPath: smolLMPath)))
struct PEFTParityTests {
    @Test("a PEFT-written adapter (and its rsLoRA twin) scores like PEFT, within 1e-3 per token")
    func peftAdapterLoadsInTune() throws {
        let fx = try JSONDecoder().decode(ScoreFixture.self, from: Data(contentsOf: loraFixtures.appendingPathComponent("peft_scores.json")))
        let base = try LlamaModel.load(path: smolLMPath)
        let plain = try base.loadingAdapter(directory: loraFixtures.appendingPathComponent("peft_adapter").path)
        let rs = try base.loadingAdapter(directory: loraFixtures.appendingPathComponent("peft_adapter_rslora").path)
        #expect(plain.adapter?.config.layers == [0, 29] && plain.adapter?.rank == 4 && plain.adapter?.scale == 2)
        #expect(rs.adapter?.scale == 4)
        for t in fx.texts {
            for (model, want, label) in [(base, t.base_logprobs, "base"), (plain, t.adapter_logprobs, "adapter"), (rs, t.rslora_logprobs, "rslora")] {
                let got = try model.score(ids: t.ids).tokenLogprobs
                #expect(got.count == want.count)
                let err = zip(got, want).map { abs($0 - $1) }.max() ?? 0
                #expect(err < 1e-3, "\(t.name) \(label): max |Δ logprob| \(err)")
            }
        }
    }

    @Test("LoRA gradients after one backward equal PEFT's autograd gradients")
    func gradientsMatchPEFT() throws {
        let fx = try JSONDecoder().decode(GradFixture.self, from: Data(contentsOf: loraFixtures.appendingPathComponent("peft_grads.json")))
        let base = try LlamaModel.load(path: smolLMPath)
        let lora = try LoRAAdapter.load(directory: loraFixtures.appendingPathComponent("peft_adapter").path, model: base.config)
        let seqs = zip(fx.ids, fx.labels).map { ids, labels in DatasetExample(ids: ids, mask: labels.map { $0 == -100 ? 0 : 1 }) }
        let (loss, targets, grad) = try LoRAGradients.compute(model: base, lora: lora, sequences: seqs)
        #expect(targets == fx.n_targets)
        #expect(abs(loss - fx.loss) < 1e-4 * max(1, fx.loss), "loss \(loss) vs PEFT \(fx.loss)")
        let st = try SafetensorsFile(path: loraFixtures.appendingPathComponent("peft_grads.safetensors").path)
        var checked = 0
        for s in lora.slots {
            for (suffix, offset, count) in [(".lora_A.weight", s.aOffset, lora.rank * s.inFeatures), (".lora_B.weight", s.bOffset, lora.rank * s.outFeatures)] {
                let name = s.peftPrefix + suffix
                let info = try #require(st.tensor(named: name), "fixture lacks \(name)")
                let want = try st.floats(info)
                let got = Array(grad[offset..<(offset + count)])
                let num = zip(got, want).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
                let den = want.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
                // Relative L2 error per tensor: float32 on both sides, different summation orders.
                #expect(num <= 2e-3 * den + 1e-7, "\(name): relative L2 error \(num / max(den, 1e-30))")
                checked += 1
            }
        }
        #expect(checked == 2 * 7 * 2)
    }
}
