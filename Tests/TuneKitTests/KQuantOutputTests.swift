// KQuantOutputTests — GGUF output in llama.cpp's K-quant presets. The quantizers (ck_kquant_write.h) round-trip
// through tune's dequantizers within each type's error, give the same bytes on any thread count, and the preset
// mix picks llama-quantize's per-tensor types; then, against the real llama-quantize (skipped when it is not built,
// an error under TUNE_REQUIRE_LLAMA_CPP=1): the f16 merge of a tiny model quantized by tune and by llama-quantize
// are the same file byte for byte, and `merge.dtype: q4_k_m` equals llama-quantize run on the f32 merge.
import CKernels
import Engine
import Foundation
import Testing
import TuneKit

@Suite("KQuantOutput")
struct KQuantOutputTests {
    /// Rows of 256 (attention, gate/up, embeddings, head) and of 320 (ffn_down: not a multiple of 256, so the
    /// K types fall back to q5_0/q5_1/q8_0), 8 layers so the "more bits" layer pattern has both outcomes, untied head.
    static let config = LlamaConfig(vocabSize: TinyLlama.tokens.count, hiddenSize: 256, intermediateSize: 320, numLayers: 8,
                                    numHeads: 4, numKVHeads: 2, ropeTheta: 10_000, rmsNormEps: 1e-5, contextLength: 512,
                                    tiedEmbeddings: false)

    static func randomValues(_ n: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { i -> Float in
            let v = rng.symmetric()
            // A mix of scales: most blocks small, some with outliers, some all-zero stretches, some all positive.
            switch (i / 256) % 4 {
            case 0: return 0.02 * v
            case 1: return i % 37 == 0 ? 3 * v : 0.05 * v
            case 2: return (i / 32) % 3 == 0 ? 0 : v
            default: return abs(v) * 0.1 + 1
            }
        }
    }

    // MARK: kernels

    @Test("quantize → dequantize stays within each type's error", arguments: [
        (GGMLType.q5_0, Float(0.04)), (.q5_1, 0.04), (.q4_K, 0.07), (.q5_K, 0.035), (.q6_K, 0.02), (.q8_0, 0.006),
    ])
    func roundTrip(_ type: GGMLType, _ bound: Float) throws {
        let n = 256 * 64
        let x = Self.randomValues(n, seed: 11)
        let bytes = try GGUFQuantize.encode(x, type: type, rowLength: 256, name: "x")
        #expect(bytes.count == type.byteCount(elements: n))
        var y = [Float](repeating: 0, count: n)
        #expect(ck_dequantize_row_ref(Int32(type.rawValue), bytes, &y, Int64(n)) == 0)
        // Per 256-value stretch: the largest error relative to its span, the range or (for the symmetric types, and for
        // the K types on all-positive values, whose min is clamped to 0) the largest magnitude.
        for s in stride(from: 0, to: n, by: 256) {
            let xs = x[s..<s + 256], ys = y[s..<s + 256]
            let span = max(xs.max()! - xs.min()!, xs.map(abs).max()!, 1e-6)
            let err = zip(xs, ys).map { abs($0 - $1) }.max()!
            #expect(err <= bound * span, "\(type.name) values \(s)..<\(s + 256): max error \(err) vs span \(span)")
        }
    }

    @Test("all-zero blocks encode as ggml does")
    func zeros() throws {
        let z = [Float](repeating: 0, count: 256)
        for t in [GGMLType.q4_K, .q5_K, .q6_K] {
            #expect(try GGUFQuantize.encode(z, type: t, rowLength: 256, name: "z").allSatisfy { $0 == 0 }, "\(t.name)")
        }
        // q5_0: d = max / -16 = -0.0 (fp16 0x8000, as ggml writes it), every code 16 (low nibbles 0, fifth bit set).
        let q50 = try GGUFQuantize.encode(Array(z[0..<32]), type: .q5_0, rowLength: 32, name: "z")
        #expect(q50 == [0, 0x80, 0xff, 0xff, 0xff, 0xff] + [UInt8](repeating: 0, count: 16))
    }

    @Test("1, 2 and 3 threads give the same bytes", arguments: [GGMLType.q4_K, .q5_K, .q6_K, .q5_0, .q5_1, .q8_0])
    func threadCountDoesNotMatter(_ type: GGMLType) throws {
        let x = Self.randomValues(256 * 700, seed: 3)
        let one = try GGUFQuantize.encode(x, type: type, rowLength: 256, threads: 1, name: "x")
        #expect(try GGUFQuantize.encode(x, type: type, rowLength: 256, threads: 2, name: "x") == one)
        #expect(try GGUFQuantize.encode(x, type: type, rowLength: 256, threads: 3, name: "x") == one)
    }

    // MARK: the mix

    @Test("Q4_K_M types: more bits on attn_v/ffn_down layers 0, 3, 6, 7; fallbacks for rows of 320; q6_K head")
    func q4KMMix() throws {
        var tensors: [(name: String, shape: [Int], type: GGMLType)] = [
            ("token_embd.weight", [256, 285], .f16), ("output.weight", [256, 285], .f16), ("output_norm.weight", [256], .f32),
        ]
        for l in 0..<8 {
            tensors += [("blk.\(l).attn_v.weight", [256, 128], .f16), ("blk.\(l).attn_q.weight", [256, 256], .f16),
                        ("blk.\(l).ffn_down.weight", [320, 256], .f16), ("blk.\(l).ffn_up.weight", [256, 320], .f16),
                        ("blk.\(l).attn_norm.weight", [256], .f32)]
        }
        let meta: [String: GGUFValue] = ["general.architecture": .string("llama"), "llama.block_count": .uint32(8)]
        let mix = try GGUFQuantMix(preset: .q4_k_m, tensors: tensors, metadata: meta)
        #expect(mix.order.prefix(4) == ["output.weight", "output_norm.weight", "token_embd.weight", "blk.0.attn_norm.weight"])
        #expect(mix.types["output.weight"] == .q6_K && mix.types["token_embd.weight"] == .q4_K)
        #expect(mix.types["output_norm.weight"] == .f32 && mix.types["blk.0.attn_norm.weight"] == .f32)
        for l in 0..<8 {
            let more = [0, 3, 6, 7].contains(l)
            #expect(mix.types["blk.\(l).attn_v.weight"] == (more ? .q6_K : .q4_K), "layer \(l)")
            #expect(mix.types["blk.\(l).ffn_down.weight"] == (more ? .q8_0 : .q5_0), "layer \(l)")
            #expect(mix.types["blk.\(l).attn_q.weight"] == .q4_K && mix.types["blk.\(l).ffn_up.weight"] == .q4_K)
        }
        #expect(mix.fallbacks.count == 8)
        // Tied embeddings take the head's rule; the pure preset ignores the rules.
        let tied = try GGUFQuantMix(preset: .q4_k_m, tensors: tensors.filter { $0.name != "output.weight" }, metadata: meta)
        #expect(tied.types["token_embd.weight"] == .q6_K)
        let pure = try GGUFQuantMix(preset: .q4_k, tensors: tensors, metadata: meta)
        #expect(pure.types["output.weight"] == .q4_K && pure.types["blk.0.attn_v.weight"] == .q4_K)
        #expect(pure.types["blk.0.ffn_down.weight"] == .q5_0)
    }

    // MARK: against llama-quantize

    /// Runs `llama-quantize [--pure] input output TYPE 2`, failing the test with its output when it fails.
    static func llamaQuantize(_ tool: String, _ input: String, _ output: String, _ preset: GGUFQuantPreset) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        var args = preset.pure ? ["--pure"] : []
        args += [input, output, preset.llamaName.components(separatedBy: " ")[0], "2"]
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw TuneError(.internal, "llama-quantize \(args.joined(separator: " ")) exited \(p.terminationStatus):\n\(String(decoding: out, as: UTF8.self).suffix(2000))")
        }
    }

    /// Whole files equal; when they are not, says which tensor (type or bytes) or the metadata differs.
    static func expectSameFile(_ ours: String, _ theirs: String, _ label: String) throws {
        let a = try Data(contentsOf: URL(fileURLWithPath: ours)), b = try Data(contentsOf: URL(fileURLWithPath: theirs))
        if a == b { return }
        let ga = try GGUFFile(path: ours), gb = try GGUFFile(path: theirs)
        #expect(ga.metadataKeys == gb.metadataKeys, "\(label): metadata keys differ")
        #expect(ga.tensors.map(\.name) == gb.tensors.map(\.name), "\(label): tensor order differs")
        for tb in gb.tensors {
            guard let ta = ga.tensor(named: tb.name) else { Issue.record("\(label): \(tb.name) missing"); continue }
            #expect(ta.type == tb.type, "\(label): \(tb.name) is \(ta.type.name), llama-quantize wrote \(tb.type.name)")
            if ta.type == tb.type {
                #expect(Array(ga.data(for: ta)) == Array(gb.data(for: tb)), "\(label): \(tb.name) (\(tb.type.name)) bytes differ")
            }
        }
        Issue.record("\(label): files differ (\(a.count) vs \(b.count) bytes)")
    }

    @Test("tune's quantization of an f16 merge = llama-quantize's, whole file",
          arguments: [GGUFQuantPreset.q4_k_m, .q5_k_m, .q6_k, .q4_k_s, .q5_k_s, .q4_k])
    func sameFileAsLlamaQuantize(_ preset: GGUFQuantPreset) throws {
        guard let tool = try LlamaCppTools.forTest("llama-quantize") else {
            print("skipped: llama-quantize not found (set TUNE_LLAMA_CPP_BIN or build it with scripts/llama-cpp)")
            return
        }
        let dir = try MergeFixtures.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let base = dir.appendingPathComponent("base.gguf").path
        try TinyLlama.writeGGUF(to: base, config: Self.config, seed: 5, weightType: .f32)
        let adapter = dir.appendingPathComponent("a").path
        try MergeFixtures.randomAdapter(adapter, config: Self.config, rank: 4, seed: 9)
        func merge(_ dtype: String) throws -> String {
            var spec = MergeSpec(method: MergeMethods.named("task_arithmetic")!, base: base, inputs: [.init(path: adapter)])
            spec.output = .model
            spec.format = .gguf
            spec.dtype = dtype
            let out = dir.appendingPathComponent("merged-\(dtype)").path
            let r = try MergeJob.run(spec, outputDirectory: out)
            return out + "/" + (try #require(r.files.first { $0.hasSuffix(".gguf") }))
        }
        // 1. The same f16 file quantized both ways.
        let f16 = try merge("f16")
        let theirs = dir.appendingPathComponent("llama.gguf").path, ours = dir.appendingPathComponent("tune.gguf").path
        try Self.llamaQuantize(tool, f16, theirs, preset)
        let summary = try GGUFQuantMix.quantize(try GGUFFile(path: f16), to: ours, preset: preset, threads: 2)
        #expect(summary.fallbacks.count == Self.config.numLayers)   // every ffn_down (rows of 320)
        try Self.expectSameFile(ours, theirs, "\(preset.rawValue) from f16")
        // The preset really mixes types (K types on rows of 256, the fallback on rows of 320).
        let g = try GGUFFile(path: ours)
        #expect(g.tensor(named: "blk.0.attn_q.weight")?.type == preset.defaultType)
        #expect(g.tensor(named: "blk.1.ffn_down.weight")?.type.blockSize == 32)

        // 2. `merge.dtype: <preset>` = llama-quantize on the f32 merge.
        let f32 = try merge("f32")
        let theirs32 = dir.appendingPathComponent("llama32.gguf").path
        try Self.llamaQuantize(tool, f32, theirs32, preset)
        try Self.expectSameFile(try merge(preset.rawValue), theirs32, "merge dtype \(preset.rawValue)")
    }
}
