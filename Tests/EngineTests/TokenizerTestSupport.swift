// TokenizerTestSupport — shared test paths (package root, the real model) and the tokenizer fixture model.

import Engine
import Foundation

// MARK: - Paths

/// Package root, derived from this file's location (Tests/EngineTests/…).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let smolLMPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let smolLMAvailable = FileManager.default.fileExists(atPath: smolLMPath)
let tokenizerFixturePath = packageRoot.appendingPathComponent("Tests/Fixtures/tokenizer/smollm2.json").path

/// The real SmolLM2 tokenizer, loaded once per test process.
let smolLMTokenizer: Result<BPETokenizer, Error> = Result {
    try BPETokenizer(ggufMetadata: GGUFFile(path: smolLMPath).metadata)
}

// MARK: - Fixture model

struct TokenizerFixture: Decodable {
    struct Case: Decodable { var text: String; var ids: [Int32]; var tokens: [String] }
    struct Chat: Decodable {
        var messages: [ChatMessage]
        var add_generation_prompt: Bool
        var text: String
        var ids: [Int32]
    }
    struct Split: Decodable { var text: String; var smollm: [String]; var llama3: [String] }
    struct Template: Decodable {
        struct Render: Decodable { var messages: [ChatMessage]; var add_generation_prompt: Bool; var text: String }
        var name: String
        var template: String
        var renders: [Render]
    }
    var chat_template: String
    var cases: [Case]
    var chats: [Chat]
    var pre_tokenizer_splits: [Split]
    var templates: [Template]

    static func load() throws -> TokenizerFixture {
        try JSONDecoder().decode(TokenizerFixture.self, from: Data(contentsOf: URL(fileURLWithPath: tokenizerFixturePath)))
    }
}
