// ChatTemplate — renders chat messages the way HF `apply_chat_template` renders the model's own Jinja
// template: natively for the two families Engine knows (ChatML incl. SmolLM2, Llama-3), and through
// the Jinja interpreter (Jinja/) for any other template the model ships.

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

/// A chat format: a known one (detected from the model's `tokenizer.chat_template` or chosen by
/// name) or the model's own Jinja template.
public struct ChatTemplate: Sendable {
    public enum Kind: String, Sendable { case chatml, llama3, jinja }
    public let kind: Kind
    /// `.jinja` only: the parsed template and the special-token strings it is rendered with.
    public let jinja: JinjaTemplate?
    public let bosToken: String
    public let eosToken: String
    private let jinjaRendersBOS: Bool
    /// ChatML only: system prompt inserted when the first message is not a system one (SmolLM2's
    /// "You are a helpful AI assistant named SmolLM, trained by Hugging Face"); nil for plain ChatML.
    public let defaultSystemPrompt: String?

    /// SmolLM2's default system prompt, as in its template.
    public static let smolLMSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    /// Names accepted by `named(_:)`.
    public static let knownNames = ["chatml", "smollm", "smollm2", "llama3"]

    /// A built-in format (`.chatml` or `.llama3`).
    public init(kind: Kind, defaultSystemPrompt: String? = nil) {
        precondition(kind != .jinja, "use init(jinja:bosToken:eosToken:) for Jinja templates")
        self.kind = kind
        self.defaultSystemPrompt = kind == .chatml ? defaultSystemPrompt : nil
        jinja = nil
        bosToken = ""
        eosToken = ""
        jinjaRendersBOS = false
    }

    /// A model's own Jinja template, rendered with `bos_token` / `eos_token` set to these strings.
    /// Throws `EngineError(.unsupported, "chat template line N: …")` for constructs outside the subset.
    public init(jinja source: String, bosToken: String = "", eosToken: String = "") throws {
        kind = .jinja
        defaultSystemPrompt = nil
        let template = try JinjaTemplate(source)
        jinja = template
        self.bosToken = bosToken
        self.eosToken = eosToken
        let probe = try? Self.renderJinja(template, [ChatMessage(role: "user", content: "Hello")], addGenerationPrompt: true,
                                          bosToken: bosToken, eosToken: eosToken, extra: [:])
        jinjaRendersBOS = !bosToken.isEmpty && (probe?.hasPrefix(bosToken) ?? false)
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

    /// The template to use for a model: the built-in format when the model's template is one of the
    /// two Engine knows (detected, then confirmed by rendering probe conversations both ways), else
    /// the model's own template through the Jinja interpreter.
    public static func forModel(template: String?, bosToken: String, eosToken: String) throws -> ChatTemplate {
        let builtin = try? detect(template: template)
        guard let template, !template.isEmpty else { return try detect(template: template) }
        let jinja: ChatTemplate
        do {
            jinja = try ChatTemplate(jinja: template, bosToken: bosToken, eosToken: eosToken)
        } catch {
            if let builtin { return builtin }
            throw error
        }
        if let builtin, builtin.rendersLike(jinja) { return builtin }
        return jinja
    }

    /// `forModel(template:bosToken:eosToken:)` with the tokenizer's template and special tokens.
    public static func forModel(_ tokenizer: BPETokenizer) throws -> ChatTemplate {
        try forModel(template: tokenizer.chatTemplate, bosToken: tokenizer.bosID.map { tokenizer.token($0) } ?? "",
                     eosToken: tokenizer.eosID.map { tokenizer.token($0) } ?? "")
    }

    /// Whether this template renders the probe conversations exactly as `other` does.
    func rendersLike(_ other: ChatTemplate) -> Bool {
        let s = ChatMessage(role: "system", content: "Be brief.")
        let u = ChatMessage(role: "user", content: " Hi there\n")
        let a = ChatMessage(role: "assistant", content: "Hello! ")
        let u2 = ChatMessage(role: "user", content: "Why?")
        for messages in [[u], [s, u], [u, a, u2], [s, u, a, u2], [u, a]] {
            for agp in [true, false] {
                guard let x = try? render(messages, addGenerationPrompt: agp),
                      let y = try? other.render(messages, addGenerationPrompt: agp), x == y else { return false }
            }
        }
        return true
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

    /// End-of-turn markers that Jinja templates commonly use, in the order they are preferred.
    static let knownTurnEnds = ["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|eom_id|>", "<|endoftext|>"]

    /// Strings that end an assistant turn. For a Jinja template: the known end-of-turn markers it
    /// contains, then the EOS token.
    public var stopStrings: [String] {
        switch kind {
        case .chatml: return ["<|im_end|>"]
        case .llama3: return ["<|eot_id|>"]
        case .jinja:
            var stops = Self.knownTurnEnds.filter { jinja?.source.contains($0) ?? false }
            if !eosToken.isEmpty, !stops.contains(eosToken) { stops.append(eosToken) }
            return stops
        }
    }

    /// Whether `render` output already begins with BOS (Llama-3's "<|begin_of_text|>", or a Jinja
    /// template that renders `bos_token`); when true, do not prepend BOS again when tokenizing.
    public var rendersBOS: Bool {
        switch kind {
        case .chatml: false
        case .llama3: true
        case .jinja: jinjaRendersBOS
        }
    }

    /// The prompt text, exactly as HF `apply_chat_template(tokenize=False)` renders the template.
    /// Only a Jinja template throws: `raise_exception` in it (e.g. roles out of order), or a
    /// runtime error, as `EngineError` naming the template line.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        try render(messages, addGenerationPrompt: addGenerationPrompt, extra: [:])
    }

    /// `render` with extra template variables (`tools`, `date_string`, `enable_thinking`, …); built-in
    /// formats ignore them.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, extra: [String: JinjaValue],
                       now: Date = Date(), timeZone: TimeZone = .current) throws -> String {
        var out = ""
        switch kind {
        case .jinja:
            return try Self.renderJinja(jinja!, messages, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken,
                                        eosToken: eosToken, extra: extra, now: now, timeZone: timeZone)
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

    static func renderJinja(_ template: JinjaTemplate, _ messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String,
                            eosToken: String, extra: [String: JinjaValue], now: Date = Date(), timeZone: TimeZone = .current) throws -> String {
        var context: [String: JinjaValue] = [
            "messages": .list(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ]
        for (k, v) in extra { context[k] = v }
        return try template.render(context, now: now, timeZone: timeZone)
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
