// EvalJob — `tune eval` as a library call: load base / adapter / merged, prepare the data (a prepared
// dataset's eval split, or a JSONL file prepared on the fly), evaluate each, assemble the report.

import Engine
import Foundation

public struct EvalJob: Sendable {
    public var model: String
    public var adapter: String?
    /// A merged model (GGUF file or HF directory) or a merged adapter directory.
    public var merged: String?
    public var data: String
    public var config: EvalConfig
    public var includeBase = true
    public var trainSeconds: Double?
    /// Where `config.references` read their API keys (and base URL variables) from, and how they are reached.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    public var transport: any HTTPTransport = CurlHTTPTransport()
    /// Progress lines (reference retries, reference summaries).
    public var log: @Sendable (String) -> Void = { _ in }

    public init(model: String, adapter: String? = nil, merged: String? = nil, data: String, config: EvalConfig) {
        self.model = model
        self.adapter = adapter
        self.merged = merged
        self.data = data
        self.config = config
    }

    /// Evaluates every model given; `progress(role, done, total)` after each batch.
    public func run(progress: (ModelRole, Int, Int) -> Void = { _, _, _ in }) throws -> EvalReport {
        guard includeBase || adapter != nil || merged != nil else {
            throw TuneError(.invalidArgument, "nothing to evaluate: skipping the base needs --adapter or --merged")
        }
        let base = try LlamaModel.load(path: model)
        let (all, template) = try loadExamplesAndTemplate()
        let examples = config.limited(all)
        var evals: [ModelEvaluation] = []
        var subjects: [String: String] = [:]
        func run(_ m: LlamaModel, _ role: ModelRole, _ path: String) throws {
            evals.append(try Evaluator.evaluate(model: m, role: role, name: (path as NSString).lastPathComponent, examples: examples,
                                                config: config) { progress(role, $0, $1) })
            subjects[role.rawValue] = path
        }
        if includeBase { try run(base, .base, model) }
        if let adapter { try run(try base.loadingAdapter(directory: adapter), .adapter, adapter) }
        if let merged {
            let isAdapter = FileManager.default.fileExists(atPath: (merged as NSString).appendingPathComponent("adapter_config.json"))
            try run(isAdapter ? try base.loadingAdapter(directory: merged) : try LlamaModel.load(path: merged), .merged, merged)
        }
        if !config.references.isEmpty {
            let tok = try DatasetTokenizer.load(modelPath: model)
            let conversations = ChatExport.conversations(examples, tokenizer: tok.tokenizer, template: template)
            for ref in config.references {
                let e = try ref.evaluate(conversations: conversations, config: config, environment: environment, transport: transport, onRetry: log)
                log(String(format: "reference %@ (%@): %d examples in %.1f s", ref.name, ref.model, e.examples, e.seconds))
                evals.append(e)
                subjects["reference:\(ref.name)"] = "\(ref.model) at \(ref.shownURL(environment: environment))"
            }
        }
        let curve = try adapter.flatMap { try TrainingCurve.load(adapterDirectory: $0) }
        return try EvalReport(models: evals, config: config, subjects: subjects, dataset: (data as NSString).lastPathComponent,
                              training: curve, trainSeconds: trainSeconds)
    }

    /// The prepared dataset's eval split (its train split when it has none), or every row of a JSONL file.
    public func loadExamples() throws -> [DatasetExample] { try loadExamplesAndTemplate().examples }

    /// The examples and the chat template they were rendered with (references get them back as chat turns).
    func loadExamplesAndTemplate() throws -> (examples: [DatasetExample], template: String) {
        if TrainingDataLoader.isPreparedDataset(data) {
            let p = try PreparedDataset(directory: data)
            return (try p.examples(split: p.manifest.splits["eval"] != nil ? "eval" : "train"), p.manifest.template.name)
        }
        // A JSONL file: prepared in a temp dir, every row kept (no split, no dedup), all of it evaluated.
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("tune-eval-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }
        var cfg = PrepareConfig()
        cfg.split.evalFraction = 0
        cfg.dedup.exact = false
        cfg.dedup.near = nil
        let (d, prepared) = try TrainingDataLoader.load(data: [data], modelPath: model, workDir: work, config: cfg)
        return (d.train, prepared.manifest.template.name)
    }
}
