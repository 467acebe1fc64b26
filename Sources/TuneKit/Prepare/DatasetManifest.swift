// DatasetManifest — the JSON written beside the shards: what went in (files + hashes), what came out
// (splits, shards + hashes, token totals), what was dropped and why (with file:line examples), and
// the template, tokenizer hash and config that produced it. No timestamps: same inputs ⇒ same bytes.

import Engine
import Foundation

/// `manifest.json` of a prepared dataset.
public struct DatasetManifest: Codable, Sendable, Equatable {
    public var formatVersion: Int
    public var kind = "dataset"
    public var config: PrepareConfig
    /// The split seed (also inside `config`), repeated at top level for quick reading.
    public var seed: UInt64
    public var template: TemplateInfo
    public var tokenizer: TokenizerInfo
    public var inputs: [InputFile]
    public var counts: Counts
    /// "train" and "eval".
    public var splits: [String: SplitInfo]

    public struct TemplateInfo: Codable, Sendable, Equatable {
        /// "chatml", "llama3" or "none".
        public var name: String
        /// "model", "config" or "none".
        public var source: String
        public var defaultSystemPrompt: String?
        enum CodingKeys: String, CodingKey { case name, source, defaultSystemPrompt = "default_system_prompt" }

        /// The RowRenderer setting that renders as this dataset was rendered: the model's own template
        /// (`auto`), plain concatenation (`none`) or the named one.
        public var rendererSetting: String {
            switch source {
            case "model": "auto"
            case "none": "none"
            default: name
            }
        }
    }

    public struct TokenizerInfo: Codable, Sendable, Equatable {
        public var sha256: String
        public var vocabSize: Int
        public var bosID: Int32?
        public var eosID: Int32?
        public var addBOS: Bool
        enum CodingKeys: String, CodingKey { case sha256, vocabSize = "vocab_size", bosID = "bos_id", eosID = "eos_id", addBOS = "add_bos" }
    }

    public struct InputFile: Codable, Sendable, Equatable {
        public var path: String
        /// "train" or "eval".
        public var role: String
        public var sha256: String
        /// Non-blank lines (rows read).
        public var rows: Int
        public var blankLines: Int
        enum CodingKeys: String, CodingKey { case path, role, sha256, rows, blankLines = "blank_lines" }
    }

    public struct Counts: Codable, Sendable, Equatable {
        public var inputRows: Int
        public var blankLines: Int
        public var kept: Int
        public var droppedTotal: Int
        /// Reason → count and the first few `file:line: detail` examples.
        public var dropped: [String: Dropped]
        /// Kept rows per detected format.
        public var formats: [String: Int]
        /// Tokens that BPE merged across a trainable boundary (marked trainable).
        public var straddlingTokens: Int
        enum CodingKeys: String, CodingKey {
            case inputRows = "input_rows", blankLines = "blank_lines", kept, droppedTotal = "dropped_total", dropped, formats
            case straddlingTokens = "straddling_tokens"
        }
    }

    public struct Dropped: Codable, Sendable, Equatable {
        public var count: Int
        public var examples: [String]
    }

    public struct SplitInfo: Codable, Sendable, Equatable {
        /// Rows (before packing).
        public var rows: Int
        /// Sequences in the shards (= rows unless packed).
        public var sequences: Int
        public var tokens: Int
        public var trainableTokens: Int
        public var maxSequenceTokens: Int
        public var shards: [ShardInfo]
        enum CodingKeys: String, CodingKey {
            case rows, sequences, tokens, trainableTokens = "trainable_tokens", maxSequenceTokens = "max_sequence_tokens", shards
        }
    }

    public struct ShardInfo: Codable, Sendable, Equatable {
        /// File name relative to the manifest's directory.
        public var file: String
        public var sequences: Int
        public var tokens: Int
        public var bytes: Int
        public var sha256: String
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", kind, config, seed, template, tokenizer, inputs, counts, splits
    }

    /// How many dropped-row examples each reason keeps.
    public static let examplesPerReason = 5

    // MARK: - JSON

    /// Canonical bytes: sorted keys, pretty-printed, trailing newline.
    public func jsonData() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try enc.encode(self) + Data("\n".utf8)
    }

    /// Reads `manifest.json` from a prepared dataset directory (or a manifest path).
    public static func load(path: String) throws -> DatasetManifest {
        var isDir: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
            ? (path as NSString).appendingPathComponent(PrepareStage.manifestFile) : path
        guard let data = FileManager.default.contents(atPath: file) else { throw TuneError(.fileAccess, "\(file): cannot read manifest") }
        do { return try JSONDecoder().decode(DatasetManifest.self, from: data) } catch {
            throw TuneError(.badData, "\(file): not a dataset manifest (\(error))")
        }
    }

    /// Paths of a split's shards, resolved against `directory`.
    public func shardPaths(split: String, directory: String) -> [String] {
        (splits[split]?.shards ?? []).map { (directory as NSString).appendingPathComponent($0.file) }
    }
}

// MARK: - Tokenizer identity

/// A tokenizer plus the hash that identifies it in manifests and cache keys.
public struct DatasetTokenizer: Sendable {
    public let tokenizer: BPETokenizer
    /// Hex SHA-256 identifying the vocabulary and merges.
    public let sha256: String

    /// Wraps a tokenizer. Without `sha256`, hashes what the public API exposes: every token string
    /// (length-prefixed), its special flag, and the BOS/EOS ids.
    public init(_ tokenizer: BPETokenizer, sha256: String? = nil) {
        self.tokenizer = tokenizer
        if let sha256 { self.sha256 = sha256; return }
        var h = SHA256()
        for id in 0..<tokenizer.vocabSize {
            let t = Array(tokenizer.token(Int32(id)).utf8)
            h.update(uint64: UInt64(t.count))
            h.update(t)
            h.update([tokenizer.isSpecial(Int32(id)) ? 1 : 0])
        }
        h.update(uint64: UInt64(bitPattern: Int64(tokenizer.bosID ?? -1)))
        h.update(uint64: UInt64(bitPattern: Int64(tokenizer.eosID ?? -1)))
        self.sha256 = h.finalize().hex
    }

    /// Loads the tokenizer of a `.gguf` file or an HF directory. GGUF: SHA-256 over the
    /// length-prefixed `tokenizer.ggml.tokens` then `tokenizer.ggml.merges` strings; HF: SHA-256 of
    /// `tokenizer.json`.
    public static func load(modelPath: String) throws -> DatasetTokenizer {
        let tok: BPETokenizer
        do { tok = try LlamaModel.loadTokenizer(path: modelPath) } catch let e as EngineError {
            throw TuneError(e.kind == .io ? .fileAccess : .invalidArgument, e.message)
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: modelPath, isDirectory: &isDir), isDir.boolValue {
            let json = (modelPath as NSString).appendingPathComponent("tokenizer.json")
            return DatasetTokenizer(tok, sha256: try SHA256.hashFile(json))
        }
        let meta = try GGUFFile(path: modelPath).metadata
        var h = SHA256()
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.merges"] {
            let items = meta[key]?.arrayValue ?? []
            h.update(Array(key.utf8))
            h.update(uint64: UInt64(items.count))
            for v in items {
                let s = Array((v.stringValue ?? "").utf8)
                h.update(uint64: UInt64(s.count))
                h.update(s)
            }
        }
        return DatasetTokenizer(tok, sha256: h.finalize().hex)
    }
}
