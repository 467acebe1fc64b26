// MergePlan+Model — a full merged model: HF layout (config.json + model.safetensors + the base's
// tokenizer files) or GGUF (the base's metadata and tokenizer; merged tensors re-encoded in the chosen
// type with ggml's block layout, untouched tensors copied byte for byte; or, for a llama.cpp preset such as
// q4_k_m, every tensor typed and encoded as llama-quantize would, see GGUFQuantMix). Streamed tensor by tensor.

import Engine
import Foundation

extension MergePlan {
    static let safetensorsTypes: [String: SafetensorsDType] = [
        "float32": .f32, "f32": .f32, "float16": .f16, "f16": .f16, "bfloat16": .bf16, "bf16": .bf16,
    ]
    static let ggufTypes: [String: GGMLType] = [
        "f32": .f32, "float32": .f32, "f16": .f16, "float16": .f16, "bf16": .bf16, "bfloat16": .bf16,
        "q8_0": .q8_0, "q4_0": .q4_0, "q4_1": .q4_1,
    ]
    /// Every GGUF dtype a merge takes: the single types above and llama.cpp's K-quant presets.
    static var ggufDTypeNames: String {
        "f32, f16, bf16, q8_0, q4_0, q4_1, " + GGUFQuantPreset.allCases.map(\.rawValue).joined(separator: ", ")
    }
    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_MOSTLY_*) for the type of the merged matrices.
    static let ggufFileType: [GGMLType: UInt32] = [.f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7, .bf16: 32]

    /// Output tensor list: the base's (or, for base-less linear, the first model's).
    var layout: ModelTensors {
        get throws {
            if let base { return base }
            guard case .model(let m)? = sources.first else { throw TuneError(.internal, "merge: no tensor layout") }
            return m
        }
    }

    mutating func writeModel(to dir: String, progress: (String) -> Void,
                             measured: (ProgressUpdate) -> Void = { _ in }) throws -> MergeReport {
        switch spec.format {
        case .safetensors: return try writeSafetensors(to: dir, progress: progress, measured: measured)
        case .gguf: return try writeGGUF(to: dir, progress: progress, measured: measured)
        }
    }

    /// Merged values of one tensor (HF layout), or nil when no input changes it.
    mutating func mergedTensor(_ name: String, layout: ModelTensors) throws -> [Float]? {
        let count = layout.shape(name)!.reduce(1, *)
        var baseCache: [Float]? = nil
        let baseValues: () throws -> [Float] = { [base] in
            if let c = baseCache { return c }
            let v = try base?.floats(name) ?? [Float](repeating: 0, count: count)
            baseCache = v
            return v
        }
        guard let tvs = try taskVectors(name, count: count, baseValues: baseValues) else { return nil }
        let delta = try mergedDelta(name, tvs)
        var w = try baseValues()
        for e in 0..<count { w[e] += delta[e] }
        return w
    }

    // MARK: - HF safetensors

    mutating func writeSafetensors(to dir: String, progress: (String) -> Void,
                                   measured: (ProgressUpdate) -> Void = { _ in }) throws -> MergeReport {
        let name = spec.dtype ?? "float32"
        guard let dtype = Self.safetensorsTypes[name] else {
            throw TuneError(.invalidArgument, "merge: dtype \(name) is not a safetensors type (expected float32, float16 or bfloat16)")
        }
        let layout = try self.layout
        var report = emptyReport()
        report.format = "safetensors"
        report.dtype = dtype.rawValue
        // GGUF-only tensors (rope_freqs, …) have no HF name: they are left out of an HF directory.
        let entries = layout.entries.filter { $0.name.hasPrefix("model.") || $0.name == "lm_head.weight" || layout.format != .gguf }
        for e in layout.entries where !entries.contains(where: { $0.name == e.name }) {
            report.notes.append("\(e.name): GGUF-only tensor left out of the HF output")
        }
        // Shards as transformers' save_pretrained makes them above max_shard_size (TUNE_HF_SHARD_BYTES, default 5·10^9).
        let maxShard = try Self.shardBytes()
        let shards = SafetensorsShards.plan(sizes: entries.map { $0.shape.reduce(1, *) * dtype.byteSize }, maxBytes: maxShard)
        let meter = ProgressMeter(task: "merge", subject: shards.count == 1 ? "model.safetensors" : "\(shards.count) safetensors shards",
                                  total: Double(entries.count), unit: "tensors")
        var weightMap: [String: String] = [:], written = 0, totalSize = 0
        for (s, shard) in shards.enumerated() {
            let file = SafetensorsShards.fileName(s + 1, of: shards.count)
            let writer = try SafetensorsStreamWriter(
                path: (dir as NSString).appendingPathComponent(file),
                tensors: shard.map { .init(name: entries[$0].name, shape: entries[$0].shape, dtype: dtype) },
                metadata: ["format": "pt", "tune_merge_method": spec.method.name])
            for i in shard {
                let e = entries[i]
                defer {
                    written += 1
                    if let u = meter.tick(Double(written)) { measured(u) }
                }
                if let merged = try mergedTensor(e.name, layout: layout) {
                    try writer.write(name: e.name, values: merged)
                    report.tensorsMerged += 1
                } else {
                    try writer.write(name: e.name, values: try layout.floats(e.name))
                    report.tensorsCopied += 1
                }
                weightMap[e.name] = file
                totalSize += e.shape.reduce(1, *) * dtype.byteSize
                if written % 32 == 0 { progress("\(written + 1)/\(entries.count) \(e.name)") }
            }
            try writer.finish()
        }
        if shards.count > 1 {
            let index = (dir as NSString).appendingPathComponent("model.safetensors.index.json")
            do { try SafetensorsShards.indexJSON(totalSize: totalSize, weightMap: weightMap).write(to: URL(fileURLWithPath: index), options: .atomic) } catch {
                throw TuneError(.io, "\(index): cannot write (\(error.localizedDescription))")
            }
            report.notes.append("\(shards.count) safetensors shards of at most \(maxShard) bytes (model.safetensors.index.json)")
        }
        if var c = config {
            // A GGUF that carries its own output.weight (Qwen2.5's, quantized apart from token_embd) computes with it:
            // the directory says the head is its own, or transformers (which unties differing values) and tune (which
            // honours tie_word_embeddings) would score it with different heads.
            if entries.contains(where: { $0.name == "lm_head.weight" }) { c.tiedEmbeddings = false }
            try HFModelDirectory.writeConfig(c, to: dir)
        }
        // Tokenizer and generation files of an HF base travel along unchanged.
        if layout.format == .huggingface {
            for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"] {
                let src = (layout.path as NSString).appendingPathComponent(f)
                if FileManager.default.fileExists(atPath: src) {
                    try FileManager.default.copyItem(atPath: src, toPath: (dir as NSString).appendingPathComponent(f))
                }
            }
        } else if layout.format == .gguf, let g = layout.gguf {
            // A GGUF base: its tokenizer and chat template become the HF files, so transformers/vLLM load the directory.
            do {
                let files = try HFTokenizerFiles.make(ggufMetadata: g.metadata, contextLength: layout.config?.contextLength ?? 2048)
                for (name, data) in files.sorted(by: { $0.key < $1.key }) {
                    let path = (dir as NSString).appendingPathComponent(name)
                    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
                        throw TuneError(.io, "\(path): cannot write (\(error.localizedDescription))")
                    }
                }
            } catch let e as EngineError where e.kind == .unsupported {
                report.notes.append("the HF directory has no tokenizer files: \(e.message)")
            }
        }
        report.keptFraction = keptFractions
        return report
    }

    /// The most bytes of tensor data in one safetensors shard: `TUNE_HF_SHARD_BYTES`, else transformers' 5·10^9.
    static func shardBytes(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int {
        guard let raw = environment["TUNE_HF_SHARD_BYTES"], !raw.isEmpty else { return SafetensorsShards.defaultMaxBytes }
        guard let n = Int(raw), n > 0 else {
            throw TuneError(.invalidArgument, "TUNE_HF_SHARD_BYTES '\(raw)' is not a positive number of bytes")
        }
        return n
    }

    // MARK: - GGUF

    mutating func writeGGUF(to dir: String, progress: (String) -> Void,
                            measured: (ProgressUpdate) -> Void = { _ in }) throws -> MergeReport {
        let layout = try self.layout
        guard let g = layout.gguf, let c = layout.config else {
            throw TuneError(.invalidArgument, "merge: GGUF output needs a GGUF base model (its metadata and tokenizer are copied); \(layout.path) is \(layout.format.rawValue) — use format safetensors")
        }
        let typeName = spec.dtype ?? "f16"
        if let preset = GGUFQuantPreset(rawValue: typeName) {
            return try writeGGUF(preset: preset, layout: layout, gguf: g, config: c, to: dir, progress: progress, measured: measured)
        }
        guard let type = Self.ggufTypes[typeName] else {
            throw TuneError(.invalidArgument, "merge: dtype \(typeName) is not a GGUF type tune writes (expected \(Self.ggufDTypeNames))")
        }
        var report = emptyReport()
        report.format = "gguf"
        report.dtype = type.name
        // A conversion (no inputs) re-encodes every tensor in the asked type, as llama-quantize would.
        let changed = sources.isEmpty ? Set(layout.entries.map(\.name)) : changedTensors(layout)
        var decl: [GGUFStreamWriter.Tensor] = []
        for e in layout.entries {
            let info = layout.ggufInfo(e.name)!
            let t: GGMLType = changed.contains(e.name) ? (info.shape.count == 1 ? .f32 : type) : info.type
            decl.append(.init(name: info.name, shape: info.shape, type: t))
        }
        var meta = g.metadata
        meta["general.file_type"] = .uint32(Self.ggufFileType[type] ?? 1)
        meta["general.name"] = mergedName(g)
        var keys = g.metadataKeys
        if !keys.contains("general.file_type") { keys.append("general.file_type") }
        let filename = ((layout.path as NSString).lastPathComponent as NSString).deletingPathExtension + ".merged.\(type.name).gguf"
        let writer = try GGUFStreamWriter(path: (dir as NSString).appendingPathComponent(filename), keys: keys,
                                          metadata: meta, tensors: decl)
        let meter = ProgressMeter(task: "merge", subject: filename, total: Double(layout.entries.count), unit: "tensors")
        for (i, e) in layout.entries.enumerated() {
            defer { if let u = meter.tick(Double(i + 1)) { measured(u) } }
            let info = layout.ggufInfo(e.name)!
            if changed.contains(e.name), let merged = try mergedTensor(e.name, layout: layout) {
                try writer.write(name: info.name, values: Self.ggufValues(merged, hfName: e.name, info: info, config: c))
                report.tensorsMerged += 1
            } else if changed.contains(e.name) {
                // Declared as changed but no input touched it: the base values, re-encoded in the declared type.
                if decl[i].type == info.type { try writer.write(name: info.name, bytes: g.data(for: info)) }
                else { try writer.write(name: info.name, values: try g.dequantize(info)) }
                report.tensorsCopied += 1
            } else {
                try writer.write(name: info.name, bytes: g.data(for: info))
                report.tensorsCopied += 1
            }
            if i % 32 == 0 { progress("\(i + 1)/\(layout.entries.count) \(info.name)") }
        }
        try writer.finish()
        report.keptFraction = keptFractions
        return report
    }

    /// A merged tensor (HF layout and values) as GGUF stores it: llama's Q/K rows permuted for interleaved RoPE
    /// (qwen2/gemma3 GGUFs keep HF order), Gemma's RMSNorm weights as 1 + w (llama.cpp's converter adds the 1).
    static func ggufValues(_ merged: [Float], hfName: String, info: GGUFTensorInfo, config c: LlamaConfig) -> [Float] {
        if ModelTensors.isGemmaNorm(hfName, c) { return merged.map { $0 + 1 } }
        guard info.shape.count == 2, c.architecture.ggufPermutesQK else { return merged }
        let rows = info.shape[1], cols = info.shape[0]
        if info.name.hasSuffix("attn_q.weight") { return QKOrder.toGGUF(merged, rows: rows, cols: cols, heads: c.numHeads) }
        if info.name.hasSuffix("attn_k.weight") { return QKOrder.toGGUF(merged, rows: rows, cols: cols, heads: c.numKVHeads) }
        return merged
    }

    /// general.name of the output: the base's, marked as a merge unless nothing was merged (a conversion).
    func mergedName(_ g: GGUFFile) -> GGUFValue {
        let name = g.metadata["general.name"]?.stringValue
        if sources.isEmpty, let name { return .string(name) }
        return .string((name.map { $0 + " " } ?? "") + "(\(spec.method.name) merge)")
    }

    /// Tensors some input changes: their type in the header depends on it, so they are found first (names only).
    func changedTensors(_ layout: ModelTensors) -> Set<String> {
        Set(layout.entries.map(\.name).filter { name in
            sources.contains { s in
                switch s {
                case .adapter(let a): a.slot(for: name) != nil
                case .model: true
                }
            }
        })
    }

    /// GGUF in a llama.cpp preset (q4_k_m, …). The file is the one `llama-quantize` writes from the f32 merge
    /// (`dtype: f32`, then `llama-quantize merged.gguf out.gguf Q4_K_M`): its tensor order, metadata and per-tensor
    /// types (GGUFQuantMix), merged tensors quantized straight from their f32 values, untouched tensors copied when the
    /// preset keeps their type and otherwise re-encoded from the base's values, as llama-quantize re-encodes them.
    mutating func writeGGUF(preset: GGUFQuantPreset, layout: ModelTensors, gguf g: GGUFFile, config c: LlamaConfig,
                            to dir: String, progress: (String) -> Void,
                            measured: (ProgressUpdate) -> Void) throws -> MergeReport {
        var report = emptyReport()
        report.format = "gguf"
        report.dtype = preset.rawValue
        let changed = changedTensors(layout)
        var entryByGGUF: [String: (entry: String, info: GGUFTensorInfo)] = [:]
        for e in layout.entries {
            let info = layout.ggufInfo(e.name)!
            entryByGGUF[info.name] = (e.name, info)
        }
        // The f32 merge holds merged tensors as f32 and untouched ones in the base's type: the mix starts from that.
        let inputs = layout.entries.map { e -> (name: String, shape: [Int], type: GGMLType) in
            let info = layout.ggufInfo(e.name)!
            return (info.name, info.shape, changed.contains(e.name) ? .f32 : info.type)
        }
        var meta = g.metadata
        meta["general.name"] = mergedName(g)
        let mix = try GGUFQuantMix(preset: preset, tensors: inputs, metadata: meta)
        let (keys, outMeta) = GGUFQuantMix.outputMetadata(keys: g.metadataKeys, metadata: meta, preset: preset)
        let filename = ((layout.path as NSString).lastPathComponent as NSString).deletingPathExtension + ".merged.\(preset.rawValue).gguf"
        let writer = try GGUFStreamWriter(path: (dir as NSString).appendingPathComponent(filename), keys: keys, metadata: outMeta,
                                          tensors: mix.order.map { .init(name: $0, shape: entryByGGUF[$0]!.info.shape, type: mix.types[$0]!) })
        for name in mix.fallbacks {
            report.notes.append("\(name): row length \(entryByGGUF[name]!.info.shape[0]) is not a multiple of 256, written as \(mix.types[name]!.name) (llama-quantize's fallback)")
        }
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let meter = ProgressMeter(task: "merge", subject: filename, total: Double(mix.order.count), unit: "tensors")
        for (i, name) in mix.order.enumerated() {
            defer { if let u = meter.tick(Double(i + 1)) { measured(u) } }
            let (entry, info) = entryByGGUF[name]!
            let type = mix.types[name]!
            if changed.contains(entry) {
                var values: [Float]
                if let merged = try mergedTensor(entry, layout: layout) {
                    values = Self.ggufValues(merged, hfName: entry, info: info, config: c)
                    report.tensorsMerged += 1
                } else {
                    values = try g.dequantize(info)
                    report.tensorsCopied += 1
                }
                let bytes = try GGUFQuantize.encode(values, type: type, rowLength: info.shape[0], threads: threads, name: name)
                try bytes.withUnsafeBytes { try writer.write(name: name, bytes: $0) }
            } else if type == info.type {
                try writer.write(name: name, bytes: g.data(for: info))
                report.tensorsCopied += 1
            } else {
                let bytes = try GGUFQuantize.encode(try g.dequantize(info), type: type, rowLength: info.shape[0], threads: threads, name: name)
                try bytes.withUnsafeBytes { try writer.write(name: name, bytes: $0) }
                report.tensorsCopied += 1
            }
            if i % 32 == 0 { progress("\(i + 1)/\(mix.order.count) \(name) → \(type.name)") }
        }
        try writer.finish()
        report.keptFraction = keptFractions
        return report
    }
}
