// HFTokenizerFiles — the Hugging Face tokenizer files of a GGUF model (tokenizer.json,
// tokenizer_config.json with the chat template, special_tokens_map.json, generation_config.json), so an HF
// directory exported from a GGUF base loads in transformers and vLLM as the model itself would.
//
// Byte-level BPE (`tokenizer.ggml.model = gpt2`) with the pre-tokenizers tune implements: the vocabulary and
// merges as they are in the GGUF, control and user-defined tokens as added tokens, and the pre-tokenizer HF
// uses for that `tokenizer.ggml.pre` (GPT-2 ByteLevel regex, with Digits(individual_digits) for
// SmolLM/StarCoder; the Llama-3 and Qwen2 Split regexes). BPETokenizer(tokenizerJSON:) reads the result back
// to the same tokenizer (HFTokenizerFilesTests), and transformers' own tokenizer agrees id for id
// (scripts/reference/hf_export_fixtures.py). SentencePiece GGUFs (`llama`: Gemma, Llama-2, Phi-3) store
// scores, not merges; HF's tokenizer.json needs merges, so they are refused rather than approximated.

import Foundation

public enum HFTokenizerFiles {
    /// HF `Split` regexes by scanner pattern (the strings the models' own tokenizer.json files carry).
    static let splitRegex: [PreTokenizer.Pattern: String] = [
        .llama3: BPETokenizer.llama3Regex,
        .qwen2: BPETokenizer.qwen2Regex,
    ]

    /// The files (name → contents) for the tokenizer in `meta` (GGUF metadata); `contextLength` becomes
    /// `model_max_length`.
    public static func make(ggufMetadata meta: [String: GGUFValue], contextLength: Int) throws -> [String: Data] {
        let source = "GGUF tokenizer metadata"
        guard let model = meta["tokenizer.ggml.model"]?.stringValue else { throw EngineError.format(source, "missing tokenizer.ggml.model") }
        guard model == "gpt2" else {
            throw EngineError.unsupported("HF tokenizer files from a GGUF: tokenizer.ggml.model '\(model)' (SentencePiece) has scores, not the merges tokenizer.json needs; only byte-level BPE ('gpt2') is exported — copy tokenizer.json from the original HF model")
        }
        let pre = meta["tokenizer.ggml.pre"]?.stringValue ?? "default"
        let preTokenizer = try PreTokenizer.gguf(pre)
        guard let arr = meta["tokenizer.ggml.tokens"]?.arrayValue else { throw EngineError.format(source, "missing tokenizer.ggml.tokens") }
        let tokens = try arr.enumerated().map { i, v in
            guard let s = v.stringValue else { throw EngineError.format(source, "tokenizer.ggml.tokens[\(i)] is not a string") }
            return s
        }
        let merges = try (meta["tokenizer.ggml.merges"]?.arrayValue ?? []).enumerated().map { i, v in
            guard let s = v.stringValue else { throw EngineError.format(source, "tokenizer.ggml.merges[\(i)] is not a string") }
            return s
        }
        let types = (meta["tokenizer.ggml.token_type"]?.arrayValue ?? []).map { $0.intValue ?? 1 }
        func id(_ key: String) -> Int? { meta[key]?.intValue.flatMap { $0 >= 0 && $0 < tokens.count ? $0 : nil } }
        let bos = id("tokenizer.ggml.bos_token_id"), eos = id("tokenizer.ggml.eos_token_id")
        let unk = id("tokenizer.ggml.unknown_token_id"), pad = id("tokenizer.ggml.padding_token_id")
        let addBOS = (meta["tokenizer.ggml.add_bos_token"]?.boolValue ?? false) && bos != nil
        let addEOS = (meta["tokenizer.ggml.add_eos_token"]?.boolValue ?? false) && eos != nil

        // Added tokens: control (3) → special; user-defined (4) → not special (llama.cpp's token types).
        var added: [OrderedJSON] = [], addedDecoder: [(String, OrderedJSON)] = []
        for (i, t) in types.enumerated() where t == 3 || t == 4 {
            let fields: [(String, OrderedJSON)] = [("content", .string(tokens[i])), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                                                   ("rstrip", .bool(false)), ("normalized", .bool(t == 4)), ("special", .bool(t == 3))]
            added.append(.object([("id", .int(i))] + fields))
            addedDecoder.append((String(i), .object(fields)))
        }
        // The vocabulary in id order, as HF files keep it (a first duplicate wins, as in the GGUF reader).
        var seen = Set<String>()
        let vocab: [(String, OrderedJSON)] = tokens.enumerated().compactMap { i, t in seen.insert(t).inserted ? (t, .int(i)) : nil }

        func byteLevel(_ prefix: Bool, _ trim: Bool, _ regex: Bool) -> OrderedJSON {
            .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(prefix)), ("trim_offsets", .bool(trim)), ("use_regex", .bool(regex))])
        }
        let preNode: OrderedJSON
        if let regex = splitRegex[preTokenizer.pattern] {
            preNode = .object([("type", .string("Sequence")), ("pretokenizers", .array([
                .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(regex))])),
                         ("behavior", .string("Isolated")), ("invert", .bool(false))]),
                byteLevel(false, false, false),
            ]))])
        } else if preTokenizer.pattern == .gpt2 {
            preNode = preTokenizer.splitDigits
                ? .object([("type", .string("Sequence")), ("pretokenizers", .array([
                    .object([("type", .string("Digits")), ("individual_digits", .bool(true))]), byteLevel(false, true, true)]))])
                : byteLevel(false, true, true)
        } else {
            throw EngineError.unsupported("HF tokenizer files: pre-tokenizer '\(pre)' has no tokenizer.json form tune writes (known: GPT-2, SmolLM, Llama-3, Qwen2)")
        }
        // BOS/EOS the way HF fast tokenizers add them: a TemplateProcessing post-processor.
        var postNode = byteLevel(true, false, true)
        if addBOS || addEOS {
            func special(_ i: Int, _ type: Int) -> OrderedJSON { .object([("SpecialToken", .object([("id", .string(tokens[i])), ("type_id", .int(type))]))]) }
            func seq(_ n: String, _ type: Int) -> OrderedJSON { .object([("Sequence", .object([("id", .string(n)), ("type_id", .int(type))]))]) }
            func entry(_ i: Int) -> (String, OrderedJSON) {
                (tokens[i], .object([("id", .string(tokens[i])), ("ids", .array([.int(i)])), ("tokens", .array([.string(tokens[i])]))]))
            }
            var single: [OrderedJSON] = [], pair: [OrderedJSON] = [], specials: [(String, OrderedJSON)] = []
            if addBOS, let b = bos { single.append(special(b, 0)); pair.append(special(b, 0)); specials.append(entry(b)) }
            single.append(seq("A", 0)); pair.append(seq("A", 0))
            if addEOS, let e = eos { single.append(special(e, 0)); pair.append(special(e, 0)); if e != bos { specials.append(entry(e)) } }
            if addBOS, let b = bos { pair.append(special(b, 1)) }
            pair.append(seq("B", 1))
            if addEOS, let e = eos { pair.append(special(e, 1)) }
            postNode = .object([("type", .string("Sequence")), ("processors", .array([postNode, .object([
                ("type", .string("TemplateProcessing")), ("single", .array(single)), ("pair", .array(pair)), ("special_tokens", .object(specials)),
            ])]))])
        }
        let tokenizer = OrderedJSON.object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
            ("normalizer", .null), ("pre_tokenizer", preNode), ("post_processor", postNode), ("decoder", byteLevel(true, true, true)),
            ("model", .object([
                ("type", .string("BPE")), ("dropout", .null), ("unk_token", unk.map { .string(tokens[$0]) } ?? .null),
                ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null), ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)),
                ("ignore_merges", .bool(preTokenizer.pattern == .llama3)), ("vocab", .object(vocab)), ("merges", .array(merges.map { .string($0) })),
            ])),
        ])

        func name(_ id: Int?) -> OrderedJSON { id.map { .string(tokens[$0]) } ?? .null }
        var config: [(String, OrderedJSON)] = [
            ("add_bos_token", .bool(addBOS)), ("add_eos_token", .bool(addEOS)), ("added_tokens_decoder", .object(addedDecoder)),
            ("bos_token", name(bos)),
        ]
        if let t = meta["tokenizer.chat_template"]?.stringValue { config.append(("chat_template", .string(t))) }
        config += [("clean_up_tokenization_spaces", .bool(false)), ("eos_token", name(eos)), ("model_max_length", .int(contextLength)),
                   ("pad_token", name(pad)), ("tokenizer_class", .string("PreTrainedTokenizerFast")), ("unk_token", name(unk))]
        let specialMap = OrderedJSON.object([("bos_token", bos), ("eos_token", eos), ("pad_token", pad), ("unk_token", unk)].compactMap { k, v in
            v.map { (k, OrderedJSON.string(tokens[$0])) }
        })
        var generation: [(String, OrderedJSON)] = [("_from_model_config", .bool(true))]
        if let bos { generation.append(("bos_token_id", .int(bos))) }
        if let eos { generation.append(("eos_token_id", .int(eos))) }
        if let pad { generation.append(("pad_token_id", .int(pad))) }
        return ["tokenizer.json": tokenizer.data(), "tokenizer_config.json": OrderedJSON.object(config).data(),
                "special_tokens_map.json": specialMap.data(), "generation_config.json": OrderedJSON.object(generation).data()]
    }
}

/// JSON with the key order given: Foundation's `.sortedKeys` is not a total order on some vocabulary
/// strings (two runs wrote Qwen2.5's 151k-entry vocab in different orders), so the files are written here,
/// the same value always the same bytes.
enum OrderedJSON {
    case object([(String, OrderedJSON)])
    case array([OrderedJSON])
    case string(String)
    case int(Int)
    case bool(Bool)
    case null

    /// Two-space indented, one entry per line, a newline at the end.
    func data() -> Data {
        var out = ""
        write(to: &out, indent: "")
        out += "\n"
        return Data(out.utf8)
    }

    private func write(to out: inout String, indent: String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .string(let s): out += hfJSONString(s)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[\n"
            for (n, v) in items.enumerated() {
                out += indent + "  "
                v.write(to: &out, indent: indent + "  ")
                out += n + 1 < items.count ? ",\n" : "\n"
            }
            out += indent + "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
            out += "{\n"
            for (n, (k, v)) in fields.enumerated() {
                out += indent + "  "
                out += hfJSONString(k) + ": "
                v.write(to: &out, indent: indent + "  ")
                out += n + 1 < fields.count ? ",\n" : "\n"
            }
            out += indent + "}"
        }
    }
}
