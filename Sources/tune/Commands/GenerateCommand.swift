// tune generate — complete a prompt with a model, streaming tokens to the terminal.
import ArgumentParser
import Engine
import Foundation
import TuneKit

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate text from a prompt (greedy by default, seeded sampling with --temperature).")
    @Argument(help: "A .gguf file or an HF model directory.") var model: String
    @Option(help: "The prompt.") var prompt: String
    @Option(name: .customLong("max-tokens"), help: "Most tokens to generate.") var maxTokens = 128
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling mass.") var topP: Float = 1
    @Option(help: "Random seed for sampling.") var seed: UInt64 = 0
    @Option(help: "PEFT adapter directory to apply.") var adapter: String?
    @Flag(help: "Prefill and decode with the exact float32 path (as `tune score` and the parity tests) instead of the fast one: int8 decode steps (llama.cpp-style activations) for Q4_0/Q4_1/Q5_0/Q8_0 and Q4_K/Q5_K/Q6_K weights, bf16-product prefill where the CPU gains from it (AMD with AVX-512 BF16; TUNE_FAST_GEMM=bf16|f32 forces it).")
    var exact = false
    @OptionGroup var input: TextInput
    @OptionGroup var global: GlobalOptions

    struct Result: Encodable {
        var text: String; var ids: [Int32]; var promptTokens: Int; var finishReason: FinishReason
        var promptTokensPerSecond: Double; var tokensPerSecond: Double; var decode: String; var prefill: String
        enum CodingKeys: String, CodingKey {
            case text, ids, decode, prefill, promptTokens = "prompt_tokens", finishReason = "finish_reason"
            case promptTokensPerSecond = "prompt_tokens_per_second", tokensPerSecond = "tokens_per_second"
        }
    }

    /// What decoded: "exact", or the int8 kernel when the layers' projections are in a type it takes
    /// (K-quant and float layers stay exact).
    static func decodePath(_ m: LlamaModel, exact: Bool) -> String {
        guard !exact, let w = m.weights.layers.first?.wq, Kernels.fastDecodeApplies(to: w) else { return "exact" }
        return Kernels.fastDecodeKernel
    }

    func run() throws {
        try reportingErrors {
            try global.apply()
            guard temperature >= 0, topP > 0, topP <= 1 else {
                throw ValidationError("--temperature must be >= 0 and --top-p in (0, 1]")
            }
            var m = try LlamaModel.load(path: model)
            if let adapter { m = try m.loadingAdapter(directory: adapter) }
            var stops = Set<Int32>()
            if input.chat, let t = try? ChatTemplate.forModel(m.tokenizer) {
                stops.formUnion(t.stopStrings.compactMap { m.tokenizer.id(of: $0) })
            }
            let ids = try input.encode(prompt, tokenizer: m.tokenizer)
            let opts = GenerationOptions(maxTokens: maxTokens, temperature: temperature, topP: topP, seed: seed, stopTokens: stops,
                                         fast: !exact)
            let g = try m.generate(promptIDs: ids, options: opts) { piece in
                if !global.json { Output.text(piece, terminator: "") }
                return true
            }
            if global.json {
                try Output.json(Result(text: g.text, ids: g.ids, promptTokens: ids.count, finishReason: g.finishReason,
                                       promptTokensPerSecond: Double(ids.count) / max(g.promptSeconds, 1e-9),
                                       tokensPerSecond: Double(max(g.ids.count - 1, 0)) / max(g.generateSeconds, 1e-9),
                                       decode: Self.decodePath(m, exact: exact),
                                       prefill: exact || Kernels.fastGEMMKernel == "f32" ? "exact" : Kernels.fastGEMMKernel))
            } else {
                Output.text("")
            }
        }
    }
}
