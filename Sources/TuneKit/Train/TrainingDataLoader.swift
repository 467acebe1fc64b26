// TrainingDataLoader — what `tune train --data` accepts: a prepared dataset directory (manifest.json +
// shards, checked against the model's tokenizer) or raw JSONL file(s), which are prepared first with
// the prepare stage's defaults (plus packing to the training seq-len when asked).

import Engine
import Foundation

public enum TrainingDataLoader {
    /// Loads training (and eval) sequences.
    /// - data: a prepared dataset directory / its manifest.json, or one or more JSONL files.
    /// - workDir: where JSONL input is prepared (`<workDir>/data`).
    /// - packSeqLen: pack rows into sequences of this many tokens when preparing JSONL (nil: no packing).
    public static func load(data: [String], evalFile: String? = nil, modelPath: String, workDir: String,
                            packSeqLen: Int? = nil, config: PrepareConfig? = nil,
                            progress: (PrepareEvent) -> Void = { _ in }) throws -> (TrainingData, PreparedDataset) {
        let tok = try DatasetTokenizer.load(modelPath: modelPath)
        let dir: String
        if data.count == 1, isPreparedDataset(data[0]) {
            guard evalFile == nil else {
                throw TuneError(.invalidArgument, "--eval applies to JSONL input; \(data[0]) is already prepared (its eval split is used)")
            }
            dir = data[0]
        } else {
            for d in data where !FileManager.default.fileExists(atPath: d) {
                throw TuneError(.fileAccess, "\(d): no such file or directory")
            }
            var cfg = config ?? PrepareConfig()
            if let evalFile { cfg.split.evalFile = evalFile }
            if let packSeqLen { cfg.pack.enabled = true; cfg.pack.seqLen = packSeqLen }
            dir = (workDir as NSString).appendingPathComponent("data")
            _ = try PrepareStage.run(inputs: data, config: cfg, tokenizer: tok, outputDir: dir, progress: progress)
        }
        let prepared = try PreparedDataset(directory: dir)
        try prepared.requireTokenizer(sha256: tok.sha256)
        let train = try prepared.examples(split: "train")
        let eval = prepared.manifest.splits["eval"] != nil ? try prepared.examples(split: "eval") : []
        let manifestPath = (prepared.directory as NSString).appendingPathComponent(PrepareStage.manifestFile)
        let fingerprint = try SHA256.hashFile(manifestPath)
        return (TrainingData(train: train, eval: eval, fingerprint: fingerprint), prepared)
    }

    /// Whether `path` is a prepared dataset (a directory with manifest.json, or that manifest itself).
    public static func isPreparedDataset(_ path: String) -> Bool {
        if path.hasSuffix("/" + PrepareStage.manifestFile) || path == PrepareStage.manifestFile {
            return FileManager.default.fileExists(atPath: path)
        }
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(PrepareStage.manifestFile))
    }
}
