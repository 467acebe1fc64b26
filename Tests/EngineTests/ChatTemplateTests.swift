// ChatTemplateTests — ChatTemplate detection and rendering parity with transformers' apply_chat_template
// (fixture renders of SmolLM2's own template, a plain ChatML template and the Llama-3 template).

import Engine
import Foundation
import Testing

@Suite struct ChatTemplateTests {
    let fixture = try! TokenizerFixture.load()

    @Test func smolLMTemplateRendersLikeTransformers() throws {
        let template = try ChatTemplate.detect(template: fixture.chat_template)
        #expect(template.kind == .chatml)
        #expect(template.defaultSystemPrompt == ChatTemplate.smolLMSystemPrompt)
        #expect(template.stopStrings == ["<|im_end|>"])
        #expect(fixture.chats.count >= 6)
        for chat in fixture.chats {
            #expect(try template.render(chat.messages, addGenerationPrompt: chat.add_generation_prompt) == chat.text)
        }
        let named = try ChatTemplate.named("smollm2")
        #expect(try named.render(fixture.chats[0].messages, addGenerationPrompt: true)
            == template.render(fixture.chats[0].messages, addGenerationPrompt: true))
    }

    @Test func otherTemplatesRenderLikeTransformers() throws {
        #expect(fixture.templates.map(\.name) == ["chatml", "llama3"])
        for t in fixture.templates {
            let template = try ChatTemplate.detect(template: t.template)
            #expect(template.kind.rawValue == t.name)
            #expect(template.defaultSystemPrompt == nil)
            for r in t.renders {
                let got = try template.render(r.messages, addGenerationPrompt: r.add_generation_prompt)
                #expect(got == r.text, "\(t.name): \(got.debugDescription) != \(r.text.debugDescription)")
            }
        }
        let llama = try ChatTemplate.named("llama3")
        #expect(llama.stopStrings == ["<|eot_id|>"] && llama.rendersBOS)
    }

    @Test func unknownTemplatesThrow() {
        for bad in [nil, "", "{{ messages }}", "[INST] {{ content }} [/INST]"] as [String?] {
            do {
                _ = try ChatTemplate.detect(template: bad)
                Issue.record("detect accepted \(bad.debugDescription)")
            } catch let e as EngineError {
                #expect(e.message.contains("chatml") && e.message.contains("llama3"))
            } catch { Issue.record("unexpected \(error)") }
        }
        #expect(throws: EngineError.self) { try ChatTemplate.named("vicuna") }
        #expect(throws: EngineError.self) {
            try ChatTemplate.detect(template: "<|start_header_id|>system<|end_header_id|>Cutting Knowledge Date: December 2023")
        }
    }

    @Test func plainChatMLHasNoDefaultSystemPrompt() throws {
        let t = try ChatTemplate.named("chatml")
        #expect(try t.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true)
            == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test(.enabled(if: smolLMAvailable, "models/SmolLM2-135M-Instruct.Q4_1.gguf not present"))
    func renderedChatsTokenizeLikeHF() throws {
        let tok = try smolLMTokenizer.get()
        let template = try ChatTemplate.detect(template: tok.chatTemplate)
        for chat in fixture.chats {
            let text = try template.render(chat.messages, addGenerationPrompt: chat.add_generation_prompt)
            #expect(tok.encode(text) == chat.ids, "\(text.debugDescription)")
        }
    }
}
