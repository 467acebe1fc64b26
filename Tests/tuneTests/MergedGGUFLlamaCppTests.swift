// MergedGGUFLlamaCppTests — `tune merge … --output model --format gguf` proven by the tool that consumes the file:
// llama.cpp's llama-perplexity on the merged GGUF must give each of five texts the mean log-likelihood `tune score`
// gives it on the same file, while on the unmerged base llama.cpp's numbers differ from tune's on the merge by more than
// the bound on every text (so a merge llama.cpp misread, or one that did not change the weights, fails).
//
// Each real model (SmolLM2-135M; Qwen2.5-Coder-0.5B when scripts/setup fetched it) gets a random non-zero rank-4 adapter
// on all seven targets, merged with `--method linear`. The base is an f32 copy of the model's file (llama-quantize
// --allow-requantize … F32: the same values), as in ExportAdapterGGUFTests: tensors a merge does not touch (token_embd,
// which is also the output head of these tied-embedding models, and the norms) are copied from the base as they are,
// and on a quantized head llama.cpp rounds the activations to 8 bits (q8_1 / q8_K) for its dot products, which alone
// moves the mean log-likelihoods by up to ~1e-2 from tune's exact ones (measured in docs/export.md). So:
//
//   f32, f16   every product in float on both sides: |Δ| < 1e-3 (the issue's bound is 1e-2);
//   q8_0       the merged matrices are q8_0, for which llama.cpp rounds the activations to q8_0 too: |Δ| < 4e-2;
//   q4_k_m     llama.cpp's preset (every tensor re-encoded as llama-quantize would; activations rounded to q8_K):
//              checked to load and run, |Δ| < 4e-2 — quantization noise of llama.cpp's kernels, not of the file
//              (measured up to 0.028 for both; the control, > 4e-2 on every text, keeps the check able to fail).
//
// Positions and token ids as in ExportAdapterGGUFTests (LlamaPerplexitySupport.swift). Gemma-3-270M too (when fetched):
// its GGUF stores RMSNorm weights as 1 + w, which tune reads as HF's w and writes back with the 1 for a GGUF output.
import Engine
import Foundation
import Testing
import TuneKit

private let qwenCoderPath = packageRoot.appendingPathComponent("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").path
private let gemmaPath = packageRoot.appendingPathComponent("models/gemma-3-270m-q4_k_m.gguf").path
private let llamaCppReady = llamaPerplexityTool != nil || requireLlamaCpp

/// The bound on |tune − llama.cpp| mean log-likelihood for a merged GGUF of `dtype` (see the file header).
private func bound(_ dtype: String) -> Double { dtype == "f32" || dtype == "f16" ? 1e-3 : 4e-2 }

/// `tune merge --base BASE --adapter ADAPTER --method linear --output model --format gguf --dtype DTYPE`; the file written.
private func mergeGGUF(base: String, adapter: String, dtype: String, dir: URL) throws -> String {
    let out = dir.appendingPathComponent("merged-\(dtype)").path
    let r = try tune(["merge", "--base", base, "--adapter", adapter, "--method", "linear", "--output", "model",
                      "--format", "gguf", "--dtype", dtype, "--out", out])
    #expect(r.status == 0, "tune merge --dtype \(dtype): \(r.stderr)")
    let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".gguf") }
    let file = try #require(files.count == 1 ? files.first : nil, "tune merge --dtype \(dtype) wrote \(files), not one GGUF")
    return out + "/" + file
}

/// Merges a random adapter (B of half-width `bScale`) into an f32 copy of `model` in each of `dtypes`, then compares
/// llama-perplexity on each merged file with `tune score` on it, and with llama-perplexity on the unmerged base.
private func checkMerges(_ model: String, label: String, bScale: Float, seed: UInt64, dtypes: [String]) throws {
    let tool = try #require(try LlamaCppTools.forTest("llama-perplexity"))
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let n = 64
    let base = dir.appendingPathComponent("base-f32.gguf").path
    try llamaQuantize(model, base, type: "F32")
    let peft = dir.appendingPathComponent("peft").path
    try writeRandomAdapter(model: try LlamaConfig(gguf: GGUFFile(path: base)), dir: peft, bScale: bScale, seed: seed)
    let texts = perplexityTexts(minChars: 1000)
    let plain = try texts.map { try llamaPerplexity(tool, model: base, text: $0, n: n, dir: dir) }
    let ids = try scoredIds(plain, model: base)

    for dtype in dtypes {
        let merged = try mergeGGUF(base: base, adapter: peft, dtype: dtype, dir: dir)
        defer { try? FileManager.default.removeItem(atPath: (merged as NSString).deletingLastPathComponent) }
        let llama = try texts.map { try llamaPerplexity(tool, model: merged, text: $0, n: n, dir: dir) }
        // The merge keeps the base's tokenizer: llama.cpp must see the same ids in both files.
        #expect(llama.map(\.tokens) == plain.map(\.tokens), "\(dtype): the merged GGUF tokenizes differently from its base")
        let means = try tuneScores(model: merged, ids: ids, dir: dir).map { perplexityWindowMean($0, n: n) }
        let withMerge = zip(means, llama).map { abs($0 - $1.meanLoglik) }, withBase = zip(means, plain).map { abs($0 - $1.meanLoglik) }
        print("merged-gguf \(label) → \(dtype): |Δ mean loglik| tune vs llama.cpp on the merge [\(formatDeltas(withMerge))] max \(String(format: "%.5f", withMerge.max()!)); vs llama.cpp on the unmerged base [\(formatDeltas(withBase))] min \(String(format: "%.4f", withBase.min()!))")
        let b = bound(dtype)
        #expect(withMerge.allSatisfy { $0 < b }, "\(label) \(dtype): tune vs llama.cpp on the merged GGUF \(withMerge) (bound \(b))")
        #expect(withBase.allSatisfy { $0 > b }, "\(label) \(dtype): the merge must move llama.cpp's numbers past the bound \(b): \(withBase)")
    }
}

@Suite struct MergedGGUFLlamaCppTests {
    @Test(.enabled(if: hasRealModel && llamaCppReady, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf and llama-perplexity"))
    func smolLM2MergesReadAlikeInLlamaCpp() throws {
        try checkMerges(realModelPath, label: "SmolLM2-135M (f32 copy of the Q4_1 file)", bScale: 0.3, seed: 31,
                        dtypes: ["f32", "f16", "q8_0", "q4_k_m"])
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: qwenCoderPath) && llamaCppReady,
                   "needs models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (scripts/setup --model qwen2.5-coder-0.5b) and llama-perplexity"))
    func qwen25CoderMergesReadAlikeInLlamaCpp() throws {
        try checkMerges(qwenCoderPath, label: "Qwen2.5-Coder-0.5B (f32 copy of the Q4_K_M file)", bScale: 0.05, seed: 41, dtypes: ["f32"])
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: gemmaPath) && llamaCppReady,
                   "needs models/gemma-3-270m-q4_k_m.gguf (scripts/setup --model gemma-3-270m) and llama-perplexity"))
    func gemma3MergesReadAlikeInLlamaCpp() throws {
        try checkMerges(gemmaPath, label: "Gemma-3-270M (f32 copy of the Q4_K_M file)", bScale: 0.08, seed: 51, dtypes: ["f32"])
    }
}
