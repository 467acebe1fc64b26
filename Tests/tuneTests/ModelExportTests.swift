// ModelExportTests — `tune export REF --to llama.cpp|ollama|hf|vllm --out DIR` on the tiny model: the files each
// target loads, checked by loading them (tune score: the HF export and vLLM's base + PEFT adapter score as the GGUF
// base + adapter does), the serve commands, registry references, requantization, the refusals (a GGUF runtime
// given an HF model, an HF directory without a tokenizer), and the pipeline's `merge.format: gguf`. The consuming
// tools' own proofs: llama.cpp (ExportAdapterGGUFTests), transformers (HFExportTests), Go's text/template for
// Ollama's TEMPLATE (OllamaExportTests).
import Engine
import Foundation
import Testing
import TuneKit

private func jsonObject(_ s: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], "not a JSON object: \(s)")
}

/// The tiny f32 llama GGUF and a random non-zero PEFT adapter for it.
private func tinyBaseAndAdapter(_ dir: URL) throws -> (base: String, adapter: String) {
    let base = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: base, config: .tiny, seed: 3, weightType: .f32)
    let adapter = dir.appendingPathComponent("peft").path
    try writeRandomAdapter(model: .tiny, dir: adapter, bScale: 2, seed: 7)
    return (base, adapter)
}

/// `tune score MODEL --text … [--adapter A] --json`: the per-token log-probs.
private func score(_ model: String, adapter: String? = nil) throws -> [Double] {
    var args = ["score", model, "--text", "the quick brown fox jumps over the lazy dog again and again", "--threads", "2", "--json"]
    if let adapter { args += ["--adapter", adapter] }
    let r = try tune(args)
    try #require(r.status == 0, "\(r.stderr)")
    return try #require(try jsonObject(r.stdout)["token_logprobs"] as? [Double], "\(r.stdout)")
}

private func maxDiff(_ a: [Double], _ b: [Double]) -> Double {
    #expect(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
}

@Suite struct ModelExportTests {
    @Test func targetsWriteWhatTheyLoad() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (base, adapter) = try tinyBaseAndAdapter(dir)
        let absBase = URL(fileURLWithPath: base).standardizedFileURL.path
        let reference = try score(base, adapter: adapter), plain = try score(base)
        #expect(maxDiff(reference, plain) > 1e-2, "the adapter must change the scores for the checks below to mean anything")

        // llama.cpp: the LoRA GGUF, served on the base GGUF.
        let lc = dir.appendingPathComponent("lc").path
        var r = try tune(["export", adapter, "--to", "llama.cpp", "--out", lc, "--base", base, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        var o = try jsonObject(r.stdout)
        #expect(o["files"] as? [String] == ["adapter.gguf"] && o["kind"] as? String == "adapter" && o["target"] as? String == "llama.cpp")
        #expect(o["serve"] as? String == "llama-server -m \(absBase) --lora \(lc)/adapter.gguf", "\(o)")
        #expect(try GGUFFile(path: lc + "/adapter.gguf").metadata["general.type"]?.stringValue == "adapter")

        // hf: the adapter merged into the base, an HF directory that scores as base + adapter.
        let hf = dir.appendingPathComponent("hf").path
        r = try tune(["export", adapter, "--to", "hf", "--out", hf, "--base", base, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        o = try jsonObject(r.stdout)
        let hfFiles = try #require(o["files"] as? [String])
        for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            #expect(hfFiles.contains(f), "\(f) missing from \(hfFiles)")
        }
        #expect((o["serve"] as? String)?.contains("AutoModelForCausalLM.from_pretrained('\(hf)')") == true, "\(o)")
        #expect(maxDiff(try score(hf), reference) < 1e-4)

        // vllm: the PEFT adapter + the base as an HF directory; the two load as base + adapter.
        let vl = dir.appendingPathComponent("vllm").path
        r = try tune(["export", adapter, "--to", "vllm", "--out", vl, "--base", base, "--name", "tiny-lora", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        o = try jsonObject(r.stdout)
        let vlFiles = try #require(o["files"] as? [String])
        #expect(vlFiles.contains("adapter/adapter_config.json") && vlFiles.contains("adapter/adapter_model.safetensors")
                && vlFiles.contains("base/config.json") && vlFiles.contains("base/tokenizer.json"), "\(vlFiles)")
        #expect(o["serve"] as? String == "vllm serve \(vl)/base --enable-lora --lora-modules tiny-lora=\(vl)/adapter", "\(o)")
        #expect(maxDiff(try score(vl + "/base"), plain) < 1e-4)
        #expect(maxDiff(try score(vl + "/base", adapter: vl + "/adapter"), reference) < 1e-4)

        // vllm on an HF base: the base is served where it is, not copied.
        let vl2 = dir.appendingPathComponent("vllm2").path
        r = try tune(["export", adapter, "--to", "vllm", "--out", vl2, "--base", vl + "/base", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        o = try jsonObject(r.stdout)
        #expect(o["files"] as? [String] == ["adapter/adapter_config.json", "adapter/adapter_model.safetensors"], "\(o)")
        #expect((o["serve"] as? String)?.hasPrefix("vllm serve \(vl)/base --enable-lora") == true, "\(o)")

        // A GGUF model requantized for llama.cpp: 2-D weights in q8_0, close to the f32 original.
        let q8 = dir.appendingPathComponent("q8").path
        r = try tune(["export", base, "--to", "llama.cpp", "--out", q8, "--dtype", "q8_0", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        o = try jsonObject(r.stdout)
        #expect(o["files"] as? [String] == ["model.gguf"] && o["kind"] as? String == "model")
        #expect(o["serve"] as? String == "llama-server -m \(q8)/model.gguf")
        let g = try GGUFFile(path: q8 + "/model.gguf")
        #expect(g.tensors.filter { $0.shape.count == 2 }.allSatisfy { $0.type == .q8_0 } && g.tensors.filter { $0.shape.count == 1 }.allSatisfy { $0.type == .f32 })
        #expect(g.metadata["general.name"] == (try GGUFFile(path: base)).metadata["general.name"])
        #expect(maxDiff(try score(q8 + "/model.gguf"), plain) < 2e-2)

        // Refusals: a GGUF runtime given an HF model; an HF export with no tokenizer; nothing left behind.
        r = try tune(["export", hf, "--to", "ollama", "--out", dir.appendingPathComponent("no1").path])
        #expect(r.status != 0 && r.stderr.contains("serves GGUF models") && r.stderr.contains("convert_hf_to_gguf"), "\(r.status) \(r.stderr)")
        let bare = dir.appendingPathComponent("bare").path
        try HFModelDirectory.writeConfig(.tiny, to: bare)
        try FileManager.default.copyItem(atPath: hf + "/model.safetensors", toPath: bare + "/model.safetensors")
        r = try tune(["export", bare, "--to", "vllm", "--out", dir.appendingPathComponent("no2").path])
        #expect(r.status != 0 && r.stderr.contains("no tokenizer.json"), "\(r.status) \(r.stderr)")
        r = try tune(["export", adapter, "--to", "hf", "--out", dir.appendingPathComponent("no3").path])
        #expect(r.status == 65 && r.stderr.contains("--base"), "\(r.status) \(r.stderr)")
        r = try tune(["export", adapter, "--out", dir.appendingPathComponent("no4").path])
        #expect(r.status == 64 && r.stderr.contains("--to"), "\(r.status) \(r.stderr)")
        r = try tune(["export", adapter, "--to", "lmstudio", "--out", dir.appendingPathComponent("no5").path])
        #expect(r.status != 0, "\(r.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(!names.contains { $0.hasPrefix("no") || $0.hasPrefix(".no") }, "\(names)")
    }

    /// A pipeline whose merge writes an adapter with `format: gguf` registers the PEFT files plus llama.cpp's LoRA
    /// GGUF; `tune export NAME@1 --to ollama` then finds the base in its lineage.
    @Test func pipelineMergeFormatGGUFAndRegistryExport() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
        try writeDocRows(20, in: dir)
        let yaml = """
            name: gg
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            \(tinyPrepareAndTrainYAML(steps: 2))
            merge:
              method: linear
              adapters: [{adapter: train}]
              output: adapter
              format: gguf
              rank: 4
            """
        let p = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        let loc = ["--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", dir.appendingPathComponent("blobs").path]
        var r = try tune(["run", p, "--blobs", dir.appendingPathComponent("blobs").path])
        try #require(r.status == 0, "\(r.stderr)")
        r = try tune(["artifacts", "path", "gg-merged@1", "--json"] + loc)
        try #require(r.status == 0, "\(r.stderr)")
        let path = try #require(try jsonObject(r.stdout)["path"] as? String, "\(r.stdout)")
        let gguf = try GGUFFile(path: path + "/adapter_model.gguf")
        #expect(gguf.metadata["general.type"]?.stringValue == "adapter" && gguf.metadata["general.name"]?.stringValue == "gg-merged")
        #expect(FileManager.default.fileExists(atPath: path + "/adapter_model.safetensors"))

        let out = dir.appendingPathComponent("ollama").path
        r = try tune(["export", "gg-merged@1", "--to", "ollama", "--out", out, "--json"] + loc)
        try #require(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        #expect(o["artifact"] as? String == "gg-merged@1" && (o["base"] as? String)?.hasSuffix("tiny.gguf") == true, "\(o)")
        // The tiny model carries SmolLM2's chat template: ChatML with its default system prompt.
        let mf = try String(contentsOfFile: out + "/Modelfile", encoding: .utf8)
        #expect(mf.contains("TEMPLATE \"\"\"") && mf.contains("named SmolLM, trained by Hugging Face") && mf.contains("ADAPTER ./adapter.gguf"), "\(mf)")

        // A bad format for the output kind names the field and the choices.
        let bad = yaml.replacingOccurrences(of: "format: gguf", with: "format: safetensors")
        try bad.write(toFile: p, atomically: true, encoding: .utf8)
        r = try tune(["validate", p])
        #expect(r.status != 0 && r.stderr.contains("merge.format") && r.stderr.contains("peft, gguf"), "\(r.status) \(r.stderr)")
    }

    /// `--dtype` on a GGUF model requantizes it as `llama-quantize --allow-requantize` does: the K-quant presets
    /// byte for byte (the same file), q8_0 with the same tensor bytes (tune keeps the source's tensor order).
    @Test(.enabled(if: hasRealModel && (LlamaCppTools.locate("llama-quantize") != nil || requireLlamaCpp),
                   "needs models/SmolLM2-135M-Instruct.Q4_1.gguf and llama-quantize"))
    func requantizedLikeLlamaQuantize() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        for (dtype, preset) in [("q4_k_m", "Q4_K_M"), ("q8_0", "Q8_0")] {
            let out = dir.appendingPathComponent(dtype).path
            let r = try tune(["export", realModelPath, "--to", "llama.cpp", "--dtype", dtype, "--out", out])
            try #require(r.status == 0, "\(r.stderr)")
            let ref = dir.appendingPathComponent("ref-\(dtype).gguf").path
            try llamaQuantize(realModelPath, ref, type: preset)
            if dtype == "q4_k_m" {
                #expect(FileManager.default.contents(atPath: out + "/model.gguf") == FileManager.default.contents(atPath: ref),
                        "tune's Q4_K_M requantization differs from llama-quantize's")
            } else {
                let a = try GGUFFile(path: out + "/model.gguf"), b = try GGUFFile(path: ref)
                let byName = Dictionary(uniqueKeysWithValues: b.tensors.map { ($0.name, $0) })
                #expect(a.tensors.count == b.tensors.count)
                for t in a.tensors {
                    let u = try #require(byName[t.name])
                    #expect(t.type == u.type && t.shape == u.shape && a.data(for: t).elementsEqual(b.data(for: u)), "\(t.name)")
                }
            }
        }
    }
}
