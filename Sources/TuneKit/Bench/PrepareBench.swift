// PrepareBench — `tune bench prepare`: rows/s and tokens/s of the prepare stage on a JSONL file with a
// real tokenizer, plus tokenizer-only speed beside HF `tokenizers` on the same texts (measured in the
// same run through a small Python subprocess, when that library is installed — never estimated).

import Engine
import Foundation

/// One measured tokenizer: seconds for all texts and tokens/s.
public struct TokenizerTiming: Codable, Sendable {
    public var name: String
    public var seconds: Double
    public var tokensPerSecond: Double
    enum CodingKeys: String, CodingKey { case name, seconds, tokensPerSecond = "tokens_per_second" }
}

public struct PrepareBenchReport: Codable, Sendable {
    public var model: String
    public var inputs: [String]
    public var rows: Int
    public var tokens: Int
    /// Best wall time of the whole stage (read → shards + manifest).
    public var stageSeconds: Double
    public var rowsPerSecond: Double
    public var tokensPerSecond: Double
    /// Tokenizing the rendered texts only: tune's BPE, then the reference (single-threaded loop and
    /// `encode_batch`), when available.
    public var tokenizers: [TokenizerTiming]
    /// "HF tokenizers 0.x.y" or why there is no reference.
    public var reference: String
    /// Texts whose HF ids equal tune's ids (nil without reference).
    public var referenceIDsMatch: Int?
    /// tune tokens/s ÷ HF single-thread tokens/s (nil without reference).
    public var speedupVsReference: Double?

    enum CodingKeys: String, CodingKey {
        case model, inputs, rows, tokens, stageSeconds = "stage_seconds", rowsPerSecond = "rows_per_second"
        case tokensPerSecond = "tokens_per_second", tokenizers, reference, referenceIDsMatch = "reference_ids_match"
        case speedupVsReference = "speedup_vs_reference"
    }
}

public struct PrepareBench: Sendable {
    public var inputs = ["datasets/shipping-docs/train.jsonl", "datasets/shipping-docs/eval.jsonl"]
    /// Runs per measurement; the best is reported.
    public var repeats = 3
    /// The Python interpreter for the reference (`TUNE_PYTHON` or python3).
    public var python = ProcessInfo.processInfo.environment["TUNE_PYTHON"] ?? "python3"

    public init() {}

    public func run(modelPath: String, progress: (String) -> Void = { _ in }) throws -> PrepareBenchReport {
        let tok = try DatasetTokenizer.load(modelPath: modelPath)
        var cfg = PrepareConfig()
        cfg.split.evalFraction = 0
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-prepare-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: work) }

        progress("prepare stage on \(inputs.joined(separator: ", ")), best of \(repeats)")
        var best = Double.infinity
        var manifest: DatasetManifest?
        for _ in 0..<repeats {
            let t0 = DispatchTime.now()
            manifest = try PrepareStage.run(inputs: inputs, config: cfg, tokenizer: tok, outputDir: work)
            best = min(best, seconds(since: t0))
        }
        guard let m = manifest else { throw TuneError(.internal, "bench: no run") }
        let rows = m.counts.kept, tokens = (m.splits["train"]?.tokens ?? 0) + (m.splits["eval"]?.tokens ?? 0)

        // Tokenizer only, on the rendered texts.
        let renderer = try RowRenderer(setting: "auto", tokenizer: tok.tokenizer)
        var texts: [String] = []
        for path in inputs {
            for line in try JSONLReader.read(path: path, format: .auto).lines {
                if case .success(let row) = line.result { texts.append(try renderer.spans(for: row).map(\.text).joined()) }
            }
        }
        progress("tokenizer only: \(texts.count) texts")
        var ours: [[Int32]] = []
        var tBest = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now()
            ours = texts.map { tok.tokenizer.encode($0) }
            tBest = min(tBest, seconds(since: t0))
        }
        let count = ours.reduce(0) { $0 + $1.count }
        var timings = [TokenizerTiming(name: "tune BPE", seconds: tBest, tokensPerSecond: Double(count) / tBest)]
        var report = PrepareBenchReport(model: modelPath, inputs: inputs, rows: rows, tokens: tokens, stageSeconds: best,
                                        rowsPerSecond: Double(rows) / best, tokensPerSecond: Double(tokens) / best,
                                        tokenizers: timings, reference: "", referenceIDsMatch: nil, speedupVsReference: nil)
        progress("reference: HF tokenizers via \(python)")
        switch try HFReference(python: python, repeats: repeats).run(modelPath: modelPath, texts: texts, work: work) {
        case .unavailable(let why):
            report.reference = why
        case .measured(let version, let loop, let batch, let ids):
            timings.append(TokenizerTiming(name: "HF tokenizers (encode loop)", seconds: loop, tokensPerSecond: Double(count) / loop))
            timings.append(TokenizerTiming(name: "HF tokenizers (encode_batch)", seconds: batch, tokensPerSecond: Double(count) / batch))
            report.tokenizers = timings
            report.reference = "HF tokenizers \(version)"
            report.referenceIDsMatch = zip(ids, ours).filter { $0.0 == $0.1 }.count
            report.speedupVsReference = loop / tBest
        }
        return report
    }

    private func seconds(since t0: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
    }
}
