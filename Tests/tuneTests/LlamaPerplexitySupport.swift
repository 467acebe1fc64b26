// LlamaPerplexitySupport — what the llama.cpp checks of tune's GGUF outputs share (ExportAdapterGGUFTests: LoRA
// adapters; MergedGGUFLlamaCppTests: merged models): run llama-perplexity on a text and read the mean
// log-likelihood it printed and the exact token ids it evaluated, score the same ids with `tune score --ids`, and
// average tune's log-probs over the positions llama-perplexity averages.
//
// Positions: llama-perplexity with `-c N --chunks 1` evaluates the first N tokens of a text (≥ 2N tokens long),
// BOS in place of token 0 when the vocab adds one, and averages −ln p(t[j+1] | t[0...j]) over j = N/2 … N−2.
// The tokens come from its `--kl-divergence-base` file (header: "_logits_", n_ctx, n_vocab, n_chunk, then the
// tokens), so tune scores exactly the ids llama.cpp saw, and the mean is taken over the same j.
import Engine
import Foundation
import Testing
import TuneKit

let llamaPerplexityTool = LlamaCppTools.locate("llama-perplexity")
let requireLlamaCpp = ProcessInfo.processInfo.environment["TUNE_REQUIRE_LLAMA_CPP"] == "1"

/// Five distinct English texts, each repeated to at least `minChars` characters (≥ 2N tokens for llama-perplexity).
func perplexityTexts(minChars: Int) -> [String] {
    let seeds = [
        "The river wound through the valley, past orchards heavy with apples and a mill whose wheel had not turned in years. ",
        "To compile the project, install the toolchain, run the build script, and check that every test passes before committing. ",
        "Photosynthesis converts light energy into chemical energy, storing it in sugars that plants use to grow and reproduce. ",
        "In 1887 the harbour froze for eleven days; merchants walked across the ice to trade salt, rope, lamp oil and letters. ",
        "Q: What is the capital of France? A: Paris. Q: What is two plus three? A: Five. Q: Which planet is red? A: Mars. ",
    ]
    return seeds.map { s in var t = s; while t.count < minChars { t += s }; return t }
}

/// A PEFT adapter on every target of `model` with seeded A (PEFT init) and seeded random B of half-width
/// `bScale` (a trained B is nonzero; zero B would make the adapter a no-op), saved to `dir`.
func writeRandomAdapter(model: LlamaConfig, dir: String, rank: Int = 4, alpha: Double = 8, bScale: Float, seed: UInt64) throws {
    let lora = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: alpha), model: model, seed: seed)
    var rng = SplitMix64(seed: seed &+ 1)
    for s in lora.slots {
        let b = lora.b(s)
        for i in 0..<(s.outFeatures * rank) { b[i] = bScale * rng.symmetric() }
    }
    try lora.save(directory: dir, baseModel: "test-base")
}

/// `llama-quantize --allow-requantize IN OUT TYPE` (e.g. F32: a copy of a quantized GGUF holding the same values
/// in f32, so that llama.cpp multiplies in f32 as tune does).
func llamaQuantize(_ input: String, _ output: String, type: String) throws {
    let quantize = try #require(try LlamaCppTools.forTest("llama-quantize"))
    let q = Process()
    q.executableURL = URL(fileURLWithPath: quantize)
    q.arguments = ["--allow-requantize", input, output, type, "2"]
    q.standardOutput = FileHandle.nullDevice
    q.standardError = FileHandle.nullDevice
    try q.run()
    q.waitUntilExit()
    #expect(q.terminationStatus == 0, "llama-quantize \(input) to \(type) failed")
}

/// What llama-perplexity reported for one text: its mean log-likelihood and the N tokens it evaluated.
struct LlamaScore {
    var meanLoglik: Double
    var tokens: [Int32]
}

/// Runs llama-perplexity on `text` (context `n`, one chunk, 2 threads), with `lora` when given.
func llamaPerplexity(_ tool: String, model: String, lora: String? = nil, text: String, n: Int, dir: URL) throws -> LlamaScore {
    let textFile = dir.appendingPathComponent("text-\(UUID().uuidString).txt"), logits = dir.appendingPathComponent("logits-\(UUID().uuidString).bin")
    try text.write(to: textFile, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: logits) }
    var args = ["-m", model, "-f", textFile.path, "-c", "\(n)", "-b", "\(n)", "--chunks", "1", "-t", "2",
                "--ppl-output-type", "1", "--kl-divergence-base", logits.path]
    if let lora { args += ["--lora", lora] }
    // llama.cpp logs from a worker thread that the process can exit before it drains (common/log.cpp says so: "logs
    // may be lost if not flushed before the program exits"; on the tiny models ~1 run in 6 loses the per-chunk
    // line even into a file), so a run without the line is repeated, up to 10 times.
    let logFile = dir.appendingPathComponent("log-\(UUID().uuidString).txt")
    func perChunkLine(_ log: String) -> Substring? {
        // --ppl-output-type 1 prints one line per chunk: "<first token index>  <ppl>  <mean nll>  <stderr>".
        log.split(separator: "\n").first { l in
            let f = l.split(separator: " ", omittingEmptySubsequences: true)
            return f.count == 4 && f[0] == "0" && f.dropFirst().allSatisfy { Double($0) != nil }
        }
    }
    var log = "", found: Substring? = nil
    for _ in 0..<10 where found == nil {
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        p.waitUntilExit()
        try handle.close()
        log = try String(contentsOf: logFile, encoding: .utf8)
        #expect(p.terminationStatus == 0, "llama-perplexity failed:\n\(log.suffix(3000))")
        if lora != nil {
            #expect(!log.contains("failed to apply lora") && !log.contains("failed to load lora"), "llama.cpp refused the adapter:\n\(log.suffix(3000))")
        }
        found = perChunkLine(log)
    }
    let line = try #require(found, "no per-chunk line in llama-perplexity's output:\n\(log.suffix(3000))")
    let nll = try #require(Double(line.split(separator: " ", omittingEmptySubsequences: true)[2]))

    let bytes = try Data(contentsOf: logits)
    func i32(_ at: Int) -> Int32 { bytes.subdata(in: at..<(at + 4)).withUnsafeBytes { $0.loadUnaligned(as: Int32.self) } }
    #expect(bytes.prefix(8) == Data("_logits_".utf8))
    #expect(Int(i32(8)) == n && i32(16) == 1, "logits file header: n_ctx \(i32(8)), n_chunk \(i32(16))")
    let tokens = (0..<n).map { i32(20 + 4 * $0) }
    return LlamaScore(meanLoglik: -nll, tokens: tokens)
}

/// The ids tune scores for what llama-perplexity evaluated on `model`: its tokens, with BOS in place of token 0 when
/// the vocab adds one (as llama-perplexity does for each chunk).
func scoredIds(_ scores: [LlamaScore], model: String) throws -> [[Int32]] {
    let meta = try GGUFFile(path: model).metadata
    let bos = meta["tokenizer.ggml.add_bos_token"]?.boolValue == true ? meta["tokenizer.ggml.bos_token_id"]?.intValue.map(Int32.init) : nil
    return scores.map { s in var t = s.tokens; if let bos { t[0] = bos }; return t }
}

/// Per-token log-probs from `tune score MODEL --ids … [--adapter DIR]` for each id list.
func tuneScores(model: String, adapter: String? = nil, ids: [[Int32]], dir: URL) throws -> [[Double]] {
    let idsFile = dir.appendingPathComponent("ids-\(UUID().uuidString).json")
    try JSONEncoder().encode(ids).write(to: idsFile)
    var args = ["score", model, "--ids", idsFile.path, "--threads", "2", "--json"]
    if let adapter { args += ["--adapter", adapter] }
    let r = try tune(args)
    #expect(r.status == 0, "\(r.stderr)")
    struct Scores: Decodable { var logprobs: [[Double]] }
    return try JSONDecoder().decode(Scores.self, from: Data(r.stdout.utf8)).logprobs
}

/// tune's mean log-likelihood over the positions llama-perplexity averages with `-c n`: logprobs[j] =
/// ln p(t[j+1] | t[0...j]) for j = n/2 … n−2.
func perplexityWindowMean(_ logprobs: [Double], n: Int) -> Double {
    logprobs[(n / 2)...(n - 2)].reduce(0, +) / Double(n / 2 - 1)
}

/// `%.5f` of each value, space-separated, for the tests' one-line reports.
func formatDeltas(_ xs: [Double]) -> String { xs.map { String(format: "%.5f", $0) }.joined(separator: " ") }
