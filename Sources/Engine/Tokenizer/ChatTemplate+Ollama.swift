// ChatTemplate+Ollama — a model's chat template as Ollama's Go template (a Modelfile's TEMPLATE), made only
// where the translation is exact. Ollama renders `text/template` with `.Messages` (each `.Role`, `.Content`;
// consecutive messages of one role merged), `.System`, `.Tools`, and the functions Go's package has plus
// `json`: there is no string function, so a Jinja template that trims content (Llama-3, Gemma) cannot be
// reproduced, and one that renders BOS would render it twice (Ollama's tokenizer adds it). ChatML
// (SmolLM2, Qwen2.5, with or without a default system prompt) translates exactly:
//
//     let t = try ChatTemplate.forModel(tokenizer).ollama()
//     modelfile += "TEMPLATE \"\"\"\(t.template)\"\"\"\n"
//
// "Exact" is checked, not assumed: the candidate (the built-in ChatML renderer with the default system prompt
// the model's template inserts) must render the probe conversations exactly as the model's Jinja template does,
// and the Go text is the same renderer written in Go's template language (OllamaTemplateTests renders it with
// Go's text/template and compares with the Jinja rendering, conversation by conversation).

import Foundation

/// A Modelfile's chat lines: the Go template and the stop strings.
public struct OllamaTemplate: Sendable, Equatable {
    /// Go `text/template` source for `TEMPLATE """…"""`.
    public var template: String
    /// `PARAMETER stop` values: the end-of-turn marker, then the EOS token when it differs.
    public var stops: [String]
}

extension ChatTemplate {
    /// The Ollama form of this template, or `EngineError(.unsupported)` saying why it cannot be exact.
    /// A conversation ending with a user (or system) message renders as `apply_chat_template(…,
    /// add_generation_prompt=True)`; one ending with an assistant message is left open for the model to
    /// continue (HF's `continue_final_message=True`), as Ollama expects. Tool calls are not translated.
    public func ollama() throws -> OllamaTemplate {
        let chatml: ChatTemplate
        switch kind {
        case .chatml: chatml = self
        case .llama3: throw Self.ollamaRefusal("Llama-3's template trims each message's content (Jinja `| trim`)")
        case .jinja:
            guard let source = jinja?.source else { throw EngineError(.internal, "Jinja template without source") }
            let probe = (try? render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true)) ?? ""
            guard probe.hasSuffix("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n") else {
                // (SmolLM2's BOS is <|im_start|> itself, so "renders BOS" is only asked of templates that are not ChatML.)
                if rendersBOS { throw Self.ollamaRefusal("the template renders the BOS token, which Ollama's tokenizer adds itself") }
                let trims = source.contains("| trim") || source.contains("|trim")
                throw Self.ollamaRefusal(trims ? "the template trims message content (Jinja `| trim`)"
                                               : "it is not a ChatML template (`<|im_start|>role\\n…<|im_end|>`)")
            }
            // The default system prompt the template inserts when the first message is not a system one.
            var system: String?
            let opener = "<|im_start|>system\n", tail = "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
            if probe != "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n" {
                guard probe.hasPrefix(opener) else { throw Self.ollamaRefusal("it renders text before the first message that is not a system turn") }
                system = String(probe.dropFirst(opener.count).dropLast(tail.count))
            }
            chatml = ChatTemplate(kind: .chatml, defaultSystemPrompt: system)
            guard chatml.rendersLike(self) else {
                throw Self.ollamaRefusal("it renders system/user/assistant turns differently from plain ChatML")
            }
        }
        let system = chatml.defaultSystemPrompt.map(Self.goLiteral)
        var t = "{{- if .Messages }}"
        if let system {
            t += "{{- if ne (index .Messages 0).Role \"system\" }}<|im_start|>system\n\(system)<|im_end|>\n{{ end }}"
        }
        t += "{{- range $i, $m := .Messages }}"
        t += "{{- $last := eq (len (slice $.Messages $i)) 1 }}"
        t += "<|im_start|>{{ $m.Role }}\n{{ $m.Content }}"
        t += "{{- if not (and $last (eq $m.Role \"assistant\")) }}<|im_end|>\n{{ end }}"
        t += "{{- if and $last (ne $m.Role \"assistant\") }}<|im_start|>assistant\n{{ end }}"
        t += "{{- end }}{{- end }}"
        var stops = ["<|im_end|>"]
        if !eosToken.isEmpty, !stops.contains(eosToken) { stops.append(eosToken) }
        return OllamaTemplate(template: t, stops: stops)
    }

    static func ollamaRefusal(_ why: String) -> EngineError {
        EngineError(.unsupported, "the chat template cannot be translated exactly into Ollama's Go template: \(why), which a Go template "
                    + "cannot reproduce; tune translates ChatML templates (SmolLM2, Qwen2.5). Without a TEMPLATE line Ollama falls back to "
                    + "its own guess for the architecture, which may differ from the model's template")
    }

    /// Literal text inside a Go template: `{{` would open an action, so it is written as an action printing it.
    static func goLiteral(_ s: String) -> String {
        s.replacingOccurrences(of: "{{", with: "{{ \"{{\" }}")
    }
}
