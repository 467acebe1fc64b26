// HFTokenizerFilesTests — the SentencePiece tokenizer.json tune writes from a GGUF (HFTokenizerFiles, Gemma's
// byte_fallback BPE form) reads back through BPETokenizer(tokenizerJSON:) to the tokenizer the GGUF itself
// gives, on a small made-up vocabulary (no model needed; the real Gemma-3-270M is checked against transformers
// in HFExportTests); and the forms tune does not write are refused with the GGUF key named.

import Engine
import Foundation
import Testing

@Suite struct HFTokenizerFilesTests {
    /// A SentencePiece GGUF tokenizer in Gemma's shape: control tokens, a user-defined newline, all 256 byte
    /// tokens, and normal pieces whose scores fall with their id (llama.cpp merges the highest score first).
    static func sentencePieceMetadata(addSpacePrefix: Bool? = false) -> [String: GGUFValue] {
        var tokens = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "\n"]
        var types: [Int32] = [3, 3, 3, 3, 3, 3, 4]
        var scores: [Float] = Array(repeating: -1000, count: tokens.count)
        for b in 0..<256 {
            tokens.append(String(format: "<0x%02X>", b))
            types.append(6)
            scores.append(0)
        }
        let pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "a", "b", "c", "é", "ll", "he", "hell", "hello", "▁w", "or", "▁wor",
                      "ld", "▁world", "ab", "bc", "abc", "▁a", "▁abc", "lo", "▁▁"]
        for (i, p) in pieces.enumerated() {
            tokens.append(p)
            types.append(1)
            // Single characters score lowest, as SentencePiece trains them; longer pieces by their position.
            scores.append(p.count == 1 ? -1000 - Float(i) : -Float(i))
        }
        var meta: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("llama"), "tokenizer.ggml.pre": .string("default"),
            "tokenizer.ggml.tokens": .array(elementType: 8, tokens.map { .string($0) }),
            "tokenizer.ggml.scores": .array(elementType: 6, scores.map { .float32($0) }),
            "tokenizer.ggml.token_type": .array(elementType: 5, types.map { .int32($0) }),
            "tokenizer.ggml.bos_token_id": .uint32(2), "tokenizer.ggml.eos_token_id": .uint32(1),
            "tokenizer.ggml.unknown_token_id": .uint32(3), "tokenizer.ggml.padding_token_id": .uint32(0),
            "tokenizer.ggml.add_bos_token": .bool(true), "tokenizer.ggml.add_eos_token": .bool(false),
            "tokenizer.chat_template": .string("{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"),
        ]
        if let addSpacePrefix { meta["tokenizer.ggml.add_space_prefix"] = .bool(addSpacePrefix) }
        return meta
    }

    @Test func sentencePieceTokenizerJSONReadsBackToTheGGUFTokenizer() throws {
        let meta = Self.sentencePieceMetadata()
        let files = try HFTokenizerFiles.make(ggufMetadata: meta, contextLength: 512)
        let json = try #require(files["tokenizer.json"])
        let root = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let model = try #require(root["model"] as? [String: Any])
        #expect(model["byte_fallback"] as? Bool == true && model["fuse_unk"] as? Bool == true)
        #expect((root["normalizer"] as? [String: Any])?["content"] as? String == "▁")
        // Every split of a piece into two pieces is a merge, best score first ("ll" is the best piece); "▁abc" has
        // two ("▁"+"abc", "▁a"+"bc"), "hello" one ("hell"+"o": "hel" and "llo" are no pieces).
        let merges = try #require(model["merges"] as? [[String]])
        #expect(merges.first == ["l", "l"])
        #expect(merges.contains(["▁", "abc"]) && merges.contains(["▁a", "bc"]))
        #expect(merges.firstIndex(of: ["▁", "abc"])! < merges.firstIndex(of: ["▁a", "bc"])!)   // same piece: by the parts' ids
        #expect(!merges.contains(["hel", "lo"]))   // "hel" is no piece

        let own = try BPETokenizer(ggufMetadata: meta)
        let back = try BPETokenizer(tokenizerJSON: json, tokenizerConfigJSON: try #require(files["tokenizer_config.json"]))
        #expect(back.model == .sentencePiece && back.addBOS && back.bosID == 2 && back.eosID == 1)
        for text in ["", "hello world", "hello  world", " abc abc", "abcabc\nhello", "<start_of_turn>hello<end_of_turn>\n",
                     "héllo wörld", "zzz", "hello\n\nworld ", "日本"] {
            #expect(back.encode(text, addSpecial: true) == own.encode(text, addSpecial: true), "\(text.debugDescription)")
            #expect(back.decode(back.encode(text)) == text)
        }
    }

    @Test func sentencePieceWithASpacePrefixIsRefused() throws {
        for flag in [true, nil] as [Bool?] {
            do {
                _ = try HFTokenizerFiles.make(ggufMetadata: Self.sentencePieceMetadata(addSpacePrefix: flag), contextLength: 512)
                Issue.record("add_space_prefix \(String(describing: flag)) accepted")
            } catch let e as EngineError {
                #expect(e.message.contains("tokenizer.ggml.add_space_prefix"), "\(e.message)")
            }
        }
    }
}
