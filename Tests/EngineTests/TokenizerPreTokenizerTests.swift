// TokenizerPreTokenizerTests — word splits of the SmolLM (Digits + GPT-2 regex) and Llama-3 scanners
// against HF `tokenizers` pre_tokenize_str on the fixture strings (no model needed).

import Engine
import Testing

@Suite struct TokenizerPreTokenizerTests {
    let fixture = try! TokenizerFixture.load()

    @Test func smolLMSplitsMatchHF() {
        let pre = PreTokenizer(splitDigits: true, pattern: .gpt2)
        #expect(fixture.pre_tokenizer_splits.count >= 60)
        for c in fixture.pre_tokenizer_splits {
            #expect(pre.words(c.text) == c.smollm, "\(c.text.debugDescription)")
        }
    }

    @Test func llama3SplitsMatchHF() {
        let pre = PreTokenizer(splitDigits: false, pattern: .llama3)
        for c in fixture.pre_tokenizer_splits {
            #expect(pre.words(c.text) == c.llama3, "\(c.text.debugDescription)")
        }
    }

    @Test func ggufNames() throws {
        #expect(try PreTokenizer.gguf("smollm") == PreTokenizer(splitDigits: true, pattern: .gpt2))
        #expect(try PreTokenizer.gguf("llama-bpe") == PreTokenizer(splitDigits: false, pattern: .llama3))
        #expect(throws: EngineError.self) { try PreTokenizer.gguf("falcon") }
    }
}
