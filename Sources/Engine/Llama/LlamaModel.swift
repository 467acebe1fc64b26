// LlamaModel — a loaded model: config + tokenizer + weights, from a GGUF file or an HF directory.
//
//     let model = try LlamaModel.load(path: "models/SmolLM2-135M-Instruct.Q4_1.gguf")
//     let ids = model.tokenizer.encode("The capital of France is")
//     var session = model.makeSession()
//     let logits = try session.logits(for: ids)          // [V] for the last position
//     let text = try model.generate(prompt: "Hi", options: .init(maxTokens: 32)) { piece in print(piece, terminator: "") }

import Foundation

/// A Llama-architecture causal LM ready for inference.
public final class LlamaModel: @unchecked Sendable {
    public let config: LlamaConfig
    public let tokenizer: BPETokenizer
    public let weights: LlamaWeights
    /// Where it came from (file or directory) and in which format.
    public let source: String
    public let format: Format
    /// A LoRA adapter applied on the fly in every forward pass (nil: the base model).
    public let adapter: LoRAAdapter?
    /// RoPE of global and sliding-window layers (see RoPE.swift).
    let rope: (global: RoPEPlan, local: RoPEPlan)

    public enum Format: String, Sendable { case gguf, huggingface }

    init(config: LlamaConfig, tokenizer: BPETokenizer, weights: LlamaWeights, source: String, format: Format,
         adapter: LoRAAdapter? = nil) {
        self.config = config
        self.tokenizer = tokenizer
        self.weights = weights
        self.source = source
        self.format = format
        self.adapter = adapter
        rope = config.ropePlans(freqFactors: weights.ropeFreqFactors)
    }

    /// The RoPE of layer `l`.
    func ropePlan(layer l: Int) -> RoPEPlan { config.isSliding(layer: l) ? rope.local : rope.global }

    /// The same base weights (shared, not copied) with `adapter` applied on the fly; nil removes it.
    public func with(adapter: LoRAAdapter?) -> LlamaModel {
        LlamaModel(config: config, tokenizer: tokenizer, weights: weights, source: source, format: format, adapter: adapter)
    }

    /// Loads a PEFT adapter directory for this model's shapes and returns the model with it applied.
    public func loadingAdapter(directory: String) throws -> LlamaModel {
        with(adapter: try LoRAAdapter.load(directory: directory, model: config))
    }

    /// Loads a model from a `.gguf` file or a Hugging Face directory (`config.json`,
    /// `tokenizer.json`, `*.safetensors`).
    public static func load(path: String) throws -> LlamaModel {
        let isDirectory = try LlamaModel.isDirectory(path)
        return isDirectory ? try loadHF(directory: path) : try loadGGUF(path: path)
    }

    /// Whether a model path is an HF directory (true) or a single file (false); throws if it is neither.
    static func isDirectory(_ path: String) throws -> Bool {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw EngineError(.io, "\(path): no such file or directory")
        }
        return isDir.boolValue
    }

    /// A fresh inference session (KV cache sized for `contextLength` tokens).
    public func makeSession(contextLength: Int? = nil) -> LlamaSession {
        LlamaSession(model: self, capacity: min(contextLength ?? config.contextLength, config.contextLength))
    }
}

// MARK: - GGUF

extension LlamaModel {
    static func loadGGUF(path: String) throws -> LlamaModel {
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        let tokenizer = try BPETokenizer(ggufMetadata: file.metadata)
        var owned: [UnsafeMutableRawPointer] = []
        var used: Set<String> = []

        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            guard let t = file.tensor(named: name) else {
                throw EngineError.format(path, "missing tensor '\(name)'")
            }
            guard t.shape == [cols, rows] else {
                throw EngineError.format(path, "tensor '\(name)': shape \(t.shape), expected [\(cols), \(rows)] (GGUF order)")
            }
            guard t.type.isSupported else {
                throw EngineError.format(path, "tensor '\(name)': type \(t.type.name) is not supported")
            }
            used.insert(name)
            return WeightMatrix(type: t.type, rows: rows, cols: cols, data: file.data(for: t).baseAddress!)
        }
        func vector(_ name: String, count: Int) throws -> [Float] {
            guard let t = file.tensor(named: name) else { throw EngineError.format(path, "missing tensor '\(name)'") }
            guard t.shape == [count] else {
                throw EngineError.format(path, "tensor '\(name)': shape \(t.shape), expected [\(count)]")
            }
            used.insert(name)
            return try file.dequantize(t)
        }
        /// Q/K rows in HF order: un-permuted where the family's converter permuted them.
        func qk(_ name: String, rows: Int, heads: Int) throws -> WeightMatrix {
            let m = try matrix(name, rows: rows, cols: config.hiddenSize)
            guard config.architecture.ggufPermutesQK else { return m }
            let (w, buf) = try unpermuteRowsFromGGUF(m, heads: heads)
            owned.append(buf)
            return w
        }

        let c = config, qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        var layers: [LayerWeights] = []
        let F = c.intermediateSize
        for l in 0..<c.numLayers {
            let p = "blk.\(l)."
            // Phi-3: q, k, v are row ranges of attn_qkv, gate and up the two halves of a 2F-row ffn_up.
            let fusedQKV = c.architecture.fusedProjections && file.tensor(named: p + "attn_qkv.weight") != nil
            let qkv = fusedQKV ? try matrix(p + "attn_qkv.weight", rows: qDim + 2 * kvDim, cols: c.hiddenSize) : nil
            let gateUp = c.architecture.fusedProjections ? try matrix(p + "ffn_up.weight", rows: 2 * F, cols: c.hiddenSize) : nil
            var layer = LayerWeights(
                attnNorm: try vector(p + "attn_norm.weight", count: c.hiddenSize),
                wq: try qkv?.rows(0, qDim) ?? qk(p + "attn_q.weight", rows: qDim, heads: c.numHeads),
                wk: try qkv?.rows(qDim, kvDim) ?? qk(p + "attn_k.weight", rows: kvDim, heads: c.numKVHeads),
                wv: try qkv?.rows(qDim + kvDim, kvDim) ?? matrix(p + "attn_v.weight", rows: kvDim, cols: c.hiddenSize),
                wo: try matrix(p + "attn_output.weight", rows: c.hiddenSize, cols: qDim),
                ffnNorm: try vector(p + "ffn_norm.weight", count: c.hiddenSize),
                wGate: try gateUp?.rows(0, F) ?? matrix(p + "ffn_gate.weight", rows: F, cols: c.hiddenSize),
                wUp: try gateUp?.rows(F, F) ?? matrix(p + "ffn_up.weight", rows: F, cols: c.hiddenSize),
                wDown: try matrix(p + "ffn_down.weight", rows: c.hiddenSize, cols: F))
            if c.attentionBias {
                layer.bq = try vector(p + "attn_q.bias", count: qDim)
                layer.bk = try vector(p + "attn_k.bias", count: kvDim)
                layer.bv = try vector(p + "attn_v.bias", count: kvDim)
            }
            if c.qkNorm {
                layer.qNorm = try vector(p + "attn_q_norm.weight", count: c.headDim)
                layer.kNorm = try vector(p + "attn_k_norm.weight", count: c.headDim)
            }
            if c.sandwichNorms {   // llama.cpp's Gemma converters store these norms as 1 + w already
                layer.postAttnNorm = try vector(p + "post_attention_norm.weight", count: c.hiddenSize)
                layer.postFFNNorm = try vector(p + "post_ffw_norm.weight", count: c.hiddenSize)
            }
            layers.append(layer)
        }
        // Llama 3.1+: the converter writes llama3 rope scaling as per-pair frequency divisors.
        let ropeFactors = file.tensor(named: "rope_freqs.weight") != nil
            ? try vector("rope_freqs.weight", count: c.headDim / 2) : nil
        if ropeFactors != nil, c.ropeScaling != nil {
            throw EngineError(.unsupported, "\(path): both rope_freqs.weight and rope.scaling metadata are present; which one applies is ambiguous")
        }
        let embed = try matrix("token_embd.weight", rows: c.vocabSize, cols: c.hiddenSize)
        let head = file.tensor(named: "output.weight") != nil
            ? try matrix("output.weight", rows: c.vocabSize, cols: c.hiddenSize) : embed
        var cfg = config
        cfg.tiedEmbeddings = file.tensor(named: "output.weight") == nil
        let finalNorm = try vector("output_norm.weight", count: c.hiddenSize)
        // A tensor the forward does not read (a bias, rope_freqs, …) would change the math: refuse it.
        if let extra = file.tensors.map(\.name).first(where: { !used.contains($0) }) {
            owned.forEach { $0.deallocate() }
            throw EngineError(.unsupported, "\(path): tensor '\(extra)' is not part of the \(c.architecture.rawValue) forward tune implements (it would change the math)")
        }
        let weights = LlamaWeights(embed: embed, layers: layers, finalNorm: finalNorm,
                                   lmHead: head, ropeFreqFactors: ropeFactors, owners: [file], owned: owned)
        return LlamaModel(config: cfg, tokenizer: tokenizer, weights: weights, source: path, format: .gguf)
    }
}

extension LlamaConfig {
    /// `<arch>.*` metadata keys that would change the forward's math; refused unless they hold the
    /// neutral value (`{ _ in false }`: refused whenever present).
    static let mathChangingKeys: [(key: String, neutral: @Sendable (GGUFValue) -> Bool)] = [
        ("rope.scaling.type", { ["none", "linear"].contains($0.stringValue ?? "") }),   // linear: read below
        ("expert_count", { $0.intValue == 0 }),
        ("attention.layer_norm_epsilon", { _ in false }),
        ("attention.clamp_kqv", { _ in false }),
        ("attention.scale", { _ in false }),
        ("attn_logit_softcapping", { _ in false }),
        ("final_logit_softcapping", { _ in false }),
        ("logit_scale", { $0.doubleValue == 1 }),
        ("embedding_scale", { $0.doubleValue == 1 }),
        ("residual_scale", { $0.doubleValue == 1 }),
    ]

    /// Reads `general.architecture` (one of `ModelArchitecture`) and the `<arch>.*` hyperparameters of a GGUF file.
    public init(gguf file: GGUFFile) throws {
        let path = file.path
        guard let archName = file.metadata["general.architecture"]?.stringValue else {
            throw EngineError.format(path, "missing metadata key 'general.architecture'")
        }
        guard let arch = ModelArchitecture(rawValue: archName) else {
            throw EngineError(.unsupported, "\(path): architecture '\(archName)' is not supported (supported: \(ModelArchitecture.supportedList))")
        }
        let prefix = arch.rawValue + "."
        func int(_ key: String, default def: Int? = nil) throws -> Int {
            if let v = file.metadata[prefix + key] {
                guard let i = v.intValue, i > 0 else {
                    throw EngineError.format(path, "metadata '\(prefix)\(key)': expected a positive integer, got \(v)")
                }
                return i
            }
            if let def { return def }
            throw EngineError.format(path, "missing metadata key '\(prefix)\(key)'")
        }
        func float(_ key: String, default def: Float) throws -> Float {
            guard let v = file.metadata[prefix + key] else { return def }
            guard let d = v.doubleValue else {
                throw EngineError.format(path, "metadata '\(prefix)\(key)': expected a number, got \(v)")
            }
            return Float(d)
        }
        for (key, neutral) in Self.mathChangingKeys {
            if let v = file.metadata[prefix + key], !neutral(v) {
                throw EngineError(.unsupported, "\(path): metadata '\(prefix)\(key)' = \(v) is not supported (it changes the \(arch.rawValue) forward)")
            }
        }
        var scaling: RopeScaling?
        if file.metadata[prefix + "rope.scaling.type"]?.stringValue == "linear" {
            let f = try float("rope.scaling.factor", default: 1)
            guard f > 0 else { throw EngineError.format(path, "metadata '\(prefix)rope.scaling.factor': expected a positive number") }
            if f != 1 { scaling = RopeScaling(kind: .linear, factor: f) }
        }
        // Gemma 3: every 6th layer global, the others slide (llama.cpp's set_swa_pattern(6)) with RoPE θ
        // 10,000 (its rope_freq_base_train_swa); a window elsewhere would be silently ignored: refuse it.
        var window = 0, sliding: [Bool] = [], localTheta: Float? = nil
        if let v = file.metadata[prefix + "attention.sliding_window"] {
            guard arch == .gemma3 || arch == .phi3 else {
                throw EngineError(.unsupported, "\(path): metadata '\(prefix)attention.sliding_window' = \(v) is not supported for \(arch.rawValue)")
            }
            guard let w = v.intValue, w > 0 else {
                throw EngineError.format(path, "metadata '\(prefix)attention.sliding_window': expected a positive integer, got \(v)")
            }
            window = w
            if arch == .gemma3 {
                sliding = LlamaConfig.slidingPattern(layers: try int("block_count"), period: 6)
                localTheta = 10_000
            } else {   // Phi-3 (mini-4k: 2047): every layer slides, as transformers' Phi3Attention
                sliding = Array(repeating: true, count: try int("block_count"))
            }
        }
        let hidden = try int("embedding_length"), heads = try int("attention.head_count"), blocks = try int("block_count")
        let vocab: Int
        if let v = file.metadata[prefix + "vocab_size"]?.intValue { vocab = v }
        else if let toks = file.metadata["tokenizer.ggml.tokens"]?.arrayValue { vocab = toks.count }
        else { throw EngineError.format(path, "missing metadata key '\(prefix)vocab_size'") }
        let headDim = try int("attention.key_length", default: hidden / heads)
        if let v = file.metadata[prefix + "attention.value_length"], v.intValue != headDim {
            throw EngineError(.unsupported, "\(path): metadata '\(prefix)attention.value_length' = \(v) differs from the key length \(headDim)")
        }
        if let v = file.metadata[prefix + "rope.dimension_count"], v.intValue != headDim {
            throw EngineError(.unsupported, "\(path): metadata '\(prefix)rope.dimension_count' = \(v): partial rotary embeddings are not supported (head dim \(headDim))")
        }
        self.init(vocabSize: vocab, hiddenSize: hidden,
                  intermediateSize: try int("feed_forward_length"),
                  numLayers: blocks, numHeads: heads,
                  numKVHeads: try int("attention.head_count_kv", default: heads),
                  headDim: headDim,
                  ropeTheta: try float("rope.freq_base", default: 10000),
                  rmsNormEps: try float("attention.layer_norm_rms_epsilon", default: arch == .llama ? 1e-5 : 1e-6),
                  contextLength: try int("context_length", default: 2048),
                  tiedEmbeddings: true, architecture: arch,
                  slidingWindow: window, slidingLayers: sliding, ropeLocalTheta: localTheta, ropeScaling: scaling,
                  // llama.cpp scales Gemma 3 27B (62 layers) by (C/H)^-½ and the others by D^-½
                  queryPreAttnScalar: arch == .gemma3 && blocks == 62 ? Float(hidden / heads) : nil)
        try validate(source: path)
    }

    /// Checks the shape relations the engine relies on.
    public func validate(source: String) throws {
        guard numHeads % numKVHeads == 0 else {
            throw EngineError.format(source, "head_count \(numHeads) is not a multiple of head_count_kv \(numKVHeads)")
        }
        guard headDim % 2 == 0 else { throw EngineError.format(source, "head dimension \(headDim) must be even for RoPE") }
    }
}

// MARK: - Tokenizer only

extension LlamaModel {
    /// Loads just the tokenizer of a model (cheap: no weights are touched).
    public static func loadTokenizer(path: String) throws -> BPETokenizer {
        let isDirectory = try LlamaModel.isDirectory(path)
        if isDirectory {
            guard let p = try HFModelDirectory(path: path).tokenizerJSONPath else {
                throw EngineError.format(path, "missing tokenizer.json")
            }
            return try BPETokenizer(tokenizerJSON: Data(contentsOf: URL(fileURLWithPath: p)))
        }
        return try BPETokenizer(ggufMetadata: GGUFFile(path: path).metadata)
    }
}

extension BPETokenizer {
    /// `encode(text)` with the BOS token in front when the model asks for one (`add_bos_token`).
    public func encodeAddingBOS(_ text: String) -> [Int32] {
        let ids = encode(text)
        if addBOS, let bos = bosID { return [bos] + ids }
        return ids
    }
}
