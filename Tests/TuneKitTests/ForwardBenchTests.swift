// ForwardBenchTests — the forward benchmark runs both kernel paths and reports consistent numbers.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct ForwardBenchTests {
    @Test func measuresFastAndReferenceOnATinyModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: path, config: .tiny, seed: 1, weightType: .q4_1)
        var bench = ForwardBench()
        bench.batch = 2; bench.length = 16; bench.generate = 4
        bench.refBatch = 1; bench.refLength = 8; bench.refGenerate = 2; bench.fastDecodeRounds = 2
        let before = Kernels.active
        var steps: [String] = []
        let r = try bench.run(modelPath: path) { steps.append($0) }
        #expect(Kernels.active == before, "the benchmark must restore the kernel path")
        #expect(r.rows.map(\.kernels) == [before.rawValue, "ref"])
        #expect(r.rows[0].promptBatch == 2 && r.rows[0].promptLength == 16 && r.rows[0].generatedTokens == 4)
        #expect(r.rows[1].promptBatch == 1 && r.rows[1].promptLength == 8 && r.rows[1].generatedTokens == 2)
        #expect(r.rows.allSatisfy { $0.promptTokensPerSecond > 0 && $0.generateTokensPerSecond > 0 })
        #expect(steps.count == 3, "fast kernels, int8 decode, reference")
        #expect(r.fastDecode.kernels == Kernels.fastDecodeKernel && r.fastDecode.generatedTokens == 4)
        #expect(r.fastDecode.rounds == 2 && r.fastDecode.generateTokensPerSecond > 0 && r.fastDecode.exactGenerateTokensPerSecond > 0)
        #expect(abs(r.fastDecode.speedupVsExact - r.fastDecode.generateTokensPerSecond / r.fastDecode.exactGenerateTokensPerSecond) < 1e-9)
        #expect(abs(r.promptSpeedup - r.rows[0].promptTokensPerSecond / r.rows[1].promptTokensPerSecond) < 1e-9)
    }
}
