// ExportAdapterGGUFTests — `tune export adapter --format gguf` proven by the tool that consumes it: llama.cpp's
// llama-perplexity loads base + `--lora` and its mean log-likelihood of each text must equal `tune score`'s of
// base + the PEFT adapter (within 1e-2), while without the adapter the two differ by far more (so the check can
// fail). Models: the tiny llama (Q/K rows permuted in GGUF: lora_b must be too) and tiny qwen2 (not permuted)
// the tests generate, and the real SmolLM2 when scripts/setup fetched it.
//
// Positions: llama-perplexity with `-c N --chunks 1` evaluates the first N tokens of a text (≥ 2N tokens long),
// BOS in place of token 0 when the vocab adds one, and averages −ln p(t[j+1] | t[0...j]) over j = N/2 … N−2.
// The tokens come from its `--kl-divergence-base` file (header: "_logits_", n_ctx, n_vocab, n_chunk, then the
// tokens), so tune scores exactly the ids llama.cpp saw, and the mean is taken over the same j.
import Engine
import Foundation
import Testing
import TuneKit

private let perplexityTool = LlamaCppTools.locate("llama-perplexity")
private let requireLlamaCpp = ProcessInfo.processInfo.environment["TUNE_REQUIRE_LLAMA_CPP"] == "1"

private func jsonObject(_ s: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], "not a JSON object: \(s)")
}

/// Five distinct English texts, each repeated to at least `minChars` characters (≥ 2N tokens for llama-perplexity).
private func texts(minChars: Int) -> [String] {
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
private func writeRandomAdapter(model: LlamaConfig, dir: String, rank: Int = 4, alpha: Double = 8, bScale: Float, seed: UInt64) throws {
    let lora = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: alpha), model: model, seed: seed)
    var rng = SplitMix64(seed: seed &+ 1)
    for s in lora.slots {
        let b = lora.b(s)
        for i in 0..<(s.outFeatures * rank) { b[i] = bScale * rng.symmetric() }
    }
    try lora.save(directory: dir, baseModel: "test-base")
}

/// What llama-perplexity reported for one text: its mean log-likelihood and the N tokens it evaluated.
private struct LlamaScore {
    var meanLoglik: Double
    var tokens: [Int32]
}

/// Runs llama-perplexity on `text` (context `n`, one chunk, 2 threads), with `lora` when given.
private func llamaPerplexity(_ tool: String, model: String, lora: String?, text: String, n: Int, dir: URL) throws -> LlamaScore {
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

/// Per-token log-probs from `tune score MODEL --ids … [--adapter DIR]` for each id list.
private func tuneScores(model: String, adapter: String?, ids: [[Int32]], dir: URL) throws -> [[Double]] {
    let idsFile = dir.appendingPathComponent("ids-\(UUID().uuidString).json")
    try JSONEncoder().encode(ids).write(to: idsFile)
    var args = ["score", model, "--ids", idsFile.path, "--threads", "2", "--json"]
    if let adapter { args += ["--adapter", adapter] }
    let r = try tune(args)
    #expect(r.status == 0, "\(r.stderr)")
    let o = try jsonObject(r.stdout)
    return try #require(o["logprobs"] as? [[Double]])
}

/// The comparison of one model: |Δ| with the adapter (tune+PEFT vs llama.cpp+GGUF) and without (tune+PEFT vs
/// llama.cpp base alone), per text.
private struct Agreement {
    var withAdapter: [Double]
    var withoutAdapter: [Double]
}

/// Exports `adapterDir` for `base` with the CLI, then scores five texts both ways.
private func compare(base: String, adapterDir: String, n: Int, minChars: Int, dir: URL) throws -> Agreement {
    let tool = try #require(try LlamaCppTools.forTest("llama-perplexity"))
    let gguf = dir.appendingPathComponent("adapter.gguf").path
    let r = try tune(["export", "adapter", adapterDir, "--format", "gguf", "--out", gguf, "--base", base, "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let o = try jsonObject(r.stdout)
    #expect(o["serve"] as? String == "llama-server -m \(base) --lora \(gguf)")

    // llama.cpp puts BOS in place of each chunk's first token when the vocab adds one; tune scores the same ids.
    let meta = try GGUFFile(path: base).metadata
    let bos = meta["tokenizer.ggml.add_bos_token"]?.boolValue == true ? meta["tokenizer.ggml.bos_token_id"]?.intValue.map(Int32.init) : nil

    var withLoRA: [LlamaScore] = [], plain: [LlamaScore] = []
    for t in texts(minChars: minChars) {
        withLoRA.append(try llamaPerplexity(tool, model: base, lora: gguf, text: t, n: n, dir: dir))
        plain.append(try llamaPerplexity(tool, model: base, lora: nil, text: t, n: n, dir: dir))
        #expect(withLoRA.last!.tokens == plain.last!.tokens)
    }
    let ids = withLoRA.map { s in var t = s.tokens; if let bos { t[0] = bos }; return t }
    let tuneLP = try tuneScores(model: base, adapter: adapterDir, ids: ids, dir: dir)
    // tune's logprobs[j] = ln p(t[j+1] | t[0...j]); llama-perplexity averages j = N/2 … N−2.
    let means = tuneLP.map { lp in lp[(n / 2)...(n - 2)].reduce(0, +) / Double(n / 2 - 1) }
    return Agreement(withAdapter: zip(means, withLoRA).map { abs($0 - $1.meanLoglik) },
                     withoutAdapter: zip(means, plain).map { abs($0 - $1.meanLoglik) })
}

private func report(_ name: String, _ a: Agreement) {
    let f = { (x: [Double]) in x.map { String(format: "%.5f", $0) }.joined(separator: " ") }
    print("export-gguf \(name): |Δ mean loglik| tune+PEFT vs llama.cpp+GGUF [\(f(a.withAdapter))] max \(String(format: "%.5f", a.withAdapter.max()!)); vs llama.cpp base alone [\(f(a.withoutAdapter))] min \(String(format: "%.4f", a.withoutAdapter.min()!))")
}

@Suite struct ExportAdapterGGUFTests {
    // MARK: - Layout (no llama.cpp needed)

    /// Names, shapes, metadata and the Q/K row permutation of a tiny llama adapter, read back from the file.
    @Test func ggufLayoutMatchesTheConverter() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let lora = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, targets: [.q, .k, .down], layers: [0, 1]), model: .tiny, seed: 3)
        var rng = SplitMix64(seed: 9)
        for s in lora.slots { for i in 0..<(s.outFeatures * 4) { lora.b(s)[i] = rng.symmetric() } }
        let path = dir.appendingPathComponent("a.gguf").path
        try lora.writeGGUF(to: path, name: "tiny-adapter")
        let f = try GGUFFile(path: path)
        #expect(f.metadataKeys == ["general.architecture", "general.type", "adapter.type", "general.name", "adapter.lora.alpha",
                                   "general.quantization_version"])
        #expect(f.metadata["general.architecture"]?.stringValue == "llama" && f.metadata["general.type"]?.stringValue == "adapter")
        #expect(f.metadata["adapter.type"]?.stringValue == "lora" && f.metadata["adapter.lora.alpha"]?.doubleValue == 8)
        // The converter's order: PEFT names sorted as strings (mlp before self_attn, k before q).
        #expect(f.tensors.map(\.name) == [0, 1].flatMap { l in
            ["ffn_down", "attn_k", "attn_q"].flatMap { ["blk.\(l).\($0).weight.lora_a", "blk.\(l).\($0).weight.lora_b"] }
        })
        let c = LlamaConfig.tiny
        for s in lora.slots {
            let base = LoRAAdapter.ggufBaseTensorName(layer: s.layer, target: s.target)
            let a = try #require(f.tensor(named: base + ".lora_a")), b = try #require(f.tensor(named: base + ".lora_b"))
            #expect(a.shape == [s.inFeatures, 4] && b.shape == [4, s.outFeatures] && a.type == .f32 && b.type == .f32)
            #expect(try f.dequantize(a) == Array(UnsafeBufferPointer(start: lora.a(s), count: 4 * s.inFeatures)))
            let hf = Array(UnsafeBufferPointer(start: lora.b(s), count: 4 * s.outFeatures))
            let heads = s.target == .q ? c.numHeads : c.numKVHeads
            let expected = s.target == .down ? hf : TinyLlama.permuteRows(hf, rows: s.outFeatures, cols: 4, heads: heads)
            #expect(try f.dequantize(b) == expected, "\(base).lora_b")
            if s.target != .down { #expect(expected != hf, "the permutation must move rows") }
        }
    }

    /// rsLoRA: llama.cpp divides alpha by r, so alpha·√r is written; f16 and bf16 are written as asked;
    /// other architectures and types are one-line errors naming them.
    @Test func alphaTypesAndRefusals() throws {
        let rs = try LoRAAdapter(config: LoRAConfig(rank: 4, alpha: 8, useRSLoRA: true, targets: [.v]), model: .tinyQwen2, seed: 1)
        let g = try rs.ggufLoRA(type: .f16, name: "x")
        #expect(g.metadata["adapter.lora.alpha"] == .float32(16))
        #expect(g.metadata["general.architecture"]?.stringValue == "qwen2")
        _ = try rs.ggufLoRA(type: .bf16, name: "x")
        #expect(throws: EngineError.self) { try rs.ggufLoRA(type: .q8_0, name: "x") }
        let gemma = try LoRAAdapter(config: LoRAConfig(rank: 2, alpha: 4, targets: [.v]), model: .tinyGemma3, seed: 1)
        do { _ = try gemma.ggufLoRA(name: "x"); Issue.record("gemma3 accepted") } catch let e as EngineError {
            #expect(e.message.contains("'gemma3'") && e.message.contains("llama, qwen2"), "\(e.message)")
        }
    }

    // MARK: - CLI

    @Test func cliErrorsAndPEFTCopy() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: base, config: .tiny, seed: 1, weightType: .f32)
        let peft = dir.appendingPathComponent("peft").path
        try writeRandomAdapter(model: .tiny, dir: peft, bScale: 0.1, seed: 2)

        var r = try tune(["export", "adapter", peft, "--format", "gguf", "--out", dir.appendingPathComponent("a.gguf").path])
        #expect(r.status == 65 && r.stderr.contains("--base"), "\(r.status) \(r.stderr)")
        r = try tune(["export", "adapter", "nosuch@1", "--format", "gguf", "--out", dir.appendingPathComponent("a.gguf").path,
                      "--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", dir.appendingPathComponent("blobs").path])
        #expect(r.status == 66, "\(r.status) \(r.stderr)")
        let qwenBase = dir.appendingPathComponent("qwen.gguf").path
        try TinyLlama.writeGGUF(to: qwenBase, config: .tinyQwen3, seed: 1, weightType: .f32)
        r = try tune(["export", "adapter", peft, "--format", "gguf", "--out", dir.appendingPathComponent("q.gguf").path, "--base", qwenBase])
        #expect(r.status != 0 && r.stderr.contains("qwen3"), "\(r.status) \(r.stderr)")

        let out = dir.appendingPathComponent("copy").path
        r = try tune(["export", "adapter", peft, "--format", "peft", "--out", out, "--base", base, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try jsonObject(r.stdout)["tensors"] as? Int == 2 * 7 * 2)
        #expect(FileManager.default.contents(atPath: out + "/adapter_model.safetensors") == FileManager.default.contents(atPath: peft + "/adapter_model.safetensors"))
        // An HF base directory needs only its config.json (as for llama.cpp's converter); serve names a GGUF to make.
        let hf = dir.appendingPathComponent("hf").path
        try HFModelDirectory.writeConfig(.tiny, to: hf)
        r = try tune(["export", "adapter", peft, "--format", "gguf", "--out", dir.appendingPathComponent("hf.gguf").path, "--base", hf, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect((try jsonObject(r.stdout)["serve"] as? String)?.hasPrefix("llama-server -m BASE.gguf --lora ") == true, "\(r.stdout)")
        r = try tune(["export", "adapter", peft, "--format", "peft", "--out", out])
        #expect(r.status == 65 && r.stderr.contains("already exists"), "\(r.status) \(r.stderr)")
    }

    /// A registered adapter exports against the base its record names (no --base).
    @Test func registryRefUsesTheRecordedBase() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: base, config: .tiny, seed: 1, weightType: .f32)
        let peft = dir.appendingPathComponent("peft").path
        try writeRandomAdapter(model: .tiny, dir: peft, bScale: 0.1, seed: 2)
        let loc = ["--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", dir.appendingPathComponent("blobs").path]
        var r = try tune(["base", "add", "tiny", "--version", "1", "--model", base, "--license", "apache-2.0"] + loc)
        #expect(r.status == 0, "\(r.stderr)")
        r = try tune(["artifacts", "add", peft, "--name", "tiny-lora", "--kind", "adapter", "--base", "tiny@1"] + loc)
        #expect(r.status == 0, "\(r.stderr)")
        let out = dir.appendingPathComponent("a.gguf").path
        r = try tune(["export", "adapter", "tiny-lora@1", "--format", "gguf", "--out", out, "--json"] + loc)
        #expect(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        #expect(o["artifact"] as? String == "tiny-lora@1" && o["base"] as? String == base && o["architecture"] as? String == "llama")
        #expect(try GGUFFile(path: out).metadata["general.name"]?.stringValue == "tiny-lora")
    }

    // MARK: - Proof by llama.cpp

    @Test(.enabled(if: perplexityTool != nil || requireLlamaCpp, "llama-perplexity not found (TUNE_LLAMA_CPP_BIN or scripts/llama-cpp); the llama.cpp check was skipped"),
          arguments: [LlamaConfig.tiny, LlamaConfig.tinyQwen2])
    func llamaCppAgreesOnTinyModel(config: LlamaConfig) throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("base.gguf").path
        try TinyLlama.writeGGUF(to: base, config: config, seed: 11, weightType: .f32)
        let peft = dir.appendingPathComponent("peft").path
        try writeRandomAdapter(model: config, dir: peft, bScale: 4, seed: 12)
        let a = try compare(base: base, adapterDir: peft, n: 64, minChars: 400, dir: dir)
        report("tiny \(config.architecture.rawValue)", a)
        // The tiny models' logits are small (random tied embeddings of std 0.02 after an RMSNorm), so even a large
        // adapter moves a text's mean log-likelihood by only ~0.01–0.1; both sides run in f32 here, so the
        // agreement bound is 1e-3 (ten times tighter than the issue's) and the control 5e-3 on every text.
        #expect(a.withAdapter.allSatisfy { $0 < 1e-3 }, "tune+PEFT vs llama.cpp+GGUF: \(a.withAdapter)")
        #expect(a.withoutAdapter.allSatisfy { $0 > 5e-3 }, "the adapter must change llama.cpp's numbers measurably: \(a.withoutAdapter)")
    }

    /// SmolLM2-135M as an f32 GGUF (llama-quantize --allow-requantize … F32: the Q4_1 values exactly), so that
    /// llama.cpp multiplies in f32 as tune does: on the Q4_1 file itself llama.cpp rounds activations to q8_1 for
    /// its q4_1 dot products, which alone moves the base's mean log-likelihoods by up to ~1e-2 from tune's.
    @Test(.enabled(if: hasRealModel && (perplexityTool != nil || requireLlamaCpp), "needs models/SmolLM2-135M-Instruct.Q4_1.gguf and llama-perplexity"))
    func llamaCppAgreesOnSmolLM2() throws {
        let quantize = try #require(try LlamaCppTools.forTest("llama-quantize"))
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("smollm2-f32.gguf").path
        let q = Process()
        q.executableURL = URL(fileURLWithPath: quantize)
        q.arguments = ["--allow-requantize", realModelPath, base, "F32", "2"]
        q.standardOutput = FileHandle.nullDevice
        q.standardError = FileHandle.nullDevice
        try q.run()
        q.waitUntilExit()
        #expect(q.terminationStatus == 0, "llama-quantize to F32 failed")
        let peft = dir.appendingPathComponent("peft").path
        try writeRandomAdapter(model: try LlamaConfig(gguf: GGUFFile(path: base)), dir: peft, bScale: 0.5, seed: 21)
        let a = try compare(base: base, adapterDir: peft, n: 64, minChars: 1000, dir: dir)
        report("SmolLM2-135M (f32 copy of the Q4_1 file)", a)
        #expect(a.withAdapter.allSatisfy { $0 < 1e-2 }, "tune+PEFT vs llama.cpp+GGUF: \(a.withAdapter)")
        #expect(a.withoutAdapter.allSatisfy { $0 > 2e-2 }, "the adapter must change llama.cpp's numbers measurably: \(a.withoutAdapter)")
    }
}
