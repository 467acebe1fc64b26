// FamilyLoRAParityTests — tune's training graph against PyTorch + PEFT on the tiny Qwen3, Gemma 3, Llama 3.x, Mistral,
// Qwen2 and Phi-3 models (fixtures from scripts/reference/family_lora_fixtures.py, Tests/Fixtures/lora/families): a
// PEFT-written adapter (r=2 on all 7 matrices of every layer; Phi-3's on its fused qkv_proj / gate_up_proj) loads
// in tune, and its loss and LoRA gradients on a two-row batch (one row past Gemma's and Phi-3's sliding window)
// equal PEFT's autograd ones (rel. L2 < 2e-3 per tensor); the adapter tune writes loads in PEFT with the same logits.

import Foundation
import Testing
import Engine

private let familyLoRAFixtures = packageRoot.appendingPathComponent("Tests/Fixtures/lora/families")

private struct FamilyGradFixture: Decodable {
    var family: String
    var modelSafetensorsSHA256: String
    var configJSONSHA256: String
    var ids: [[Int32]]
    var labels: [[Int32]]
    var loss: Double
    var nTargets: Int
    var tuneAdapterSHA256: [String: String]
    enum CodingKeys: String, CodingKey {
        case family, ids, labels, loss
        case nTargets = "n_targets", modelSafetensorsSHA256 = "model_safetensors_sha256", configJSONSHA256 = "config_json_sha256"
        case tuneAdapterSHA256 = "tune_adapter_sha256"
    }

    static func load(_ name: String) throws -> FamilyGradFixture {
        let fx = try JSONDecoder().decode(FamilyGradFixture.self,
                                          from: Data(contentsOf: familyLoRAFixtures.appendingPathComponent("\(name)_grads.json")))
        #expect(fx.family == name)
        return fx
    }
}

/// The families with a PEFT fixture (every family tune lists).
private let peftFamilies = ["qwen3", "gemma3", "llama3", "mistral", "qwen2", "phi3"]

@Suite("PEFT parity (tiny Qwen3, Gemma 3, Llama 3.x, Mistral, Qwen2, Phi-3)")
struct FamilyLoRAParityTests {
    @Test("loss and LoRA gradients of a PEFT adapter equal PEFT's autograd", arguments: peftFamilies)
    func gradientsMatchPEFT(_ name: String) throws {
        let fx = try FamilyGradFixture.load(name)
        let dir = try TestPaths.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = FamilyTestModels.config(name)
        let (_, hf) = try FamilyTestModels.writeBoth(name, c, dir: dir)
        #expect(try SHA256.hashFile(hf + "/model.safetensors") == fx.modelSafetensorsSHA256,
                "the fixture was made from other weights: regenerate it (scripts/reference/family_lora_fixtures.py)")
        #expect(try SHA256.hashFile(hf + "/config.json") == fx.configJSONSHA256)
        let adapterDir = familyLoRAFixtures.appendingPathComponent("\(name)_adapter").path
        let seqs = zip(fx.ids, fx.labels).map { ids, labels in DatasetExample(ids: ids, mask: labels.map { $0 == -100 ? 0 : 1 }) }
        var checked = 0
        for path in [hf, hf.replacingOccurrences(of: "/\(name)", with: "/\(name).gguf")] {
            let base = try LlamaModel.load(path: path)
            let lora = try LoRAAdapter.load(directory: adapterDir, model: base.config)
            #expect(lora.rank == 2 && lora.scale == 2 && lora.slots.count == 7 * c.numLayers)
            let (loss, targets, grad) = try LoRAGradients.compute(model: base, lora: lora, sequences: seqs)
            #expect(targets == fx.nTargets)
            #expect(abs(loss - fx.loss) < 1e-5 * max(1, fx.loss), "\(name) \(path): loss \(loss) vs PEFT \(fx.loss)")
            let st = try SafetensorsFile(path: familyLoRAFixtures.appendingPathComponent("\(name)_grads.safetensors").path)
            var worst = 0.0
            for s in lora.slots {
                // A fused module's (Phi-3's qkv_proj) A is shared by its slots; each slot's B is a row block of its B.
                for (suffix, offset, count, skip) in [(".lora_A.weight", s.aOffset, lora.rank * s.inFeatures, 0),
                                                      (".lora_B.weight", s.bOffset, lora.rank * s.outFeatures, lora.rank * s.fusedRow)] {
                    let key = s.peftPrefix + suffix
                    let info = try #require(st.tensor(named: key), "fixture lacks \(key)")
                    let want = Array(try st.floats(info)[skip..<(skip + count)])
                    let got = Array(grad[offset..<(offset + count)])
                    let num = zip(got, want).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
                    let den = want.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
                    worst = max(worst, num / max(den, 1e-30))
                    #expect(num <= 2e-3 * den + 1e-7, "\(name) \(key): relative L2 error \(num / max(den, 1e-30))")
                    checked += 1
                }
            }
            print("\(name) \(path.hasSuffix(".gguf") ? "gguf" : "hf"): loss \(loss) vs PEFT \(fx.loss); worst rel. L2 \(worst)")
        }
        #expect(checked == 2 * 2 * 7 * c.numLayers)
    }

    @Test("the adapter tune writes loads in PEFT: its files are the ones PEFT read, and PEFT's logits with it equal tune's (1e-4)",
          arguments: peftFamilies)
    func tuneAdapterLoadsInPEFT(_ name: String) throws {
        let fx = try FamilyGradFixture.load(name)
        let c = FamilyTestModels.config(name)
        try FamilyTestModels.withFamily(name, c) { gguf, hf, dir in
            let adapterDir = dir.appendingPathComponent("\(name)_tune_adapter").path
            try FamilyTestModels.writeTuneAdapter(name, c, to: adapterDir)
            for (file, want) in fx.tuneAdapterSHA256 {
                #expect(try SHA256.hashFile(adapterDir + "/" + file) == want,
                        "\(name): tune now writes another \(file) than the one PEFT loaded — regenerate scripts/reference/family_lora_fixtures.py")
            }
            #expect(fx.tuneAdapterSHA256.count == 2)
            let st = try SafetensorsFile(path: familyLoRAFixtures.appendingPathComponent("\(name)_tune_adapter_logits.safetensors").path)
            var worst = 0.0
            for path in [hf, gguf] {
                let base = try LlamaModel.load(path: path)
                let model = base.with(adapter: try LoRAAdapter.load(directory: adapterDir, model: base.config))
                for (i, ids) in fx.ids.enumerated() {
                    let want = try st.floats(try #require(st.tensor(named: "row\(i)")))
                    #expect(want.count == ids.count * c.vocabSize)
                    let got = try model.lastLogits(batch: (1...ids.count).map { Array(ids[..<$0]) })
                    for t in 0..<ids.count {
                        let d = zip(got[t], want[(t * c.vocabSize)..<((t + 1) * c.vocabSize)]).map { abs(Double($0) - Double($1)) }.max()!
                        worst = max(worst, d)
                        #expect(d < 1e-4, "\(name) \((path as NSString).lastPathComponent) row \(i) position \(t): max |Δlogit| \(d) vs PEFT")
                    }
                }
                // The adapter matters: without it the logits move by far more than the tolerance.
                let plain = try base.lastLogits(batch: [fx.ids[1]])[0]
                let last = try st.floats(try #require(st.tensor(named: "row1"))).suffix(c.vocabSize)
                #expect(zip(plain, last).map { abs(Double($0) - Double($1)) }.max()! > 1e-2)
            }
            print("\(name): tune's adapter in PEFT, max |Δlogit| vs tune = \(worst)")
        }
    }
}
