// VocabVectorTests — llama.cpp's own tokenizer vectors (models/ggml-vocab-*.gguf + .inp/.out from the
// llama.cpp b11434 source, MIT; scripts/setup extracts them into models/llama-vocab/): every family tune
// supports must reproduce them id for id, every other vocab file must be refused with `.unsupported`
// naming its tokenizer model or pre-tokenizer.

import Engine
import Foundation
import Testing

// MARK: - Where the vocab files are

/// `TUNE_LLAMA_VOCAB_DIR`, else `$TUNE_MODELS_DIR/llama-vocab` (where scripts/setup puts them), else models/llama-vocab.
let llamaVocabDir: String = {
    let env = ProcessInfo.processInfo.environment
    if let dir = env["TUNE_LLAMA_VOCAB_DIR"] { return dir }
    if let models = env["TUNE_MODELS_DIR"] { return models + "/llama-vocab" }
    return packageRoot.appendingPathComponent("models/llama-vocab").path
}()

/// Each vocab file of the llama.cpp set (name between "ggml-vocab-" and ".gguf") and what tune does with it.
enum VocabExpectation: Sendable {
    /// Supported; its .inp/.out vectors must match id for id.
    case vectors
    /// Supported, but llama.cpp ships no vectors for it: it must load and round-trip the llama-spm inputs.
    case roundTrip
    /// Refused with `.unsupported`; the message must contain this text.
    case refused(String)
}

let llamaVocabTable: [(String, VocabExpectation)] = [
    ("llama-spm", .vectors),          // SentencePiece (Llama-2, Mistral, TinyLlama)
    ("phi-3", .vectors),              // SentencePiece with Phi-3's special tokens
    ("llama-bpe", .vectors),          // Llama-3
    ("qwen2", .vectors),              // Qwen2 / Qwen2.5 / Qwen3
    ("qwen35", .vectors),             // Qwen3.5
    ("gpt-2", .vectors),
    ("starcoder", .vectors),
    ("refact", .vectors),
    ("command-r", .vectors),
    ("mpt", .vectors),
    ("baichuan", .roundTrip),         // SentencePiece, no vectors upstream
    ("aquila", .refused("tokenizer.ggml.pre is missing")),
    ("gpt-neox", .refused("tokenizer.ggml.pre is missing")),
    ("falcon", .refused("tokenizer.ggml.pre 'falcon'")),
    ("deepseek-llm", .refused("tokenizer.ggml.pre 'deepseek-llm'")),
    ("deepseek-coder", .refused("tokenizer.ggml.pre 'deepseek-coder'")),
    ("bert-bge", .refused("tokenizer.ggml.model 'bert'")),
    ("nomic-bert-moe", .refused("tokenizer.ggml.model 't5'")),
    ("gemma-4", .refused("tokenizer.ggml.model 'gemma4'")),
]

/// The vocab file path, or a recorded failure that says how to get the files.
private func vocabPath(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    let path = "\(llamaVocabDir)/ggml-vocab-\(name).gguf"
    guard FileManager.default.fileExists(atPath: path) else {
        Issue.record("\(path) is missing: run scripts/setup (it extracts llama.cpp's vocab files into models/llama-vocab/) or set TUNE_LLAMA_VOCAB_DIR",
                     sourceLocation: sourceLocation)
        return nil
    }
    return path
}

// MARK: - Vector files (format of llama.cpp tests/test-tokenizer-0.cpp)

struct VocabVector {
    var text: String
    var ids: [Int32]
}

/// Inputs are separated by "\n__ggml_vocab_test__\n" (split on bytes, as the C++ does); the .out file has
/// one line of space-separated ids per input.
func loadVocabVectors(inp: String, out: String) throws -> [VocabVector] {
    let raw = [UInt8](try Data(contentsOf: URL(fileURLWithPath: inp)))
    let sep = Array("\n__ggml_vocab_test__\n".utf8)
    var inputs: [String] = []
    var pos = 0
    while pos < raw.count {
        var next: Int? = nil
        var i = pos
        while i + sep.count <= raw.count {
            if raw[i] == sep[0] && Array(raw[i..<(i + sep.count)]) == sep { next = i; break }
            i += 1
        }
        guard let n = next else {
            inputs.append(String(decoding: raw[pos...], as: UTF8.self))
            break
        }
        inputs.append(String(decoding: raw[pos..<n], as: UTF8.self))
        pos = n + sep.count
    }
    let outText = try String(contentsOfFile: out, encoding: .utf8)
    var lines = outText.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    if outText.hasSuffix("\n") { lines.removeLast() }
    guard lines.count == inputs.count else {
        throw EngineError(.format, "\(inp): \(inputs.count) inputs but \(out) has \(lines.count) lines")
    }
    return try zip(inputs, lines).map { text, line in
        let ids = try line.split(separator: " ").map { s -> Int32 in
            guard let v = Int32(s.trimmingCharacters(in: .whitespaces)) else { throw EngineError(.format, "\(out): bad id '\(s)'") }
            return v
        }
        return VocabVector(text: text, ids: ids)
    }
}

private func loadTokenizer(_ path: String) throws -> BPETokenizer {
    try BPETokenizer(ggufMetadata: GGUFFile(path: path).metadata)
}

/// Visible rendering of a test input for failure messages.
private func show(_ s: String) -> String {
    s.unicodeScalars.map { $0 == "\n" ? "\\n" : $0 == "\t" ? "\\t" : $0 == "\r" ? "\\r" : String($0) }.joined()
}

// MARK: - Tests

@Suite struct VocabVectorTests {
    @Test func everyVocabFileIsClassified() throws {
        guard FileManager.default.fileExists(atPath: llamaVocabDir) else {
            Issue.record("\(llamaVocabDir) is missing: run scripts/setup (it extracts llama.cpp's vocab files there) or set TUNE_LLAMA_VOCAB_DIR")
            return
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: llamaVocabDir)
            .filter { $0.hasPrefix("ggml-vocab-") && $0.hasSuffix(".gguf") }
        let names = Set(files.map { String($0.dropFirst("ggml-vocab-".count).dropLast(".gguf".count)) })
        let known = Set(llamaVocabTable.map(\.0))
        #expect(names.subtracting(known).isEmpty, "vocab files tune does not classify: \(names.subtracting(known).sorted())")
        #expect(known.subtracting(names).isEmpty, "vocab files missing from \(llamaVocabDir): \(known.subtracting(names).sorted()); run scripts/setup")
    }

    @Test(arguments: llamaVocabTable.compactMap { if case .vectors = $0.1 { $0.0 } else { nil } })
    func matchesLlamaCppVectors(_ name: String) throws {
        guard let path = vocabPath(name) else { return }
        let tok = try loadTokenizer(path)
        let vectors = try loadVocabVectors(inp: path + ".inp", out: path + ".out")
        #expect(vectors.count >= 40)
        var passed = 0
        for v in vectors {
            // test-tokenizer-0: add_special = false, parse_special = false.
            let got = tok.encode(v.text, parseSpecial: false)
            if got == v.ids {
                passed += 1
            } else {
                Issue.record("\(name): '\(show(v.text))' → \(got), llama.cpp \(v.ids)")
            }
        }
        print("vocab \(name): \(passed)/\(vectors.count) llama.cpp vectors match (\(tok.model))")
        #expect(passed == vectors.count)
    }

    @Test(arguments: llamaVocabTable.compactMap { if case .vectors = $0.1 { $0.0 } else { nil } } + ["baichuan"])
    func decodeRoundTrips(_ name: String) throws {
        guard let path = vocabPath(name) else { return }
        let tok = try loadTokenizer(path)
        let inputs = try loadVocabVectors(inp: "\(llamaVocabDir)/ggml-vocab-llama-spm.gguf.inp",
                                          out: "\(llamaVocabDir)/ggml-vocab-llama-spm.gguf.out").map(\.text)
        for text in inputs {
            let ids = tok.encode(text, parseSpecial: false)
            #expect(tok.decode(ids) == text, "\(name): '\(show(text))' decodes to '\(show(tok.decode(ids)))'")
        }
        if name == "baichuan" {
            #expect(tok.model == .sentencePiece)
            #expect(tok.encode("Hello world", parseSpecial: false).count >= 2)
        }
    }

    @Test(arguments: llamaVocabTable.compactMap { if case .refused(let s) = $0.1 { ($0.0, s) } else { nil } })
    func refusesUnsupported(_ name: String, _ expected: String) throws {
        guard let path = vocabPath(name) else { return }
        do {
            let tok = try loadTokenizer(path)
            Issue.record("\(name): loaded (\(tok.model)) but tune has no vectors proving it; expected an .unsupported error")
        } catch let e as EngineError {
            #expect(e.kind == .unsupported, "\(name): \(e)")
            #expect(e.message.contains(expected), "\(name): '\(e.message)' does not name '\(expected)'")
            #expect(!e.message.contains("\n"), "\(name): the error is more than one line")
        }
    }

    @Test func sentencePieceSettings() throws {
        guard let path = vocabPath("llama-spm") else { return }
        let tok = try loadTokenizer(path)
        #expect(tok.model == .sentencePiece && tok.addSpacePrefix && tok.addBOS && !tok.addEOS)
        #expect(tok.bosID == 1 && tok.eosID == 2 && tok.unknownID == 0)
        // BOS per add_bos_token; "Hello" gets the space prefix ("▁Hello").
        let ids = tok.encode("Hello world", addSpecial: true)
        #expect(ids.first == 1 && ids.map(tok.token).dropFirst() == ["▁Hello", "▁world"])
        // Characters outside the vocab fall back to <0xNN> byte tokens and decode back to the bytes.
        let emoji = tok.encode("🦙", parseSpecial: false)
        #expect(emoji.map(tok.token) == ["▁", "<0xF0>", "<0x9F>", "<0xA6>", "<0x99>"])
        #expect(tok.decode(emoji) == "🦙")
        // Control tokens inside text: parsed only with parseSpecial; a fragment after one gets the space prefix.
        let special = tok.encode("<s>Hi</s> yo", parseSpecial: true)
        #expect(special.first == 1 && special.contains(2))
        #expect(special.map(tok.token) == ["<s>", "▁Hi", "</s>", "▁", "▁yo"])
        #expect(!tok.encode("<s>Hi", parseSpecial: false).contains(1))
        #expect(tok.isSpecial(1) && tok.isSpecial(2) && !tok.isSpecial(tok.id(of: "▁Hello")!))
        // decode: ▁ → space, the space prefix dropped once; decodeBytes keeps it (streaming).
        #expect(tok.decode(tok.encode("  two spaces")) == "  two spaces")
        #expect(tok.decodeBytes(tok.encode("x")) == Array(" x".utf8))
    }

    @Test func phi3StripsWhitespaceAfterItsSpecialTokens() throws {
        guard let path = vocabPath("phi-3") else { return }
        let tok = try loadTokenizer(path)
        let end = try #require(tok.id(of: "<|end|>"))
        // llama.cpp sets RSTRIP on Phi-3's special tokens: the newline after <|end|> is dropped.
        let ids = tok.encode("<|user|>\nHi<|end|>\n", parseSpecial: true)
        #expect(ids.last == end)
        #expect(ids.first == tok.id(of: "<|user|>"))
    }
}

// MARK: - Hand-built SentencePiece vocab (no files needed)

/// <unk>, <s>, </s>, the 256 byte tokens, a few pieces with scores, a user-defined and a control token.
private func tinySPMMetadata(addSpacePrefix: Bool = true, pre: String? = nil) -> [String: GGUFValue] {
    var tokens = ["<unk>", "<s>", "</s>"]
    var types: [Int32] = [2, 3, 3]
    var scores: [Float] = [0, 0, 0]
    for b in 0..<256 {
        tokens.append(String(format: "<0x%02X>", b))
        types.append(6)
        scores.append(0)
    }
    let pieces: [(String, Float)] = [
        ("▁", -1), ("a", -2), ("b", -2), ("c", -2), ("ab", -5), ("bc", -4), ("aa", -3), ("▁a", -6), ("▁b", -6),
    ]
    for (p, s) in pieces { tokens.append(p); types.append(1); scores.append(s) }
    tokens.append("<tool>"); types.append(4); scores.append(0)
    tokens.append("<|ctl|>"); types.append(3); scores.append(0)
    func strings(_ a: [String]) -> GGUFValue { .array(elementType: 8, a.map { .string($0) }) }
    var meta: [String: GGUFValue] = [
        "tokenizer.ggml.model": .string("llama"),
        "tokenizer.ggml.tokens": strings(tokens),
        "tokenizer.ggml.scores": .array(elementType: 6, scores.map { .float32($0) }),
        "tokenizer.ggml.token_type": .array(elementType: 5, types.map { .int32($0) }),
        "tokenizer.ggml.add_space_prefix": .bool(addSpacePrefix),
    ]
    if let pre { meta["tokenizer.ggml.pre"] = .string(pre) }
    return meta
}

@Suite struct TokenizerSentencePieceTinyTests {
    let tok = try! BPETokenizer(ggufMetadata: tinySPMMetadata(addSpacePrefix: false))

    func pieces(_ s: String, parseSpecial: Bool = true) -> [String] { tok.encode(s, parseSpecial: parseSpecial).map(tok.token) }

    @Test func highestScoreMergesFirstLeftmostOnTies() {
        #expect(pieces("abc") == ["a", "bc"])      // bc (-4) beats ab (-5)
        #expect(pieces("ab") == ["ab"])
        #expect(pieces("aaa") == ["aa", "a"])      // equal scores: the leftmost pair
        #expect(pieces("a b") == ["a", "▁b"])      // spaces are ▁ and merge like any character
    }

    @Test func missingCharactersFallBackToBytes() {
        #expect(pieces("é") == ["<0xC3>", "<0xA9>"])
        #expect(tok.decode(tok.encode("é a")) == "é a")
    }

    @Test func spacePrefixAtStartAndAfterSpecialTokens() throws {
        let prefixed = try BPETokenizer(ggufMetadata: tinySPMMetadata())
        #expect(prefixed.encode("a").map(prefixed.token) == ["▁a"])
        #expect(prefixed.encode("a<|ctl|>b").map(prefixed.token) == ["▁a", "<|ctl|>", "▁b"])
        #expect(prefixed.encode("a<tool>b").map(prefixed.token) == ["▁a", "<tool>", "▁b"])
        #expect(prefixed.decode(prefixed.encode("a b")) == "a b")
        #expect(prefixed.encode("").isEmpty)
        #expect(prefixed.encode("a", addSpecial: true) == [1] + prefixed.encode("a"))  // add_bos default true
    }

    @Test func controlTokensNeedParseSpecialUserDefinedDoNot() {
        #expect(pieces("<|ctl|>a", parseSpecial: false).contains("<|ctl|>") == false)
        #expect(pieces("<|ctl|>a", parseSpecial: true) == ["<|ctl|>", "a"])
        #expect(pieces("a<tool>a", parseSpecial: false) == ["a", "<tool>", "a"])
        #expect(tok.isSpecial(tok.id(of: "<|ctl|>")!) && !tok.isSpecial(tok.id(of: "<tool>")!))
    }

    @Test func preTokenizerOtherThanDefaultIsRefused() {
        do {
            _ = try BPETokenizer(ggufMetadata: tinySPMMetadata(pre: "qwen2"))
            Issue.record("a SentencePiece vocab with tokenizer.ggml.pre 'qwen2' loaded")
        } catch let e as EngineError {
            #expect(e.kind == .unsupported && e.message.contains("'qwen2'"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
        #expect((try? BPETokenizer(ggufMetadata: tinySPMMetadata(pre: "default"))) != nil)
    }
}
