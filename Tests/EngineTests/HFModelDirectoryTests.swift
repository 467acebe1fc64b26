// HFModelDirectoryTests — config.json mapping (SmolLM2, transformers-5 rope_parameters, defaults, errors),
// writeConfig round trip, single-file and sharded (model.safetensors.index.json) weight discovery.

import Engine
import Foundation
import Testing

// MARK: - Support

private func write(_ text: String, to path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
}

/// The SmolLM2-135M-Instruct config.json as published (transformers 4 style).
private let smolConfig = """
{"architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 1,
 "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664,
 "intermediate_size": 1536, "is_llama_config": true, "max_position_embeddings": 8192, "model_type": "llama",
 "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "pad_token_id": 2,
 "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null,
 "rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
 "use_cache": true, "vocab_size": 49152}
"""

private let smolExpected = LlamaConfig(vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numLayers: 30,
                                       numHeads: 9, numKVHeads: 3, headDim: 64, ropeTheta: 100000, rmsNormEps: 1e-5,
                                       contextLength: 8192, tiedEmbeddings: true)

/// A directory with config.json (from `config`) and a single model.safetensors holding `names`.
private func makeDir(_ dir: String, config: String = smolConfig, names: [String] = ["w"]) throws {
    write(config, to: dir + "/config.json")
    var w = SafetensorsWriter()
    for n in names { try w.add(name: n, shape: [2], values: [1, 2], dtype: .f32) }
    try w.write(to: dir + "/model.safetensors")
}

/// Asserts opening `dir` fails with a one-line error containing every string in `mentions`.
private func expectDirError(_ dir: String, kind: EngineError.Kind? = nil, mentions: [String],
                            sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let d = try HFModelDirectory(path: dir)
        _ = try d.openTensors()
        Issue.record("no error for \(dir)", sourceLocation: sourceLocation)
    } catch let e as EngineError {
        if let kind { #expect(e.kind == kind, "\(e.message)", sourceLocation: sourceLocation) }
        #expect(!e.message.contains("\n"), sourceLocation: sourceLocation)
        for m in mentions { #expect(e.message.contains(m), "\(e.message) lacks \(m)", sourceLocation: sourceLocation) }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

// MARK: - config.json

@Test func hfDirectorySmolLM2Config() throws {
    try FormatsTestSupport.withTempDir { dir in
        try makeDir(dir)
        write("{}", to: dir + "/tokenizer.json")
        let d = try HFModelDirectory(path: dir)
        #expect(d.config == smolExpected)
        #expect(d.tokenizerJSONPath == dir + "/tokenizer.json")
        #expect(d.safetensorsPaths == [dir + "/model.safetensors"])
        #expect(d.url.path == URL(fileURLWithPath: dir).path)
        let tensors = try d.openTensors()
        #expect(Array(tensors.keys) == ["w"])
        #expect(try tensors["w"].map { try $0.file.floats($0.info) } == [1, 2])
    }
}

@Test func hfDirectoryTransformers5AndDefaults() throws {
    // rope_theta inside rope_parameters, no num_key_value_heads / head_dim / tie_word_embeddings / eps.
    let cfg = """
    {"model_type": "llama", "vocab_size": 32, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
     "num_attention_heads": 4, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}
    """
    try FormatsTestSupport.withTempDir { dir in
        try makeDir(dir, config: cfg)
        let d = try HFModelDirectory(path: dir)
        #expect(d.tokenizerJSONPath == nil)
        #expect(d.config == LlamaConfig(vocabSize: 32, hiddenSize: 64, intermediateSize: 96, numLayers: 2, numHeads: 4,
                                        numKVHeads: 4, headDim: 16, ropeTheta: 500000, rmsNormEps: 1e-6,
                                        contextLength: 2048, tiedEmbeddings: false))
    }
}

@Test func hfDirectoryMistralSlidingWindow() throws {
    let cfg = """
    {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "vocab_size": 32, "hidden_size": 64,
     "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
     "max_position_embeddings": 32768, "sliding_window": 4096, "rope_theta": 10000.0}
    """
    try FormatsTestSupport.withTempDir { dir in
        try makeDir(dir, config: cfg)
        let c = try HFModelDirectory(path: dir).config
        #expect(c.contextLength == 4096 && c.numKVHeads == 2 && c.headDim == 16)
    }
}

@Test func hfDirectoryWriteConfigRoundTrip() throws {
    try FormatsTestSupport.withTempDir { dir in
        let cfg = LlamaConfig(vocabSize: 128, hiddenSize: 48, intermediateSize: 80, numLayers: 2, numHeads: 6,
                              numKVHeads: 2, headDim: 8, ropeTheta: 100000, rmsNormEps: 1e-5, contextLength: 256,
                              tiedEmbeddings: true)
        let sub = dir + "/tiny/model"
        try HFModelDirectory.writeConfig(cfg, to: sub)
        try makeDir(sub, config: String(decoding: try Data(contentsOf: URL(fileURLWithPath: sub + "/config.json")), as: UTF8.self))
        #expect(try HFModelDirectory(path: sub).config == cfg)
        var untied = cfg
        untied.tiedEmbeddings = false
        untied.rmsNormEps = 1e-6
        try HFModelDirectory.writeConfig(untied, to: sub)
        #expect(try HFModelDirectory(path: sub).config == untied)
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: sub + "/config.json")), as: UTF8.self)
        #expect(text.contains(#""architectures": ["LlamaForCausalLM"]"#) && text.contains(#""model_type": "llama""#))
    }
}

@Test func hfDirectoryConfigErrorsNameTheField() throws {
    let base = #""vocab_size": 32, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4"#
    let cases: [(String, EngineError.Kind, String)] = [
        (#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", \#(base)}"#, .unsupported, "architectures"),
        (#"{"model_type": "gpt2", \#(base)}"#, .unsupported, "model_type"),
        (#"{\#(base)}"#, .format, "model_type"),
        (#"{"model_type": "llama", "vocab_size": 32, "hidden_size": "64", "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4}"#, .format, "hidden_size"),
        (#"{"model_type": "llama", "vocab_size": 32, "hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}"#, .format, "intermediate_size"),
        (#"{"model_type": "llama", \#(base), "num_key_value_heads": 3}"#, .format, "num_key_value_heads"),
        (#"{"model_type": "llama", \#(base), "rope_scaling": {"rope_type": "yarn", "factor": 8.0}}"#, .unsupported, "rope_scaling"),
        (#"{"model_type": "gemma3", \#(base)}"#, .unsupported, "gemma3_text"),
        (#"{"model_type": "gemma3_text", \#(base), "final_logit_softcapping": 30.0}"#, .unsupported, "final_logit_softcapping"),
        (#"{"model_type": "gemma3_text", \#(base), "layer_types": ["full_attention", "none"]}"#, .format, "layer_types"),
        (#"{"model_type": "llama", \#(base), "attention_bias": true}"#, .unsupported, "attention_bias"),
        (#"{"model_type": "llama", \#(base), "hidden_act": "gelu"}"#, .unsupported, "hidden_act"),
        (#"{"model_type": "llama", \#(base), "tie_word_embeddings": 1}"#, .format, "tie_word_embeddings"),
        (#"{"model_type": "llama", \#(base), "rms_norm_eps": -1}"#, .format, "rms_norm_eps"),
        (#"{"model_type": "llama", \#(base)"#, .format, "not valid JSON"),
    ]
    for (cfg, kind, field) in cases {
        try FormatsTestSupport.withTempDir { dir in
            try makeDir(dir, config: cfg)
            expectDirError(dir, kind: kind, mentions: [dir + "/config.json", field])
        }
    }
    try FormatsTestSupport.withTempDir { dir in expectDirError(dir, kind: .io, mentions: ["config.json"]) }
    try FormatsTestSupport.withTempDir { dir in
        write(smolConfig, to: dir + "/config.json")
        expectDirError(dir, kind: .io, mentions: ["model.safetensors"])
    }
}

// MARK: - Sharded weights

/// Two shards plus an index mapping a, b → shard 1 and c → shard 2.
private func makeSharded(_ dir: String, index: String? = nil, shard2: [String] = ["c"]) throws {
    write(smolConfig, to: dir + "/config.json")
    var s1 = SafetensorsWriter()
    try s1.add(name: "a", shape: [1], values: [1], dtype: .f32)
    try s1.add(name: "b", shape: [2], values: [2, 3], dtype: .bf16)
    try s1.write(to: dir + "/model-00001-of-00002.safetensors")
    var s2 = SafetensorsWriter()
    for n in shard2 { try s2.add(name: n, shape: [1], values: [4], dtype: .f16) }
    try s2.write(to: dir + "/model-00002-of-00002.safetensors")
    write(index ?? """
    {"metadata": {"total_size": 10}, "weight_map": {"a": "model-00001-of-00002.safetensors",
     "b": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}}
    """, to: dir + "/model.safetensors.index.json")
}

@Test func hfDirectoryShardedIndex() throws {
    try FormatsTestSupport.withTempDir { dir in
        try makeSharded(dir)
        let d = try HFModelDirectory(path: dir)
        #expect(d.safetensorsPaths == [dir + "/model-00001-of-00002.safetensors", dir + "/model-00002-of-00002.safetensors"])
        let t = try d.openTensors()
        #expect(t.keys.sorted() == ["a", "b", "c"])
        #expect(t["b"]?.file.path == dir + "/model-00001-of-00002.safetensors")
        #expect(try t["c"].map { try $0.file.floats($0.info) } == [4])
        #expect(t["b"]?.info.dtype == .bf16)
    }
}

@Test func hfDirectoryShardErrors() throws {
    try FormatsTestSupport.withTempDir { dir in   // tensor named by weight_map absent from its shard
        try makeSharded(dir, shard2: ["d"])
        expectDirError(dir, kind: .format, mentions: ["'c'", "model-00002-of-00002.safetensors"])
    }
    try FormatsTestSupport.withTempDir { dir in   // same tensor in two shards
        try makeSharded(dir, shard2: ["c", "a"])
        expectDirError(dir, kind: .format, mentions: ["'a'", "also present"])
    }
    try FormatsTestSupport.withTempDir { dir in   // shard file missing
        try makeSharded(dir, index: #"{"weight_map": {"a": "model-00003-of-00003.safetensors"}}"#)
        expectDirError(dir, kind: .io, mentions: ["model-00003-of-00003.safetensors", "does not exist"])
    }
    try FormatsTestSupport.withTempDir { dir in   // path escaping the directory
        try makeSharded(dir, index: #"{"weight_map": {"a": "../x.safetensors"}}"#)
        expectDirError(dir, kind: .format, mentions: ["'a'", "weight_map"])
    }
    try FormatsTestSupport.withTempDir { dir in
        try makeSharded(dir, index: #"{"metadata": {}}"#)
        expectDirError(dir, kind: .format, mentions: ["weight_map"])
    }
}
