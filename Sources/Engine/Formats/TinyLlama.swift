// TinyLlama — deterministic random Llama-family weights (HF names) and a real GGUF written the way
// llama.cpp's convert_hf_to_gguf does (GGUF names, Q/K row permutation for llama only, `<arch>.*`
// metadata, a small byte-level GPT-2 tokenizer with ChatML specials), or the same weights as an HF
// directory (config.json, model.safetensors, tokenizer.json). Every family: llama (`.tiny`, `.tinyLlama3`
// with llama3 rope scaling), qwen2 (`.tinyQwen2`), qwen3 (`.tinyQwen3`), gemma3 (`.tinyGemma3`), phi3
// (`.tinyPhi3`, fused projections), mistral (`.tinyMistral`, llama math written as MistralForCausalLM).
// For tests and demos.

import Foundation

// MARK: - Config

extension LlamaConfig {
    /// A tiny Llama matching `TinyLlama`'s tokenizer: 285 tokens, C=64, FFN 128, 2 layers,
    /// 4 heads / 2 KV heads (head_dim 16), tied embeddings.
    public static let tiny = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
        numHeads: 4, numKVHeads: 2, ropeTheta: 100_000, rmsNormEps: 1e-5, contextLength: 512,
        tiedEmbeddings: true)

    /// The same shapes as a Qwen2: q/k/v biases, tied embeddings, rope θ 1e6, RMSNorm eps 1e-6.
    public static let tinyQwen2 = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
        numHeads: 4, numKVHeads: 2, ropeTheta: 1_000_000, rmsNormEps: 1e-6, contextLength: 512,
        tiedEmbeddings: true, architecture: .qwen2)

    /// A tiny Qwen3: per-head q/k RMSNorm and a head dimension (32) other than C/H (16), untied head.
    public static let tinyQwen3 = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
        numHeads: 4, numKVHeads: 2, headDim: 32, ropeTheta: 1_000_000, rmsNormEps: 1e-6, contextLength: 512,
        tiedEmbeddings: false, architecture: .qwen3)

    /// A tiny Gemma 3: six layers in Gemma's pattern (five sliding with a window of 8 tokens and RoPE θ 10,000,
    /// the sixth global with θ 1e6), (1 + w) norms, q/k norm, sandwich norms, GeGLU, embeddings × √C, tied head.
    public static let tinyGemma3 = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 6,
        numHeads: 4, numKVHeads: 2, headDim: 16, ropeTheta: 1_000_000, rmsNormEps: 1e-6, contextLength: 512,
        tiedEmbeddings: true, architecture: .gemma3, slidingWindow: 8,
        slidingLayers: LlamaConfig.slidingPattern(layers: 6, period: 6), ropeLocalTheta: 10_000)

    /// A tiny Phi-3: fused qkv_proj / gate_up_proj, untied head, and a sliding window of 8 tokens on every layer.
    public static let tinyPhi3 = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
        numHeads: 4, numKVHeads: 2, ropeTheta: 10_000, rmsNormEps: 1e-5, contextLength: 512,
        tiedEmbeddings: false, architecture: .phi3, slidingWindow: 8, slidingLayers: [true, true])

    /// A tiny Mistral (Nemo / Small 3 shapes): llama math with a head dimension (32) other than C/H (16), θ 1e6,
    /// no sliding window, untied head. Written as an HF directory with `TinyLlama.writeHF(…, mistral: true)`.
    public static let tinyMistral = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
        numHeads: 4, numKVHeads: 2, headDim: 32, ropeTheta: 1_000_000, rmsNormEps: 1e-5, contextLength: 512,
        tiedEmbeddings: false)

    /// A tiny Llama 3.x: `rope_type: llama3` scaling (factor 8, original context 64 so the head's 8 frequencies
    /// fall in all three bands: kept, smoothed, scaled), θ 500,000, untied head.
    public static let tinyLlama3 = LlamaConfig(
        vocabSize: TinyLlama.tokens.count, hiddenSize: 64, intermediateSize: 128, numLayers: 2,
        numHeads: 4, numKVHeads: 2, ropeTheta: 500_000, rmsNormEps: 1e-5, contextLength: 512,
        tiedEmbeddings: false,
        ropeScaling: RopeScaling(kind: .llama3, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 64))
}

// MARK: - TinyLlama

/// Random tiny Llama models for tests: float weights and complete GGUF files.
public enum TinyLlama {
    /// Random HF-named weights. Matrices are row-major with HF shapes ([out, in];
    /// embed_tokens is [V, C]); values ≈ uniform with std 0.02, norm weights ≈ 1.
    public static func weights(config c: LlamaConfig, seed: UInt64) -> [String: (shape: [Int], values: [Float])] {
        var rng = SplitMix64(seed: seed)
        let scale: Float = 0.02 * Float(3).squareRoot()
        func matrix(_ rows: Int, _ cols: Int) -> (shape: [Int], values: [Float]) {
            ([rows, cols], (0 ..< rows * cols).map { _ in rng.symmetric() * scale })
        }
        // Gemma stores w of its (1 + w) norms: values near 0 (the others near 1).
        let normBase: Float = c.architecture == .gemma3 ? 0 : 1
        func norm(_ n: Int) -> (shape: [Int], values: [Float]) { ([n], (0 ..< n).map { _ in normBase + 0.05 * rng.symmetric() }) }
        let q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim
        var w: [String: (shape: [Int], values: [Float])] = [:]
        w["model.embed_tokens.weight"] = matrix(c.vocabSize, c.hiddenSize)
        for l in 0 ..< c.numLayers {
            let p = "model.layers.\(l)."
            w[p + "input_layernorm.weight"] = norm(c.hiddenSize)
            w[p + "self_attn.q_proj.weight"] = matrix(q, c.hiddenSize)
            w[p + "self_attn.k_proj.weight"] = matrix(kv, c.hiddenSize)
            w[p + "self_attn.v_proj.weight"] = matrix(kv, c.hiddenSize)
            if c.attentionBias {   // large enough to matter (after RoPE, through attention)
                func bias(_ n: Int) -> (shape: [Int], values: [Float]) { ([n], (0 ..< n).map { _ in 0.5 * rng.symmetric() }) }
                w[p + "self_attn.q_proj.bias"] = bias(q)
                w[p + "self_attn.k_proj.bias"] = bias(kv)
                w[p + "self_attn.v_proj.bias"] = bias(kv)
            }
            w[p + "self_attn.o_proj.weight"] = matrix(c.hiddenSize, q)
            w[p + "post_attention_layernorm.weight"] = norm(c.hiddenSize)
            w[p + "mlp.gate_proj.weight"] = matrix(c.intermediateSize, c.hiddenSize)
            w[p + "mlp.up_proj.weight"] = matrix(c.intermediateSize, c.hiddenSize)
            w[p + "mlp.down_proj.weight"] = matrix(c.hiddenSize, c.intermediateSize)
            if c.qkNorm {
                w[p + "self_attn.q_norm.weight"] = norm(c.headDim)
                w[p + "self_attn.k_norm.weight"] = norm(c.headDim)
            }
            if c.sandwichNorms {
                w[p + "pre_feedforward_layernorm.weight"] = norm(c.hiddenSize)
                w[p + "post_feedforward_layernorm.weight"] = norm(c.hiddenSize)
            }
        }
        w["model.norm.weight"] = norm(c.hiddenSize)
        if !c.tiedEmbeddings { w["lm_head.weight"] = matrix(c.vocabSize, c.hiddenSize) }
        return w
    }

    /// `weights(config:seed:)` as the family stores them: for Phi-3, q/k/v rows concatenated into
    /// `qkv_proj` and gate/up into `gate_up_proj` (gate first, as Phi3MLP's `chunk(2)` reads them).
    public static func storedWeights(config c: LlamaConfig, seed: UInt64) -> [String: (shape: [Int], values: [Float])] {
        var w = weights(config: c, seed: seed)
        guard c.architecture.fusedProjections else { return w }
        for l in 0 ..< c.numLayers {
            let p = "model.layers.\(l)."
            func take(_ n: String) -> (shape: [Int], values: [Float]) { w.removeValue(forKey: p + n)! }
            let q = take("self_attn.q_proj.weight"), k = take("self_attn.k_proj.weight"), v = take("self_attn.v_proj.weight")
            w[p + "self_attn.qkv_proj.weight"] = ([q.shape[0] + k.shape[0] + v.shape[0], c.hiddenSize], q.values + k.values + v.values)
            let g = take("mlp.gate_proj.weight"), u = take("mlp.up_proj.weight")
            w[p + "mlp.gate_up_proj.weight"] = ([2 * c.intermediateSize, c.hiddenSize], g.values + u.values)
        }
        return w
    }

    /// llama.cpp's `permute(w, n_head, n_head_kv)` for Q/K projections: per head, rows
    /// reordered from [2, head_dim/2] to [head_dim/2, 2] (interleaved RoPE pairs).
    public static func permuteRows(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0, w.count == rows * cols else { return w }
        let hd = rows / heads, half = hd / 2
        var out = w
        for h in 0 ..< heads {
            for i in 0 ..< half {
                for j in 0 ..< 2 {
                    let dst = h * hd + i * 2 + j, src = h * hd + j * half + i
                    out[dst * cols ..< (dst + 1) * cols] = w[src * cols ..< (src + 1) * cols]
                }
            }
        }
        return out
    }

    /// HF tensor name → GGUF tensor name (the families share the names except Gemma's norms: its
    /// `post_attention_layernorm` is the attention-output norm and `pre_feedforward_layernorm` the FFN norm).
    public static func ggufName(_ hf: String, architecture: ModelArchitecture = .llama) -> String {
        let fixed = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                     "lm_head.weight": "output.weight"]
        if let f = fixed[hf] { return f }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers" else { return hf }
        let rest = parts[3...].joined(separator: ".")
        let map = ["self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                   "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                   "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
                   "self_attn.v_proj.bias": "attn_v.bias",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight", "input_layernorm.weight": "attn_norm.weight",
                   "post_attention_layernorm.weight": "ffn_norm.weight",
                   "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
                   "self_attn.qkv_proj.weight": "attn_qkv.weight", "mlp.gate_up_proj.weight": "ffn_up.weight"]
        let gemma = ["post_attention_layernorm.weight": "post_attention_norm.weight",
                     "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                     "post_feedforward_layernorm.weight": "post_ffw_norm.weight"]
        return "blk.\(parts[2])." + ((architecture == .gemma3 ? gemma[rest] : nil) ?? map[rest] ?? rest)
    }

    /// Writes a GGUF of `weights(config:seed:)` for the config's architecture: 2-D matrices in
    /// `weightType` (token_embd in q8_0 when `weightType` is a 4-bit type, as in the real SmolLM2 Q4_1
    /// file), 1-D norms and biases in f32, Q/K rows permuted for llama only, full `<arch>.*`/tokenizer metadata.
    /// `extraMetadata` is set after the standard keys (tests use it to add a key the loader must refuse).
    public static func writeGGUF(to path: String, config c: LlamaConfig, seed: UInt64, weightType: GGMLType = .q4_1,
                                 extraMetadata: [(String, GGUFValue)] = []) throws {
        guard c.vocabSize == tokens.count else {
            throw EngineError(.invalidArgument, "TinyLlama: vocabSize \(c.vocabSize) must equal the tokenizer size \(tokens.count)")
        }
        let w = storedWeights(config: c, seed: seed)
        var g = GGUFWriter()
        (metadata(c, weightType: weightType) + extraMetadata).forEach { g.set($0.0, $0.1) }
        var order = ["model.embed_tokens.weight"]
        for l in 0 ..< c.numLayers {
            order += ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.qkv_proj",
                      "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.gate_up_proj",
                      "mlp.down_proj"]
                .map { "model.layers.\(l).\($0).weight" }
            if c.attentionBias { order += ["q", "k", "v"].map { "model.layers.\(l).self_attn.\($0)_proj.bias" } }
            if c.qkNorm { order += ["q", "k"].map { "model.layers.\(l).self_attn.\($0)_norm.weight" } }
            if c.sandwichNorms {
                order += ["pre_feedforward_layernorm", "post_feedforward_layernorm"].map { "model.layers.\(l).\($0).weight" }
            }
        }
        order.append("model.norm.weight")
        if !c.tiedEmbeddings { order.append("lm_head.weight") }
        for hf in order {
            guard let (shape, values0) = w[hf] else { continue }
            var values = values0
            if !c.architecture.ggufPermutesQK {
                // qwen2: llama.cpp stores Q/K as HF does (NEOX RoPE)
            } else if hf.hasSuffix("q_proj.weight") {
                values = permuteRows(values, rows: shape[0], cols: shape[1], heads: c.numHeads)
            } else if hf.hasSuffix("k_proj.weight") {
                values = permuteRows(values, rows: shape[0], cols: shape[1], heads: c.numKVHeads)
            }
            // llama.cpp's Gemma converters store the norms as 1 + w.
            if c.architecture == .gemma3, hf.hasSuffix("norm.weight") { values = values.map { 1 + $0 } }
            var type = shape.count == 1 ? GGMLType.f32 : weightType
            if hf == "model.embed_tokens.weight", [.q4_0, .q4_1].contains(weightType) { type = .q8_0 }
            try g.addTensor(name: ggufName(hf, architecture: c.architecture), shape: shape.reversed(), values: values, type: type)
        }
        if let s = c.ropeScaling, s.kind == .llama3 {   // convert_hf_to_gguf writes llama3 scaling as rope_freqs
            try g.addTensor(name: "rope_freqs.weight", shape: [c.headDim / 2], values: llama3RopeFactors(c, s), type: .f32)
        }
        try g.write(to: path)
    }

    /// The per-pair frequency divisors llama.cpp's converter (`LlamaModel.generate_extra_tensors`) computes from
    /// `rope_scaling: llama3`: 1 for high frequencies, `factor` for low ones, smoothed in between.
    static func llama3RopeFactors(_ c: LlamaConfig, _ s: RopeScaling) -> [Float] {
        // In float32 step by step, as convert_hf_to_gguf computes them (torch float32 frequencies, float32
        // tensor arithmetic after): the smoothed band's factors then equal the converter's to the bit.
        let old = Float(s.originalContextLength), dim = Float(c.headDim)
        let lowWavelen = old / s.lowFreqFactor, highWavelen = old / s.highFreqFactor
        return (0..<(c.headDim / 2)).map { i in
            let freq: Float = 1 / powf(c.ropeTheta, Float(2 * i) / dim)
            let wavelen = Float(2 * Double.pi) / freq
            if wavelen < highWavelen { return 1 }
            if wavelen > lowWavelen { return s.factor }
            let smooth = (old / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
            return 1 / ((1 - smooth) / s.factor + smooth)
        }
    }

    /// Writes the same model as an HF directory: config.json (`writeConfig`), model.safetensors of
    /// `weights(config:seed:)` in `dtype` (f32: exactly the GGUF's f32 values), and a tokenizer.json
    /// equivalent to the GGUF's tokenizer metadata.
    public static func writeHF(to dir: String, config c: LlamaConfig, seed: UInt64,
                               dtype: SafetensorsDType = .f32, mistral: Bool = false) throws {
        guard c.vocabSize == tokens.count else {
            throw EngineError(.invalidArgument, "TinyLlama: vocabSize \(c.vocabSize) must equal the tokenizer size \(tokens.count)")
        }
        try HFModelDirectory.writeConfig(c, to: dir, mistral: mistral)
        var st = SafetensorsWriter()
        for (name, t) in storedWeights(config: c, seed: seed).sorted(by: { $0.key < $1.key }) {
            try st.add(name: name, shape: t.shape, values: t.values, dtype: dtype)
        }
        try st.write(to: URL(fileURLWithPath: dir).appendingPathComponent("model.safetensors").path)
        try tokenizerJSON().write(to: URL(fileURLWithPath: dir).appendingPathComponent("tokenizer.json"))
    }

    /// An HF tokenizer.json with this tokenizer's vocabulary, merges and control tokens (SmolLM2's
    /// pre-tokenizer: single digits, then GPT-2 byte-level).
    public static func tokenizerJSON() throws -> Data {
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let added: [[String: Any]] = specials.indices.map {
            ["id": $0, "content": tokens[$0], "special": true, "single_word": false, "lstrip": false,
             "rstrip": false, "normalized": false]
        }
        let json: [String: Any] = [
            "version": "1.0",
            "added_tokens": added,
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": true],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true],
            ]],
            "model": ["type": "BPE", "vocab": vocab, "merges": merges],
        ]
        return try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])
    }

    // MARK: - Metadata

    static func fileType(_ t: GGMLType) -> UInt32 {
        switch t {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 7
        case .bf16: 32
        default: 0
        }
    }

    static func metadata(_ c: LlamaConfig, weightType: GGMLType) -> [(String, GGUFValue)] {
        let types = tokens.indices.map { GGUFValue.int32($0 < specials.count ? 3 : 1) }
        let a = c.architecture.rawValue
        let window: [(String, GGUFValue)] = c.slidingWindow > 0 ? [(a + ".attention.sliding_window", .uint32(UInt32(c.slidingWindow)))] : []
        return window + [
            ("general.architecture", .string(a)),
            ("general.type", .string("model")),
            ("general.name", .string(c.architecture == .llama ? "TinyLlama (random)" : "Tiny \(a) (random)")),
            ("general.size_label", .string("tiny")),
            ("general.license", .string("apache-2.0")),
            (a + ".block_count", .uint32(UInt32(c.numLayers))),
            (a + ".context_length", .uint32(UInt32(c.contextLength))),
            (a + ".embedding_length", .uint32(UInt32(c.hiddenSize))),
            (a + ".feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            (a + ".attention.head_count", .uint32(UInt32(c.numHeads))),
            (a + ".attention.head_count_kv", .uint32(UInt32(c.numKVHeads))),
            (a + ".rope.freq_base", .float32(c.ropeTheta)),
            (a + ".attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
            ("general.file_type", .uint32(fileType(weightType))),
            (a + ".vocab_size", .uint32(UInt32(c.vocabSize))),
            (a + ".rope.dimension_count", .uint32(UInt32(c.headDim))),
            (a + ".attention.key_length", .uint32(UInt32(c.headDim))),
            (a + ".attention.value_length", .uint32(UInt32(c.headDim))),
            ("tokenizer.ggml.add_space_prefix", .bool(false)),
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("smollm")),
            ("tokenizer.ggml.tokens", .array(elementType: 8, tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(elementType: 5, types)),
            ("tokenizer.ggml.merges", .array(elementType: 8, merges.map { .string($0) })),
            ("tokenizer.ggml.bos_token_id", .uint32(1)),
            ("tokenizer.ggml.eos_token_id", .uint32(2)),
            ("tokenizer.ggml.unknown_token_id", .uint32(0)),
            ("tokenizer.ggml.padding_token_id", .uint32(2)),
            ("tokenizer.chat_template", .string(chatTemplate)),
            ("general.quantization_version", .uint32(2)),
        ]
    }

    // MARK: - Tokenizer

    /// Control tokens at ids 0, 1, 2 (as in SmolLM2).
    public static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

    /// GPT-2 bytes_to_unicode: the 256 byte tokens, in GPT-2's order (printable bytes first).
    public static let byteTokens: [String] = {
        var bs = Array(33 ... 126) + Array(161 ... 172) + Array(174 ... 255)
        var cs = bs
        var n = 0
        for b in 0 ..< 256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        return cs.map { String(Character(Unicode.Scalar(UInt32($0)) ?? "?")) }
    }()

    /// Merges (SmolLM2's first ones; each side is a byte token or an earlier merge result).
    public static let merges = [
        "Ġ t", "Ġ a", "i n", "h e", "Ġ Ġ", "r e", "o n", "e r", "Ġt he", "a t", "Ġ s", "Ġ o", "e n",
        "Ġ c", "e s", "Ġ w", "n d", "i t", "o r", "i s", "a l", "Ġ p", "in g", "Ġ f", "a n", "e d",
    ]

    /// All tokens: specials, byte tokens, then one token per merge.
    public static let tokens: [String] = specials + byteTokens + merges.map { $0.replacingOccurrences(" ", "") }

    /// SmolLM2-Instruct's ChatML chat template, verbatim from the real model's metadata.
    public static let chatTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
}

extension String {
    fileprivate func replacingOccurrences(_ a: Character, _ b: String) -> String {
        split(separator: a, omittingEmptySubsequences: false).joined(separator: b)
    }
}
