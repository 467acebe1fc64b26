// LlamaBenchTests — the llama.cpp comparison of `tune bench forward`: llama-bench's `-o json` output is
// read (pp256 and tg64, build and CPU), a bad output is an error quoting it, and the binary is found
// from the flag, then TUNE_LLAMA_BENCH, and never when it is not executable. (Running llama.cpp itself is
// the benchmark's job: docs/PERFORMANCE.md.)
import Foundation
import Testing
@testable import TuneKit

@Suite struct LlamaBenchTests {
    static let output = """
        [
          {"build_commit": "abc1234", "build_number": 11434, "cpu_info": "AMD EPYC", "gpu_info": "", "backends": "CPU",
           "model_filename": "models/SmolLM2-135M-Instruct.Q4_1.gguf", "model_type": "llama ?B Q4_1", "n_threads": 2,
           "n_prompt": 256, "n_gen": 0, "avg_ns": 310000000, "stddev_ns": 1000000, "avg_ts": 825.81, "stddev_ts": 2.5},
          {"build_commit": "abc1234", "build_number": 11434, "cpu_info": "AMD EPYC", "gpu_info": "", "backends": "CPU",
           "model_filename": "models/SmolLM2-135M-Instruct.Q4_1.gguf", "model_type": "llama ?B Q4_1", "n_threads": 2,
           "n_prompt": 0, "n_gen": 64, "avg_ns": 400000000, "stddev_ns": 2000000, "avg_ts": 160.02, "stddev_ts": 0.8}
        ]
        """

    @Test func readsItsJSONOutput() throws {
        let rs = try LlamaBench.parse(Data(Self.output.utf8))
        #expect(rs == [LlamaBench.Result(nPrompt: 256, nGen: 0, tokensPerSecond: 825.81, build: "b11434 (abc1234)", cpu: "AMD EPYC"),
                       LlamaBench.Result(nPrompt: 0, nGen: 64, tokensPerSecond: 160.02, build: "b11434 (abc1234)", cpu: "AMD EPYC")])
        #expect(throws: TuneError.self) { try LlamaBench.parse(Data("| model | size |".utf8)) }
        let unversioned = try LlamaBench.parse(Data(#"[{"build_commit": "unknown", "build_number": 0, "n_prompt": 0, "n_gen": 64, "avg_ts": 1.5}]"#.utf8))
        #expect(unversioned.first?.build == "unversioned source build")
        do { _ = try LlamaBench.parse(Data(#"[{"n_prompt": 256}]"#.utf8)); Issue.record("accepted") } catch let e as TuneError {
            #expect(e.message.contains("avg_ts"), "\(e.message)")
        }
        let c = LlamaCppComparison(binary: "b", build: "b1", cpu: "c", threads: 2, llamaPromptTokensPerSecond: 800, llamaGenerateTokensPerSecond: 160,
                                   tunePromptTokensPerSecond: 1200, tuneGenerateTokensPerSecond: 120, tuneInt8GenerateTokensPerSecond: 176,
                                   tuneFastPromptTokensPerSecond: 1600, fastGEMM: "bf16-avx512")
        #expect(c.promptRatio == 1.5 && c.generateRatio == 0.75 && abs(c.int8GenerateRatio - 1.1) < 1e-12 && c.fastPromptRatio == 2)
    }

    @Test func findsOnlyAnExecutable() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-llamabench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = dir.appendingPathComponent("llama-bench.txt").path
        try "not a program".write(toFile: plain, atomically: true, encoding: .utf8)
        let exe = dir.appendingPathComponent("llama-bench").path
        try "#!/bin/sh\n".write(toFile: exe, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: exe)
        #expect(LlamaBench.locate(explicit: exe, environment: [:]) == exe)
        #expect(LlamaBench.locate(explicit: nil, environment: ["TUNE_LLAMA_BENCH": exe]) == exe)
        #expect(LlamaBench.locate(explicit: plain, environment: ["TUNE_LLAMA_BENCH": exe]) == exe, "a non-executable flag falls through")
        let cachedBinary = LlamaCppTools.cachedDirectory(environment: [:]) + "/llama-bench"
        let cached = FileManager.default.isExecutableFile(atPath: cachedBinary)
        #expect(LlamaBench.locate(explicit: plain, environment: [:]) == (cached ? cachedBinary : nil))
        #expect(LlamaBench.locate(explicit: nil, environment: ["TUNE_LLAMA_CPP_BIN": dir.path]) == exe, "a directory of built tools")
    }
}
