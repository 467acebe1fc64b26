// MergeInputs — what a merge reads: full models (GGUF file, HF directory, single .safetensors file) as
// tensors under HF names in HF row order, and PEFT LoRA adapters as dense ΔW = scale·B·A per target
// matrix. One tensor is materialized at a time.

import Engine
import Foundation

// MARK: - Full models

/// A full model's tensors, by HF name (`model.layers.0.self_attn.q_proj.weight`), values in HF row
/// order (GGUF Q/K rows are un-permuted on read).
public final class ModelTensors: @unchecked Sendable {
    public enum Format: String, Sendable { case gguf, huggingface, safetensors }
    public struct Entry: Sendable {
        public var name: String
        /// HF shape: `[out, in]` for matrices.
        public var shape: [Int]
    }

    public let path: String
    public let format: Format
    /// Tensors in file order.
    public let entries: [Entry]
    /// The Llama shapes, when the source says (GGUF metadata or config.json); nil for a bare safetensors file.
    public let config: LlamaConfig?
    /// The GGUF file itself (for metadata and raw tensor bytes when writing GGUF).
    public let gguf: GGUFFile?
    private var index: [String: Int] = [:]
    private let st: [String: (file: SafetensorsFile, info: SafetensorsTensorInfo)]
    /// HF name → GGUF tensor info.
    private var ggufTensors: [String: GGUFTensorInfo] = [:]

    /// Opens a `.gguf` file, an HF model directory, or a single `.safetensors` file.
    public init(path: String) throws {
        self.path = path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw TuneError(.notFound, "\(path): no such file or directory")
        }
        if isDir.boolValue {
            let dir = try HFModelDirectory(path: path)
            format = .huggingface
            config = dir.config
            gguf = nil
            st = try dir.openTensors()
            entries = st.map { Entry(name: $0.key, shape: $0.value.info.shape) }.sorted { Self.order($0.name, $1.name) }
        } else if path.hasSuffix(".safetensors") {
            let f = try SafetensorsFile(path: path)
            format = .safetensors
            config = nil
            gguf = nil
            st = Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, (f, $0)) })
            entries = f.tensors.map { Entry(name: $0.name, shape: $0.shape) }.sorted { Self.order($0.name, $1.name) }
        } else {
            let g = try GGUFFile(path: path)
            let c = try LlamaConfig(gguf: g)
            format = .gguf
            config = c
            gguf = g
            st = [:]
            var hfByGGUF: [String: String] = [:]
            for name in Self.hfNames(c) { hfByGGUF[TinyLlama.ggufName(name, architecture: c.architecture)] = name }
            var es: [Entry] = []
            for t in g.tensors {
                let hf = hfByGGUF[t.name] ?? t.name
                ggufTensors[hf] = t
                es.append(Entry(name: hf, shape: Array(t.shape.reversed())))
            }
            entries = es
        }
        for (i, e) in entries.enumerated() { index[e.name] = i }
        // The merge paths name and convert Llama, Qwen2 and Gemma 3 tensors (GGUF's 1 + w Gemma norms are read
        // as HF's w); Qwen3's q/k norms and Phi-3's fused projections would be written under wrong names.
        if let a = config?.architecture, ![.llama, .qwen2, .gemma3].contains(a) {
            throw TuneError(.invalidArgument, "\(path): merging \(a.rawValue) models is not implemented yet (llama, qwen2 and gemma3 only); evaluate or serve the adapter on the base instead")
        }
    }

    /// Every HF tensor name a Llama of this config can have.
    static func hfNames(_ c: LlamaConfig) -> [String] {
        var names = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
        for l in 0..<c.numLayers {
            names += ["input_layernorm", "post_attention_layernorm"].map { "model.layers.\(l).\($0).weight" }
            if c.architecture == .gemma3 {   // post_attention_layernorm is Gemma's attention-output norm
                names += ["pre_feedforward_layernorm", "post_feedforward_layernorm"].map { "model.layers.\(l).\($0).weight" }
            }
            if c.qkNorm { names += ["q_norm", "k_norm"].map { "model.layers.\(l).self_attn.\($0).weight" } }
            names += LoRATarget.allCases.map { "model.layers.\(l).\($0.module).weight" }
            if c.attentionBias { names += ["q", "k", "v"].map { "model.layers.\(l).self_attn.\($0)_proj.bias" } }
        }
        return names
    }

    /// Embeddings, then layers in numeric order, then the rest (a stable, human order).
    static func order(_ a: String, _ b: String) -> Bool {
        func key(_ s: String) -> (Int, Int, String) {
            let p = s.split(separator: ".")
            if p.count > 2, p[1] == "layers", let l = Int(p[2]) { return (1, l, s) }
            return (s.contains("embed") ? 0 : 2, 0, s)
        }
        return key(a) < key(b)
    }

    public func has(_ name: String) -> Bool { index[name] != nil }
    public func shape(_ name: String) -> [Int]? { index[name].map { entries[$0].shape } }

    /// The GGUF descriptor of an HF-named tensor (GGUF sources only).
    public func ggufInfo(_ name: String) -> GGUFTensorInfo? { ggufTensors[name] }

    /// The tensor as f32, HF layout and row order.
    public func floats(_ name: String) throws -> [Float] {
        if let (file, info) = st[name] { return try file.floats(info) }
        guard let g = gguf, let t = ggufTensors[name] else { throw TuneError(.internal, "\(path): no tensor '\(name)'") }
        var v = try g.dequantize(t)
        if let c = config, c.architecture.ggufPermutesQK, t.shape.count == 2 {   // qwen2 GGUFs keep HF order
            if t.name.hasSuffix("attn_q.weight") { v = QKOrder.fromGGUF(v, rows: t.shape[1], cols: t.shape[0], heads: c.numHeads) }
            if t.name.hasSuffix("attn_k.weight") { v = QKOrder.fromGGUF(v, rows: t.shape[1], cols: t.shape[0], heads: c.numKVHeads) }
        }
        // llama.cpp's converter stores Gemma's RMSNorm weights as 1 + w; HF (Gemma3RMSNorm) holds w.
        if Self.isGemmaNorm(name, config) { v = v.map { $0 - 1 } }
        return v
    }
}

extension ModelTensors {
    /// A Gemma 3 RMSNorm weight (layer, q/k and final norms), which GGUF stores as 1 + w.
    static func isGemmaNorm(_ hfName: String, _ config: LlamaConfig?) -> Bool {
        config?.architecture == .gemma3 && (hfName.hasSuffix("layernorm.weight") || hfName.hasSuffix("_norm.weight") || hfName == "model.norm.weight")
    }
}

/// llama.cpp's Q/K row permutation (GGUF stores interleaved-RoPE rows; HF rotate_half rows).
public enum QKOrder {
    /// GGUF → HF: inside each head of D rows, GGUF row 2i+j goes to HF row j·D/2 + i.
    public static func fromGGUF(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0, w.count == rows * cols else { return w }
        let d = rows / heads, half = d / 2
        var out = w
        for h in 0..<heads {
            for j in 0..<2 {
                for i in 0..<half {
                    let dst = h * d + j * half + i, src = h * d + 2 * i + j
                    out[dst * cols ..< (dst + 1) * cols] = w[src * cols ..< (src + 1) * cols]
                }
            }
        }
        return out
    }

    /// HF → GGUF (the permutation llama.cpp's converter applies).
    public static func toGGUF(_ w: [Float], rows: Int, cols: Int, heads: Int) -> [Float] {
        TinyLlama.permuteRows(w, rows: rows, cols: cols, heads: heads)
    }
}

// MARK: - Adapters

/// A PEFT LoRA adapter as dense task vectors ΔW = scale·B·A, HF names and row order.
public struct AdapterDeltas: @unchecked Sendable {
    public let path: String
    public let adapter: LoRAAdapter

    public init(directory: String, model: LlamaConfig) throws {
        path = directory
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(LoRAAdapter.configFile)) else {
            throw TuneError(.notFound, "\(directory): no \(LoRAAdapter.configFile) (not a PEFT adapter directory)")
        }
        adapter = try LoRAAdapter.load(directory: directory, model: model)
    }

    /// The HF weight name a slot adapts.
    public static func weightName(_ s: LoRASlot) -> String { "model.layers.\(s.layer).\(s.target.module).weight" }

    /// Slot adapting an HF weight name, if any.
    public func slot(for name: String) -> LoRASlot? {
        adapter.slots.first { Self.weightName($0) == name }
    }

    /// ΔW `[out, in]` of a slot (Engine: B·A through the f32 GEMM kernel, times scale).
    public func delta(_ s: LoRASlot) -> [Float] { adapter.delta(s) }
}
