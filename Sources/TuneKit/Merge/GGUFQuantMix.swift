// GGUFQuantMix — llama.cpp's K-quant presets (Q4_K_M, Q5_K_M, Q4_K_S, Q5_K_S, Q6_K, and the "pure" q4_k/q5_k)
// as tune applies them to a GGUF it writes: the per-tensor type choice of llama-quantize
// (src/llama-quant.cpp: tensor_allows_quantization, llama_tensor_get_type_impl, tensor_type_fallback), its
// tensor order (llama_model_loader's weights_map: by layer number, then name) and its metadata edits
// (general.quantization_version and general.file_type moved to the end). With ggml's reference quantizers
// (ck_quantize_row_any) the result is the file llama-quantize writes from the same values, byte for byte.
//
// Only the rules that can fire for the dense families tune writes are ported (no imatrix, no MoE expert
// counts, no Falcon); the 70B rule (attn_v one type up) keys on llama.cpp's model size the same way it does.

import Engine
import Foundation

/// A llama.cpp quantization preset tune can write (`merge.dtype`).
public enum GGUFQuantPreset: String, CaseIterable, Sendable {
    case q4_k_m, q5_k_m, q4_k_s, q5_k_s, q6_k
    /// Every quantizable matrix in one type, like `llama-quantize --pure`.
    case q4_k, q5_k

    public static func named(_ s: String) -> GGUFQuantPreset? { GGUFQuantPreset(rawValue: s.lowercased()) }

    /// llama.cpp's LLAMA_FTYPE_MOSTLY_* (`general.file_type`). The pure presets are Q4_K_S / Q5_K_S run with
    /// `--pure`, so they carry those file types.
    public var fileType: UInt32 {
        switch self {
        case .q4_k_s, .q4_k: 14
        case .q4_k_m: 15
        case .q5_k_s, .q5_k: 16
        case .q5_k_m: 17
        case .q6_k: 18
        }
    }

    /// The preset's type for a matrix no rule singles out (llama_ftype_get_default_type).
    public var defaultType: GGMLType {
        switch self {
        case .q4_k_m, .q4_k_s, .q4_k: .q4_K
        case .q5_k_m, .q5_k_s, .q5_k: .q5_K
        case .q6_k: .q6_K
        }
    }

    /// True for the presets that skip the per-tensor rules (only the row-length fallback applies).
    public var pure: Bool { self == .q4_k || self == .q5_k }

    /// The name llama-quantize takes for it ("Q4_K_M"; the pure ones as "Q4_K_S --pure").
    public var llamaName: String {
        switch self {
        case .q4_k: "Q4_K_S --pure"
        case .q5_k: "Q5_K_S --pure"
        default: rawValue.uppercased()
        }
    }
}

/// The per-tensor types llama-quantize would choose for one model.
public struct GGUFQuantMix: Sendable {
    public let preset: GGUFQuantPreset
    /// Tensor names in llama-quantize's output order.
    public let order: [String]
    /// Output type of every tensor (its input type when it is not quantized).
    public let types: [String: GGMLType]
    /// Matrices whose row length did not fit the chosen type and fell back (q5_0, q5_1, q8_0 or f16).
    public let fallbacks: [String]

    /// `tensors`: name, GGUF shape (ne[0] first) and current type of every tensor of the model; `metadata` supplies
    /// `general.architecture` and `<arch>.block_count` (the layer count the ffn_down rules use), and the head counts
    /// for the 70B rule.
    public init(preset: GGUFQuantPreset, tensors: [(name: String, shape: [Int], type: GGMLType)],
                metadata: [String: GGUFValue]) throws {
        self.preset = preset
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        order = Self.llamaOrder(tensors.map(\.name))
        let arch = metadata["general.architecture"]?.stringValue ?? ""
        guard let layers = metadata["\(arch).block_count"]?.intValue else {
            throw TuneError(.invalidArgument, "GGUF \(preset.rawValue): metadata has no \(arch.isEmpty ? "<arch>" : arch).block_count (the layer count the quantization mix needs)")
        }
        // llama.cpp's LLM_TYPE_70B (llama with 80 layers and grouped KV heads, qwen2 with 80 layers).
        let heads = metadata["\(arch).attention.head_count"]?.intValue
        let kvHeads = metadata["\(arch).attention.head_count_kv"]?.intValue ?? heads
        let is70B = layers == 80 && (arch == "qwen2" || (arch == "llama" && heads != kvHeads))

        var state = Counters(attentionV: tensors.filter { Category(name: $0.name).isAttentionV }.count, layers: layers,
                             tiedEmbeddings: !tensors.contains { $0.name == "output.weight" })
        var types: [String: GGMLType] = [:], fallbacks: [String] = []
        for name in order {
            let t = byName[name]!
            guard Self.allowsQuantization(name: name, shape: t.shape) else { types[name] = t.type; continue }
            var type = preset.defaultType
            if !preset.pure { type = Self.ruleType(preset, type, name: name, ncols: t.shape[0], is70B: is70B, state: &state) }
            let fitted = Self.fallback(type, ncols: t.shape[0])
            if fitted != type { fallbacks.append(name) }
            types[name] = fitted
        }
        self.types = types
        self.fallbacks = fallbacks
    }

    /// llama_model_loader's weights_map order: tensors of layer N (names `blk.N.…`) after those of layer N-1,
    /// tensors outside the layers first; by name (bytes) within a layer.
    public static func llamaOrder(_ names: [String]) -> [String] {
        func layer(_ s: String) -> Int {
            guard s.hasPrefix("blk.") else { return -1 }
            let digits = s.dropFirst(4).prefix { $0.isASCII && $0.isNumber }
            // sscanf("blk.%d.") needs the digits and the dot after them.
            guard !digits.isEmpty, s.dropFirst(4 + digits.count).first == ".", let n = Int(digits) else { return -1 }
            return n
        }
        return names.map { (layer($0), $0) }.sorted { a, b in
            a.0 != b.0 ? a.0 < b.0 : Array(a.1.utf8).lexicographicallyPrecedes(Array(b.1.utf8))
        }.map(\.1)
    }

    /// The output file's metadata, as llama-quantize leaves it: the input's keys in order, less the split keys,
    /// with general.quantization_version (2) and general.file_type (the preset's) removed and set again at the end.
    public static func outputMetadata(keys: [String], metadata: [String: GGUFValue], preset: GGUFQuantPreset)
        -> (keys: [String], metadata: [String: GGUFValue]) {
        let moved: Set<String> = ["general.quantization_version", "general.file_type", "split.no", "split.count", "split.tensors.count"]
        var outKeys = keys.filter { !moved.contains($0) }
        var meta = metadata
        for k in moved { meta[k] = nil }
        outKeys += ["general.quantization_version", "general.file_type"]
        meta["general.quantization_version"] = .uint32(2)   // GGML_QNT_VERSION
        meta["general.file_type"] = .uint32(preset.fileType)
        return (outKeys, meta)
    }

    // MARK: - llama-quant.cpp rules

    /// tensor_allows_quantization: 2-D (or more) tensors named `….weight`, except norms, MoE routers and the small
    /// special matrices llama.cpp keeps as they are.
    static func allowsQuantization(name: String, shape: [Int]) -> Bool {
        // ggml_n_dims: trailing dimensions of 1 do not count.
        var dims = shape.count
        while dims > 1, shape[dims - 1] == 1 { dims -= 1 }
        guard dims >= 2, name.hasSuffix("weight") else { return false }
        let kept = ["_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
                    "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
                    "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
                    "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
                    "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
                    "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
                    "attn_rel_b.weight", ".position_embd", ".rel_pos", ".patch_embd", ".patch_merger"]
        if kept.contains(where: { name.contains($0) }) { return false }
        return name != "position_embd.weight" && name != "token_types.weight"
    }

    /// tensor_get_category, reduced to the categories the K presets look at.
    enum Category {
        case output, tokenEmbedding, attentionV, ffnDown, other
        init(name: String) {
            if name == "output.weight" { self = .output }
            else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { self = .tokenEmbedding }
            // attn_qkv and attn_kv_b count as attn_v (category_is_attn_v); attn_qkv is checked before attn_v.
            else if name.contains("attn_qkv.weight") || name.contains("attn_kv_b.weight") || name.contains("attn_v.weight") { self = .attentionV }
            else if name.contains("attn_k.weight") || name.contains("attn_q.weight") || name.contains("attn_output.weight")
                || name.contains("ffn_up") || name.contains("ffn_gate") { self = .other }
            else if name.contains("ffn_down") { self = .ffnDown }
            else { self = .other }
        }
        var isAttentionV: Bool { self == .attentionV }
    }

    /// quantize_state_impl's counters: attn_v and ffn_down tensors seen so far, in output order.
    struct Counters {
        var attentionV: Int
        var layers: Int
        var tiedEmbeddings: Bool
        var iAttentionV = 0
        var iFFNDown = 0
    }

    /// llama.cpp's "more bits for some layers" pattern: the first and last eighth, and every third in between.
    static func useMoreBits(_ i: Int, _ n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    /// llama_tensor_get_type_impl for the K presets (dense models).
    static func ruleType(_ p: GGUFQuantPreset, _ type: GGMLType, name: String, ncols: Int, is70B: Bool,
                         state s: inout Counters) -> GGMLType {
        var t = type
        let cat = Category(name: name)
        if cat == .output || (s.tiedEmbeddings && cat == .tokenEmbedding) {
            // The output head (or the tied embedding that doubles as it) gets q6_K, or q8_0 when rows do not fit 256.
            if ncols % t.blockSize != 0 { t = .q8_0 } else if t != .q8_0 { t = .q6_K }
        } else if cat == .tokenEmbedding {
            // untied embeddings keep the preset's type
        } else if cat == .attentionV {
            if (p == .q4_k_m || p == .q5_k_m) && useMoreBits(s.iAttentionV, s.attentionV) { t = .q6_K }
            else if p == .q4_k_s && s.iAttentionV < 4 { t = .q5_K }
            if is70B, t == .q3_K || t == .q4_K { t = .q5_K }
            s.iAttentionV += 1
        } else if cat == .ffnDown {
            let (i, n) = (s.iFFNDown, s.layers)
            if p == .q4_k_m { if useMoreBits(i, n) { t = .q6_K } }
            else if p == .q5_k_m && useMoreBits(i, n) { t = .q6_K }
            else if p == .q4_k_s && i < n / 8 { t = .q5_K }
            s.iFFNDown += 1
        }
        return t
    }

    /// tensor_type_fallback: a K type on rows that are not a multiple of 256 becomes the 32-block type of about the
    /// same size (q4_K → q5_0, q5_K → q5_1, q6_K → q8_0); rows that do not fit 32 either stay in f16.
    static func fallback(_ t: GGMLType, ncols: Int) -> GGMLType {
        guard ncols % t.blockSize != 0 else { return t }
        let r: GGMLType = switch t {
        case .q4_K: .q5_0
        case .q5_K: .q5_1
        case .q6_K: .q8_0
        case .q2_K, .q3_K: .q4_0
        default: t
        }
        return ncols % r.blockSize == 0 ? r : .f16
    }
}

// MARK: - Quantizing a GGUF file

extension GGUFQuantMix {
    /// Counts of what `quantize` did.
    public struct Summary: Sendable {
        public var quantized = 0
        public var copied = 0
        public var fallbacks: [String] = []
    }

    /// Writes `input` quantized with `preset` to `output`, as `llama-quantize [--allow-requantize] input output PRESET`
    /// does without an importance matrix: same tensor order, metadata, per-tensor types and bytes. Tensors that keep
    /// their type are copied; others are dequantized (f16/bf16 widen exactly; tune's dequantizers are ggml's) and
    /// quantized with ggml's reference quantizers on `threads` threads (the bytes do not depend on it).
    public static func quantize(_ input: GGUFFile, to output: String, preset: GGUFQuantPreset, threads: Int = 1,
                                progress: (String) -> Void = { _ in }) throws -> Summary {
        let mix = try GGUFQuantMix(preset: preset, tensors: input.tensors.map { ($0.name, $0.shape, $0.type) },
                                   metadata: input.metadata)
        let (keys, meta) = outputMetadata(keys: input.metadataKeys, metadata: input.metadata, preset: preset)
        let infos = mix.order.map { input.tensor(named: $0)! }
        let writer = try GGUFStreamWriter(path: output, keys: keys, metadata: meta,
                                          tensors: infos.map { .init(name: $0.name, shape: $0.shape, type: mix.types[$0.name]!) })
        var summary = Summary()
        summary.fallbacks = mix.fallbacks
        for (i, info) in infos.enumerated() {
            let type = mix.types[info.name]!
            if type == info.type {
                try writer.write(name: info.name, bytes: input.data(for: info))
                summary.copied += 1
            } else {
                guard info.type.isSupported else {
                    throw TuneError(.invalidArgument, "\(input.path): tensor \(info.name) is \(info.type.name), which tune cannot dequantize to re-quantize as \(type.name)")
                }
                let bytes = try GGUFQuantize.encode(try input.dequantize(info), type: type, rowLength: info.shape[0],
                                                    threads: threads, name: info.name)
                try bytes.withUnsafeBytes { try writer.write(name: info.name, bytes: $0) }
                summary.quantized += 1
            }
            if i % 32 == 0 { progress("\(i + 1)/\(infos.count) \(info.name) → \(type.name)") }
        }
        try writer.finish()
        return summary
    }
}
