// tune score — per-token log-probabilities of a text under a model.
import ArgumentParser
import TuneKit

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score", abstract: "Per-token natural-log probabilities of a text: ln p(x[i+1] | x[0...i]).")
    @Argument(help: "A .gguf file or an HF model directory.") var model: String
    @Option(help: "Text to score.") var text: String?
    @Option(help: "Read the text from a UTF-8 file.") var file: String?
    @Option(help: "PEFT adapter directory to apply.") var adapter: String?
    @OptionGroup var input: TextInput
    @OptionGroup var global: GlobalOptions

    struct Result: Encodable {
        var ids: [Int32]
        var tokenLogprobs: [Double]
        var meanLoglik: Double
        enum CodingKeys: String, CodingKey { case ids, tokenLogprobs = "token_logprobs", meanLoglik = "mean_loglik" }
    }

    func run() throws {
        try reportingErrors {
            try global.apply()
            if let adapter {
                throw EngineError(.unsupported, "--adapter \(adapter): loading PEFT adapters is not supported yet (it arrives with LoRA training)")
            }
            let raw = try file.map(TextInput.readFile) ?? text
            guard let raw else { throw ValidationError("give --text or --file") }
            let m = try LlamaModel.load(path: model)
            let scores = try m.score(ids: try input.encode(raw, tokenizer: m.tokenizer))
            let result = Result(ids: scores.ids, tokenLogprobs: scores.tokenLogprobs, meanLoglik: scores.meanLoglik)
            if global.json { try Output.json(result) } else {
                for (i, lp) in scores.tokenLogprobs.enumerated() {
                    Output.text("\(scores.ids[i + 1])\t\(m.tokenizer.token(scores.ids[i + 1]).debugDescription)\t\(lp)")
                }
                Output.text("mean log-likelihood \(scores.meanLoglik) over \(scores.tokenLogprobs.count) tokens")
            }
        }
    }
}
