// PrepareBenchTests — the prepare benchmark measures the stage and says plainly when the HF reference
// is missing (it never invents a reference number).
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct PrepareBenchTests {
    @Test func reportsMissingReferenceHonestly() throws {
        let dir = try PrepareFixtures.tempDir()
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 1, weightType: .f32)
        var bench = PrepareBench()
        bench.inputs = [PrepareFixtures.shippingDocs.appendingPathComponent("eval.jsonl").path]
        bench.repeats = 1
        bench.python = "/nonexistent/python3"
        let r = try bench.run(modelPath: model)
        #expect(r.rows == 80 && r.tokens > 0 && r.rowsPerSecond > 0 && r.tokensPerSecond > 0)
        #expect(r.reference.hasPrefix("reference: HF tokenizers not installed"))
        #expect(r.referenceIDsMatch == nil && r.speedupVsReference == nil)
        #expect(r.tokenizers.map(\.name) == ["tune BPE"])
    }
}
