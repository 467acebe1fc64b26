// tune score — per-token log-probabilities of a text under a model.
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct ScoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score", abstract: "Per-token natural-log probabilities of a text: ln p(x[i+1] | x[0...i]).")
    @Argument(help: "A .gguf file or an HF model directory.") var model: String
    @Option(help: "Text to score.") var text: String?
    @Option(help: "Read the text from a UTF-8 file.") var file: String?
    @Option(help: "PEFT adapter directory to apply.") var adapter: String?
    @Option(help: "JSON file with a list of token-id lists to score (prints their per-token log-probs as JSON).") var ids: String?
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
            var m = try LlamaModel.load(path: model)
            if let adapter { m = try m.loadingAdapter(directory: adapter) }
            if let ids {
                // A JSON list of token-id lists → {"logprobs": [[…] per sequence]}.
                guard let data = FileManager.default.contents(atPath: ids) else { throw EngineError(.io, "\(ids): cannot read") }
                guard let lists = try? JSONDecoder().decode([[Int32]].self, from: data) else {
                    throw EngineError(.format, "\(ids): expected a JSON list of token-id lists")
                }
                let all = try lists.map { try m.score(ids: $0).tokenLogprobs }
                try Output.json(["logprobs": all])
                return
            }
            let raw = try file.map(TextInput.readFile) ?? text
            guard let raw else { throw ValidationError("give --text, --file or --ids") }
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
