// tune eval — held-out loss, perplexity and exact match of the base model and (with --adapter) the
// tuned one, side by side, with an optional pass/fail gate (exit 1 when it fails).
import ArgumentParser
import Foundation
import TuneKit

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate base vs base+adapter on held-out data: loss, perplexity, exact match; optional gate.")
    @Option(help: "Base model (.gguf or HF directory).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "PEFT adapter directory to compare against the base.") var adapter: String?
    @Option(help: "Prepared dataset directory (its eval split) or an eval JSONL file.") var data: String
    @Option(help: "Gate metric: exact_match, token_accuracy, loss, perplexity.") var gate: String?
    @Option(help: "Minimum improvement of the gate metric, tuned − base (loss/perplexity: base − tuned).") var minDelta: Double = 0
    @Option(help: "Sequences per batched forward.") var batch = 8
    @Flag(help: "Skip the base model (only with --adapter).") var noBase = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            if gate != nil, adapter == nil { throw ValidationError("--gate needs --adapter (it compares tuned with base)") }
            let base = try LlamaModel.load(path: model)
            let tuned = try adapter.map { try base.loadingAdapter(directory: $0) }
            let examples = try loadExamples()
            let bar = ProgressBar()
            func run(_ m: LlamaModel, _ name: String) throws -> ModelEvaluation {
                let e = try Evaluator.evaluate(model: m, name: name, examples: examples, batch: batch) { done, total in
                    if !global.json { bar.update(done: done, total: total, detail: name) }
                }
                bar.finishLine()
                return e
            }
            guard !(noBase && tuned == nil) else { throw ValidationError("--no-base needs --adapter") }
            let baseEval = noBase ? nil : try run(base, (model as NSString).lastPathComponent)
            let tunedEval = try tuned.map { try run($0, "+ " + ((adapter! as NSString).lastPathComponent)) }
            var cmp = EvalComparison(base: baseEval ?? tunedEval!, tuned: noBase ? nil : tunedEval, gate: nil)
            if let gate, let b = baseEval, let t = tunedEval {
                cmp.gate = try Evaluator.gate(metric: gate, minDelta: minDelta, base: b, tuned: t)
            }
            if global.json { try Output.json(cmp) } else { Output.text(Evaluator.markdown(cmp), terminator: "") }
            if cmp.gate?.passed == false { throw ExitCode(1) }
        }
    }

    private func loadExamples() throws -> [DatasetExample] {
        if TrainingDataLoader.isPreparedDataset(data) {
            let p = try PreparedDataset(directory: data)
            return try p.examples(split: p.manifest.splits["eval"] != nil ? "eval" : "train")
        }
        // A JSONL file: prepared in a temp dir, every row kept (no split, no dedup), all of it evaluated.
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("tune-eval-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        var cfg = PrepareConfig()
        cfg.split.evalFraction = 0
        cfg.dedup.exact = false
        cfg.dedup.near = nil
        let (d, _) = try TrainingDataLoader.load(data: [data], modelPath: model, workDir: work, config: cfg)
        return d.train
    }
}
