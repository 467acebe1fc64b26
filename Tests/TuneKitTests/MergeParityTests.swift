// MergeParityTests — tune's merges equal mergekit 0.1.5's on the committed fixtures
// (scripts/reference/merge_fixtures.py): linear, task arithmetic and TIES over full models, and TIES
// over two LoRA adapters (mergekit: `base+adapter`), every tensor within 1e-6.
import Engine
import Foundation
import Testing
import TuneKit

@Suite("MergeParity")
struct MergeParityTests {
    @Test("tune == mergekit within 1e-6", arguments: ["linear", "task_arithmetic", "ties", "ties_lora"])
    func parity(_ name: String) throws {
        var spec = try MergekitConfig.load(path: MergeFixtures.dir.appendingPathComponent("\(name).yaml").path)
        spec.output = .model
        spec.format = .safetensors
        let out = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let target = out.appendingPathComponent("merged").path
        _ = try MergeJob.run(spec, outputDirectory: target)
        let ours = try MergeFixtures.tensors(target + "/model.safetensors")
        let theirs = try MergeFixtures.tensors(MergeFixtures.dir.appendingPathComponent("expected/\(name).safetensors").path)
        #expect(!theirs.isEmpty)
        var worst = 0.0
        for (tensor, expected) in theirs {
            let got = try #require(ours[tensor], "\(tensor) missing from tune's output")
            #expect(got.count == expected.count)
            let d = zip(got, expected).map { Double(abs($0 - $1)) }.max() ?? 0
            worst = max(worst, d)
            #expect(d <= 1e-6, "\(name): \(tensor) maxdiff \(d)")
        }
        print("merge parity \(name): max abs diff \(worst) over \(theirs.count) tensors")
    }
}
