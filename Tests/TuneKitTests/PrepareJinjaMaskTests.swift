// PrepareJinjaMaskTests — the loss mask for models whose chat template is not a built-in form: the
// tiny tokenizer given Qwen2.5's and Qwen3's real templates (Tests/Fixtures/chat-templates), rendered
// through the Jinja interpreter; assistant spans are found by rendering prefixes.
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct PrepareJinjaMaskTests {
    static let templates = PrepareFixtures.root.appendingPathComponent("Tests/Fixtures/chat-templates")

    func tokenizer(template file: String) throws -> BPETokenizer {
        var t = PrepareFixtures.tiny.tokenizer
        t.chatTemplate = try String(contentsOf: Self.templates.appendingPathComponent(file), encoding: .utf8)
        return t
    }

    func split(_ e: EncodedRow, _ t: BPETokenizer) -> (trained: String, untrained: String) {
        (t.decode(zip(e.ids, e.mask).filter { $0.1 == 1 }.map(\.0)), t.decode(zip(e.ids, e.mask).filter { $0.1 == 0 }.map(\.0)))
    }

    let conversation: [ChatMessage] = [.init(role: "user", content: "What is 2+2?"), .init(role: "assistant", content: "Four."),
                                       .init(role: "user", content: "And 3+3?"), .init(role: "assistant", content: "Six.")]

    @Test func qwen25MaskIsAssistantContentPlusImEnd() throws {
        let tok = try tokenizer(template: "Qwen-Qwen2.5-7B-Instruct.jinja")
        let r = try RowRenderer(setting: "auto", tokenizer: tok)
        #expect(r.templateName == "jinja" && r.templateSource == "model")
        let (enc, text) = try r.encode(.chat(conversation))
        #expect(text == "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\nFour.<|im_end|>\n"
            + "<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\nSix.<|im_end|>\n")
        #expect(enc.ids == tok.encode(text), "ids must equal the whole-string tokenization")
        let s = split(enc, tok)
        #expect(s.trained == "Four.<|im_end|>Six.<|im_end|>")
        #expect(s.untrained.hasPrefix("<|im_start|>system\nYou are Qwen"))
        // Completion rows map onto chat with the template's own default system prompt.
        let (c, ct) = try r.encode(.completion(prompt: "2+2=", completion: " 4"))
        #expect(split(c, tok).trained == " 4<|im_end|>" && ct.hasPrefix("<|im_start|>system\nYou are Qwen"))
    }

    /// Qwen3 renders the `<think>` block only for turns after the last user message, so a turn renders
    /// differently once later messages follow: the text is still the whole render, earlier turns are
    /// trained up to their first stop string, the last one including its (empty) think block.
    @Test func qwen3MaskOnTheWholeRender() throws {
        let tok = try tokenizer(template: "Qwen-Qwen3-0.6B.jinja")
        let r = try RowRenderer(setting: "auto", tokenizer: tok)
        let template = try ChatTemplate.forModel(tok)
        let (enc, text) = try r.encode(.chat(conversation))
        #expect(text == (try template.render(conversation, addGenerationPrompt: false)))
        #expect(enc.ids == tok.encode(text))
        #expect(split(enc, tok).trained == "Four.<|im_end|><think>\n\n</think>\n\nSix.<|im_end|>")
    }

    @Test func templateErrorsAreRowErrors() throws {
        let tok = try tokenizer(template: "google-gemma-2-2b-it.jinja")
        let r = try RowRenderer(setting: "auto", tokenizer: tok, systemPrompt: "Be brief.")
        do {
            _ = try r.encode(.completion(prompt: "p", completion: "c"))
            Issue.record("Gemma's template accepted a system message")
        } catch let e as TuneError {
            #expect(e.kind == .badData && e.message.contains("System role not supported"), "\(e.message)")
        }
        // In the stage, a row the template rejects is dropped as template_error (and on_error: fail stops).
        let lines = [PrepareFixtures.chat("Classify: POD 9", "delivery_receipt"),
                     PrepareFixtures.chat("Classify: INVOICE 7", "commercial_invoice", system: "Label it.")]
        let input = try PrepareFixtures.jsonl(lines)
        let m = try PrepareStage.run(inputs: [input], config: PrepareFixtures.config(), tokenizer: DatasetTokenizer(tok),
                                     outputDir: try PrepareFixtures.tempDir().path)
        #expect(m.counts.kept == 1)
        #expect(m.counts.dropped["template_error"]?.count == 1)
        #expect(m.counts.dropped["template_error"]?.examples.first?.contains("data.jsonl:2: template_error: template jinja: chat template line 1: System role not supported") == true)
        var failing = PrepareFixtures.config()
        failing.onError = .fail
        #expect(throws: TuneError.self) {
            try PrepareStage.run(inputs: [input], config: failing, tokenizer: DatasetTokenizer(tok), outputDir: try PrepareFixtures.tempDir().path)
        }
    }
}
