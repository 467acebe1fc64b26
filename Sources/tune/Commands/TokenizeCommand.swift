// tune tokenize — text to token ids with the model's own tokenizer.
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Tokenize text with a model's tokenizer (no BOS unless the model adds one).")
    @Argument(help: "A .gguf file or an HF model directory.") var model: String
    @Argument(help: "Text to tokenize (or use --file).") var text: String?
    @Option(help: "Read the text from a UTF-8 file.") var file: String?
    @Option(name: .customLong("write-hf"), help: "Write the model's Hugging Face tokenizer files (tokenizer.json, tokenizer_config.json with the chat template, special_tokens_map.json, generation_config.json) into this directory instead; GGUF models with a byte-level BPE tokenizer or a SentencePiece one without a space prefix (Gemma 3).")
    var writeHF: String?
    @OptionGroup var input: TextInput
    @OptionGroup var global: GlobalOptions

    struct Result: Encodable { var ids: [Int32]; var tokens: [String] }

    func run() throws {
        try reportingErrors {
            if let dir = writeHF { return try writeHFFiles(to: dir) }
            let raw = try file.map(TextInput.readFile) ?? text
            guard let raw else { throw ValidationError("give TEXT or --file") }
            let tok = try LlamaModel.loadTokenizer(path: model)
            let ids = try input.encode(raw, tokenizer: tok)
            let result = Result(ids: ids, tokens: ids.map(tok.token))
            if global.json { try Output.json(result) } else {
                Output.text(zip(ids, result.tokens).map { "\($0)\t\($1.debugDescription)" }.joined(separator: "\n"))
            }
        }
    }

    /// `--write-hf`: the tokenizer files an HF export carries (HFTokenizerFiles), written atomically one by one.
    func writeHFFiles(to dir: String) throws {
        guard model.hasSuffix(".gguf") else {
            throw TuneError(.invalidArgument, "--write-hf: \(model) is not a .gguf file (an HF directory has its tokenizer files already)")
        }
        let g = try GGUFFile(path: model)
        let context = g.metadata["\(g.metadata["general.architecture"]?.stringValue ?? "llama").context_length"]?.intValue ?? 2048
        let files = try HFTokenizerFiles.make(ggufMetadata: g.metadata, contextLength: context)
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw TuneError(.io, "\(dir): cannot create directory (\(error.localizedDescription))")
        }
        for (name, data) in files.sorted(by: { $0.key < $1.key }) {
            let path = (dir as NSString).appendingPathComponent(name)
            do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                throw TuneError(.io, "\(path): cannot write (\(error.localizedDescription))")
            }
        }
        if global.json { try Output.json(["directory": dir, "files": files.keys.sorted().joined(separator: ",")]) } else {
            Output.text("wrote \(files.keys.sorted().joined(separator: ", ")) to \(dir)")
        }
    }
}
