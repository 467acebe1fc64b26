// LlamaConfig — hyperparameters of a Llama-family model (llama, mistral, qwen2), from GGUF metadata or
// HF config.json. A family is data here plus a few kernel choices in the forward, not a forked forward:
//
//   family   GGUF arch   HF model_type     Q/K/V biases   GGUF Q/K rows           default rope θ / eps
//   llama    llama       llama, mistral    no             permuted (interleaved)  1e4 / 1e-5 (GGUF)
//   qwen2    qwen2       qwen2             yes (not o)    as HF (NEOX RoPE)        from qwen2.* keys
//
// Anything else that would change the math (another architecture, rope scaling, partial rotary,
// logit soft-capping, MoE, …) is refused at load with one line naming it.

/// The architectures the engine's forward (and training graph) implements.
public enum ModelArchitecture: String, Sendable, Codable, CaseIterable {
    case llama, qwen2

    /// Whether llama.cpp's converter permutes this family's Q/K rows for interleaved RoPE. Qwen2 uses
    /// NEOX (rotate-half) RoPE in llama.cpp, so `Qwen2Model` in convert_hf_to_gguf.py stores Q/K as HF does.
    public var ggufPermutesQK: Bool { self == .llama }

    /// Whether the q/k/v projections carry biases (Qwen2: `bias=True` on q/k/v, none on o_proj).
    public var qkvBias: Bool { self == .qwen2 }

    /// The HF class written into config.json.
    public var hfClass: String { self == .qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM" }

    /// GGUF `general.architecture` values accepted, as one line for error messages.
    public static var supportedList: String { allCases.map(\.rawValue).joined(separator: ", ") }
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

    /// Hugging Face `config.json` names, so JSON output reads like the ecosystem's.
    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numLayers = "num_hidden_layers", numHeads = "num_attention_heads", numKVHeads = "num_key_value_heads"
        case headDim = "head_dim", ropeTheta = "rope_theta", rmsNormEps = "rms_norm_eps"
        case contextLength = "max_position_embeddings", tiedEmbeddings = "tie_word_embeddings"
        case architecture = "model_type", attentionBias = "qkv_bias"
    }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, headDim: Int? = nil, ropeTheta: Float = 10000, rmsNormEps: Float = 1e-5,
                contextLength: Int = 2048, tiedEmbeddings: Bool = true,
                architecture: ModelArchitecture = .llama, attentionBias: Bool? = nil) {
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
    }
}
