// LlamaBench — llama.cpp's own `llama-bench`, run beside `tune bench forward` in the same run when a
// built one is found (`--llama-bench PATH`, `TUNE_LLAMA_BENCH`, else the build scripts/llama-cpp makes
// under ~/.cache/tune): its pp256 and tg64 on the same model file and thread count, and tune's numbers
// for exactly those shapes (one 256-token prompt; 64 generated tokens, exact and int8), as ratios.
// Nothing here fakes a reference: without a binary the comparison is absent and says how to get one.

import Engine
import Foundation

/// llama-bench's figures and tune's for the same shapes, measured in one run.
public struct LlamaCppComparison: Codable, Sendable {
    public var binary: String
    /// llama-bench's `build_commit` / `build_number` and the CPU it reported.
    public var build: String
    public var cpu: String
    public var threads: Int
    public var llamaPromptTokensPerSecond: Double
    public var llamaGenerateTokensPerSecond: Double
    public var tunePromptTokensPerSecond: Double
    public var tuneGenerateTokensPerSecond: Double
    /// tune's int8 decode path (not exact) for the same 64 tokens.
    public var tuneInt8GenerateTokensPerSecond: Double
    /// tune's pp256 on the fast path (`Kernels.withFastInference`: bf16 products where the CPU gains from
    /// them, else the exact kernels again), and what ran it.
    public var tuneFastPromptTokensPerSecond: Double
    public var fastGEMM: String
    public var promptRatio: Double { tunePromptTokensPerSecond / llamaPromptTokensPerSecond }
    public var fastPromptRatio: Double { tuneFastPromptTokensPerSecond / llamaPromptTokensPerSecond }
    public var generateRatio: Double { tuneGenerateTokensPerSecond / llamaGenerateTokensPerSecond }
    public var int8GenerateRatio: Double { tuneInt8GenerateTokensPerSecond / llamaGenerateTokensPerSecond }

    enum CodingKeys: String, CodingKey {
        case binary, build, cpu, threads
        case llamaPromptTokensPerSecond = "llama_pp256_tokens_per_second", llamaGenerateTokensPerSecond = "llama_tg64_tokens_per_second"
        case tunePromptTokensPerSecond = "tune_pp256_tokens_per_second", tuneGenerateTokensPerSecond = "tune_tg64_tokens_per_second"
        case tuneInt8GenerateTokensPerSecond = "tune_int8_tg64_tokens_per_second"
        case tuneFastPromptTokensPerSecond = "tune_fast_pp256_tokens_per_second", fastGEMM = "fast_gemm"
    }
}

public enum LlamaBench {
    /// The binary to compare against: `explicit`, else `$TUNE_LLAMA_BENCH`, else LlamaCppTools' places
    /// (`$TUNE_LLAMA_CPP_BIN`, the scripts/llama-cpp build); nil when none is executable.
    public static func locate(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        LlamaCppTools.locate("llama-bench", preferred: [explicit, environment["TUNE_LLAMA_BENCH"]], environment: environment)
    }

    /// One llama-bench result line (`-o json`).
    public struct Result: Sendable, Equatable {
        public var nPrompt: Int
        public var nGen: Int
        public var tokensPerSecond: Double
        public var build: String
        public var cpu: String
    }

    /// Parses `llama-bench -o json` output: an array of tests with n_prompt, n_gen, avg_ts.
    public static func parse(_ data: Data) throws -> [Result] {
        guard let items = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            let head = String(decoding: data.prefix(160), as: UTF8.self)
            throw TuneError(.badData, "llama-bench: expected its -o json output (an array of tests), got \"\(head)\"")
        }
        return try items.map { o in
            guard let p = (o["n_prompt"] as? NSNumber)?.intValue, let g = (o["n_gen"] as? NSNumber)?.intValue,
                  let ts = (o["avg_ts"] as? NSNumber)?.doubleValue else {
                throw TuneError(.badData, "llama-bench: a test lacks n_prompt, n_gen or avg_ts: \(o.keys.sorted())")
            }
            // A build from a source archive (no git) reports build 0, commit "unknown".
            let commit = o["build_commit"] as? String ?? "unknown", number = (o["build_number"] as? NSNumber)?.intValue ?? 0
            let build = number > 0 ? "b\(number) (\(commit))" : commit == "unknown" ? "unversioned source build" : commit
            return Result(nPrompt: p, nGen: g, tokensPerSecond: ts, build: build,
                          cpu: o["cpu_info"] as? String ?? "?")
        }
    }

    /// Runs `binary -m model -p 256 -n 64 -t threads -r reps -o json`; (pp256, tg64) tokens/s with the build and CPU.
    public static func run(binary: String, model: String, threads: Int, repetitions: Int = 3) throws -> (pp: Result, tg: Result) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["-m", model, "-p", "256", "-n", "64", "-t", "\(threads)", "-r", "\(repetitions)", "-o", "json"]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw TuneError(.fileAccess, "llama-bench: cannot start \(binary): \(error)") }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TuneError(.internal, "llama-bench exited with \(p.terminationStatus): \(errText.split(separator: "\n").suffix(3).joined(separator: " | "))")
        }
        let rs = try parse(data)
        guard let pp = rs.first(where: { $0.nPrompt == 256 && $0.nGen == 0 }), let tg = rs.first(where: { $0.nPrompt == 0 && $0.nGen == 64 }) else {
            throw TuneError(.badData, "llama-bench: no pp256 / tg64 test in its output")
        }
        return (pp, tg)
    }
}

extension ForwardBench {
    /// tune's pp256 (one 256-token prompt; exact, then fast) and tg64 (exact, then int8) beside llama-bench's,
    /// same model and threads.
    public func compare(modelPath: String, llamaBench binary: String, progress: (String) -> Void = { _ in }) throws -> LlamaCppComparison {
        let model = try LlamaModel.load(path: modelPath)
        progress("llama.cpp: \(binary) -p 256 -n 64 -t \(Kernels.threads)")
        let (pp, tg) = try LlamaBench.run(binary: binary, model: modelPath, threads: Kernels.threads)
        progress("tune: the same shapes (best of 3)")
        var tunePP = 0.0, tuneFastPP = 0.0, tuneTG = 0.0, tuneInt8 = 0.0
        for _ in 0..<3 {
            tunePP = max(tunePP, try promptTokensPerSecond(model, batch: 1, length: 256))
            tuneFastPP = max(tuneFastPP, try Kernels.withFastInference { try promptTokensPerSecond(model, batch: 1, length: 256) })
            let (s, t) = try generation(model, tokens: 64)
            tuneTG = max(tuneTG, Double(s) / t)
            let (si, ti) = try Kernels.withFastInference { try generation(model, tokens: 64) }
            tuneInt8 = max(tuneInt8, Double(si) / ti)
        }
        return LlamaCppComparison(binary: binary, build: pp.build, cpu: pp.cpu, threads: Kernels.threads,
                                  llamaPromptTokensPerSecond: pp.tokensPerSecond, llamaGenerateTokensPerSecond: tg.tokensPerSecond,
                                  tunePromptTokensPerSecond: tunePP, tuneGenerateTokensPerSecond: tuneTG, tuneInt8GenerateTokensPerSecond: tuneInt8,
                                  tuneFastPromptTokensPerSecond: tuneFastPP, fastGEMM: Kernels.fastGEMMKernel)
    }
}
