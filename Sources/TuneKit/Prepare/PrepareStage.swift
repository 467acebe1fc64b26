// PrepareStage — the prepare stage end to end: read JSONL → parse → render with the chat template →
// tokenize with loss mask → filter → dedup → split → pack → write shards + manifest (atomically).
//
//     let tok = try DatasetTokenizer.load(modelPath: "models/SmolLM2-135M-Instruct.Q4_1.gguf")
//     var cfg = PrepareConfig()
//     cfg.split.evalFile = "datasets/shipping-docs/eval.jsonl"
//     let manifest = try PrepareStage.run(inputs: ["datasets/shipping-docs/train.jsonl"], config: cfg,
//                                         tokenizer: tok, outputDir: "out/data") { event in … }
//     let train = try DatasetShardReader(path: manifest.shardPaths(split: "train", directory: "out/data")[0])

import Engine
import Foundation

/// What the stage reports while it runs. The library never prints.
public enum PrepareEvent: Sendable {
    /// A file is being read.
    case reading(file: String, role: String)
    /// Rows of `file` processed so far (every 1000 rows and at the end).
    case progress(file: String, rows: Int, total: Int)
    /// A row was dropped (malformed, filtered or duplicate).
    case dropped(RowIssue)
    /// A shard or the manifest was written.
    case wrote(file: String)
}

/// The prepare stage.
public enum PrepareStage {
    public static let manifestFile = "manifest.json"

    /// A kept row on its way to the shards.
    struct Candidate {
        var source: RowSource
        var example: DatasetExample
        var format: DatasetFormat
    }

    /// Runs the stage. Throws `TuneError` on a bad config, unreadable input, or — with
    /// `on_error: fail` — the first malformed row (message `file:line: reason: detail`).
    /// - Parameters:
    ///   - inputs: training JSONL files (the eval file, if any, is `config.split.evalFile`).
    ///   - outputDir: created if needed; its previous shards and manifest are replaced.
    public static func run(inputs: [String], config: PrepareConfig, tokenizer: DatasetTokenizer, outputDir: String,
                           progress: (PrepareEvent) -> Void = { _ in }) throws -> DatasetManifest {
        let problems = config.problems()
        guard problems.isEmpty else { throw TuneError(.invalidArgument, problems.joined(separator: "; ")) }
        guard !inputs.isEmpty else { throw TuneError(.invalidArgument, "no input files") }
        let renderer = try RowRenderer(setting: config.template, tokenizer: tokenizer.tokenizer, systemPrompt: config.systemPrompt)
        var log = DropLog(onError: config.onError)
        func drop(_ issue: RowIssue) throws {
            try log.drop(issue)
            progress(.dropped(issue))
        }
        var files: [DatasetManifest.InputFile] = []
        var straddling = 0
        let maxTokens = config.pack.enabled ? min(config.maxTokens, config.pack.seqLen) : config.maxTokens

        // MARK: Read, render, filter, dedup (eval file first, so train rows repeating eval rows are overlap)
        var dedup = Deduplicator(config: config.dedup)
        var evalSources = Set<RowSource>()
        func load(_ path: String, role: String) throws -> [Candidate] {
            progress(.reading(file: path, role: role))
            var out: [Candidate] = []
            var rows = 0, total = 0
            // Lines read of the file, to whoever bound `ProgressSink` (the runner passes no `progress`).
            var meter: ProgressMeter?
            let (blank, sha) = try JSONLReader.scan(path: path, format: config.format) { line, lines in
                rows += 1
                total = lines
                if meter == nil {
                    meter = ProgressMeter(task: "prepare", subject: (path as NSString).lastPathComponent, total: Double(lines), unit: "lines")
                }
                if let u = meter?.tick(Double(min(rows, lines))) { ProgressSink.report(.prepare, u) }
                if rows % 1000 == 0 { progress(.progress(file: path, rows: rows, total: lines)) }
                switch line.result {
                case .failure(let issue): try drop(issue)
                case .success(let row):
                    let enc: EncodedRow, text: String
                    do { (enc, text) = try renderer.encode(row) } catch let e as TuneError where e.kind == .badData {
                        try drop(RowIssue(source: line.source, reason: .templateError, detail: e.message))
                        return
                    }
                    if enc.ids.count > maxTokens {
                        let limit = maxTokens < config.maxTokens ? "pack.seq_len \(maxTokens)" : "max_tokens \(maxTokens)"
                        try drop(RowIssue(source: line.source, reason: .tooLong, detail: "\(enc.ids.count) tokens > \(limit)"))
                    } else if enc.ids.count < config.minTokens {
                        try drop(RowIssue(source: line.source, reason: .tooShort, detail: "\(enc.ids.count) tokens < min_tokens \(config.minTokens)"))
                    } else if let m = dedup.check(text, source: line.source) {
                        let overlap = role == "train" && evalSources.contains(m.original)
                        let what = m.reason == .duplicate ? "same text as \(m.original)"
                            : String(format: "near-duplicate (similarity %.3f) of %@", m.similarity, m.original.description)
                        try drop(RowIssue(source: line.source, reason: overlap ? .evalOverlap : m.reason, detail: what))
                    } else {
                        straddling += enc.straddling
                        if role == "eval" { evalSources.insert(line.source) }
                        out.append(Candidate(source: line.source, example: DatasetExample(ids: enc.ids, mask: enc.mask), format: row.format))
                    }
                }
            }
            if let meter, let u = meter.tick(meter.total ?? Double(rows)) { ProgressSink.report(.prepare, u) }
            files.append(.init(path: path, role: role, sha256: sha, rows: rows, blankLines: blank))
            progress(.progress(file: path, rows: rows, total: max(total, rows)))
            return out
        }
        var evalKept = try config.split.evalFile.map { try load($0, role: "eval") } ?? []
        var trainKept: [Candidate] = []
        for path in inputs { trainKept += try load(path, role: "train") }

        // MARK: Split
        if config.split.evalFile == nil {
            (trainKept, evalKept) = DatasetSplit.split(trainKept, fraction: config.split.evalFraction, seed: config.split.seed)
        }

        guard !trainKept.isEmpty else {
            let why = log.summary.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count)" }.joined(separator: ", ")
            throw TuneError(.badData, "no training rows left out of \(files.reduce(0) { $0 + $1.rows }) (dropped: \(why.isEmpty ? "none" : why))")
        }

        // MARK: Pack, shard, write
        let writer = try ShardDirectoryWriter(outputDir: outputDir)
        var splits: [String: DatasetManifest.SplitInfo] = [:]
        for (name, rows) in [("train", trainKept), ("eval", evalKept)] {
            let examples = rows.map(\.example)
            let seqs = config.pack.enabled ? SequencePacker.pack(examples, seqLen: config.pack.seqLen) : examples
            var shards: [DatasetManifest.ShardInfo] = []
            var start = 0
            while start < seqs.count {
                let chunk = Array(seqs[start..<min(seqs.count, start + config.shardRows)])
                let file = String(format: "%@-%05d.%@", name, shards.count, DatasetShard.fileExtension)
                let bytes = try DatasetShard.encode(chunk)
                try writer.write(bytes, name: file)
                progress(.wrote(file: file))
                shards.append(.init(file: file, sequences: chunk.count, tokens: chunk.reduce(0) { $0 + $1.ids.count },
                                    bytes: bytes.count, sha256: SHA256.hash(bytes).hex))
                start += config.shardRows
            }
            splits[name] = .init(rows: rows.count, sequences: seqs.count, tokens: seqs.reduce(0) { $0 + $1.ids.count },
                                 trainableTokens: seqs.reduce(0) { $0 + $1.trainableCount },
                                 maxSequenceTokens: seqs.map(\.ids.count).max() ?? 0, shards: shards)
        }

        let tok = tokenizer.tokenizer
        let formats = Dictionary((trainKept + evalKept).map { ($0.format.rawValue, 1) }, uniquingKeysWith: +)
        let manifest = DatasetManifest(
            formatVersion: TuneKitInfo.formatVersion, config: config, seed: config.split.seed,
            template: .init(name: renderer.templateName, source: renderer.templateSource,
                            defaultSystemPrompt: renderer.template?.defaultSystemPrompt),
            tokenizer: .init(sha256: tokenizer.sha256, vocabSize: tok.vocabSize, bosID: tok.bosID, eosID: tok.eosID, addBOS: tok.addBOS),
            inputs: files,
            counts: .init(inputRows: files.reduce(0) { $0 + $1.rows }, blankLines: files.reduce(0) { $0 + $1.blankLines },
                          kept: trainKept.count + evalKept.count, droppedTotal: log.total, dropped: log.summary,
                          formats: formats, straddlingTokens: straddling),
            splits: splits)
        try writer.write([UInt8](try manifest.jsonData()), name: manifestFile)
        progress(.wrote(file: manifestFile))
        try writer.commit()
        return manifest
    }
}

// MARK: - Drop log

/// Counts dropped rows by reason, keeps the first few examples, and enforces `on_error: fail`.
struct DropLog {
    let onError: PrepareConfig.OnError
    private(set) var counts: [DropReason: Int] = [:]
    private(set) var examples: [DropReason: [String]] = [:]

    init(onError: PrepareConfig.OnError) { self.onError = onError }

    mutating func drop(_ issue: RowIssue) throws {
        if onError == .fail, issue.reason.isMalformed {
            throw TuneError(.badData, "\(issue.description) (on_error: fail; use on_error: skip to count and skip such rows)")
        }
        counts[issue.reason, default: 0] += 1
        if examples[issue.reason, default: []].count < DatasetManifest.examplesPerReason {
            examples[issue.reason, default: []].append(issue.description)
        }
    }

    var total: Int { counts.values.reduce(0, +) }

    var summary: [String: DatasetManifest.Dropped] {
        Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, .init(count: $0.value, examples: examples[$0.key] ?? [])) })
    }
}
