// Tokenizer+GGUF — builds a BPETokenizer from the `tokenizer.*` metadata of a GGUF file.

extension BPETokenizer {
    /// GGUF `tokenizer.ggml.token_type` values (llama.cpp `llama_token_type`).
    enum GGUFTokenType: Int {
        case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`).
    /// Supports `tokenizer.ggml.model` "gpt2" (byte-level BPE) with the pre-tokenizers in
    /// `PreTokenizer.knownGGUFNames`, and "llama" (SentencePiece BPE with byte fallback, as llama.cpp);
    /// any other model or pre-tokenizer throws `.unsupported` naming it.
    public init(ggufMetadata meta: [String: GGUFValue]) throws {
        let source = "GGUF tokenizer metadata"
        guard let model = meta["tokenizer.ggml.model"]?.stringValue else {
            throw EngineError.format(source, "missing tokenizer.ggml.model (string)")
        }
        switch model {
        case "gpt2": break
        case "llama":
            try self.init(sentencePieceGGUF: meta)
            return
        default:
            throw EngineError.unsupported(
                "tokenizer.ggml.model '\(model)' is not supported; supported: 'gpt2' (byte-level BPE), 'llama' (SentencePiece BPE)")
        }
        guard let pre = meta["tokenizer.ggml.pre"]?.stringValue else {
            throw EngineError.unsupported(
                "tokenizer.ggml.pre is missing (llama.cpp's 'default' pre-tokenizer is not supported); expected one of \(PreTokenizer.knownGGUFNames.joined(separator: ", "))")
        }
        let preTokenizer = try PreTokenizer.gguf(pre)

        let tokens = try Self.strings(meta, "tokenizer.ggml.tokens", source)
        let mergeStrings = try Self.strings(meta, "tokenizer.ggml.merges", source)
        let types = try Self.tokenTypes(meta, count: tokens.count, source)

        var merges: [(String, String)] = []
        merges.reserveCapacity(mergeStrings.count)
        for (i, m) in mergeStrings.enumerated() {
            // llama.cpp: split at the first space after the first character.
            let sc = m.unicodeScalars
            guard let second = sc.indices.dropFirst().first, let space = sc[second...].firstIndex(of: " ") else {
                throw EngineError.format(source, "tokenizer.ggml.merges[\(i)] '\(m)' is not 'left right'")
            }
            let left = String(sc[..<space])
            let right = String(sc[sc.index(after: space)...])
            merges.append((left, right))
        }

        var added: [AddedToken] = []
        for (i, t) in types.enumerated() {
            if t == GGUFTokenType.control.rawValue {
                added.append(AddedToken(id: Int32(i), content: tokens[i], special: true))
            } else if t == GGUFTokenType.userDefined.rawValue {
                added.append(AddedToken(id: Int32(i), content: tokens[i], special: false))
            }
        }

        func id(_ key: String) throws -> Int32? {
            guard let v = meta[key] else { return nil }
            guard let i = v.intValue, let i32 = Int32(exactly: i) else { throw EngineError.format(source, "\(key) is not an integer id") }
            return i32
        }
        let bos = try id("tokenizer.ggml.bos_token_id")
        try self.init(
            tokens: tokens, merges: merges, added: added, preTokenizer: preTokenizer,
            ignoreMerges: preTokenizer.pattern == .llama3,
            bosID: bos, eosID: try id("tokenizer.ggml.eos_token_id"),
            unknownID: try id("tokenizer.ggml.unknown_token_id"), paddingID: try id("tokenizer.ggml.padding_token_id"),
            addBOS: meta["tokenizer.ggml.add_bos_token"]?.boolValue ?? false,
            chatTemplate: meta["tokenizer.chat_template"]?.stringValue,
            addEOS: meta["tokenizer.ggml.add_eos_token"]?.boolValue ?? false)
    }

    /// SentencePiece BPE (`tokenizer.ggml.model = llama`) with llama.cpp's defaults: BOS 1, EOS 2, unknown 0,
    /// add_bos true, add_eos false, add_space_prefix true — each overridden by its GGUF key.
    private init(sentencePieceGGUF meta: [String: GGUFValue]) throws {
        let source = "GGUF tokenizer metadata"
        if let pre = meta["tokenizer.ggml.pre"]?.stringValue, pre != "default" {
            throw EngineError.unsupported(
                "tokenizer.ggml.pre '\(pre)' with tokenizer.ggml.model 'llama' is not supported; SentencePiece runs without a pre-tokenizer ('default')")
        }
        let tokens = try Self.strings(meta, "tokenizer.ggml.tokens", source)
        let types = try Self.tokenTypes(meta, count: tokens.count, source)
        var scores = [Float](repeating: 0, count: tokens.count)
        if let raw = meta["tokenizer.ggml.scores"] {
            guard let arr = raw.arrayValue, arr.count >= tokens.count else {
                throw EngineError.format(source, "tokenizer.ggml.scores must be a number array of at least \(tokens.count) entries")
            }
            for i in 0..<tokens.count {
                guard let v = arr[i].doubleValue else { throw EngineError.format(source, "tokenizer.ggml.scores[\(i)] is not a number") }
                scores[i] = Float(v)
            }
        }
        func id(_ key: String, default fallback: Int32?) throws -> Int32? {
            guard let v = meta[key] else { return fallback.flatMap { Int($0) < tokens.count ? $0 : nil } }
            guard let i = v.intValue, let i32 = Int32(exactly: i) else { throw EngineError.format(source, "\(key) is not an integer id") }
            return i32
        }
        func flag(_ key: String, default fallback: Bool) throws -> Bool {
            guard let v = meta[key] else { return fallback }
            guard let b = v.boolValue else { throw EngineError.format(source, "\(key) is not a bool") }
            return b
        }
        let unknownID = try id("tokenizer.ggml.unknown_token_id", default: 0)
        // llama.cpp sets RSTRIP on Phi-3's special tokens by model name.
        let name = (meta["general.name"]?.stringValue ?? "").lowercased()
        let vocab = SentencePieceVocab(
            tokens: tokens, scores: scores, types: types,
            addSpacePrefix: try flag("tokenizer.ggml.add_space_prefix", default: true), unknownID: unknownID,
            rstripSpecials: name.contains("phi-3") || name.contains("phi3"))
        try self.init(
            tokens: tokens, merges: [], added: [], preTokenizer: PreTokenizer(splitDigits: false, pattern: .gpt2),
            ignoreMerges: false,
            bosID: try id("tokenizer.ggml.bos_token_id", default: 1), eosID: try id("tokenizer.ggml.eos_token_id", default: 2),
            unknownID: unknownID, paddingID: try id("tokenizer.ggml.padding_token_id", default: nil),
            addBOS: try flag("tokenizer.ggml.add_bos_token", default: true),
            chatTemplate: meta["tokenizer.chat_template"]?.stringValue,
            addEOS: try flag("tokenizer.ggml.add_eos_token", default: false), sentencePiece: vocab)
    }

    /// `tokenizer.ggml.token_type` (all normal when absent).
    private static func tokenTypes(_ meta: [String: GGUFValue], count: Int, _ source: String) throws -> [Int] {
        var types = [Int](repeating: GGUFTokenType.normal.rawValue, count: count)
        if let raw = meta["tokenizer.ggml.token_type"] {
            guard let arr = raw.arrayValue, arr.count == count else {
                throw EngineError.format(source, "tokenizer.ggml.token_type must be an integer array of \(count) entries")
            }
            for (i, v) in arr.enumerated() {
                guard let t = v.intValue else { throw EngineError.format(source, "tokenizer.ggml.token_type[\(i)] is not an integer") }
                types[i] = t
            }
        }
        return types
    }

    /// A required string-array metadata value.
    private static func strings(_ meta: [String: GGUFValue], _ key: String, _ source: String) throws -> [String] {
        guard let arr = meta[key]?.arrayValue else { throw EngineError.format(source, "missing \(key) (string array)") }
        var out: [String] = []
        out.reserveCapacity(arr.count)
        for (i, v) in arr.enumerated() {
            guard let s = v.stringValue else { throw EngineError.format(source, "\(key)[\(i)] is not a string") }
            out.append(s)
        }
        return out
    }
}
