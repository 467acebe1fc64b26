// TextInput — text given inline or from a file, with optional chat templating.
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct TextInput: ParsableArguments {
    @Flag(help: "Wrap the text as a user message in the model's chat template (with the assistant prompt).")
    var chat = false

    @Option(help: "System prompt for --chat (default: the template's own).")
    var system: String?

    /// The string to tokenize: `text` itself, or its chat-templated form.
    func render(_ text: String, tokenizer: BPETokenizer) throws -> String {
        guard chat else { return text }
        let template = try ChatTemplate.forModel(tokenizer)
        var messages = [ChatMessage(role: "user", content: text)]
        if let system { messages.insert(ChatMessage(role: "system", content: system), at: 0) }
        return try template.render(messages, addGenerationPrompt: true)
    }

    /// Token ids for `text` (chat-templated with --chat). BOS is added when the model asks for it,
    /// unless the template already renders it (Llama-3's `<|begin_of_text|>`).
    func encode(_ text: String, tokenizer: BPETokenizer) throws -> [Int32] {
        let rendered = try render(text, tokenizer: tokenizer)
        if chat, try ChatTemplate.forModel(tokenizer).rendersBOS {
            return tokenizer.encode(rendered)
        }
        return tokenizer.encodeAddingBOS(rendered)
    }

    /// Reads a UTF-8 text file, failing with the file name if it is not valid UTF-8.
    static func readFile(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngineError(.io, "\(path): cannot read file")
        }
        guard let s = String(validating: data, as: UTF8.self) else {
            throw EngineError(.invalidArgument, "\(path): not valid UTF-8")
        }
        return s
    }
}
