// tune prepare — JSONL → token shards + manifest.json (the prepare stage on its own).
import ArgumentParser
import Foundation
import TuneKit

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare", abstract: "Prepare JSONL data: template, tokenize with loss mask, filter, dedup, split, pack, shard.")
    @Argument(help: "Training JSONL file(s): chat, alpaca, prompt/completion or text rows.") var data: [String]
    @Option(help: "Held-out eval JSONL file (default: a seeded --eval-fraction of the data).") var eval: String?
    @Option(help: "Model whose tokenizer and chat template to use (.gguf or HF dir).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Output directory for shards and manifest.json.") var out: String
    @Option(help: "Prepare config (YAML or JSON, the pipeline's prepare: section); flags override it.") var config: String?
    @Option(help: "Row format (default: auto, detected per row).") var format: DatasetFormat?
    @Option(help: "Chat template: auto (the model's), none, chatml, smollm2, llama3.") var template: String?
    @Option(help: "System prompt for alpaca/completion rows mapped onto chat (default: the template's).") var systemPrompt: String?
    @Option(help: "Drop rows longer than this many tokens.") var maxTokens: Int?
    @Option(help: "Drop rows shorter than this many tokens.") var minTokens: Int?
    @Option(help: "Split seed.") var seed: UInt64?
    @Option(help: "Fraction held out for eval when there is no --eval file.") var evalFraction: Double?
    @Option(help: "Malformed rows: count, report and skip them, or fail at the first (default: skip).") var onError: PrepareConfig.OnError?
    @Option(help: "Near-duplicate Jaccard threshold (MinHash/LSH).") var nearThreshold: Double?
    @Flag(help: "Turn off near-duplicate removal.") var noNearDedup = false
    @Option(help: "Pack rows into sequences of this many tokens.") var pack: Int?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            let cfg = try makeConfig()
            let tok = try DatasetTokenizer.load(modelPath: model)
            let manifest = try PrepareStage.run(inputs: data, config: cfg, tokenizer: tok, outputDir: out) { event in
                if !global.json, let line = PrepareReport.line(for: event) {
                    FileHandle.standardError.write(Data((line + "\n").utf8))
                }
            }
            if global.json { try Output.json(manifest) } else { Output.text(PrepareReport.summary(manifest, out: out)) }
        }
    }

    /// The config file (if any) with the flags applied on top.
    func makeConfig() throws -> PrepareConfig {
        var c = try config.map { try PrepareConfig.load(path: $0) } ?? PrepareConfig()
        if let format { c.format = format }
        if let template { c.template = template }
        if let systemPrompt { c.systemPrompt = systemPrompt }
        if let maxTokens { c.maxTokens = maxTokens }
        if let minTokens { c.minTokens = minTokens }
        if let seed { c.split.seed = seed }
        if let evalFraction { c.split.evalFraction = evalFraction }
        if let eval { c.split.evalFile = eval }
        if let onError { c.onError = onError }
        if let nearThreshold { c.dedup.near = c.dedup.near ?? .init(); c.dedup.near?.threshold = nearThreshold }
        if noNearDedup { c.dedup.near = nil }
        if let pack { c.pack.enabled = true; c.pack.seqLen = pack }
        return c
    }
}

extension DatasetFormat: ExpressibleByArgument {}
extension PrepareConfig.OnError: ExpressibleByArgument {}
