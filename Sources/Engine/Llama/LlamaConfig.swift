// LlamaConfig — hyperparameters of a Llama-family decoder, from GGUF metadata or HF config.json. A family
// is data here plus a few kernel choices in the forward, not a forked forward:
//
//   family   GGUF arch  HF model_type      GGUF Q/K rows   what differs from llama
//   llama    llama      llama, mistral     permuted        (rope scaling `llama3`/linear, GGUF rope_freqs)
//   qwen2    qwen2      qwen2              as HF (NEOX)    q/k/v biases
//   qwen3    qwen3      qwen3              as HF (NEOX)    per-head RMSNorm on q and k (q_norm, k_norm)
//   gemma3   gemma3     gemma3_text        as HF (NEOX)    (1 + w) RMSNorm (GGUF stores 1 + w), q/k norm,
//                                                          post-attention and post-FFN norms, GeGLU (tanh),
//                                                          embeddings × √C, sliding-window layers with their
//                                                          own RoPE θ, attention scale query_pre_attn_scalar^-½
//   phi3     phi3       phi3               as HF (NEOX)    fused qkv_proj and gate_up_proj (read as row ranges);
//                                                          a sliding window on every layer when configured
//
// Anything else that would change the math (another architecture, yarn/longrope scaling, partial rotary,
// logit soft-capping, MoE, …) is refused at load with one line naming it.

/// The architectures the engine's forward implements.
public enum ModelArchitecture: String, Sendable, Codable, CaseIterable {
    case llama, qwen2, qwen3, gemma3, phi3

    /// Whether llama.cpp's converter permutes this family's Q/K rows for interleaved RoPE. The others use
    /// NEOX (rotate-half) RoPE in llama.cpp, so their converters store Q/K as HF does.
    public var ggufPermutesQK: Bool { self == .llama }

    /// Whether the q/k/v projections carry biases (Qwen2: `bias=True` on q/k/v, none on o_proj).
    public var qkvBias: Bool { self == .qwen2 }

    /// Whether q and k get a per-head RMSNorm before RoPE (`q_norm`, `k_norm`).
    public var qkNorm: Bool { self == .qwen3 || self == .gemma3 }

    /// The HF class written into config.json.
    public var hfClass: String {
        switch self {
        case .llama: "LlamaForCausalLM"
        case .qwen2: "Qwen2ForCausalLM"
        case .qwen3: "Qwen3ForCausalLM"
        case .gemma3: "Gemma3ForCausalLM"
        case .phi3: "Phi3ForCausalLM"
        }
    }

    /// Whether q/k/v and gate/up are stored fused (Phi-3's `qkv_proj` and `gate_up_proj`, GGUF `attn_qkv`
    /// and a 2F-row `ffn_up`); the engine reads them as row ranges of the fused matrices (no copy).
    public var fusedProjections: Bool { self == .phi3 }

    /// GGUF `general.architecture` values accepted, as one line for error messages.
    public static var supportedList: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// The activation of the gated feed-forward (`hidden_act` / `hidden_activation` in HF configs).
public enum FFNActivation: String, Sendable, Codable {
    /// SwiGLU: silu(gate) · up (Llama, Qwen).
    case silu
    /// GeGLU with PyTorch's tanh approximation: gelu_tanh(gate) · up (Gemma).
    case geluTanh = "gelu_pytorch_tanh"
}

/// RoPE frequency scaling (HF `rope_scaling` / `rope_parameters`): the inverse frequencies are rescaled
/// once at load; the rotation itself is unchanged.
public struct RopeScaling: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable { case llama3, linear }
    public var kind: Kind
    public var factor: Float
    /// `llama3` only.
    public var lowFreqFactor: Float
    public var highFreqFactor: Float
    public var originalContextLength: Int

    enum CodingKeys: String, CodingKey {
        case kind = "rope_type", factor, lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
        case originalContextLength = "original_max_position_embeddings"
    }

    public init(kind: Kind, factor: Float, lowFreqFactor: Float = 1, highFreqFactor: Float = 4,
                originalContextLength: Int = 8192) {
        self.kind = kind
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalContextLength = originalContextLength
    }

    /// `inv` rescaled as transformers' `_compute_llama3_parameters` / `_compute_linear_scaling_rope_parameters`
    /// do (float32 arithmetic).
    public func apply(to inv: [Float]) -> [Float] {
        switch kind {
        case .linear:
            return inv.map { $0 / factor }
        case .llama3:
            let old = Float(originalContextLength)
            let lowWavelen = old / lowFreqFactor, highWavelen = old / highFreqFactor
            return inv.map { f in
                let wavelen = Float(2 * Double.pi) / f
                if wavelen > lowWavelen { return f / factor }          // low frequencies: scaled
                if wavelen < highWavelen { return f }                  // high frequencies: kept
                let smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
    }
}

/// Hyperparameters of a Llama-family decoder.
public struct LlamaConfig: Sendable, Equatable, Codable {
    public var vocabSize: Int
    public var hiddenSize: Int          // C
    public var intermediateSize: Int    // FFN width
    public var numLayers: Int
    public var numHeads: Int            // H
    public var numKVHeads: Int          // Hkv (grouped-query attention)
    public var headDim: Int             // D = hiddenSize / numHeads unless stated
    public var ropeTheta: Float
    public var rmsNormEps: Float
    public var contextLength: Int
    public var tiedEmbeddings: Bool
    /// The family (decides GGUF tensor/metadata names and the Q/K row order in GGUF files).
    public var architecture: ModelArchitecture
    /// q/k/v projections have biases (added in every forward; frozen in training).
    public var attentionBias: Bool
    /// Per-head RMSNorm on q and k before RoPE (Qwen3, Gemma 3).
    public var qkNorm: Bool
    /// Gemma's extra norms: the attention and FFN outputs are RMS-normed before each residual add.
    public var sandwichNorms: Bool
    public var activation: FFNActivation
    /// Embeddings are multiplied by this (Gemma: √C, rounded to float32).
    public var embeddingScale: Float
    /// Attention logits are scaled by `queryPreAttnScalar^-½` (nil: the head dimension, as Llama).
    public var queryPreAttnScalar: Float?
    /// Sliding-window width of the layers marked in `slidingLayers` (0: none).
    public var slidingWindow: Int
    /// Per layer, whether it attends within `slidingWindow` only (empty: every layer is global).
    public var slidingLayers: [Bool]
    /// RoPE θ of the sliding-window layers (Gemma 3: 10,000; nil: `ropeTheta`).
    public var ropeLocalTheta: Float?
    /// RoPE frequency scaling of the global layers (nil: none).
    public var ropeScaling: RopeScaling?

    /// Hugging Face `config.json` names, so JSON output reads like the ecosystem's.
    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numLayers = "num_hidden_layers", numHeads = "num_attention_heads", numKVHeads = "num_key_value_heads"
        case headDim = "head_dim", ropeTheta = "rope_theta", rmsNormEps = "rms_norm_eps"
        case contextLength = "max_position_embeddings", tiedEmbeddings = "tie_word_embeddings"
        case architecture = "model_type", attentionBias = "qkv_bias"
        case qkNorm = "qk_norm", sandwichNorms = "sandwich_norms", activation = "hidden_activation"
        case embeddingScale = "embedding_scale", queryPreAttnScalar = "query_pre_attn_scalar"
        case slidingWindow = "sliding_window", slidingLayers = "sliding_layers", ropeLocalTheta = "rope_local_base_freq"
        case ropeScaling = "rope_scaling"
    }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, headDim: Int? = nil, ropeTheta: Float = 10000, rmsNormEps: Float = 1e-5,
                contextLength: Int = 2048, tiedEmbeddings: Bool = true,
                architecture: ModelArchitecture = .llama, attentionBias: Bool? = nil,
                slidingWindow: Int = 0, slidingLayers: [Bool] = [], ropeLocalTheta: Float? = nil,
                ropeScaling: RopeScaling? = nil, queryPreAttnScalar: Float? = nil) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads
        self.headDim = headDim ?? hiddenSize / numHeads
        self.ropeTheta = ropeTheta
        self.rmsNormEps = rmsNormEps
        self.contextLength = contextLength
        self.tiedEmbeddings = tiedEmbeddings
        self.architecture = architecture
        self.attentionBias = attentionBias ?? architecture.qkvBias
        let gemma = architecture == .gemma3
        qkNorm = architecture.qkNorm
        sandwichNorms = gemma
        activation = gemma ? .geluTanh : .silu
        embeddingScale = gemma ? Float(Double(hiddenSize).squareRoot()) : 1
        self.queryPreAttnScalar = queryPreAttnScalar
        self.slidingWindow = slidingWindow
        self.slidingLayers = slidingLayers
        self.ropeLocalTheta = ropeLocalTheta
        self.ropeScaling = ropeScaling
    }

    /// Whether layer `l` attends within the sliding window only.
    public func isSliding(layer l: Int) -> Bool { slidingWindow > 0 && l < slidingLayers.count && slidingLayers[l] }

    /// Gemma 3's layer pattern: every `period`-th layer is global, the others slide.
    public static func slidingPattern(layers: Int, period: Int) -> [Bool] {
        (0..<layers).map { period > 0 && ($0 + 1) % period != 0 }
    }

    /// Older JSON (before the architecture fields) decodes as llama without biases.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        numLayers = try c.decode(Int.self, forKey: .numLayers)
        numHeads = try c.decode(Int.self, forKey: .numHeads)
        numKVHeads = try c.decode(Int.self, forKey: .numKVHeads)
        headDim = try c.decode(Int.self, forKey: .headDim)
        ropeTheta = try c.decode(Float.self, forKey: .ropeTheta)
        rmsNormEps = try c.decode(Float.self, forKey: .rmsNormEps)
        contextLength = try c.decode(Int.self, forKey: .contextLength)
        tiedEmbeddings = try c.decode(Bool.self, forKey: .tiedEmbeddings)
        architecture = try c.decodeIfPresent(ModelArchitecture.self, forKey: .architecture) ?? .llama
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? architecture.qkvBias
        // Fields added with qwen3/gemma3: absent in older JSON, where they take the family's values.
        let gemma = architecture == .gemma3
        qkNorm = try c.decodeIfPresent(Bool.self, forKey: .qkNorm) ?? architecture.qkNorm
        sandwichNorms = try c.decodeIfPresent(Bool.self, forKey: .sandwichNorms) ?? gemma
        activation = try c.decodeIfPresent(FFNActivation.self, forKey: .activation) ?? (gemma ? .geluTanh : .silu)
        embeddingScale = try c.decodeIfPresent(Float.self, forKey: .embeddingScale)
            ?? (gemma ? Float(Double(hiddenSize).squareRoot()) : 1)
        queryPreAttnScalar = try c.decodeIfPresent(Float.self, forKey: .queryPreAttnScalar)
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow) ?? 0
        slidingLayers = try c.decodeIfPresent([Bool].self, forKey: .slidingLayers) ?? []
        ropeLocalTheta = try c.decodeIfPresent(Float.self, forKey: .ropeLocalTheta)
        ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
    }
}
