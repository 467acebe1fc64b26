// HFModelDirectory — a Hugging Face model directory: config.json (Llama/Mistral/Qwen2), tokenizer.json,
// and weights in model.safetensors or shards listed by model.safetensors.index.json.
// Also holds the small helpers the Formats readers/writers share: a JSON value, an mmap wrapper,
// and an atomic file writer.

import Foundation
#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

// MARK: - Model directory

/// A local HF model directory holding a Llama-family model (llama, mistral, qwen2) in safetensors.
public struct HFModelDirectory: Sendable {
    public let url: URL
    public let config: LlamaConfig
    /// `tokenizer.json` if the directory has one.
    public let tokenizerJSONPath: String?
    /// Weight files, sorted: `model.safetensors`, or the distinct shards named by the index's `weight_map`.
    public let safetensorsPaths: [String]
    /// tensor name → shard file name, from `model.safetensors.index.json` (empty for a single file).
    let weightMap: [String: String]

    /// Only the hyperparameters of `path/config.json` (no tokenizer or weight files needed: what a LoRA
    /// export needs of its base, as llama.cpp's converter reads only the base's config).
    public static func readConfig(directory path: String) throws -> LlamaConfig {
        let configPath = URL(fileURLWithPath: path, isDirectory: true).appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw EngineError(.io, "\(path): no config.json (not a Hugging Face model directory)")
        }
        return try parseConfig(try HFJSON.load(configPath), file: configPath)
    }

    /// Reads `config.json` and locates the tokenizer and weight files. Throws an EngineError naming the
    /// file and field for a missing or unsupported architecture or an ill-typed hyperparameter.
    public init(path: String) throws {
        url = URL(fileURLWithPath: path, isDirectory: true)
        let fm = FileManager.default
        let configPath = url.appendingPathComponent("config.json").path
        guard fm.fileExists(atPath: configPath) else {
            throw EngineError(.io, "\(path): no config.json (not a Hugging Face model directory)")
        }
        config = try Self.parseConfig(try HFJSON.load(configPath), file: configPath)
        let tok = url.appendingPathComponent("tokenizer.json").path
        tokenizerJSONPath = fm.fileExists(atPath: tok) ? tok : nil

        let indexPath = url.appendingPathComponent("model.safetensors.index.json").path
        let singlePath = url.appendingPathComponent("model.safetensors").path
        if fm.fileExists(atPath: indexPath) {
            guard case .object(let root) = try HFJSON.load(indexPath), case .object(let map)? = root["weight_map"] else {
                throw EngineError.format(indexPath, "missing \"weight_map\" object")
            }
            var weightMap: [String: String] = [:]
            for (tensor, value) in map {
                guard let file = value.string, !file.isEmpty, !file.hasPrefix("/"),
                      !file.split(separator: "/").contains("..") else {
                    throw EngineError.format(indexPath, "weight_map entry for '\(tensor)' is not a file name inside the directory")
                }
                weightMap[tensor] = file
            }
            var paths: [String] = []
            for file in Set(weightMap.values).sorted() {
                let p = url.appendingPathComponent(file).path
                guard fm.fileExists(atPath: p) else {
                    throw EngineError(.io, "\(indexPath): shard \(file) listed in weight_map does not exist")
                }
                paths.append(p)
            }
            guard !paths.isEmpty else { throw EngineError.format(indexPath, "\"weight_map\" is empty") }
            self.weightMap = weightMap
            safetensorsPaths = paths
        } else if fm.fileExists(atPath: singlePath) {
            weightMap = [:]
            safetensorsPaths = [singlePath]
        } else {
            throw EngineError(.io, "\(path): no model.safetensors or model.safetensors.index.json")
        }
    }

    /// Opens every weight file and indexes its tensors by name. Throws if a tensor appears in two files
    /// or a tensor named by the index's weight_map is missing from its shard.
    public func openTensors() throws -> [String: (file: SafetensorsFile, info: SafetensorsTensorInfo)] {
        var out: [String: (file: SafetensorsFile, info: SafetensorsTensorInfo)] = [:]
        for p in safetensorsPaths {
            let f = try SafetensorsFile(path: p)
            for t in f.tensors {
                if let prev = out[t.name] {
                    throw EngineError.format(p, "tensor '\(t.name)' also present in \(prev.file.path)")
                }
                out[t.name] = (f, t)
            }
        }
        for (tensor, file) in weightMap.sorted(by: { $0.key < $1.key }) {
            guard let hit = out[tensor], (hit.file.path as NSString).lastPathComponent == (file as NSString).lastPathComponent else {
                throw EngineError.format(url.appendingPathComponent(file).path, "tensor '\(tensor)' listed in weight_map is missing")
            }
        }
        return out
    }

    // MARK: - config.json

    /// Maps HF Llama config keys onto LlamaConfig (HF defaults for absent optional keys).
    static func parseConfig(_ json: HFJSON, file: String) throws -> LlamaConfig {
        guard case .object(let c) = json else { throw EngineError.format(file, "not a JSON object") }
        func bad(_ key: String, _ expected: String) -> EngineError {
            EngineError.format(file, "field \"\(key)\" must be \(expected)")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            guard let v = c[key], v != .null else {
                if let d { return d }
                throw EngineError.format(file, "missing required field \"\(key)\"")
            }
            guard let i = v.int, i > 0 else { throw bad(key, "a positive integer") }
            return i
        }
        func number(_ v: HFJSON?, _ key: String, default d: Double) throws -> Double {
            guard let v, v != .null else { return d }
            guard let x = v.double, x.isFinite, x > 0 else { throw bad(key, "a positive number") }
            return x
        }

        let archs = c["architectures"]?.array?.compactMap(\.string)
        let modelType = c["model_type"]?.string
        // HF class / model_type → family. mistral is llama's math (plus a sliding window, below).
        let classes: [String: ModelArchitecture] = ["LlamaForCausalLM": .llama, "MistralForCausalLM": .llama,
                                                    "Qwen2ForCausalLM": .qwen2, "Qwen3ForCausalLM": .qwen3,
                                                    "Gemma3ForCausalLM": .gemma3, "Phi3ForCausalLM": .phi3]
        let types: [String: ModelArchitecture] = ["llama": .llama, "mistral": .llama, "qwen2": .qwen2, "qwen3": .qwen3,
                                                  "gemma3_text": .gemma3, "phi3": .phi3]
        if modelType == "gemma3" {
            throw EngineError(.unsupported, "\(file): model_type \"gemma3\" is Gemma 3's multimodal model; tune reads the text model (model_type \"gemma3_text\", Gemma3ForCausalLM, as Gemma-3-270M/1B ship)")
        }
        var arch: ModelArchitecture?
        if c["architectures"] != nil, c["architectures"] != .null {
            guard let archs, let hit = archs.compactMap({ classes[$0] }).first else {
                throw EngineError(.unsupported, "\(file): field \"architectures\" is \(archs ?? []), expected one of \(classes.keys.sorted().joined(separator: ", "))")
            }
            arch = hit
        }
        if let modelType {
            guard let t = types[modelType] else {
                throw EngineError(.unsupported, "\(file): field \"model_type\" is \"\(modelType)\", expected one of \(types.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
            }
            if let arch, arch != t {
                throw EngineError.format(file, "field \"model_type\" \"\(modelType)\" contradicts \"architectures\" \(archs ?? [])")
            }
            arch = t
        } else if archs == nil {
            throw EngineError.format(file, "missing field \"model_type\" (and no \"architectures\")")
        }
        let family = arch ?? .llama
        let wantAct = family == .gemma3 ? FFNActivation.geluTanh : .silu
        for key in ["hidden_act", "hidden_activation"] {
            if let act = c[key], act != .null, act.string != wantAct.rawValue {
                throw EngineError(.unsupported, "\(file): field \"\(key)\" must be \"\(wantAct.rawValue)\" for \(family.rawValue)")
            }
        }
        for key in ["attn_logit_softcapping", "final_logit_softcapping"] where c[key] != nil && c[key] != .null {
            throw EngineError(.unsupported, "\(file): field \"\(key)\" is set; logit soft-capping is not supported")
        }
        if c["use_bidirectional_attention"]?.bool == true {
            throw EngineError(.unsupported, "\(file): field \"use_bidirectional_attention\" is true; tune implements causal attention only")
        }
        // Llama's attention_bias also puts a bias on o_proj; Qwen2's q/k/v biases are implicit.
        for key in ["attention_bias", "mlp_bias"] where c[key]?.bool == true {
            throw EngineError(.unsupported, "\(file): field \"\(key)\" is true; biases are not supported for \(modelType ?? "llama")")
        }
        // RoPE: top-level rope_theta (transformers 4) or rope_parameters (transformers 5); either may hold
        // one set of parameters or one per layer type (Gemma 3: full_attention / sliding_attention).
        var ropeTheta = 10000.0, localTheta: Double?, scaling: RopeScaling?
        func rope(_ rp: [String: HFJSON], _ key: String, theta: inout Double) throws -> RopeScaling? {
            theta = try number(rp["rope_theta"], "\(key).rope_theta", default: theta)
            if let f = rp["partial_rotary_factor"], f != .null, f.double != 1 {
                throw EngineError(.unsupported, "\(file): field \"\(key).partial_rotary_factor\" is \(f.double.map { "\($0)" } ?? "not a number"); partial rotary embeddings are not supported")
            }
            let type = (rp["rope_type"] ?? rp["type"])?.string ?? "default"
            switch type {
            case "default": return nil
            case "linear":
                return RopeScaling(kind: .linear, factor: Float(try number(rp["factor"], "\(key).factor", default: 1)))
            case "llama3":
                return RopeScaling(kind: .llama3, factor: Float(try number(rp["factor"], "\(key).factor", default: 1)),
                                   lowFreqFactor: Float(try number(rp["low_freq_factor"], "\(key).low_freq_factor", default: 1)),
                                   highFreqFactor: Float(try number(rp["high_freq_factor"], "\(key).high_freq_factor", default: 4)),
                                   originalContextLength: Int(try number(rp["original_max_position_embeddings"],
                                                                         "\(key).original_max_position_embeddings", default: 8192)))
            default:
                throw EngineError(.unsupported, "\(file): field \"\(key)\" has rope_type \"\(type)\"; supported: default, linear, llama3")
            }
        }
        ropeTheta = try number(c["rope_theta"], "rope_theta", default: ropeTheta)
        if let f = c["partial_rotary_factor"], f != .null, f.double != 1 {
            throw EngineError(.unsupported, "\(file): field \"partial_rotary_factor\" is not 1; partial rotary embeddings are not supported")
        }
        if let v = c["rope_local_base_freq"], v != .null { localTheta = try number(v, "rope_local_base_freq", default: 10000) }
        for key in ["rope_scaling", "rope_parameters"] {
            guard let v = c[key], v != .null else { continue }
            guard case .object(let rp) = v else { throw bad(key, "an object or null") }
            if case .object(let full)? = rp["full_attention"] {
                scaling = try rope(full, "\(key).full_attention", theta: &ropeTheta) ?? scaling
                if case .object(let local)? = rp["sliding_attention"] {
                    var t = localTheta ?? 10000
                    if try rope(local, "\(key).sliding_attention", theta: &t) != nil {
                        throw EngineError(.unsupported, "\(file): field \"\(key).sliding_attention\" scales RoPE; only the global layers' scaling is supported")
                    }
                    localTheta = t
                }
            } else {
                scaling = try rope(rp, key, theta: &ropeTheta) ?? scaling
            }
        }
        let hidden = try int("hidden_size")
        let heads = try int("num_attention_heads")
        let kvHeads = try int("num_key_value_heads", default: heads)
        guard heads % kvHeads == 0 else { throw bad("num_key_value_heads", "a divisor of num_attention_heads (\(heads))") }
        guard c["head_dim"] != nil && c["head_dim"] != .null || hidden % heads == 0 else {
            throw bad("hidden_size", "a multiple of num_attention_heads when head_dim is absent")
        }
        var context = try int("max_position_embeddings", default: 2048)
        let layers = try int("num_hidden_layers")
        var window = 0, sliding: [Bool] = []
        if family == .gemma3 {   // per-layer sliding windows, as transformers' Gemma3 does them
            window = try int("sliding_window", default: 4096)
            if case .array(let types)? = c["layer_types"] {
                guard types.count == layers, types.allSatisfy({ $0.string == "sliding_attention" || $0.string == "full_attention" }) else {
                    throw bad("layer_types", "\(layers) entries of \"sliding_attention\" or \"full_attention\"")
                }
                sliding = types.map { $0.string == "sliding_attention" }
            } else {
                let period = c["sliding_window_pattern"]?.int ?? c["_sliding_window_pattern"]?.int ?? 6
                sliding = LlamaConfig.slidingPattern(layers: layers, period: period)
            }
        } else if family == .phi3 {   // transformers' Phi3Attention slides on every layer when set
            if let sw = c["sliding_window"], sw != .null {
                guard let w = sw.int, w > 0 else { throw bad("sliding_window", "a positive integer or null") }
                window = w
                sliding = Array(repeating: true, count: layers)
            }
        } else {
            // Qwen2/Qwen3 carry sliding_window but apply it only with use_sliding_window.
            let windowed = (family != .qwen2 && family != .qwen3) || c["use_sliding_window"]?.bool == true
            if windowed, let sw = c["sliding_window"], sw != .null {   // exact only within the window
                guard let w = sw.int, w > 0 else { throw bad("sliding_window", "a positive integer or null") }
                context = min(context, w)
            }
        }
        var queryScalar: Float?
        if family == .gemma3, let v = c["query_pre_attn_scalar"], v != .null {
            queryScalar = Float(try number(v, "query_pre_attn_scalar", default: 1))
        }
        var tied = family == .gemma3   // transformers' default for Gemma3TextConfig
        if let t = c["tie_word_embeddings"], t != .null {
            guard let b = t.bool else { throw bad("tie_word_embeddings", "true or false") }
            tied = b
        }
        return LlamaConfig(
            vocabSize: try int("vocab_size"), hiddenSize: hidden, intermediateSize: try int("intermediate_size"),
            numLayers: layers, numHeads: heads, numKVHeads: kvHeads,
            headDim: try int("head_dim", default: hidden / heads), ropeTheta: Float(ropeTheta),
            rmsNormEps: Float(try number(c["rms_norm_eps"], "rms_norm_eps", default: 1e-6)),
            contextLength: context, tiedEmbeddings: tied, architecture: family,
            slidingWindow: window, slidingLayers: sliding,
            ropeLocalTheta: family == .gemma3 ? Float(localTheta ?? 10000) : nil, ropeScaling: scaling,
            queryPreAttnScalar: queryScalar == Float(try int("head_dim", default: hidden / heads)) ? nil : queryScalar)
    }

    /// Writes a config.json that `transformers` loads as the family's `*ForCausalLM` (creating `dir` if needed).
    /// `mistral` writes a llama-family config as `MistralForCausalLM` (model_type "mistral": the same math,
    /// `sliding_window` set only when every layer slides, no bias flags), as Mistral's own checkpoints ship.
    public static func writeConfig(_ config: LlamaConfig, to dir: String, mistral: Bool = false) throws {
        guard config.ropeTheta.isFinite, config.rmsNormEps.isFinite else {
            throw EngineError(.invalidArgument, "writeConfig: rope_theta and rms_norm_eps must be finite")
        }
        if mistral, config.architecture != .llama {
            throw EngineError(.invalidArgument, "writeConfig: mistral is a llama-family layout, not \(config.architecture.rawValue)")
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw EngineError(.io, "\(dir): cannot create directory (\(error.localizedDescription))")
        }
        let c = config, theta = "\(c.ropeTheta)", eps = "\(c.rmsNormEps)"
        var f: [String: String] = [
            "architectures": "[\"\(c.architecture.hfClass)\"]",
            "attention_dropout": "0.0",
            "head_dim": "\(c.headDim)",
            "hidden_size": "\(c.hiddenSize)",
            "initializer_range": "0.02",
            "intermediate_size": "\(c.intermediateSize)",
            "max_position_embeddings": "\(c.contextLength)",
            "num_attention_heads": "\(c.numHeads)",
            "num_hidden_layers": "\(c.numLayers)",
            "num_key_value_heads": "\(c.numKVHeads)",
            "rms_norm_eps": eps,
            "tie_word_embeddings": c.tiedEmbeddings ? "true" : "false",
            "torch_dtype": "\"float32\"",
            "use_cache": "true",
            "vocab_size": "\(c.vocabSize)",
        ]
        func rope(_ theta: Float, _ scaling: RopeScaling?) -> String {
            guard let s = scaling else { return "{\"rope_theta\": \(theta), \"rope_type\": \"default\"}" }
            var r = "{\"factor\": \(s.factor), \"rope_theta\": \(theta), \"rope_type\": \"\(s.kind.rawValue)\""
            if s.kind == .llama3 {
                r += ", \"high_freq_factor\": \(s.highFreqFactor), \"low_freq_factor\": \(s.lowFreqFactor), \"original_max_position_embeddings\": \(s.originalContextLength)"
            }
            return r + "}"
        }
        switch c.architecture {
        case .llama where mistral:
            f["architectures"] = "[\"MistralForCausalLM\"]"
            f["hidden_act"] = "\"silu\""
            f["model_type"] = "\"mistral\""
            f["rope_parameters"] = rope(c.ropeTheta, c.ropeScaling)
            f["rope_theta"] = theta
            f["sliding_window"] = c.slidingWindow > 0 && c.slidingLayers.allSatisfy({ $0 }) ? "\(c.slidingWindow)" : "null"
        case .llama:
            f["attention_bias"] = "false"
            f["hidden_act"] = "\"silu\""
            f["mlp_bias"] = "false"
            f["model_type"] = "\"llama\""
            f["pretraining_tp"] = "1"
            f["rope_parameters"] = rope(c.ropeTheta, c.ropeScaling)
            f["rope_theta"] = theta
        case .phi3:
            f["hidden_act"] = "\"silu\""
            f["model_type"] = "\"phi3\""
            f["bos_token_id"] = "1"; f["eos_token_id"] = "2"; f["pad_token_id"] = "null"   // Phi3Config defaults assume 32k vocab
            f["original_max_position_embeddings"] = "\(c.contextLength)"
            f["rope_parameters"] = "{\"partial_rotary_factor\": 1.0, \"rope_theta\": \(theta), \"rope_type\": \"default\"}"
            f["sliding_window"] = c.slidingWindow > 0 && c.slidingLayers.allSatisfy({ $0 }) ? "\(c.slidingWindow)" : "null"
        case .qwen2, .qwen3:
            if c.architecture == .qwen2, c.headDim * c.numHeads != c.hiddenSize {
                throw EngineError(.invalidArgument, "writeConfig: qwen2 requires head_dim × heads = hidden_size")
            }
            f["hidden_act"] = "\"silu\""
            f["max_window_layers"] = "\(c.numLayers)"
            f["model_type"] = "\"\(c.architecture.rawValue)\""
            f["rope_scaling"] = "null"
            f["rope_theta"] = theta
            f["sliding_window"] = "null"
            f["use_sliding_window"] = "false"
            if c.architecture == .qwen3 { f["attention_bias"] = "false" }
        case .gemma3:
            f["attention_bias"] = "false"
            f["attn_logit_softcapping"] = "null"
            f["final_logit_softcapping"] = "null"
            f["hidden_activation"] = "\"gelu_pytorch_tanh\""
            f["layer_types"] = "[" + (0..<c.numLayers).map { c.isSliding(layer: $0) ? "\"sliding_attention\"" : "\"full_attention\"" }
                .joined(separator: ", ") + "]"
            f["model_type"] = "\"gemma3_text\""
            f["query_pre_attn_scalar"] = "\(c.queryPreAttnScalar.map { Int($0) } ?? c.headDim)"
            f["rope_parameters"] = "{\"full_attention\": \(rope(c.ropeTheta, c.ropeScaling)), \"sliding_attention\": \(rope(c.ropeLocalTheta ?? c.ropeTheta, nil))}"
            f["sliding_window"] = "\(max(c.slidingWindow, 1))"
        }
        if c.architecture != .llama, c.architecture != .gemma3, c.ropeScaling != nil {
            throw EngineError(.invalidArgument, "writeConfig: rope scaling is written for llama and gemma3 only")
        }
        let fields = f.sorted { $0.key < $1.key }
        let body = fields.map { "  \(hfJSONString($0.0)): \($0.1)" }.joined(separator: ",\n")
        let path = URL(fileURLWithPath: dir).appendingPathComponent("config.json").path
        try HFAtomicWriter.write(path: path, chunks: [Array("{\n\(body)\n}\n".utf8)])
    }
}

// MARK: - JSON value

/// A parsed JSON value (strict: numbers, bools and strings keep their JSON type).
enum HFJSON: Decodable, Equatable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([HFJSON]), object([String: HFJSON])

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([HFJSON].self) { self = .array(a) }
        else { self = .object(try c.decode([String: HFJSON].self)) }
    }

    /// Reads and parses a JSON file; one-line EngineError on failure.
    static func load(_ path: String) throws -> HFJSON {
        guard let data = FileManager.default.contents(atPath: path) else { throw EngineError(.io, "\(path): cannot read") }
        guard let v = try? JSONDecoder().decode(HFJSON.self, from: data) else { throw EngineError.format(path, "not valid JSON") }
        return v
    }

    var string: String? { if case .string(let s) = self { s } else { nil } }
    var bool: Bool? { if case .bool(let b) = self { b } else { nil } }
    var array: [HFJSON]? { if case .array(let a) = self { a } else { nil } }
    /// Integer value; a float with an exact integer value (e.g. `2.0`) also counts.
    var int: Int? {
        switch self {
        case .int(let i): i
        case .double(let d): d.rounded() == d && abs(d) < 9.0e15 ? Int(d) : nil
        default: nil
        }
    }
    var double: Double? {
        switch self {
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    /// An array of integers, or nil if this is not one.
    var intArray: [Int]? {
        guard let a = array else { return nil }
        var out: [Int] = []
        for v in a { guard let i = v.int else { return nil }; out.append(i) }
        return out
    }
}

/// JSON string literal for `s` (quotes, backslash and control characters escaped).
func hfJSONString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where u.value < 0x20:
            let hex = String(u.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

// MARK: - File helpers

/// A read-only mmap of a whole file. `take()` hands the mapping to the caller (who must munmap it).
final class HFMappedFile {
    let size: Int
    private var base: UnsafeRawPointer?

    init(path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw EngineError(.io, "\(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw EngineError(.io, "\(path): cannot stat (\(String(cString: strerror(errno))))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw EngineError(.io, "\(path): not a regular file") }
        size = Int(st.st_size)
        if size == 0 { base = nil; return }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw EngineError(.io, "\(path): mmap failed (\(String(cString: strerror(errno))))")
        }
        base = UnsafeRawPointer(p)
    }

    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), size) } }

    /// The mapped bytes (empty for an empty file).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: base == nil ? 0 : size) }

    /// Transfers ownership of the mapping; this object will no longer unmap it.
    func take() -> UnsafeRawPointer? {
        defer { base = nil }
        return base
    }
}

/// Writes a file atomically: temp file in the destination directory, fsync, rename over the target.
enum HFAtomicWriter {
    static func write(path: String, chunks: [[UInt8]]) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw EngineError(.io, "\(path): cannot create temp file (\(String(cString: strerror(errno))))") }
        var ok = false
        defer { if !ok { close(fd); unlink(tmp) } }
        for chunk in chunks {
            try chunk.withUnsafeBytes { buf in
                var off = 0
                while off < buf.count {
                    let n = hfPosixWrite(fd, buf.baseAddress! + off, buf.count - off)
                    if n < 0 && errno == EINTR { continue }
                    guard n > 0 else { throw EngineError(.io, "\(path): write failed (\(String(cString: strerror(errno))))") }
                    off += n
                }
            }
        }
        guard fsync(fd) == 0 else { throw EngineError(.io, "\(path): fsync failed (\(String(cString: strerror(errno))))") }
        ok = true
        close(fd)
        guard rename(tmp, path) == 0 else {
            let msg = String(cString: strerror(errno))
            unlink(tmp)
            throw EngineError(.io, "\(path): rename failed (\(msg))")
        }
        let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}

/// POSIX write(2), named so it does not clash with Swift's `write` methods in scope.
@inline(__always) private func hfPosixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Darwin)
    Darwin.write(fd, p, n)
    #else
    Glibc.write(fd, p, n)
    #endif
}
