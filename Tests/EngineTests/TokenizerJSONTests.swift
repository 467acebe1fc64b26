// TokenizerJSONTests — BPETokenizer(tokenizerJSON:): hand-built Llama-3-style files (no model needed)
// and a SmolLM2 tokenizer.json assembled from the GGUF vocab, checked against the parity fixture.

import Engine
import Foundation
import Testing

/// A tiny Llama-3-style tokenizer.json: byte vocab, "a b" string merges, one special token, BOS post-processor.
private func tinyJSON(ignoreMerges: Bool = true, preTokenizer: Any? = nil, normalizer: Any = NSNull(),
                      modelType: String = "BPE") throws -> Data {
    var vocab: [String: Int] = [:]
    for b in 0..<256 { vocab[byteToken(UInt8(b))] = b }
    for (i, t) in ["ab", "abc", "Ġab"].enumerated() { vocab[t] = 256 + i }
    let root: [String: Any] = [
        "added_tokens": [["id": 259, "content": "<|begin_of_text|>", "special": true],
                         ["id": 260, "content": "<|eot_id|>", "special": true]],
        "normalizer": normalizer,
        "pre_tokenizer": preTokenizer ?? [
            "type": "Sequence",
            "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": BPETokenizerJSONPatterns.llama3], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false],
            ],
        ],
        "post_processor": [
            "type": "Sequence",
            "processors": [
                ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
                ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<|begin_of_text|>", "type_id": 0]],
                                                          ["Sequence": ["id": "A", "type_id": 0]]],
                 "special_tokens": ["<|begin_of_text|>": ["id": "<|begin_of_text|>", "ids": [259], "tokens": ["<|begin_of_text|>"]]]],
            ],
        ],
        "model": ["type": modelType, "ignore_merges": ignoreMerges, "byte_fallback": false, "vocab": vocab,
                  "merges": ["a b", ["Ġ", "ab"]]],
    ]
    return try JSONSerialization.data(withJSONObject: root)
}

/// The regexes as they appear in HF files.
enum BPETokenizerJSONPatterns {
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3 =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
}

@Suite struct TokenizerJSONTests {
    @Test func llama3StyleFile() throws {
        let tok = try BPETokenizer(tokenizerJSON: tinyJSON())
        #expect(tok.vocabSize == 261)
        #expect(tok.bosID == 259 && tok.addBOS)
        #expect(tok.isSpecial(260) && !tok.isSpecial(256))
        // ignore_merges: "abc" is in the vocab, so it is taken whole even without an "ab c" merge.
        #expect(tok.encode("abc ab abd").map(tok.token) == ["abc", "Ġab", "Ġab", "d"])
        #expect(tok.encode("<|eot_id|>abc") == [260, 257])
        #expect(tok.decode(tok.encode("x abc\n\n 12345")) == "x abc\n\n 12345")
    }

    @Test func withoutIgnoreMergesUsesMergesOnly() throws {
        let tok = try BPETokenizer(tokenizerJSON: tinyJSON(ignoreMerges: false))
        #expect(tok.encode("abc").map(tok.token) == ["ab", "c"])
        #expect(tok.encode(" abc").map(tok.token) == ["Ġab", "c"])
    }

    @Test func tokenizerConfigSuppliesEOSAndTemplate() throws {
        let config: [String: Any] = ["bos_token": "<|begin_of_text|>", "eos_token": ["content": "<|eot_id|>"],
                                     "add_bos_token": false, "chat_template": "<|start_header_id|>{{ x }}"]
        let tok = try BPETokenizer(tokenizerJSON: tinyJSON(), tokenizerConfigJSON: JSONSerialization.data(withJSONObject: config))
        #expect(tok.eosID == 260 && tok.bosID == 259 && !tok.addBOS)
        #expect(try ChatTemplate.detect(template: tok.chatTemplate).kind == .llama3)
    }

    @Test func unsupportedFilesThrow() throws {
        #expect(throws: EngineError.self) { try BPETokenizer(tokenizerJSON: Data("[]".utf8)) }
        #expect(throws: EngineError.self) { try BPETokenizer(tokenizerJSON: tinyJSON(modelType: "WordPiece")) }
        #expect(throws: EngineError.self) { try BPETokenizer(tokenizerJSON: tinyJSON(normalizer: ["type": "NFC"])) }
        let oddSplit: [String: Any] = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": "\\w+"], "behavior": "Isolated"], ["type": "ByteLevel", "use_regex": false]]]
        #expect(throws: EngineError.self) { try BPETokenizer(tokenizerJSON: tinyJSON(preTokenizer: oddSplit)) }
        #expect(throws: EngineError.self) { try BPETokenizer(tokenizerJSON: tinyJSON(preTokenizer: ["type": "Whitespace"])) }
    }

    @Test(.enabled(if: smolLMAvailable, "models/SmolLM2-135M-Instruct.Q4_1.gguf not present"))
    func smolLMFromJSONMatchesFixture() throws {
        let meta = try GGUFFile(path: smolLMPath).metadata
        let tokens = meta["tokenizer.ggml.tokens"]!.arrayValue!.map { $0.stringValue! }
        let types = meta["tokenizer.ggml.token_type"]!.arrayValue!.map { $0.intValue! }
        var vocab: [String: Int] = [:]
        for (i, t) in tokens.enumerated() { vocab[t] = i }
        let merges = meta["tokenizer.ggml.merges"]!.arrayValue!.map { m -> [String] in
            let parts = m.stringValue!.split(separator: " ", maxSplits: 1)
            return [String(parts[0]), String(parts[1])]
        }
        let added = types.enumerated().filter { $0.element == 3 }.map { i, _ in
            ["id": i, "content": tokens[i], "special": true, "normalized": false] as [String: Any]
        }
        let root: [String: Any] = [
            "added_tokens": added, "normalizer": NSNull(),
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Digits", "individual_digits": true],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]]],
            "post_processor": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true],
            "model": ["type": "BPE", "vocab": vocab, "merges": merges, "ignore_merges": false, "byte_fallback": false],
        ]
        let fixture = try TokenizerFixture.load()
        let config: [String: Any] = ["eos_token": "<|im_end|>", "chat_template": fixture.chat_template]
        let tok = try BPETokenizer(tokenizerJSON: JSONSerialization.data(withJSONObject: root),
                                   tokenizerConfigJSON: JSONSerialization.data(withJSONObject: config))
        #expect(tok.vocabSize == 49152 && tok.eosID == 2 && !tok.addBOS)
        for c in fixture.cases { #expect(tok.encode(c.text) == c.ids, "\(c.text.debugDescription)") }
        #expect(try ChatTemplate.detect(template: tok.chatTemplate).defaultSystemPrompt == ChatTemplate.smolLMSystemPrompt)
    }
}
