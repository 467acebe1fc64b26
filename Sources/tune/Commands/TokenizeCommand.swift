// tune tokenize — text to token ids with the model's own tokenizer.
import ArgumentParser
import Engine
import TuneKit

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize", abstract: "Tokenize text with a model's tokenizer (no BOS unless the model adds one).")
    @Argument(help: "A .gguf file or an HF model directory.") var model: String
    @Argument(help: "Text to tokenize (or use --file).") var text: String?
    @Option(help: "Read the text from a UTF-8 file.") var file: String?
    @OptionGroup var input: TextInput
    @OptionGroup var global: GlobalOptions

    struct Result: Encodable { var ids: [Int32]; var tokens: [String] }

    func run() throws {
        try reportingErrors {
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
}
