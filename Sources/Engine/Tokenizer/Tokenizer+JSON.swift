// Tokenizer+JSON — builds a BPETokenizer from an HF `tokenizer.json` (+ optional tokenizer_config.json)
// for byte-level BPE models (SmolLM-, GPT-2- and Llama-3-style files).

import Foundation

extension BPETokenizer {
    /// Builds the tokenizer from HF `tokenizer.json`. Supported: model.type "BPE" (byte-level, no
    /// byte_fallback), merges as "a b" strings or ["a", "b"] pairs, added_tokens, normalizer null, and
    /// pre_tokenizer ByteLevel(use_regex) / Sequence[Digits(individual_digits), ByteLevel] /
    /// Sequence[Split(GPT-2 or Llama-3 regex), ByteLevel(use_regex=false)]. The post_processor is only
    /// read for a leading BOS. `tokenizerConfigJSON` (tokenizer_config.json) supplies bos/eos tokens,
    /// add_bos_token and chat_template when given.
    public init(tokenizerJSON: Data, tokenizerConfigJSON: Data? = nil) throws {
        let file = "tokenizer.json"
        guard let root = try? JSONSerialization.jsonObject(with: tokenizerJSON) as? [String: Any] else {
            throw EngineError.format(file, "not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw EngineError.format(file, "missing 'model'") }
        let type = model["type"] as? String ?? "BPE"
        guard type == "BPE" else { throw EngineError.unsupported("\(file): model.type '\(type)' is not supported; only 'BPE' is") }
        if model["byte_fallback"] as? Bool == true {
            throw EngineError.unsupported(
                "\(file): byte_fallback BPE (SentencePiece-style) is not supported from tokenizer.json; use the model's GGUF (tokenizer.ggml.model 'llama')")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw EngineError.unsupported("\(file): model.\(key) '\(s)' is not supported") }
        }
        if let normalizer = root["normalizer"] as? [String: Any] {
            throw EngineError.unsupported("\(file): normalizer '\(normalizer["type"] as? String ?? "?")' is not supported; byte-level BPE files have none")
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw EngineError.format(file, "missing model.vocab") }

        // Vocab + added tokens → dense id table.
        var entries: [(String, Int)] = []
        entries.reserveCapacity(vocab.count)
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue else { throw EngineError.format(file, "vocab entry '\(token)' has no integer id") }
            entries.append((token, id))
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

        let preTokenizer = try Self.jsonPreTokenizer(root["pre_tokenizer"], file)
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

        try self.init(
            tokens: tokens.map { $0! }, merges: merges, added: added, preTokenizer: preTokenizer,
            ignoreMerges: model["ignore_merges"] as? Bool ?? false, bosID: bosID, eosID: eosID,
            unknownID: unknownID, paddingID: nil, addBOS: addBOS, chatTemplate: template)
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
