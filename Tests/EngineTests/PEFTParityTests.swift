// PEFTParityTests — tune against PyTorch + PEFT 0.21.2 on the real model (fixtures from
// scripts/reference/lora_fixtures.py): an adapter written by PEFT (r=4 on all 7 targets of layers 0
// and 29, plus an rsLoRA twin) gives the same per-token log-probs in tune's forward, and the LoRA
// gradients of tune's training graph equal PEFT's autograd gradients for the same batch and loss — on
// SmolLM2 and, over the blocks of their Q4_K_M files, on Qwen2.5-Coder-0.5B and Gemma-3-270M
// (scripts/reference/family_grad_fixtures.py).

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
        let m = try LlamaModel.load(path: smolLMPath)
        try expectPEFTGradients(model: m, fixture: "peft_grads", adapter: "peft_adapter")
        try expectPEFTGradients(model: m, fixture: "peft_grads", adapter: "peft_adapter", bf16Products: true, tolerance: 0.3)
    }

    // [3/7]: QLoRA over the blocks a Q4_K_M file mixes (q4_K, q6_K, q5_0, q8_0: never expanded to f32) against
    // PEFT over the same GGUF dequantized to float32 by transformers (scripts/reference/family_grad_fixtures.py).
    @Test("Qwen2.5-Coder-0.5B Q4_K_M: QLoRA gradients over the file's blocks equal PEFT's over the dequantized model",
          .enabled(if: FileManager.default.fileExists(atPath: realModelPath("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")),
                   "needs the Qwen2.5-Coder-0.5B GGUF (scripts/setup --model qwen2.5-coder-0.5b)"))
    func qwenGradientsMatchPEFT() throws {
        let m = try LlamaModel.load(path: realModelPath("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
        #expect(m.weights.layers[0].wDown.type == .q6_K || m.weights.layers[0].wDown.type == .q4_K)
        try expectPEFTGradients(model: m, fixture: "qwen_peft_grads", adapter: "qwen_peft_adapter")
        try expectPEFTGradients(model: m, fixture: "qwen_peft_grads", adapter: "qwen_peft_adapter", bf16Products: true, tolerance: 0.3)
    }

    @Test("Gemma-3-270M Q4_K_M: QLoRA gradients (tied 262k head, GeGLU, sliding layers) equal PEFT's",
          .enabled(if: FileManager.default.fileExists(atPath: realModelPath("gemma-3-270m-q4_k_m.gguf")),
                   "needs the Gemma-3-270M GGUF (scripts/setup --model gemma-3-270m)"))
    func gemmaGradientsMatchPEFT() throws {
        let m = try LlamaModel.load(path: realModelPath("gemma-3-270m-q4_k_m.gguf"))
        try expectPEFTGradients(model: m, fixture: "gemma_peft_grads", adapter: "gemma_peft_adapter")
        try expectPEFTGradients(model: m, fixture: "gemma_peft_grads", adapter: "gemma_peft_adapter", bf16Products: true, tolerance: 0.3)
    }
}

private func realModelPath(_ file: String) -> String { packageRoot.appendingPathComponent("models/\(file)").path }

/// Loss and every LoRA gradient of `adapter` (a PEFT-written directory) over the fixture's batch, against the
/// gradients PEFT's autograd recorded in float32: relative L2 error per tensor ≤ `tolerance` (float32 on both
/// sides, different summation orders). Where the fixture has a float64 run beside it (`<fixture>_f64`), each
/// tensor is also held to 2e-3 against that truth, which tells tune's own rounding from PEFT's.
/// `bf16Products`: the base GEMMs' bf16-product path, held only to a loose bound (activations rounded to bf16
/// move gradients by several percent: a speed trade, not parity).
private func expectPEFTGradients(model base: LlamaModel, fixture: String, adapter: String,
                                 bf16Products: Bool = false, tolerance: Double = 2e-3) throws {
    let fx = try JSONDecoder().decode(GradFixture.self, from: Data(contentsOf: loraFixtures.appendingPathComponent("\(fixture).json")))
    let lora = try LoRAAdapter.load(directory: loraFixtures.appendingPathComponent(adapter).path, model: base.config)
    let seqs = zip(fx.ids, fx.labels).map { ids, labels in DatasetExample(ids: ids, mask: labels.map { $0 == -100 ? 0 : 1 }) }
    let (loss, targets, grad) = try LoRAGradients.compute(model: base, lora: lora, sequences: seqs, bf16Products: bf16Products)
    #expect(targets == fx.n_targets)
    #expect(abs(loss - fx.loss) < (bf16Products ? 1e-2 : 1e-4) * max(1, fx.loss), "\(fixture): loss \(loss) vs PEFT \(fx.loss)")
    let st = try SafetensorsFile(path: loraFixtures.appendingPathComponent("\(fixture).safetensors").path)
    let f64Path = loraFixtures.appendingPathComponent("\(fixture)_f64.safetensors").path
    let truth = bf16Products || !FileManager.default.fileExists(atPath: f64Path) ? nil : try SafetensorsFile(path: f64Path)
    func relL2(_ got: [Float], _ want: [Float]) -> Double {
        let num = zip(got, want).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        let den = want.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        return num / max(den, 1e-30)
    }
    var checked = 0, worst = (0.0, ""), worstTruth = 0.0
    for s in lora.slots {
        for (suffix, offset, count) in [(".lora_A.weight", s.aOffset, lora.rank * s.inFeatures), (".lora_B.weight", s.bOffset, lora.rank * s.outFeatures)] {
            let name = s.peftPrefix + suffix
            let info = try #require(st.tensor(named: name), "\(fixture) lacks \(name)")
            let want = try st.floats(info)
            let got = Array(grad[offset..<(offset + count)])
            try #require(got.count == want.count, "\(name): \(got.count) values vs \(want.count)")
            let e = relL2(got, want)
            if e > worst.0 { worst = (e, name) }
            #expect(e <= tolerance, "\(fixture) \(name): relative L2 error \(e) vs PEFT")
            if let truth {
                let t = relL2(got, try truth.floats(try #require(truth.tensor(named: name), "\(fixture)_f64 lacks \(name)")))
                worstTruth = max(worstTruth, t)
                #expect(t <= 2e-3, "\(fixture) \(name): relative L2 error \(t) vs the float64 run")
            }
            checked += 1
        }
    }
    #expect(checked == 2 * 7 * 2 && checked == st.tensors.count, "\(fixture): checked \(checked) tensors")
    print("\(fixture)\(bf16Products ? " (bf16 products)" : ""): loss \(loss) vs PEFT \(fx.loss); worst relative L2 \(worst.0) (\(worst.1))"
          + (truth != nil ? ", vs float64 \(worstTruth)" : ""))
}
