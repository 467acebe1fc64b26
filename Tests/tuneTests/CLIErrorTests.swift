// CLIErrorTests — bad input gives one clear `error:` line and a non-zero exit code, never a crash.
import Foundation
import Testing
import Engine

@Suite struct CLIErrorTests {
    @Test func helpListsCommands() throws {
        let r = try tune(["--help"])
        #expect(r.status == 0)
        for cmd in ["generate", "score", "tokenize", "model", "bench"] {
            #expect(r.stdout.contains(cmd), "tune --help does not list \(cmd)")
        }
    }

    /// An explicit `--python` that does not work fails at once, naming it and what failed: no silent
    /// fallback to another Python, and nothing measured (the model path does not exist either).
    @Test func benchTrainWithBrokenPythonFailsNamingIt() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let missing = try tune(["bench", "train", "--python", "/nonexistent/python3", "--model", "/nonexistent/model.gguf"])
        #expect(missing.status == 65, "\(missing.stderr)")
        #expect(errorLines(missing.stderr).count == 1, "\(missing.stderr)")
        #expect(errorLines(missing.stderr).first?.hasPrefix("error: --python /nonexistent/python3: cannot start /nonexistent/python3") == true,
                "\(missing.stderr)")
        #expect(!missing.stderr.contains("measuring") && missing.stdout.isEmpty, "\(missing.stderr)")

        let py = dir.appendingPathComponent("python3")
        try "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'peft'\" >&2\nexit 1\n".write(to: py, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: py.path)
        let noPeft = try tune(["bench", "train", "--python", py.path, "--model", "/nonexistent/model.gguf"])
        #expect(noPeft.status == 65, "\(noPeft.stderr)")
        #expect(errorLines(noPeft.stderr) == ["error: --python \(py.path): `import torch, peft, transformers, gguf` failed (exit 1): "
                                               + "ModuleNotFoundError: No module named 'peft'; install them for it "
                                               + "(scripts/reference/README.md) or leave out --python"], "\(noPeft.stderr)")
        #expect(!noPeft.stderr.contains("measuring") && noPeft.stdout.isEmpty, "\(noPeft.stderr)")
    }

    @Test func missingFile() throws {
        let r = try tune(["model", "inspect", "/nonexistent/model.gguf"])
        #expect(r.status == 66)
        #expect(r.stderr == "error: /nonexistent/model.gguf: no such file or directory\n")
    }

    @Test func notAGGUF() throws {
        let dir = try makeTempDir()
        let f = dir.appendingPathComponent("notes.gguf")
        try Data("hello, this is not a model file at all".utf8).write(to: f)
        let r = try tune(["score", f.path, "--text", "hi there"])
        #expect(r.status == 65)
        #expect(r.stderr.hasPrefix("error: \(f.path)"))
        #expect(r.stderr.lowercased().contains("magic"))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test(.enabled(if: hasRealModel)) func truncatedGGUF() throws {
        let dir = try makeTempDir()
        let f = dir.appendingPathComponent("truncated.gguf")
        let h = try FileHandle(forReadingFrom: URL(fileURLWithPath: realModelPath))
        try h.readData(ofLength: 3_000_000).write(to: f)
        for args in [["model", "inspect", f.path], ["generate", f.path, "--prompt", "hi"]] {
            let r = try tune(args)
            #expect(r.status == 65, "\(args): \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: \(f.path)"))
            #expect(r.stderr.split(separator: "\n").count == 1)
        }
    }

    @Test(.enabled(if: hasRealModel)) func invalidUTF8Argument() throws {
        // 0xC3 0x28 is an invalid two-byte sequence; pass it through a shell so argv carries raw bytes.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "\"$0\" tokenize \"$1\" \"$(printf 'caf\\303\\050')\"", tuneBinary.path, realModelPath]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = Pipe()
        try p.run()
        let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 65)
        #expect(msg.hasPrefix("error: argument 3"))
        #expect(msg.contains("not valid UTF-8"))
    }

    @Test(.enabled(if: hasRealModel)) func missingAdapterIsAClearError() throws {
        let r = try tune(["score", realModelPath, "--text", "hello world", "--adapter", "/nonexistent/adapter"])
        #expect(r.status == 66)
        #expect(r.stderr.hasPrefix("error: /nonexistent/adapter/adapter_config.json: cannot read"), "\(r.stderr)")
    }

    @Test func wrongArchitecture() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("gpt2.gguf").path
        var w = GGUFWriter()
        w.set("general.architecture", .string("gpt2"))
        w.set("gpt2.block_count", .uint32(2))
        try w.addTensor(name: "token_embd.weight", shape: [8, 4], values: [Float](repeating: 0.5, count: 32))
        try w.write(to: f)
        let r = try tune(["generate", f, "--prompt", "hi"])
        #expect(r.status == 65)
        #expect(r.stderr == "error: \(f): architecture 'gpt2' is not supported (supported: \(ModelArchitecture.supportedList))\n")
    }

    @Test func tinyModelRunsEndToEnd() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let f = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: f, config: .tiny, seed: 5, weightType: .q4_1)
        let r = try tune(["generate", f, "--prompt", "the cat", "--max-tokens", "5", "--temperature", "0.7", "--seed", "9", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let again = try tune(["generate", f, "--prompt", "the cat", "--max-tokens", "5", "--temperature", "0.7", "--seed", "9", "--json"])
        func ids(_ out: String) throws -> [Int] {
            let o = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
            return try #require(o?["ids"] as? [Int])
        }
        #expect(try ids(r.stdout).count == 5)
        #expect(try ids(r.stdout) == ids(again.stdout), "same seed, same tokens")
        // Q4_1 decodes through the int8 path by default and says so; --exact is the float path, and
        // its greedy tokens are the engine's exact generate's.
        func decode(_ out: String) -> String? {
            ((try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any])?["decode"] as? String
        }
        #expect(decode(r.stdout)?.hasPrefix("int8-") == true, "\(r.stdout)")
        let exact = try tune(["generate", f, "--prompt", "the cat", "--max-tokens", "6", "--exact", "--json"])
        #expect(exact.status == 0 && decode(exact.stdout) == "exact", "\(exact.stdout)")
        let m = try LlamaModel.load(path: f)
        let want = try m.generate(promptIDs: m.tokenizer.encodeAddingBOS("the cat"), options: GenerationOptions(maxTokens: 6))
        #expect(try ids(exact.stdout) == want.ids.map(Int.init))
    }
}

/// The `error:` lines of `stderr` (a backend notice such as "CUDA backend unavailable …; running on CPU" may precede them).
private func errorLines(_ stderr: String) -> [String] {
    stderr.split(separator: "\n").filter { $0.hasPrefix("error: ") }.map(String.init)
}
