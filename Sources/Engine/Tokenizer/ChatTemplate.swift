// ChatTemplate — renders chat messages the way HF `apply_chat_template` renders the model's own Jinja
// template, for the template families Engine knows (ChatML incl. SmolLM2, Llama-3).

import Foundation

/// One chat message.
public struct ChatMessage: Sendable, Codable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A known chat format, detected from the model's `tokenizer.chat_template` or chosen by name.
public struct ChatTemplate: Sendable {
    public enum Kind: String, Sendable { case chatml, llama3 }
    public let kind: Kind
    /// ChatML only: system prompt inserted when the first message is not a system one (SmolLM2's
    /// "You are a helpful AI assistant named SmolLM, trained by Hugging Face"); nil for plain ChatML.
    public let defaultSystemPrompt: String?

    /// SmolLM2's default system prompt, as in its template.
    public static let smolLMSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    /// Names accepted by `named(_:)`.
    public static let knownNames = ["chatml", "smollm", "smollm2", "llama3"]

    public init(kind: Kind, defaultSystemPrompt: String? = nil) {
        self.kind = kind
        self.defaultSystemPrompt = kind == .chatml ? defaultSystemPrompt : nil
    }

    // MARK: - Selection

    /// The format of a model's Jinja chat template. ChatML-style (`<|im_start|>`) and Llama-3-style
    /// (`<|start_header_id|>`) are recognised; anything else (or nil) throws, naming the known formats.
    public static func detect(template: String?) throws -> ChatTemplate {
        guard let template, !template.isEmpty else {
            throw EngineError(.unsupported, "the model has no chat template; choose one of: \(knownNames.joined(separator: ", "))")
        }
        if template.contains("<|im_start|>") {
            return ChatTemplate(kind: .chatml, defaultSystemPrompt: defaultSystemPrompt(in: template))
        }
        if template.contains("<|start_header_id|>") {
            if template.contains("Cutting Knowledge Date") {
                throw EngineError(.unsupported,
                    "Llama-3.1+ chat templates (date/tools system header) are not reproduced; choose 'llama3' explicitly for the plain Llama-3 format")
            }
            return ChatTemplate(kind: .llama3)
        }
        throw EngineError(.unsupported,
            "unrecognised chat template (neither ChatML '<|im_start|>' nor Llama-3 '<|start_header_id|>'); choose one of: \(knownNames.joined(separator: ", "))")
    }

    /// A format by name: "chatml" (no default system prompt), "smollm"/"smollm2", "llama3".
    public static func named(_ name: String) throws -> ChatTemplate {
        switch name.lowercased() {
        case "chatml": return ChatTemplate(kind: .chatml)
        case "smollm", "smollm2": return ChatTemplate(kind: .chatml, defaultSystemPrompt: smolLMSystemPrompt)
        case "llama3", "llama-3": return ChatTemplate(kind: .llama3)
        default:
            throw EngineError(.invalidArgument, "unknown chat template '\(name)'; known: \(knownNames.joined(separator: ", "))")
        }
    }

    /// The literal default system prompt of a ChatML template that inserts one when
    /// `messages[0]['role'] != 'system'`, else nil.
    static func defaultSystemPrompt(in template: String) -> String? {
        let conditional = ["messages[0]['role'] != 'system'", "messages[0][\"role\"] != \"system\"",
                           "messages[0].role != 'system'", "messages[0].role != \"system\""]
        guard conditional.contains(where: template.contains) else { return nil }
        for opener in ["<|im_start|>system\n", "<|im_start|>system\\n"] {
            guard let start = template.range(of: opener),
                  let end = template[start.upperBound...].range(of: "<|im_end|>") else { continue }
            let literal = template[start.upperBound..<end.lowerBound]
            guard !literal.contains("'"), !literal.contains("\""), !literal.contains("{") else { continue }
            return literal.replacingOccurrences(of: "\\n", with: "\n")
        }
        return nil
    }

    // MARK: - Rendering

    /// Strings that end an assistant turn.
    public var stopStrings: [String] {
        switch kind {
        case .chatml: ["<|im_end|>"]
        case .llama3: ["<|eot_id|>"]
        }
    }

    /// Whether `render` output already begins with BOS (Llama-3's "<|begin_of_text|>"); when true, do
    /// not prepend BOS again when tokenizing.
    public var rendersBOS: Bool { kind == .llama3 }

    /// The prompt text, exactly as HF `apply_chat_template(tokenize=False)` renders the template.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        var out = ""
        switch kind {
        case .chatml:
            if let defaultSystemPrompt, let first = messages.first, first.role != "system" {
                out += "<|im_start|>system\n\(defaultSystemPrompt)<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        case .llama3:
            for (i, m) in messages.enumerated() {
                if i == 0 { out += "<|begin_of_text|>" }
                out += "<|start_header_id|>\(m.role)<|end_header_id|>\n\n\(Self.jinjaTrim(m.content))<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        }
        return out
    }

    /// Jinja's `trim` filter (Python `str.strip()`): strips Unicode whitespace and U+001C…U+001F.
    static func jinjaTrim(_ s: String) -> String {
        func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace || (0x1C...0x1F).contains(c.value) }
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[first...last])
    }
}
