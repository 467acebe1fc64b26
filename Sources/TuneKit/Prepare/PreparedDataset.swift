// PreparedDataset — a prepare stage's output directory opened for reading: the manifest, and each
// split's sequences loaded from its shards with every shard's SHA-256 checked against the manifest.

import Engine
import Foundation

/// A prepared dataset on disk, as the trainer and evaluator use it.
///
///     let data = try PreparedDataset(directory: ".tune/data/shipping")
///     try data.requireTokenizer(sha256: tok.sha256)          // shards were made with this tokenizer
///     for ex in try data.examples(split: "train") { … ex.ids, ex.mask, ex.segments … }
public struct PreparedDataset: Sendable {
    public let directory: String
    public let manifest: DatasetManifest

    /// Opens `directory` (or the directory holding a given manifest.json path).
    public init(directory: String) throws {
        let dir = directory.hasSuffix(".json") ? (directory as NSString).deletingLastPathComponent : directory
        self.directory = dir
        manifest = try DatasetManifest.load(path: dir)
    }

    /// All sequences of `split` ("train" or "eval") in shard order. With `verify`, a shard whose
    /// SHA-256 differs from the manifest throws (the data changed after prepare).
    public func examples(split: String, verify: Bool = true) throws -> [DatasetExample] {
        guard let info = manifest.splits[split] else {
            throw TuneError(.badData, "\(directory): no split '\(split)' in the manifest (have: \(manifest.splits.keys.sorted().joined(separator: ", ")))")
        }
        var out: [DatasetExample] = []
        out.reserveCapacity(info.sequences)
        for shard in info.shards {
            let path = (directory as NSString).appendingPathComponent(shard.file)
            guard let data = FileManager.default.contents(atPath: path) else { throw TuneError(.fileAccess, "\(path): cannot read shard") }
            let bytes = [UInt8](data)
            if verify {
                let h = SHA256.hash(bytes).hex
                guard h == shard.sha256 else {
                    throw TuneError(.badData, "\(path): sha256 \(h.prefix(16))… does not match the manifest's \(shard.sha256.prefix(16))…; re-run prepare")
                }
            }
            let ex = try DatasetShardReader.decode(bytes, source: path)
            guard ex.count == shard.sequences else {
                throw TuneError(.badData, "\(path): \(ex.count) sequences, the manifest says \(shard.sequences)")
            }
            out += ex
        }
        return out
    }

    /// Throws unless the dataset was tokenized with the tokenizer whose hash is `sha256`.
    public func requireTokenizer(sha256: String) throws {
        guard manifest.tokenizer.sha256 == sha256 else {
            throw TuneError(.invalidArgument, "\(directory): prepared with tokenizer \(manifest.tokenizer.sha256.prefix(16))…, "
                + "but the model's tokenizer is \(sha256.prefix(16))…; re-run prepare with this model")
        }
    }
}
