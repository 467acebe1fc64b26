// LlamaConfig — hyperparameters of a Llama-architecture model, from GGUF metadata or HF config.json.

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

    /// Hugging Face `config.json` names, so JSON output reads like the ecosystem's.
    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", intermediateSize = "intermediate_size"
        case numLayers = "num_hidden_layers", numHeads = "num_attention_heads", numKVHeads = "num_key_value_heads"
        case headDim = "head_dim", ropeTheta = "rope_theta", rmsNormEps = "rms_norm_eps"
        case contextLength = "max_position_embeddings", tiedEmbeddings = "tie_word_embeddings"
    }

    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int, headDim: Int? = nil, ropeTheta: Float = 10000, rmsNormEps: Float = 1e-5,
                contextLength: Int = 2048, tiedEmbeddings: Bool = true) {
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
    }
}
