// HFTokenizerFiles — the Hugging Face tokenizer files of a GGUF model (tokenizer.json,
// tokenizer_config.json with the chat template, special_tokens_map.json, generation_config.json), so an HF
// directory exported from a GGUF base loads in transformers and vLLM as the model itself would.
//
// Byte-level BPE (`tokenizer.ggml.model = gpt2`) with the pre-tokenizers tune implements: the vocabulary and
// merges as they are in the GGUF, control and user-defined tokens as added tokens, and the pre-tokenizer HF
// uses for that `tokenizer.ggml.pre` (GPT-2 ByteLevel regex, with Digits(individual_digits) for
// SmolLM/StarCoder; the Llama-3 and Qwen2 Split regexes).
// SentencePiece BPE (`tokenizer.ggml.model = llama` without a space prefix: Gemma 3) in the form HF's own
// Gemma tokenizer.json has: BPE with byte_fallback and fuse_unk, normalizer Replace(" " → "▁"), decoder
// Replace("▁" → " ") + ByteFallback + Fuse, and merges made from the vocabulary and its scores as HF's
// SentencePiece converter makes them (every split of a piece into two vocabulary pieces is a merge, ranked by
// the piece's score, then the piece's id, then the two parts' ids), so HF's rank-ordered BPE merges in the
// order llama.cpp's score-ordered one does. Control tokens become special added tokens, user-defined ones
// (Gemma's newline and tab runs) non-special added tokens, both matched on the raw text as llama.cpp cuts them.
// BPETokenizer(tokenizerJSON:) reads both forms back to the same tokenizer (HFExportTests), and transformers'
// own tokenizer agrees id for id (scripts/reference/hf_export_fixtures.py). A SentencePiece GGUF that puts a
// space in front of the text (`tokenizer.ggml.add_space_prefix`, Llama-2, Phi-3) is refused: that form is not
// checked against transformers.

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
        guard model == "gpt2" || model == "llama" else {
            throw EngineError.unsupported("HF tokenizer files from a GGUF: tokenizer.ggml.model '\(model)' is not exported (known: 'gpt2' byte-level BPE, 'llama' SentencePiece BPE) — copy tokenizer.json from the original HF model")
        }
        let sentencePiece = model == "llama"
        let pre = meta["tokenizer.ggml.pre"]?.stringValue ?? "default"
        if sentencePiece {
            guard pre == "default" else {
                throw EngineError.unsupported("HF tokenizer files: tokenizer.ggml.pre '\(pre)' with tokenizer.ggml.model 'llama' has no tokenizer.json form tune writes (SentencePiece runs without a pre-tokenizer)")
            }
            // llama.cpp's default for SentencePiece is a space prefix; Gemma 3 turns it off.
            guard meta["tokenizer.ggml.add_space_prefix"]?.boolValue == false else {
                throw EngineError.unsupported("HF tokenizer files: a SentencePiece GGUF with tokenizer.ggml.add_space_prefix true (or absent: llama.cpp's default) is not exported; only the form without a dummy prefix (Gemma 3) is checked against transformers — copy tokenizer.json from the original HF model")
            }
        }
        let preTokenizer = try sentencePiece ? PreTokenizer(splitDigits: false, pattern: .gpt2) : PreTokenizer.gguf(pre)
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
        // SentencePiece GGUFs get llama.cpp's defaults (BOS 1, EOS 2, unknown 0, add_bos) when a key is absent.
        func id(_ key: String, _ spmDefault: Int? = nil) -> Int? {
            (meta[key]?.intValue ?? (sentencePiece ? spmDefault : nil)).flatMap { $0 >= 0 && $0 < tokens.count ? $0 : nil }
        }
        let bos = id("tokenizer.ggml.bos_token_id", 1), eos = id("tokenizer.ggml.eos_token_id", 2)
        let unk = id("tokenizer.ggml.unknown_token_id", 0), pad = id("tokenizer.ggml.padding_token_id")
        let addBOS = (meta["tokenizer.ggml.add_bos_token"]?.boolValue ?? sentencePiece) && bos != nil
        let addEOS = (meta["tokenizer.ggml.add_eos_token"]?.boolValue ?? false) && eos != nil

        // Added tokens: control (3) → special; user-defined (4) → not special (llama.cpp's token types). SentencePiece
        // ones are matched on the raw text (normalized false), as llama.cpp cuts them out before escaping spaces.
        var added: [OrderedJSON] = [], addedDecoder: [(String, OrderedJSON)] = []
        for (i, t) in types.enumerated() where t == 3 || t == 4 {
            let fields: [(String, OrderedJSON)] = [("content", .string(tokens[i])), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                                                   ("rstrip", .bool(false)), ("normalized", .bool(t == 4 && !sentencePiece)), ("special", .bool(t == 3))]
            added.append(.object([("id", .int(i))] + fields))
            addedDecoder.append((String(i), .object(fields)))
        }
        // The vocabulary in id order, as HF files keep it (a first duplicate wins, as in the GGUF reader). Strings
        // are compared by their bytes: Swift's == is canonical equivalence ("য়" U+09DF == "য়" U+09AF U+09BC), and
        // Gemma's vocabulary holds both spellings as different tokens.
        var seen = Set<[UInt8]>()
        let vocab: [(String, OrderedJSON)] = tokens.enumerated().compactMap { i, t in seen.insert(Array(t.utf8)).inserted ? (t, .int(i)) : nil }

        func byteLevel(_ prefix: Bool, _ trim: Bool, _ regex: Bool) -> OrderedJSON {
            .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(prefix)), ("trim_offsets", .bool(trim)), ("use_regex", .bool(regex))])
        }
        let preNode: OrderedJSON
        if sentencePiece {
            preNode = .null
        } else if let regex = splitRegex[preTokenizer.pattern] {
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
        var postNode: OrderedJSON = sentencePiece ? .null : byteLevel(true, false, true)
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
            let template = OrderedJSON.object([
                ("type", .string("TemplateProcessing")), ("single", .array(single)), ("pair", .array(pair)), ("special_tokens", .object(specials)),
            ])
            postNode = sentencePiece ? template : .object([("type", .string("Sequence")), ("processors", .array([postNode, template]))])
        }
        let normalizerNode: OrderedJSON, decoderNode: OrderedJSON, mergesNode: OrderedJSON
        if sentencePiece {
            func replace(_ from: String, _ to: String) -> OrderedJSON {
                .object([("type", .string("Replace")), ("pattern", .object([("String", .string(from))])), ("content", .string(to))])
            }
            normalizerNode = replace(" ", "\u{2581}")
            decoderNode = .object([("type", .string("Sequence")), ("decoders", .array([
                replace("\u{2581}", " "), .object([("type", .string("ByteFallback"))]), .object([("type", .string("Fuse"))]),
            ]))])
            let scores = try sentencePieceScores(meta, count: tokens.count)
            mergesNode = .array(sentencePieceMerges(tokens: tokens, scores: scores).map { .array([.string($0.0), .string($0.1)]) })
        } else {
            normalizerNode = .null
            decoderNode = byteLevel(true, true, true)
            mergesNode = .array(merges.map { .string($0) })
        }
        let tokenizer = OrderedJSON.object([
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(added)),
            ("normalizer", normalizerNode), ("pre_tokenizer", preNode), ("post_processor", postNode), ("decoder", decoderNode),
            ("model", .object([
                ("type", .string("BPE")), ("dropout", .null), ("unk_token", unk.map { .string(tokens[$0]) } ?? .null),
                ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null), ("fuse_unk", .bool(sentencePiece)),
                ("byte_fallback", .bool(sentencePiece)), ("ignore_merges", .bool(preTokenizer.pattern == .llama3 && !sentencePiece)),
                ("vocab", .object(vocab)), ("merges", mergesNode),
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

    /// `tokenizer.ggml.scores`, one number per token.
    static func sentencePieceScores(_ meta: [String: GGUFValue], count: Int) throws -> [Float] {
        let source = "GGUF tokenizer metadata"
        guard let arr = meta["tokenizer.ggml.scores"]?.arrayValue, arr.count >= count else {
            throw EngineError.format(source, "tokenizer.ggml.scores must be a number array of \(count) entries (SentencePiece merges are ranked by them)")
        }
        return try (0..<count).map { i in
            guard let v = arr[i].doubleValue else { throw EngineError.format(source, "tokenizer.ggml.scores[\(i)] is not a number") }
            return Float(v)
        }
    }

    /// SentencePiece merges in rank order: for every piece, each split into two pieces that are both in the
    /// vocabulary (by Unicode scalar, as Python slices) is a merge; ranked by the merged piece's score (highest
    /// first), then its id, then the left and right pieces' ids. llama.cpp merges the adjacent pair whose joined
    /// text is the highest-scoring piece; HF's BPE merges the lowest-ranked pair: with this order they agree.
    static func sentencePieceMerges(tokens: [String], scores: [Float]) -> [(String, String)] {
        // By UTF-8 bytes, not String ==, which would take canonically equivalent pieces for one.
        let bytes = tokens.map { Array($0.utf8) }
        var ids: [[UInt8]: Int] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, b) in bytes.enumerated() where ids[b] == nil { ids[b] = i }
        var ranked: [(piece: Int, left: Int, right: Int)] = []
        for (i, b) in bytes.enumerated() where ids[b] == i {
            // Split points at scalar boundaries (UTF-8 lead bytes), as Python slices a str.
            for k in 1..<max(b.count, 1) where b[k] & 0xC0 != 0x80 {
                if let l = ids[Array(b[..<k])], let r = ids[Array(b[k...])] { ranked.append((i, l, r)) }
            }
        }
        ranked.sort { a, b in
            if scores[a.piece] != scores[b.piece] { return scores[a.piece] > scores[b.piece] }
            if a.piece != b.piece { return a.piece < b.piece }
            return a.left != b.left ? a.left < b.left : a.right < b.right
        }
        return ranked.map { (tokens[$0.left], tokens[$0.right]) }
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
