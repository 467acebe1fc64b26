// tune eval — base vs adapter vs merged on held-out data, side by side: loss, perplexity, exact match
// and the task metrics the config declares; a promotion gate (exit 1 when it fails), costs, and a
// report directory (report.json / report.md / report.html). Everything is EvalJob in TuneKit.
import ArgumentParser
import Foundation
import TuneKit

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate base vs adapter vs merged on held-out data: metrics, gate, costs, report.")
    @Option(help: "Base model (.gguf or HF directory).") var model = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "PEFT adapter directory (the tuned model is base + adapter).") var adapter: String?
    @Option(help: "Merged model (.gguf, HF directory) or merged adapter directory.") var merged: String?
    @Option(help: "Prepared dataset directory (its eval split) or an eval JSONL file.") var data: String
    @Option(help: "A pipeline YAML (its eval: section) or an eval YAML: metrics, choices, gate, costs.") var config: String?
    @Option(name: .customLong("metric"), help: "Metric to compute (repeatable; replaces the config's list).") var metrics: [String] = []
    @Option(help: "Answer options, comma-separated (choice accuracy, confusion matrix).") var choices: String?
    @Option(help: "Pattern for the regex metric.") var regex: String?
    @Option(name: .customLong("json-field"), help: "Field for the json_fields metric (repeatable).") var jsonFields: [String] = []
    @Option(help: "Greedy tokens generated per example for task metrics.") var maxNewTokens: Int?
    @Option(name: .customLong("gate"), help: "Gate rule METRIC:BOUND=VALUE[,…] (repeatable), or a metric name with --min-delta.") var gates: [String] = []
    @Option(help: "With --gate METRIC: minimum improvement over the base.") var minDelta: Double = 0
    @Option(help: "Costs YAML (hardware_per_hour, managed_*_per_million, …; docs/eval.md).") var costs: String?
    @Option(help: "Measured training time in seconds, for the training cost.") var trainSeconds: Double?
    @Option(help: "Write report.json, report.md and report.html into this directory.") var report: String?
    @Option(help: "Examples per batched forward.") var batch: Int?
    @Flag(help: "Generate on the exact float32 path instead of the fast one (int8 decode steps; scores are exact either way).")
    var exact = false
    @Flag(help: "Skip the base model (needs --adapter or --merged; no _vs_base gate rules).") var noBase = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            var cfg = try config.map { try EvalConfig.load(file: $0) } ?? EvalConfig()
            if !metrics.isEmpty { cfg.metrics = metrics }
            if let choices { cfg.choices = choices.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let regex { cfg.regex = regex }
            if !jsonFields.isEmpty { cfg.jsonFields = jsonFields }
            if let maxNewTokens { cfg.maxNewTokens = maxNewTokens }
            if exact { cfg.exactGeneration = true }
            if let batch { cfg.batch = batch }
            if !gates.isEmpty { cfg.gate = try gates.map { $0.contains(":") ? try GateRule.parse($0) : .legacy(metric: $0, minDelta: minDelta) } }
            if let costs { cfg.costs = try CostConfig.load(file: costs) }
            try cfg.validate()
            var job = EvalJob(model: model, adapter: adapter, merged: merged, data: data, config: cfg)
            job.includeBase = !noBase
            job.trainSeconds = trainSeconds
            let quiet = global.json
            job.log = { line in if !quiet { FileHandle.standardError.write(Data("eval: \(line)\n".utf8)) } }
            let bar = ProgressBar()
            let result = try job.run { role, done, total in if !global.json { bar.update(done: done, total: total, detail: role.rawValue) } }
            bar.finishLine()
            if let report { try result.write(to: report) }
            if global.json { try Output.json(result) } else { Output.text(result.markdown(), terminator: "") }
            if let g = result.gate, !g.passed {
                Output.error("eval gate failed — \(g.summary)")
                throw ExitCode(1)
            }
        }
    }
}
