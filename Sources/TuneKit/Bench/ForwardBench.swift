// ForwardBench — `tune bench forward`: prompt-processing and generation speed of the real model,
// with the fast kernels and the naive reference kernels measured in the same run, plus generation
// on the opt-in int8 decode path (Kernels.withFastInference) right after the exact fast-kernel one.

import Engine
import Foundation

/// Measured speeds for one kernel path.
public struct ForwardBenchRow: Codable, Sendable {
    public var kernels: String
    public var threads: Int
    public var promptBatch: Int
    public var promptLength: Int
    public var promptTokensPerSecond: Double
    public var generatedTokens: Int
    public var generateTokensPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case kernels, threads
        case promptBatch = "prompt_batch", promptLength = "prompt_length"
        case promptTokensPerSecond = "prompt_tokens_per_second"
        case generatedTokens = "generated_tokens", generateTokensPerSecond = "generate_tokens_per_second"
    }
}

/// Generation on the opt-in int8 decode path against the exact path on the same kernels (rows[0]'s
/// ISA, prompt and token count): `rounds` alternating exact / int8 generations, best of each, so a
/// burst of load on a shared machine hits neither side alone.
public struct FastDecodeBenchRow: Codable, Sendable {
    /// The int8 kernel, e.g. "int8-avx512vnni" or "int8-avx2".
    public var kernels: String
    public var rounds: Int
    public var generatedTokens: Int
    public var exactGenerateTokensPerSecond: Double
    public var generateTokensPerSecond: Double
    /// int8 ÷ exact generation tokens/s.
    public var speedupVsExact: Double

    enum CodingKeys: String, CodingKey {
        case kernels, rounds, generatedTokens = "generated_tokens"
        case exactGenerateTokensPerSecond = "exact_generate_tokens_per_second"
        case generateTokensPerSecond = "generate_tokens_per_second", speedupVsExact = "speedup_vs_exact"
    }
}

public struct ForwardBenchReport: Codable, Sendable {
    public var model: String
    public var cpuISA: String
    public var rows: [ForwardBenchRow]
    /// fast ÷ reference, for prompt processing and for generation.
    public var promptSpeedup: Double
    public var generateSpeedup: Double
    /// Generation with Kernels.withFastInference on rows[0]'s kernels (not exact: int8 activations).
    public var fastDecode: FastDecodeBenchRow
    /// llama.cpp's llama-bench beside tune on the same shapes, when a built one was found (LlamaBench.swift).
    public var llamaCpp: LlamaCppComparison?

    enum CodingKeys: String, CodingKey {
        case model, rows, cpuISA = "cpu_isa", promptSpeedup = "prompt_speedup", generateSpeedup = "generate_speedup"
        case fastDecode = "fast_decode", llamaCpp = "llama_cpp"
    }
}

public struct ForwardBench: Sendable {
    public var batch = 4, length = 256, generate = 32
    /// The naive kernels are ~100× slower: they run a smaller prompt (tokens/s stays comparable
    /// because per-token cost barely depends on length at these sizes) and fewer generated tokens.
    public var refBatch = 1, refLength = 64, refGenerate = 4
    /// Alternating exact / int8 generation rounds for the fast-decode row.
    public var fastDecodeRounds = 3

    public init() {}

    public func run(modelPath: String, progress: (String) -> Void = { _ in }) throws -> ForwardBenchReport {
        let model = try LlamaModel.load(path: modelPath)
        let fast = Kernels.active
        var rows: [ForwardBenchRow] = []
        var int8: FastDecodeBenchRow?
        for (isa, b, t, g) in [(fast, batch, length, generate), (.ref, refBatch, refLength, refGenerate)] {
            try Kernels.set(isa: isa)
            defer { try? Kernels.set(isa: fast) }
            progress("\(isa.rawValue): prompt \(b)×\(t) tokens, then \(g) generated")
            rows.append(try measure(model, isa: isa, batch: b, length: t, generate: g))
            if isa == fast {
                let rounds = max(1, fastDecodeRounds)
                progress("\(isa.rawValue) exact vs \(Kernels.fastDecodeKernel) decode: \(rounds) rounds of \(g) generated")
                var exactBest = 0.0, int8Best = 0.0, steps = 0
                for _ in 0..<rounds {
                    let (se, te) = try generation(model, tokens: g)
                    let (sf, tf) = try Kernels.withFastInference { try generation(model, tokens: g) }
                    exactBest = max(exactBest, Double(se) / te)
                    int8Best = max(int8Best, Double(sf) / tf)
                    steps = sf
                }
                int8 = FastDecodeBenchRow(kernels: Kernels.fastDecodeKernel, rounds: rounds, generatedTokens: steps,
                                          exactGenerateTokensPerSecond: exactBest, generateTokensPerSecond: int8Best,
                                          speedupVsExact: int8Best / exactBest)
            }
        }
        return ForwardBenchReport(model: modelPath, cpuISA: Kernels.detected.rawValue, rows: rows,
                                  promptSpeedup: rows[0].promptTokensPerSecond / rows[1].promptTokensPerSecond,
                                  generateSpeedup: rows[0].generateTokensPerSecond / rows[1].generateTokensPerSecond,
                                  fastDecode: int8!)
    }

    /// Deterministic, realistic token ids: a real text's tokens, repeated to length.
    private func promptIDs(_ model: LlamaModel, batch b: Int, length t: Int) -> [[Int32]] {
        let text = String(repeating: "The quick brown fox jumps over the lazy dog while 42 engineers tune models. ", count: 64)
        let base = model.tokenizer.encode(text)
        return (0..<b).map { i in (0..<t).map { base[(i * 7 + $0) % base.count] } }
    }

    /// g decode steps after the first sampled token from a 16-token prompt: (steps, seconds).
    func generation(_ model: LlamaModel, tokens g: Int) throws -> (Int, Double) {
        let gen = try model.generate(promptIDs: Array(promptIDs(model, batch: 1, length: 16)[0]),
                                     options: GenerationOptions(maxTokens: g + 1, stopAtEOS: false))
        // generateSeconds covers g decode steps after the first sampled token.
        return (max(gen.ids.count - 1, 1), gen.generateSeconds)
    }

    /// Prompt processing of `b` prompts of `t` tokens in one batched forward, tokens/s.
    func promptTokensPerSecond(_ model: LlamaModel, batch b: Int, length t: Int) throws -> Double {
        let prompts = promptIDs(model, batch: b, length: t)
        let t0 = DispatchTime.now()
        _ = try model.lastLogits(batch: prompts)
        return Double(b * t) / (Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9)
    }

    private func measure(_ model: LlamaModel, isa: Kernels.ISA, batch b: Int, length t: Int, generate g: Int) throws
        -> ForwardBenchRow {
        let pp = try promptTokensPerSecond(model, batch: b, length: t)
        let (steps, seconds) = try generation(model, tokens: g)
        return ForwardBenchRow(kernels: isa.rawValue, threads: Kernels.threads, promptBatch: b, promptLength: t,
                               promptTokensPerSecond: pp, generatedTokens: steps,
                               generateTokensPerSecond: Double(steps) / seconds)
    }
}
