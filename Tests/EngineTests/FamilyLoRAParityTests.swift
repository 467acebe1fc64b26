// FamilyLoRAParityTests — tune's training graph against PyTorch + PEFT 0.21.2 on the tiny Qwen3 and Gemma 3
// models (fixtures from scripts/reference/family_lora_fixtures.py, Tests/Fixtures/lora/families): a PEFT-written
// adapter (r=2 on all 7 targets of every layer) loads in tune, and its loss and LoRA gradients on a two-row
// batch (one row past Gemma's sliding window) equal PEFT's autograd ones (rel. L2 < 2e-3 per tensor).

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
    enum CodingKeys: String, CodingKey {
        case family, ids, labels, loss
        case nTargets = "n_targets", modelSafetensorsSHA256 = "model_safetensors_sha256", configJSONSHA256 = "config_json_sha256"
    }
}

@Suite("PEFT parity (tiny Qwen3, Gemma 3)")
struct FamilyLoRAParityTests {
    @Test("loss and LoRA gradients of a PEFT adapter equal PEFT's autograd", arguments: ["qwen3", "gemma3"])
    func gradientsMatchPEFT(_ name: String) throws {
        let fx = try JSONDecoder().decode(FamilyGradFixture.self,
                                          from: Data(contentsOf: familyLoRAFixtures.appendingPathComponent("\(name)_grads.json")))
        #expect(fx.family == name)
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
                for (suffix, offset, count) in [(".lora_A.weight", s.aOffset, lora.rank * s.inFeatures),
                                                (".lora_B.weight", s.bOffset, lora.rank * s.outFeatures)] {
                    let key = s.peftPrefix + suffix
                    let info = try #require(st.tensor(named: key), "fixture lacks \(key)")
                    let want = try st.floats(info)
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
}
