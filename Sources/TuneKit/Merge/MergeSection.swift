// MergeSection — the pipeline's `merge:` section (mergekit semantics; docs/merge.md).

/// `merge:` — combine adapters (mergekit semantics).
public struct MergeSection: Codable, Hashable, Sendable {
    public struct Input: Codable, Hashable, Sendable {
        public var adapter: String
        public var weight: Double
        public var density: Double
    }
    public var method: String
    public var inputs: [Input]
    /// nil = the method's default (mergekit's: true for linear and ties, false otherwise).
    public var normalize: Bool?
    public var lambda: Double
    public var output: String
    /// Element type of a merged model (GGUF base: f32|f16|bf16|q8_0|q4_0|q4_1 or a llama.cpp preset
    /// q4_k_m|q5_k_m|q4_k_s|q5_k_s|q6_k|q4_k|q5_k, default f16; HF base: float32|float16|bfloat16).
    public var dtype: String?
    /// Rank of a merged adapter (default: sum of the input ranks).
    public var rank: Int?
    /// Files of the output: an adapter is `peft` (default) or `gguf` (the PEFT directory plus llama.cpp's LoRA
    /// GGUF, adapter_model.gguf); a model is `gguf` or `safetensors` (an HF directory), default the base's format.
    public var format: String?

    public static var methods: [String] { MergeMethods.names }

    init(_ r: YAMLReader) {
        method = r.choice("method", Self.methods, default: "ties")
        inputs = r.objects("adapters").map { a in
            defer { a.finish() }
            return Input(adapter: a.string("adapter", required: true) ?? "",
                         weight: a.double("weight", default: 1, range: -100...100),
                         density: a.double("density", default: 1, range: 0...1, exclusiveLower: true))
        }
        normalize = r.has("normalize") ? r.bool("normalize", default: true) : nil
        lambda = r.double("lambda", default: 1, range: -100...100)
        output = r.choice("output", ["adapter", "model"], default: "adapter")
        dtype = r.has("dtype") ? r.choice("dtype", ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"] + GGUFQuantPreset.allCases.map(\.rawValue)
                                                         + ["float32", "float16", "bfloat16"], default: "f16") : nil
        rank = r.has("rank") ? r.int("rank", default: 8, min: 1, max: 4096) : nil
        let formats = output == "adapter" ? ["peft", "gguf"] : ["gguf", "safetensors"]
        format = r.has("format") ? r.choice("format", formats, default: formats[0]) : nil
        r.finish()
    }
}

