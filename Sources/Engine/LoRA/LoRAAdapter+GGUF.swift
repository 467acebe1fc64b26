// LoRAAdapter+GGUF — the adapter as a llama.cpp LoRA GGUF (`llama-server -m BASE.gguf --lora OUT.gguf`),
// written the way llama.cpp's convert_lora_to_gguf.py writes the same PEFT adapter:
//
//   metadata   general.architecture = the base's GGUF architecture (llama.cpp refuses a mismatch),
//              general.type = "adapter", adapter.type = "lora", general.name, adapter.lora.alpha (f32),
//              general.quantization_version = 2
//   tensors    blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a / .lora_b,
//              in the converter's order (PEFT names sorted as strings: layers.0, layers.1, layers.10, …);
//              Phi-3's fused modules are its GGUF tensors: qkv_proj → attn_qkv, gate_up_proj → ffn_up (2F rows)
//   shapes     lora_a = PEFT's A [r, in] row-major (GGUF ne [in, r]); lora_b = B [out, r] (ne [r, out]):
//              llama.cpp checks base.ne[0] == a.ne[0], base.ne[1] == b.ne[1], a.ne[1] == b.ne[0]
//   Q/K rows   for `llama` the converter permutes the base's q_proj/k_proj rows for its interleaved RoPE
//              (per head: [2, d/2] → [d/2, 2]); since ΔW = B·A, the same row permutation applies to B only
//              (q with n_head, k with n_head_kv). qwen2, qwen3 and gemma3 use NEOX RoPE and are stored as HF
//              orders them. (Gemma3Model.modify_tensors adds 1 to `*norm.weight` only and trims token_embd's
//              rows: neither touches the seven projection targets' lora_a/lora_b.)
//   scale      llama.cpp applies alpha / r with r = lora_b's ne[0]. For rsLoRA adapters (PEFT scale alpha/√r)
//              tune writes alpha·√r so llama.cpp's alpha/r equals PEFT's scale (the converter would write alpha
//              unchanged and serve the adapter at the wrong strength).
//   dtype      f32 (the converter's default --outtype), f16 or bf16.
//
//     let lora = try LoRAAdapter.load(directory: "out/adapter", model: LlamaConfig(gguf: GGUFFile(path: base)))
//     try lora.writeGGUF(to: "out/adapter.gguf", name: "my-adapter")

import Foundation

extension LoRAAdapter {
    /// Architectures a llama.cpp LoRA GGUF is written for: the ones whose tensor names and Q/K layout
    /// tune's test proves against llama.cpp itself (every family tune lists).
    public static let ggufLoRAArchitectures: [ModelArchitecture] = [.llama, .qwen2, .qwen3, .gemma3, .phi3]

    /// Tensor types the LoRA GGUF may be written in (convert_lora_to_gguf.py's float outtypes).
    public static let ggufLoRATypes: [GGMLType] = [.f32, .f16, .bf16]

    /// llama.cpp's tensor name of an adapted matrix (`blk.N.attn_q.weight`); `.lora_a`/`.lora_b` follow.
    /// A fused module (Phi-3) is its GGUF tensor: `attn_qkv` (q, k, v rows), `ffn_up` (gate then up rows).
    public static func ggufBaseTensorName(layer: Int, target: LoRATarget, architecture: ModelArchitecture = .llama) -> String {
        let short: String
        switch architecture.fusedProjections ? target.fusedGroup(architecture).first! : target {
        case .q where architecture.fusedProjections: short = "attn_qkv"
        case .gate where architecture.fusedProjections: short = "ffn_up"
        case .q: short = "attn_q"
        case .k: short = "attn_k"
        case .v: short = "attn_v"
        case .o: short = "attn_output"
        case .gate: short = "ffn_gate"
        case .up: short = "ffn_up"
        case .down: short = "ffn_down"
        }
        return "blk.\(layer).\(short).weight"
    }

    /// The `adapter.lora.alpha` llama.cpp needs for this adapter's scale: alpha, or alpha·√r for rsLoRA
    /// (llama.cpp always divides by r).
    public var ggufLoRAAlpha: Float {
        config.useRSLoRA ? Float(config.alpha * Double(config.rank).squareRoot()) : Float(config.alpha)
    }

    /// Throws a one-line error naming `arch` unless a LoRA GGUF can be written for it.
    public static func checkGGUFLoRA(architecture arch: ModelArchitecture) throws {
        guard ggufLoRAArchitectures.contains(arch) else {
            throw EngineError(.unsupported, "GGUF LoRA export for architecture '\(arch.rawValue)' is not supported (supported: \(ggufLoRAArchitectures.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    /// The LoRA GGUF in memory (see the file header for the layout). `name` becomes `general.name`.
    public func ggufLoRA(type: GGMLType = .f32, name: String) throws -> GGUFWriter {
        let arch = modelConfig.architecture
        try Self.checkGGUFLoRA(architecture: arch)
        guard Self.ggufLoRATypes.contains(type) else {
            throw EngineError(.invalidArgument, "GGUF LoRA tensor type '\(type.name)' is not supported (supported: \(Self.ggufLoRATypes.map(\.name).joined(separator: ", ")))")
        }
        var g = GGUFWriter()
        g.set("general.architecture", .string(arch.rawValue))
        g.set("general.type", .string("adapter"))
        g.set("adapter.type", .string("lora"))
        g.set("general.name", .string(name))
        g.set("adapter.lora.alpha", .float32(ggufLoRAAlpha))
        g.set("general.quantization_version", .uint32(2))

        let r = rank
        // The converter emits tensors in the order of the PEFT safetensors names, which are sorted as strings;
        // one pair per PEFT module (a fused module's B holds its matrices' row blocks, contiguous here).
        for group in moduleGroups.sorted(by: { $0[0].peftPrefix < $1[0].peftPrefix }) {
            let s = group[0], out = group.reduce(0) { $0 + $1.outFeatures }
            let base = Self.ggufBaseTensorName(layer: s.layer, target: s.target, architecture: arch)
            let a = Array(UnsafeBufferPointer(start: self.a(s), count: r * s.inFeatures))
            var b = Array(UnsafeBufferPointer(start: self.b(s), count: out * r))
            if arch.ggufPermutesQK, s.target == .q || s.target == .k {
                let heads = s.target == .q ? modelConfig.numHeads : modelConfig.numKVHeads
                guard s.outFeatures % heads == 0, (s.outFeatures / heads) % 2 == 0 else {
                    throw EngineError(.invalidArgument, "\(base): \(s.outFeatures) rows cannot be permuted into \(heads) heads of even size")
                }
                b = TinyLlama.permuteRows(b, rows: s.outFeatures, cols: r, heads: heads)
            }
            try g.addTensor(name: base + ".lora_a", shape: [s.inFeatures, r], values: a, type: type)
            try g.addTensor(name: base + ".lora_b", shape: [r, out], values: b, type: type)
        }
        return g
    }

    /// Writes the LoRA GGUF to `path` atomically (temp file, fsync, rename).
    public func writeGGUF(to path: String, type: GGMLType = .f32, name: String) throws {
        try ggufLoRA(type: type, name: name).write(to: path)
    }
}
