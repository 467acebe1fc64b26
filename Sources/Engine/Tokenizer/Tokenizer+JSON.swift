// Tokenizer+JSON — builds a BPETokenizer from an HF `tokenizer.json` (+ optional tokenizer_config.json)
// for byte-level BPE models (SmolLM-, GPT-2- and Llama-3-style files) and SentencePiece-style BPE with
// byte fallback in Gemma's form (normalizer Replace(" " → "▁"), no dummy prefix), which runs on the
// SentencePiece engine with scores from the merge ranks.

import Foundation

extension BPETokenizer {
    /// Builds the tokenizer from HF `tokenizer.json`. Supported: model.type "BPE" (byte-level, no
    /// byte_fallback), merges as "a b" strings or ["a", "b"] pairs, added_tokens, normalizer null, and
    /// pre_tokenizer ByteLevel(use_regex) / Sequence[Digits(individual_digits), ByteLevel] /
    /// Sequence[Split(GPT-2 or Llama-3 regex), ByteLevel(use_regex=false)]; or BPE with byte_fallback,
    /// normalizer Replace(" " → "▁") and no pre_tokenizer (or Gemma's Split(" ", MergedWithPrevious), a no-op
    /// once spaces are "▁"): Gemma's form. The post_processor is only read for a leading BOS.
    /// `tokenizerConfigJSON` (tokenizer_config.json) supplies bos/eos tokens, add_bos_token and chat_template
    /// when given.
    public init(tokenizerJSON: Data, tokenizerConfigJSON: Data? = nil) throws {
        let file = "tokenizer.json"
        guard let root = try? JSONSerialization.jsonObject(with: tokenizerJSON) as? [String: Any] else {
            throw EngineError.format(file, "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw EngineError.format(file, "missing 'model'") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw EngineError.unsupported("\(file): model.type '\(type)' is not supported; only 'BPE' is") }
        let byteFallback = model["byte_fallback"] as? Bool == true
        if byteFallback {
            try Self.jsonSentencePieceForm(root, file)
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw EngineError.unsupported("\(file): model.\(key) '\(s)' is not supported") }
        }
        if !byteFallback, let normalizer = root["normalizer"] as? [String: Any] {
            throw EngineError.unsupported("\(file): normalizer '\(normalizer["type"] as? String ?? "?")' is not supported; byte-level BPE files have none")
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw EngineError.format(file, "missing model.vocab") }

        // Vocab + added tokens → dense id table. A SentencePiece vocabulary is read from the bytes: a Swift
        // dictionary keys strings by canonical equivalence and folds pieces such as "য়" (U+09DF) and "য়"
        // (U+09AF U+09BC), which Gemma holds as two tokens.
        var entries: [(String, Int)] = []
        entries.reserveCapacity(vocab.count)
        if byteFallback {
            entries = try JSONVocabScanner.vocab(Array(tokenizerJSON), file)
        } else {
            for (token, value) in vocab {
                guard let id = (value as? NSNumber)?.intValue else { throw EngineError.format(file, "vocab entry '\(token)' has no integer id") }
                entries.append((token, id))
            }
        }
        var added: [AddedToken] = []
        for (i, item) in ((root["added_tokens"] as? [[String: Any]]) ?? []).enumerated() {
            guard let id = (item["id"] as? NSNumber)?.intValue, let content = item["content"] as? String,
                  let id32 = Int32(exactly: id) else { throw EngineError.format(file, "added_tokens[\(i)] needs an integer id and a content string") }
            added.append(AddedToken(id: id32, content: content, special: item["special"] as? Bool ?? false))
            entries.append((content, id))
        }
        let size = (entries.map(\.1).max() ?? -1) + 1
        guard size > 0, size <= 1 << 24, entries.allSatisfy({ $0.1 >= 0 }) else {
            throw EngineError.format(file, "vocabulary ids must be in 0..<\(1 << 24)")
        }
        var tokens = [String?](repeating: nil, count: size)
        for (token, id) in entries where tokens[id] == nil { tokens[id] = token }
        if let hole = tokens.firstIndex(where: { $0 == nil }) { throw EngineError.format(file, "no token has id \(hole)") }

        var merges: [(String, String)] = []
        let rawMerges = model["merges"] as? [Any] ?? []
        merges.reserveCapacity(rawMerges.count)
        for (i, m) in rawMerges.enumerated() {
            if let s = m as? String, let space = s.dropFirst().firstIndex(of: " ") {
                merges.append((String(s[..<space]), String(s[s.index(after: space)...])))
            } else if let pair = m as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw EngineError.format(file, "model.merges[\(i)] is neither 'a b' nor [\"a\", \"b\"]")
            }
        }

        let preTokenizer = byteFallback ? PreTokenizer(splitDigits: false, pattern: .gpt2) : try Self.jsonPreTokenizer(root["pre_tokenizer"], file)
        var bosID = Self.jsonLeadingSpecial(root["post_processor"], added)
        var addBOS = bosID != nil
        var eosID: Int32? = nil
        var template: String? = nil
        let unknownID = (model["unk_token"] as? String).flatMap { u in entries.first { $0.0 == u }.map { Int32($0.1) } }

        if let configData = tokenizerConfigJSON {
            guard let config = try? JSONSerialization.jsonObject(with: configData) as? [String: Any] else {
                throw EngineError.format("tokenizer_config.json", "not a JSON object")
            }
            func tokenID(_ key: String) -> Int32? {
                let value = config[key]
                let name = value as? String ?? (value as? [String: Any])?["content"] as? String
                return name.flatMap { n in entries.first { $0.0 == n }.map { Int32($0.1) } }
            }
            bosID = tokenID("bos_token") ?? bosID
            eosID = tokenID("eos_token")
            if let flag = config["add_bos_token"] as? Bool { addBOS = flag && bosID != nil }
            if let s = config["chat_template"] as? String {
                template = s
            } else if let list = config["chat_template"] as? [[String: Any]] {
                template = list.first { $0["name"] as? String == "default" }?["template"] as? String
            }
        }

        if byteFallback {
            // SentencePiece engine: added tokens are control (special) or user-defined pieces, `<0xNN>` are byte
            // pieces, and a piece's score is minus the rank of the first merge that makes it, so merging the
            // highest-scoring adjacent pair is merging the lowest-ranked one; pieces no merge makes rank last.
            let vocabTokens = tokens.map { $0! }
            var types = vocabTokens.map { SentencePieceVocab.byteValue(Array($0.utf8)) != nil
                ? SentencePieceVocab.TokenType.byte.rawValue : SentencePieceVocab.TokenType.normal.rawValue }
            for t in added {
                types[Int(t.id)] = (t.special ? SentencePieceVocab.TokenType.control : .userDefined).rawValue
            }
            // Keyed by UTF-8 bytes: String == is canonical equivalence, and Gemma has canonically equal pieces.
            var toID: [[UInt8]: Int] = [:]
            toID.reserveCapacity(vocabTokens.count)
            for (i, t) in vocabTokens.enumerated() where toID[Array(t.utf8)] == nil { toID[Array(t.utf8)] = i }
            let unranked = -Float(merges.count + 1)
            var scores = [Float](repeating: unranked, count: vocabTokens.count)
            for (rank, (a, b)) in merges.enumerated() {
                if let id = toID[Array(a.utf8) + Array(b.utf8)], scores[id] == unranked { scores[id] = -Float(rank) }
            }
            let vocab = SentencePieceVocab(tokens: vocabTokens, scores: scores, types: types, addSpacePrefix: false,
                                           unknownID: unknownID, rstripSpecials: false)
            try self.init(
                tokens: vocabTokens, merges: [], added: [], preTokenizer: preTokenizer, ignoreMerges: false,
                bosID: bosID, eosID: eosID, unknownID: unknownID, paddingID: nil, addBOS: addBOS, chatTemplate: template,
                sentencePiece: vocab)
            return
        }
        try self.init(
            tokens: tokens.map { $0! }, merges: merges, added: added, preTokenizer: preTokenizer,
            ignoreMerges: model["ignore_merges"] as? Bool ?? false, bosID: bosID, eosID: eosID,
            unknownID: unknownID, paddingID: nil, addBOS: addBOS, chatTemplate: template)
    }

    /// Checks a byte_fallback file is in the SentencePiece form tune runs: normalizer Replace(" " → "▁") and
    /// no pre-tokenizer beyond Gemma's Split(" ", MergedWithPrevious), which has nothing left to split.
    private static func jsonSentencePieceForm(_ root: [String: Any], _ file: String) throws {
        let normalizer = root["normalizer"] as? [String: Any]
        let pattern = normalizer?["pattern"] as? [String: Any]
        guard normalizer?["type"] as? String == "Replace", pattern?["String"] as? String == " ",
              normalizer?["content"] as? String == "\u{2581}" else {
            throw EngineError.unsupported(
                "\(file): byte_fallback BPE is read only in Gemma's form (normalizer Replace \" \" → \"\u{2581}\", no dummy prefix); this file's normalizer is \(normalizer?["type"] as? String ?? "null")")
        }
        if let pre = root["pre_tokenizer"] as? [String: Any] {
            let split = pre["pattern"] as? [String: Any]
            guard pre["type"] as? String == "Split", split?["String"] as? String == " ",
                  pre["behavior"] as? String == "MergedWithPrevious", pre["invert"] as? Bool != true else {
                throw EngineError.unsupported(
                    "\(file): byte_fallback BPE with pre_tokenizer '\(pre["type"] as? String ?? "?")' is not supported (known: none, Split(\" \", MergedWithPrevious))")
            }
        }
    }

    // MARK: - Pre-tokenizer

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2 / Qwen2.5 / Qwen3: Llama-3's with single digits.
    static let qwen2Regex =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Maps the supported HF pre_tokenizer shapes onto `PreTokenizer`.
    private static func jsonPreTokenizer(_ value: Any?, _ file: String) throws -> PreTokenizer {
        guard let node = value as? [String: Any] else {
            throw EngineError.unsupported("\(file): a pre_tokenizer is required (ByteLevel-based); found none")
        }
        let steps = node["type"] as? String == "Sequence" ? (node["pretokenizers"] as? [[String: Any]] ?? []) : [node]
        var splitDigits = false
        var pattern: PreTokenizer.Pattern? = nil
        var sawByteLevel = false
        for step in steps {
            let type = step["type"] as? String ?? "?"
            switch type {
            case "Digits" where step["individual_digits"] as? Bool == true && pattern == nil:
                splitDigits = true
            case "ByteLevel":
                if step["add_prefix_space"] as? Bool == true {
                    throw EngineError.unsupported("\(file): ByteLevel add_prefix_space=true is not supported")
                }
                if step["use_regex"] as? Bool ?? true {
                    guard pattern == nil else { throw EngineError.unsupported("\(file): two word-splitting regexes in pre_tokenizer") }
                    pattern = .gpt2
                }
                sawByteLevel = true
            case "Split":
                let regex = (step["pattern"] as? [String: Any])?["Regex"] as? String
                let behavior = step["behavior"] as? String ?? "Isolated"
                guard behavior == "Isolated", step["invert"] as? Bool != true, pattern == nil else {
                    throw EngineError.unsupported("\(file): Split pre_tokenizer with behavior '\(behavior)' is not supported")
                }
                if regex == llama3Regex { pattern = .llama3 } else if regex == qwen2Regex { pattern = .qwen2 } else if regex == gpt2Regex { pattern = .gpt2 } else {
                    throw EngineError.unsupported("\(file): Split regex \(regex ?? "?") is not one of the known GPT-2 / Llama-3 / Qwen2 patterns")
                }
            default:
                throw EngineError.unsupported("\(file): pre_tokenizer step '\(type)' is not supported (known: ByteLevel, Digits(individual_digits), Split)")
            }
        }
        guard sawByteLevel, let pattern else {
            throw EngineError.unsupported("\(file): pre_tokenizer must contain ByteLevel and a GPT-2 or Llama-3 split")
        }
        return PreTokenizer(splitDigits: splitDigits, pattern: pattern)
    }

    /// The special token a TemplateProcessing post-processor puts before the sequence (BOS), if any.
    private static func jsonLeadingSpecial(_ value: Any?, _ added: [AddedToken]) -> Int32? {
        guard let node = value as? [String: Any] else { return nil }
        if node["type"] as? String == "Sequence" {
            for child in node["processors"] as? [Any] ?? [] {
                if let id = jsonLeadingSpecial(child, added) { return id }
            }
            return nil
        }
        guard node["type"] as? String == "TemplateProcessing",
              let first = (node["single"] as? [[String: Any]])?.first,
              let special = first["SpecialToken"] as? [String: Any], let name = special["id"] as? String else { return nil }
        if let tokens = node["special_tokens"] as? [String: Any], let entry = tokens[name] as? [String: Any],
           let ids = entry["ids"] as? [NSNumber], let id = ids.first.flatMap({ Int32(exactly: $0.intValue) }) {
            return id
        }
        return added.first { $0.content == name }?.id
    }
}

/// Reads `model.vocab` of a tokenizer.json as (token, id) pairs in file order, straight from the JSON bytes.
struct JSONVocabScanner {
    let b: [UInt8]
    var i = 0
    let file: String

    static func vocab(_ bytes: [UInt8], _ file: String) throws -> [(String, Int)] {
        var s = JSONVocabScanner(b: bytes, file: file)
        var out: [(String, Int)] = []
        try s.object { s, key in
            guard key == "model" else { return try s.skipValue() }
            try s.object { s, key in
                guard key == "vocab" else { return try s.skipValue() }
                try s.object { s, token in
                    let start = s.i
                    while s.i < s.b.count, s.b[s.i] == UInt8(ascii: "-") || (s.b[s.i] >= 0x30 && s.b[s.i] <= 0x39) { s.i += 1 }
                    guard let id = Int(String(decoding: s.b[start..<s.i], as: UTF8.self)) else {
                        throw EngineError.format(s.file, "vocab entry '\(token)' has no integer id")
                    }
                    out.append((token, id))
                }
            }
        }
        return out
    }

    private func fail(_ what: String) -> EngineError { EngineError.format(file, "\(what) at byte \(i)") }

    mutating func space() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }

    mutating func expect(_ c: UInt8) throws {
        space()
        guard i < b.count, b[i] == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
        i += 1
    }

    /// `{ "key": value, ... }`, calling `body` with the scanner on each value.
    mutating func object(_ body: (inout JSONVocabScanner, String) throws -> Void) throws {
        try expect(UInt8(ascii: "{"))
        space()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return }
        while true {
            space()
            let key = try string()
            try expect(UInt8(ascii: ":"))
            space()
            try body(&self, key)
            space()
            guard i < b.count else { throw fail("unterminated object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return }
            throw fail("expected ',' or '}'")
        }
    }

    mutating func string() throws -> String {
        guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        var out: [UInt8] = []
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            guard c == UInt8(ascii: "\\") else { out.append(c); i += 1; continue }
            guard i + 1 < b.count else { break }
            let e = b[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                var v = try hex4(i)
                i += 4
                if v >= 0xD800 && v < 0xDC00, i + 6 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") {
                    let lo = try hex4(i + 2)
                    if lo >= 0xDC00 && lo < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00); i += 6 }
                }
                out.append(contentsOf: Array(String(Unicode.Scalar(v).map(Character.init) ?? "\u{FFFD}").utf8))
            default: out.append(e)   // \" \\ \/
            }
        }
        throw fail("unterminated string")
    }

    private func hex4(_ at: Int) throws -> UInt32 {
        guard at + 4 <= b.count, let v = UInt32(String(decoding: b[at..<(at + 4)], as: UTF8.self), radix: 16) else { throw fail("bad \\u escape") }
        return v
    }

    mutating func skipValue() throws {
        space()
        guard i < b.count else { throw fail("expected a value") }
        switch b[i] {
        case UInt8(ascii: "\""): _ = try string()
        case UInt8(ascii: "{"): try object { s, _ in try s.skipValue() }
        case UInt8(ascii: "["):
            i += 1
            space()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return }
            while true {
                try skipValue()
                space()
                guard i < b.count else { throw fail("unterminated array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return }
                throw fail("expected ',' or ']'")
            }
        default:
            while i < b.count, !",}] \n\r\t".utf8.contains(b[i]) { i += 1 }
        }
    }
}
