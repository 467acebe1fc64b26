// OllamaExportTests — the Modelfile's TEMPLATE proven by the engine that renders it: Go's text/template, called
// the way Ollama calls it (template/template.go: `missingkey=zero`, the `json` function, data `.System`,
// `.Messages` after Ollama's collate — system messages gathered into .System, consecutive messages of one role
// merged — `.Tools`, `.Response`). For each conversation Go's output must equal the model's own Jinja template
// rendered by tune: `add_generation_prompt=True` when the conversation ends with a user turn, and with the final
// assistant turn left open (HF's continue_final_message) when it ends with one. Templates: SmolLM2's and
// Qwen2.5's from their GGUFs, and a plain ChatML one. Templates that cannot be exact (Gemma's, Llama-3's trim
// content; Go templates cannot) are refused, and `tune export --to ollama` then writes nothing.
import Engine
import Foundation
import Testing
import TuneKit

/// Go, when installed (scripts/test installs Debian's golang-go and then sets TUNE_REQUIRE_GO=1).
private let goTool: String? = {
    let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/lib/go/bin", "/usr/local/go/bin"]
    return dirs.map { $0 + "/go" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()
private let requireGo = ProcessInfo.processInfo.environment["TUNE_REQUIRE_GO"] == "1"

private let qwenPath = packageRoot.appendingPathComponent("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").path

/// Renders `template` for each conversation as Ollama does (its Execute, messages path), in Go.
private let goRenderer = """
    package main

    import (
    \t"encoding/json"
    \t"fmt"
    \t"os"
    \t"strings"
    \t"text/template"
    )

    type Message struct {
    \tRole    string `json:"role"`
    \tContent string `json:"content"`
    }

    func main() {
    \tvar in struct {
    \t\tTemplate      string      `json:"template"`
    \t\tConversations [][]Message `json:"conversations"`
    \t}
    \tif err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
    \t\tfmt.Fprintln(os.Stderr, err)
    \t\tos.Exit(2)
    \t}
    \tfuncs := template.FuncMap{"json": func(v any) string { b, _ := json.Marshal(v); return string(b) }}
    \tt, err := template.New("").Option("missingkey=zero").Funcs(funcs).Parse(in.Template)
    \tif err != nil {
    \t\tfmt.Fprintln(os.Stderr, "parse:", err)
    \t\tos.Exit(3)
    \t}
    \tout := []string{}
    \tfor _, c := range in.Conversations {
    \t\tvar system []string
    \t\tvar msgs []*Message
    \t\tfor i := range c {
    \t\t\tif c[i].Role == "system" {
    \t\t\t\tsystem = append(system, c[i].Content)
    \t\t\t}
    \t\t\tif len(msgs) > 0 && msgs[len(msgs)-1].Role == c[i].Role {
    \t\t\t\tmsgs[len(msgs)-1].Content += "\\n\\n" + c[i].Content
    \t\t\t} else {
    \t\t\t\tm := c[i]
    \t\t\t\tmsgs = append(msgs, &m)
    \t\t\t}
    \t\t}
    \t\tvar b strings.Builder
    \t\tdata := map[string]any{"System": strings.Join(system, "\\n\\n"), "Messages": msgs, "Tools": nil, "Response": ""}
    \t\tif err := t.Execute(&b, data); err != nil {
    \t\t\tfmt.Fprintln(os.Stderr, "execute:", err)
    \t\t\tos.Exit(4)
    \t\t}
    \t\tout = append(out, b.String())
    \t}
    \tjson.NewEncoder(os.Stdout).Encode(out)
    }
    """

/// Go's renderings of `template` for `conversations`.
private func goRender(_ template: String, _ conversations: [[ChatMessage]], dir: URL) throws -> [String] {
    let go = try #require(goTool, "go not found (TUNE_REQUIRE_GO=1)")
    let src = dir.appendingPathComponent("render.go")
    try goRenderer.write(to: src, atomically: true, encoding: .utf8)
    let input = try JSONSerialization.data(withJSONObject: [
        "template": template,
        "conversations": conversations.map { $0.map { ["role": $0.role, "content": $0.content] } },
    ])
    let p = Process()
    p.executableURL = URL(fileURLWithPath: go)
    p.arguments = ["run", src.path]
    var env = ProcessInfo.processInfo.environment
    env["GOCACHE"] = dir.appendingPathComponent("gocache").path
    env["GOPATH"] = dir.appendingPathComponent("gopath").path
    env["GO111MODULE"] = "off"
    env["GOTOOLCHAIN"] = "local"
    p.environment = env
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    p.standardInput = stdin
    p.standardOutput = stdout
    p.standardError = stderr
    try p.run()
    stdin.fileHandleForWriting.write(input)
    try stdin.fileHandleForWriting.close()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "go run: \(String(decoding: err, as: UTF8.self))")
    return try #require(try JSONSerialization.jsonObject(with: out) as? [String])
}

private func m(_ role: String, _ content: String) -> ChatMessage { ChatMessage(role: role, content: content) }

/// Conversations Ollama would send: roles alternate (Ollama merges repeats), ending with a user or an assistant turn.
private let conversations: [[ChatMessage]] = [
    [m("user", "Hi")],
    [m("user", "What is the capital of France?"), m("assistant", "Paris."), m("user", "And Spain?")],
    [m("system", "You are terse."), m("user", "Explain TCP.")],
    [m("system", "Answer in JSON."), m("user", "List 2 colors."), m("assistant", "{\"colors\": [\"red\", \"blue\"]}"), m("user", "One more.")],
    [m("user", "  padded content  \n"), m("assistant", "\nreply with edges ")],
    [m("user", "Line one\nLine two\n\nLine four")],
    [m("user", "Ünïcödé and emoji 🙂"), m("assistant", "Noted 👍"), m("user", "Thanks")],
    [m("user", "Template text in content: {{ .System }} and {{ range }} stay text")],
    [m("system", ""), m("user", "empty system prompt")],
    [m("user", "Write a haiku."), m("assistant", "Autumn moonlight—")],          // continued by the model
    [m("system", "Be kind."), m("user", "Hello"), m("assistant", "Hi! How")],  // continued by the model
]

/// What the model's Jinja template renders for a conversation, in Ollama's sense (see the file comment).
private func jinjaExpectation(_ t: ChatTemplate, _ c: [ChatMessage]) throws -> String {
    guard c.last?.role == "assistant" else { return try t.render(c, addGenerationPrompt: true) }
    let closed = try t.render(c, addGenerationPrompt: false)
    #expect(closed.hasSuffix("<|im_end|>\n"), "the final assistant turn must close with <|im_end|>\\n: \(closed.debugDescription)")
    return String(closed.dropLast("<|im_end|>\n".count))
}

/// The Jinja template (with its special tokens) of a GGUF.
private func ggufTemplate(_ path: String) throws -> ChatTemplate {
    let tok = try BPETokenizer(ggufMetadata: try GGUFFile(path: path).metadata)
    let source = try #require(tok.chatTemplate)
    return try ChatTemplate(jinja: source, bosToken: tok.bosID.map { tok.token($0) } ?? "", eosToken: tok.eosID.map { tok.token($0) } ?? "")
}

private func jsonObject(_ s: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], "not a JSON object: \(s)")
}

/// A tiny llama GGUF carrying `chatTemplate` as tokenizer.chat_template, and a random adapter for it.
private func tinyModelWithTemplate(_ chatTemplate: String?, dir: URL) throws -> (base: String, adapter: String) {
    let plain = dir.appendingPathComponent("plain.gguf").path
    try TinyLlama.writeGGUF(to: plain, config: .tiny, seed: 1, weightType: .f32)
    let g = try GGUFFile(path: plain)
    var meta = g.metadata, keys = g.metadataKeys
    if let chatTemplate {
        meta["tokenizer.chat_template"] = .string(chatTemplate)
        if !keys.contains("tokenizer.chat_template") { keys.append("tokenizer.chat_template") }
    } else {
        meta["tokenizer.chat_template"] = nil
        keys.removeAll { $0 == "tokenizer.chat_template" }
    }
    let base = dir.appendingPathComponent("tiny.gguf").path
    let w = try GGUFStreamWriter(path: base, keys: keys, metadata: meta, tensors: g.tensors.map { .init(name: $0.name, shape: $0.shape, type: $0.type) })
    for t in g.tensors { try w.write(name: t.name, bytes: g.data(for: t)) }
    try w.finish()
    let adapter = dir.appendingPathComponent("peft").path
    try writeRandomAdapter(model: .tiny, dir: adapter, bScale: 0.2, seed: 5)
    return (base, adapter)
}

private let plainChatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

/// ChatML with a default system prompt holding "{{" and "}}", which Go must print as text.
private let bracedChatML = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}<|im_start|>system\nUse {{ '{{' }} x }} well<|im_end|>\n{% endif %}"
    + "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

@Suite struct OllamaExportTests {
    // MARK: - Translation (no Go needed)

    @Test func translatesChatMLAndRefusesTheRest() throws {
        let plain = try ChatTemplate(jinja: plainChatML).ollama()
        #expect(!plain.template.contains("system\n") && plain.stops == ["<|im_end|>"])
        if hasRealModel {
            let smol = try ggufTemplate(realModelPath).ollama()
            #expect(smol.template.contains("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"))
            #expect(smol.stops.first == "<|im_end|>")
        }
        if FileManager.default.fileExists(atPath: qwenPath) {
            let qwen = try ggufTemplate(qwenPath).ollama()
            #expect(qwen.template.contains("You are Qwen, created by Alibaba Cloud. You are a helpful assistant."))
        }
        // Llama-3 and Gemma trim message content; a Go template cannot.
        #expect { try ChatTemplate(kind: .llama3).ollama() } throws: { ($0 as? EngineError)?.message.contains("trim") == true }
        // Gemma 3's shape (the Gemma-3-270M GGUF here is the base model and has no template): BOS rendered, content trimmed.
        let gemma = "{{ bos_token }}{%- for message in messages -%}{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
            + "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}{{ '<start_of_turn>' + role + '\\n' }}{{ message['content'] | trim }}"
            + "{{ '<end_of_turn>\\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
        #expect { try ChatTemplate(jinja: gemma, bosToken: "<bos>", eosToken: "<eos>").ollama() } throws: { e in
            ((e as? EngineError)?.message ?? "").contains("renders the BOS token")
        }
        #expect { try ChatTemplate(jinja: gemma, bosToken: "", eosToken: "<eos>").ollama() } throws: { e in
            ((e as? EngineError)?.message ?? "").contains("trims message content")
        }
        // A ChatML-looking template that differs in one detail (no newline after the role) is refused.
        let odd = "{% for message in messages %}{{'<|im_start|>' + message['role'] + message['content'] + '<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        #expect(throws: EngineError.self) { try ChatTemplate(jinja: odd).ollama() }
        // A literal "{{" in a default system prompt stays literal text in Go (Go renders it: goRendersLikeTheJinjaTemplate).
        #expect(try ChatTemplate(jinja: bracedChatML).ollama().template.contains("system\nUse {{ \"{{\" }} x }} well<|im_end|>"))
    }

    // MARK: - Proof by Go's text/template

    @Test(.enabled(if: goTool != nil || requireGo, "go not found (scripts/test installs golang-go); the Go rendering check was skipped"))
    func goRendersLikeTheJinjaTemplate() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var templates: [(String, ChatTemplate)] = [("plain ChatML", try ChatTemplate(jinja: plainChatML)),
                                                   ("ChatML with braces in its default system prompt", try ChatTemplate(jinja: bracedChatML))]
        if hasRealModel { templates.append(("SmolLM2", try ggufTemplate(realModelPath))) }
        if FileManager.default.fileExists(atPath: qwenPath) { templates.append(("Qwen2.5", try ggufTemplate(qwenPath))) }
        for (name, jinja) in templates {
            let go = try goRender(try jinja.ollama().template, conversations, dir: dir)
            try #require(go.count == conversations.count)
            for (c, rendered) in zip(conversations, go) {
                #expect(rendered == (try jinjaExpectation(jinja, c)), "\(name): \(c.map(\.role))")
            }
            print("ollama template \(name): Go's text/template = the Jinja template on \(conversations.count) conversations")
        }
    }

    // MARK: - tune export --to ollama

    @Test func exportWritesAModelfileOrNothing() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (base, adapter) = try tinyModelWithTemplate(plainChatML, dir: dir)
        let out = dir.appendingPathComponent("ollama").path
        var r = try tune(["export", adapter, "--to", "ollama", "--out", out, "--base", base, "--name", "Tiny Chat", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        let o = try jsonObject(r.stdout)
        #expect(o["files"] as? [String] == ["Modelfile", "adapter.gguf"] && o["kind"] as? String == "adapter")
        #expect(o["serve"] as? String == "ollama create tiny-chat -f \(out)/Modelfile && ollama run tiny-chat", "\(o)")
        let modelfile = try String(contentsOfFile: out + "/Modelfile", encoding: .utf8)
        let lines = modelfile.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.contains("FROM \(URL(fileURLWithPath: base).standardizedFileURL.path)"))
        #expect(lines.contains("ADAPTER ./adapter.gguf"))
        #expect(lines.contains("PARAMETER stop \"<|im_end|>\""))
        let template = try ChatTemplate(jinja: plainChatML).ollama().template
        #expect(modelfile.contains("TEMPLATE \"\"\"\(template)\"\"\"\n"))
        // The adapter is the same file `tune export adapter --format gguf` writes.
        let single = dir.appendingPathComponent("single.gguf").path
        r = try tune(["export", "adapter", adapter, "--format", "gguf", "--out", single, "--base", base, "--force"])
        #expect(r.status == 0, "\(r.stderr)")
        let a = try GGUFFile(path: out + "/adapter.gguf"), b = try GGUFFile(path: single)
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        for (x, y) in zip(a.tensors, b.tensors) { #expect(a.data(for: x).elementsEqual(b.data(for: y))) }

        // A merged model: FROM ./model.gguf, no ADAPTER.
        let merged = dir.appendingPathComponent("ollama-merged").path
        r = try tune(["export", adapter, "--to", "ollama", "--out", merged, "--base", base, "--merged", "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        #expect(try jsonObject(r.stdout)["files"] as? [String] == ["Modelfile", "model.gguf"])
        let mf = try String(contentsOfFile: merged + "/Modelfile", encoding: .utf8)
        #expect(mf.contains("\nFROM ./model.gguf\n") && !mf.contains("ADAPTER"))

        // Existing --out without --force: refused, the export left as it was.
        r = try tune(["export", adapter, "--to", "ollama", "--out", out, "--base", base])
        #expect(r.status == 65 && r.stderr.contains("already exists"), "\(r.status) \(r.stderr)")
        #expect(try String(contentsOfFile: out + "/Modelfile", encoding: .utf8) == modelfile)

        // A model without a chat template: no TEMPLATE (Ollama sends prompts as they are), and a note.
        let noneDir = dir.appendingPathComponent("none")
        try FileManager.default.createDirectory(at: noneDir, withIntermediateDirectories: true)
        let (noneBase, noneAdapter) = try tinyModelWithTemplate(nil, dir: noneDir)
        r = try tune(["export", noneAdapter, "--to", "ollama", "--out", noneDir.appendingPathComponent("out").path, "--base", noneBase, "--json"])
        try #require(r.status == 0, "\(r.stderr)")
        #expect((try jsonObject(r.stdout)["notes"] as? [String])?.contains { $0.contains("no chat template") } == true, "\(r.stdout)")
        #expect(!(try String(contentsOfFile: noneDir.appendingPathComponent("out/Modelfile").path, encoding: .utf8)).contains("TEMPLATE"))

        // A template that cannot be exact: a clear error, and no directory.
        let llama3Dir = dir.appendingPathComponent("l3")
        try FileManager.default.createDirectory(at: llama3Dir, withIntermediateDirectories: true)
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
        let (l3base, l3adapter) = try tinyModelWithTemplate(llama3, dir: llama3Dir)
        let refused = dir.appendingPathComponent("refused").path
        r = try tune(["export", l3adapter, "--to", "ollama", "--out", refused, "--base", l3base])
        #expect(r.status != 0 && r.stderr.contains("cannot be translated exactly") && r.stderr.contains("trim"), "\(r.status) \(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: refused))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".refused") }
        #expect(leftovers.isEmpty, "staging left behind: \(leftovers)")
    }
}
