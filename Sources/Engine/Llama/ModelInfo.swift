// ModelInfo — what `tune model inspect` reports: architecture, hyperparameters, tokenizer, tensors.

import Foundation

/// A model's description. Tensor shapes are in GGUF order (ne[0] first) for GGUF files and in
/// PyTorch order for safetensors.
public struct ModelInfo: Codable, Sendable {
    public struct Tensor: Codable, Sendable {
        public var name: String
        public var type: String
        public var shape: [Int]
        public var offset: Int
    }
    public struct TokenizerFacts: Codable, Sendable {
        public var vocabSize: Int
        public var bosID: Int32?
        public var eosID: Int32?
        public var addBOS: Bool
        public var chatTemplate: String?
        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", bosID = "bos_id", eosID = "eos_id", addBOS = "add_bos", chatTemplate = "chat_template"
        }
    }
    public var path: String
    public var format: String
    public var architecture: String
    public var name: String?
    public var config: LlamaConfig
    public var tokenizer: TokenizerFacts
    public var parameters: Int
    public var tensors: [Tensor]

    /// Reads the header-level facts of a model without loading its weights.
    public static func inspect(path: String) throws -> ModelInfo {
        let isDirectory = try LlamaModel.isDirectory(path)
        if isDirectory {
            let dir = try HFModelDirectory(path: path)
            let tok = try dir.tokenizerJSONPath.map { try BPETokenizer(tokenizerJSON: Data(contentsOf: URL(fileURLWithPath: $0))) }
            let tensors = try dir.openTensors().values.map {
                Tensor(name: $0.info.name, type: $0.info.dtype.rawValue.lowercased(), shape: $0.info.shape,
                       offset: $0.info.byteRange.lowerBound)
            }.sorted { $0.name < $1.name }
            return ModelInfo(path: path, format: "huggingface", architecture: dir.config.architecture.rawValue, name: nil, config: dir.config,
                             tokenizer: .init(tok, template: tok?.chatTemplate),
                             parameters: tensors.reduce(0) { $0 + $1.shape.reduce(1, *) }, tensors: tensors)
        }
        let file = try GGUFFile(path: path)
        let config = try LlamaConfig(gguf: file)
        let tok = try BPETokenizer(ggufMetadata: file.metadata)
        let tensors = file.tensors.map { Tensor(name: $0.name, type: $0.type.name, shape: $0.shape, offset: $0.offset) }
        var cfg = config
        cfg.tiedEmbeddings = file.tensor(named: "output.weight") == nil
        return ModelInfo(path: path, format: "gguf", architecture: cfg.architecture.rawValue,
                         name: file.metadata["general.name"]?.stringValue, config: cfg,
                         tokenizer: .init(tok, template: tok.chatTemplate),
                         parameters: file.tensors.reduce(0) { $0 + $1.elementCount }, tensors: tensors)
    }

    /// One tensor dequantized to float32 with its shape in row-major (numpy) order.
    public static func tensorValues(path: String, name: String) throws -> ([Float], [Int]) {
        let isDirectory = try LlamaModel.isDirectory(path)
        if isDirectory {
            guard let t = try HFModelDirectory(path: path).openTensors()[name] else {
                throw EngineError(.invalidArgument, "\(path): no tensor named '\(name)'")
            }
            return (try t.file.floats(t.info), t.info.shape)
        }
        let file = try GGUFFile(path: path)
        guard let t = file.tensor(named: name) else {
            throw EngineError(.invalidArgument, "\(path): no tensor named '\(name)'")
        }
        return (try file.dequantize(t), t.shape.reversed())
    }

    /// A few human-readable lines.
    public var summary: String {
        let c = config
        var s = """
        \(path) (\(format))\(name.map { "  \($0)" } ?? "")
          architecture  \(architecture), \(c.numLayers) layers, hidden \(c.hiddenSize), ffn \(c.intermediateSize)
          attention     \(c.numHeads) heads, \(c.numKVHeads) kv heads, head dim \(c.headDim), rope θ \(c.ropeTheta)
          context       \(c.contextLength) tokens, rms eps \(c.rmsNormEps), tied embeddings \(c.tiedEmbeddings)
          vocabulary    \(tokenizer.vocabSize) tokens, bos \(tokenizer.bosID.map(String.init) ?? "-"), eos \(tokenizer.eosID.map(String.init) ?? "-"), chat template \(tokenizer.chatTemplate ?? "none")
          parameters    \(parameters) in \(tensors.count) tensors
        """
        var byType: [String: Int] = [:]
        for t in tensors { byType[t.type, default: 0] += 1 }
        s += "\n  tensor types  " + byType.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        return s
    }
}

extension ModelInfo.TokenizerFacts {
    init(_ tok: BPETokenizer?, template: String?) {
        self.init(vocabSize: tok?.vocabSize ?? 0, bosID: tok?.bosID, eosID: tok?.eosID, addBOS: tok?.addBOS ?? false,
                  chatTemplate: (try? ChatTemplate.forModel(template: template, bosToken: tok.flatMap { t in t.bosID.map { t.token($0) } } ?? "",
                                                            eosToken: tok.flatMap { t in t.eosID.map { t.token($0) } } ?? ""))?.kind.rawValue)
    }
}
