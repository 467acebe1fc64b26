// TokenizerTests — BPETokenizer: hand-built vocab behaviour (no model needed), error paths,
// and id-for-id parity with HF `tokenizers` on the SmolLM2 fixture (needs the real model).

import Engine
import Foundation
import Testing

// MARK: - Tiny vocab (no model needed)

/// A byte-level vocab: the 256 byte tokens, a few merges and two control tokens.
private func tinyMetadata(pre: String = "smollm", model: String = "gpt2") -> [String: GGUFValue] {
    var tokens = ["<|endoftext|>", "<|im_start|>"]
    for b in 0..<256 { tokens.append(byteToken(UInt8(b))) }
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d", "Ġ Ġ"]
    for m in merges { tokens.append(m.replacingOccurrences(of: " ", with: "")) }
    var types = [Int32](repeating: 1, count: tokens.count)
    types[0] = 3
    types[1] = 3
    func strings(_ a: [String]) -> GGUFValue { .array(elementType: 8, a.map { .string($0) }) }
    return [
        "tokenizer.ggml.model": .string(model), "tokenizer.ggml.pre": .string(pre),
        "tokenizer.ggml.tokens": strings(tokens), "tokenizer.ggml.merges": strings(merges),
        "tokenizer.ggml.token_type": .array(elementType: 5, types.map { .int32($0) }),
        "tokenizer.ggml.bos_token_id": .uint32(1), "tokenizer.ggml.eos_token_id": .uint32(0),
        "tokenizer.ggml.add_bos_token": .bool(false),
    ]
}

/// GPT-2 bytes_to_unicode spelling of one byte.
func byteToken(_ b: UInt8) -> String {
    var printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
    if printable.contains(Int(b)) { return String(UnicodeScalar(b)) }
    printable.sort()
    let rank = (0..<256).filter { !printable.contains($0) }.firstIndex(of: Int(b))!
    return String(UnicodeScalar(UInt32(256 + rank))!)
}

@Suite struct TokenizerTinyTests {
    let tok = try! BPETokenizer(ggufMetadata: tinyMetadata())

    @Test func mergesFollowRank() {
        #expect(tok.encode("hello world").map(tok.token) == ["hello", "Ġworld"])
        #expect(tok.encode("hell").map(tok.token) == ["hell"])
        #expect(tok.encode("  x").map(tok.token) == ["Ġ", "Ġ", "x"])  // \s+(?!\S) leaves the last space to " x"
        #expect(tok.encode("   ").map(tok.token) == ["ĠĠ", "Ġ"])
    }

    @Test func specialTokensSplitOut() {
        let ids = tok.encode("<|im_start|>hello<|endoftext|>")
        #expect(ids.first == 1 && ids.last == 0)
        #expect(tok.isSpecial(1) && !tok.isSpecial(tok.id(of: "hello")!))
        let plain = tok.encode("<|im_start|>", parseSpecial: false)
        #expect(plain.count == "<|im_start|>".utf8.count)
    }

    @Test func digitsAreIsolatedForSmolLM() {
        #expect(tok.encode("x 123").map(tok.token) == ["x", "Ġ", "1", "2", "3"])
    }

    @Test func roundTripsArbitraryText() {
        for s in ["", "héllo 世界 🤖\n\t\r\n  ", "it's 42", "<|im_start|>a<|im_end"] {
            #expect(tok.decode(tok.encode(s)) == s)
        }
        #expect(tok.decodeBytes(tok.encode("é")) == [0xC3, 0xA9])
        #expect(tok.decode([9999, -1]) == "")
        #expect(tok.token(-5) == "")
    }

    @Test func metadataFields() {
        #expect(tok.bosID == 1 && tok.eosID == 0 && tok.addBOS == false)
        #expect(tok.vocabSize == 2 + 256 + 10)
    }

    @Test func unsupportedInputsThrow() {
        #expect(throws: EngineError.self) { try BPETokenizer(ggufMetadata: tinyMetadata(pre: "qwen9")) }
        #expect(throws: EngineError.self) { try BPETokenizer(ggufMetadata: tinyMetadata(model: "llama")) }
        #expect(throws: EngineError.self) { try BPETokenizer(ggufMetadata: [:]) }
        do {
            _ = try BPETokenizer(ggufMetadata: tinyMetadata(pre: "qwen9"))
        } catch let e as EngineError {
            #expect(e.message.contains("qwen9") && e.message.contains("smollm") && e.message.contains("llama-bpe"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func llama3PatternSplits() throws {
        let llama = try BPETokenizer(ggufMetadata: tinyMetadata(pre: "llama-bpe"))
        // \p{N}{1,3}, case-insensitive contractions, newline runs.
        #expect(llama.preTokenizer.words("12345 IT'S\n\n x") == ["123", "45", " IT", "'S", "\n\n", " x"])
        #expect(llama.ignoreMerges)
        #expect(llama.decode(llama.encode("12345 IT'S\n\n x")) == "12345 IT'S\n\n x")
    }
}

// MARK: - SmolLM2 parity (needs models/SmolLM2-135M-Instruct.Q4_1.gguf)

@Suite(.enabled(if: smolLMAvailable, "models/SmolLM2-135M-Instruct.Q4_1.gguf not present"))
struct TokenizerSmolLMParityTests {
    @Test func idsMatchHFTokenizers() throws {
        let tok = try smolLMTokenizer.get()
        let fixture = try TokenizerFixture.load()
        #expect(fixture.cases.count >= 60)
        var failures = 0
        for c in fixture.cases {
            let ids = tok.encode(c.text)
            if ids != c.ids {
                failures += 1
                if failures == 1 {
                    Issue.record("first mismatch for \(c.text.debugDescription):\n  got      \(ids.map(tok.token))\n  expected \(c.tokens)")
                }
            }
            #expect(c.ids.map(tok.token) == c.tokens)
        }
        #expect(failures == 0, "\(failures) of \(fixture.cases.count) strings differ")
    }

    @Test func decodeRoundTrips() throws {
        let tok = try smolLMTokenizer.get()
        for c in try TokenizerFixture.load().cases {
            #expect(tok.decode(tok.encode(c.text)) == c.text, "\(c.text.debugDescription)")
            #expect(tok.decode(c.ids) == c.text)
        }
    }

    @Test func metadata() throws {
        let tok = try smolLMTokenizer.get()
        #expect(tok.vocabSize == 49152)
        #expect(tok.bosID == 1 && tok.eosID == 2 && tok.addBOS == false)
        #expect(tok.id(of: "<|im_end|>") == 2 && tok.isSpecial(2) && !tok.isSpecial(100))
        #expect(tok.chatTemplate == (try TokenizerFixture.load().chat_template))
    }
}

// MARK: - Optional fuzz parity (TOKENIZER_FUZZ_FIXTURE=path from tokenizer_fixtures.py --fuzz)

private let fuzzFixturePath = ProcessInfo.processInfo.environment["TOKENIZER_FUZZ_FIXTURE"]

@Test(.enabled(if: smolLMAvailable && fuzzFixturePath != nil, "set TOKENIZER_FUZZ_FIXTURE and provide the model"))
func tokenizerFuzzParity() throws {
    struct Case: Decodable { var text: String; var ids: [Int32]; var llama3: [String] }
    let tok = try smolLMTokenizer.get()
    let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: URL(fileURLWithPath: fuzzFixturePath!)))
    var failures = 0
    for c in cases where tok.encode(c.text) != c.ids {
        failures += 1
        if failures <= 3 {
            Issue.record("mismatch \(c.text.debugDescription):\n  got      \(tok.encode(c.text).map(tok.token))\n  expected \(c.ids.map(tok.token))")
        }
    }
    print("fuzz parity: \(cases.count - failures)/\(cases.count) identical")
    #expect(failures == 0)
    let llama3 = PreTokenizer(splitDigits: false, pattern: .llama3)
    let splitFailures = cases.filter { llama3.words($0.text) != $0.llama3 }
    print("fuzz Llama-3 splits: \(cases.count - splitFailures.count)/\(cases.count) identical")
    for c in splitFailures.prefix(3) { Issue.record("llama3 split \(c.text.debugDescription): \(llama3.words(c.text)) != \(c.llama3)") }
}
