// LlamaModel+HF — loading a Hugging Face Llama-family directory (llama, mistral, qwen2, qwen3, gemma3_text, phi3) (config.json, tokenizer.json, safetensors).

import Foundation

extension LlamaModel {
    static func loadHF(directory: String) throws -> LlamaModel {
        let dir = try HFModelDirectory(path: directory)
        let c = dir.config
        try c.validate(source: directory)
        guard let tokPath = dir.tokenizerJSONPath else {
            throw EngineError.format(directory, "missing tokenizer.json")
        }
        let tokenizer = try BPETokenizer(tokenizerJSON: try Data(contentsOf: URL(fileURLWithPath: tokPath)))
        let tensors = try dir.openTensors()
        var owners: [ObjectIdentifier: AnyObject] = [:]

        func find(_ name: String) throws -> (file: SafetensorsFile, info: SafetensorsTensorInfo) {
            guard let t = tensors[name] else { throw EngineError.format(directory, "missing tensor '\(name)'") }
            owners[ObjectIdentifier(t.file)] = t.file
            return t
        }
        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            let (file, info) = try find(name)
            guard info.shape == [rows, cols] else {
                throw EngineError.format(file.path, "tensor '\(name)': shape \(info.shape), expected [\(rows), \(cols)]")
            }
            let type: GGMLType = switch info.dtype { case .f32: .f32; case .f16: .f16; case .bf16: .bf16 }
            return WeightMatrix(type: type, rows: rows, cols: cols, data: file.data(for: info).baseAddress!)
        }
        func vector(_ name: String, count: Int) throws -> [Float] {
            let (file, info) = try find(name)
            guard info.shape == [count] else {
                throw EngineError.format(file.path, "tensor '\(name)': shape \(info.shape), expected [\(count)]")
            }
            return try file.floats(info)
        }
        // Gemma's RMSNorm multiplies by (1 + w) (float32, as Gemma3RMSNorm); llama.cpp's converter stores 1 + w.
        let gemma = c.architecture == .gemma3
        func norm(_ name: String, count: Int) throws -> [Float] {
            let w = try vector(name, count: count)
            return gemma ? w.map { 1 + $0 } : w
        }

        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim, F = c.intermediateSize
        var layers: [LayerWeights] = []
        for l in 0..<c.numLayers {
            let p = "model.layers.\(l)."
            // Phi-3: q, k, v are row ranges of qkv_proj; gate and up the two halves of gate_up_proj.
            let fused = c.architecture.fusedProjections
            let qkv = fused ? try matrix(p + "self_attn.qkv_proj.weight", rows: qDim + 2 * kvDim, cols: c.hiddenSize) : nil
            let gateUp = fused ? try matrix(p + "mlp.gate_up_proj.weight", rows: 2 * F, cols: c.hiddenSize) : nil
            // Gemma's post_attention_layernorm normalizes the attention output; its FFN norm is pre_feedforward_layernorm.
            var layer = LayerWeights(
                attnNorm: try norm(p + "input_layernorm.weight", count: c.hiddenSize),
                wq: try qkv?.rows(0, qDim) ?? matrix(p + "self_attn.q_proj.weight", rows: qDim, cols: c.hiddenSize),
                wk: try qkv?.rows(qDim, kvDim) ?? matrix(p + "self_attn.k_proj.weight", rows: kvDim, cols: c.hiddenSize),
                wv: try qkv?.rows(qDim + kvDim, kvDim) ?? matrix(p + "self_attn.v_proj.weight", rows: kvDim, cols: c.hiddenSize),
                wo: try matrix(p + "self_attn.o_proj.weight", rows: c.hiddenSize, cols: qDim),
                ffnNorm: try norm(p + (gemma ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"),
                                  count: c.hiddenSize),
                wGate: try gateUp?.rows(0, F) ?? matrix(p + "mlp.gate_proj.weight", rows: F, cols: c.hiddenSize),
                wUp: try gateUp?.rows(F, F) ?? matrix(p + "mlp.up_proj.weight", rows: F, cols: c.hiddenSize),
                wDown: try matrix(p + "mlp.down_proj.weight", rows: c.hiddenSize, cols: c.intermediateSize))
            if c.attentionBias {
                layer.bq = try vector(p + "self_attn.q_proj.bias", count: qDim)
                layer.bk = try vector(p + "self_attn.k_proj.bias", count: kvDim)
                layer.bv = try vector(p + "self_attn.v_proj.bias", count: kvDim)
            }
            if c.qkNorm {
                layer.qNorm = try norm(p + "self_attn.q_norm.weight", count: c.headDim)
                layer.kNorm = try norm(p + "self_attn.k_norm.weight", count: c.headDim)
            }
            if c.sandwichNorms {
                layer.postAttnNorm = try norm(p + "post_attention_layernorm.weight", count: c.hiddenSize)
                layer.postFFNNorm = try norm(p + "post_feedforward_layernorm.weight", count: c.hiddenSize)
            }
            layers.append(layer)
        }
        // A bias the forward would not add changes the math: refuse it rather than drop it.
        let biases: Set<String> = c.attentionBias
            ? Set((0..<c.numLayers).flatMap { l in ["q", "k", "v"].map { "model.layers.\(l).self_attn.\($0)_proj.bias" } }) : []
        if let extra = tensors.keys.sorted().first(where: { $0.hasSuffix(".bias") && !biases.contains($0) }) {
            throw EngineError(.unsupported, "\(directory): tensor '\(extra)' is not part of the \(c.architecture.rawValue) forward tune implements (it would change the math)")
        }
        let embed = try matrix("model.embed_tokens.weight", rows: c.vocabSize, cols: c.hiddenSize)
        let hasHead = tensors["lm_head.weight"] != nil && !c.tiedEmbeddings
        let head = hasHead ? try matrix("lm_head.weight", rows: c.vocabSize, cols: c.hiddenSize) : embed
        let weights = LlamaWeights(embed: embed, layers: layers,
                                   finalNorm: try norm("model.norm.weight", count: c.hiddenSize),
                                   lmHead: head, owners: Array(owners.values), owned: [])
        return LlamaModel(config: c, tokenizer: tokenizer, weights: weights, source: directory, format: .huggingface)
    }
}
