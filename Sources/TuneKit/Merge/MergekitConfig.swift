// MergekitConfig — mergekit's own YAML (`mergekit-yaml merge.yaml OUT`) as a MergeSpec:
//
//     merge_method: ties
//     base_model: models/base            # HF dir, .safetensors, .gguf
//     models:
//       - model: adapters/math           # PEFT adapter dir, HF dir, .safetensors or .gguf
//         parameters: {weight: 1.0, density: 0.5}
//     parameters: {normalize: true, lambda: 1.0, rescale: false, int8_mask: true}
//     dtype: float16
//
// Paths resolve against the YAML file's directory. Every problem is reported at once as
// FILE:LINE:COL: FIELD: MESSAGE; mergekit fields tune does not implement are named as such.

import Foundation
import Yams

public enum MergekitConfig {
    /// mergekit top-level fields tune does not implement, with what to do instead.
    static let unsupported: [String: String] = [
        "slices": "layer slicing (passthrough/frankenmerges) is not supported; merge whole models",
        "tokenizer_source": "tokenizer merging is not supported; the base model's tokenizer is used",
        "tokenizer": "tokenizer merging is not supported; the base model's tokenizer is used",
        "chat_template": "chat templates are taken from the base model",
        "modules": "per-module merge definitions are not supported",
        "out_dtype": "use dtype (tune writes one output type)",
    ]
    static let unsupportedParameters: [String: String] = [
        "gamma": "magnitude_outliers sparsification is not supported",
        "epsilon": "della sparsification is not supported",
        "filter_wise": "filter-wise sparsification is not supported",
        "t": "slerp is not supported",
    ]
    static let dtypes = ["float32", "float16", "bfloat16", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1"]
        + GGUFQuantPreset.allCases.map(\.rawValue)

    /// Reads a mergekit YAML file. Throws `ConfigError` listing every problem.
    public static func load(path: String) throws -> MergeSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TuneError(.notFound, "\(path): cannot read the merge config")
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw ConfigError(diagnostics: [Diagnostic(file: path, line: 1, column: 1, path: "", message: "not valid UTF-8", hint: nil)])
        }
        return try parse(yaml: text, file: path, baseDirectory: (URL(fileURLWithPath: path).deletingLastPathComponent().path))
    }

    public static func parse(yaml: String, file: String, baseDirectory: String = ".") throws -> MergeSpec {
        let sink = DiagnosticSink(file: file)
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch let e as YamlError {
            throw ConfigError(diagnostics: [Diagnostic(yaml: e, file: file)])
        }
        guard let node else {
            throw ConfigError(diagnostics: [Diagnostic(file: file, line: 1, column: 1, path: "", message: "the file is empty; expected a mergekit config",
                                                       hint: "start with `merge_method:` and `models:` (see docs/merge.md)")])
        }
        func resolve(_ p: String) -> String {
            p.hasPrefix("/") ? p : URL(fileURLWithPath: baseDirectory).appendingPathComponent(p).standardized.path
        }
        let r = YAMLReader(sink: sink, path: "", node: node)
        for (key, why) in unsupported.sorted(by: { $0.key < $1.key }) where r.has(key) {
            r.report(r.value(key), key, "mergekit field not supported by tune: \(why)")
        }
        let methodName = r.string("merge_method", required: true) ?? ""
        var method = MergeMethods.named("ties")!
        if r.has("merge_method") {
            if let m = MergeMethods.named(methodName) { method = m } else {
                let hint = didYouMean(methodName, among: MergeMethods.names).map { "did you mean \"\($0)\"?" }
                r.report(r.value("merge_method"), "merge_method",
                         "merge method \"\(methodName)\" is not supported by tune; expected one of \(MergeMethods.names.joined(separator: ", "))", hint: hint)
            }
        }
        let base = r.string("base_model").map { modelPath($0, reader: r, key: "base_model", resolve: resolve) }
        var inputs: [MergeSpec.Input] = []
        let models = r.objects("models")
        if r.has("models"), models.isEmpty, r.value("models")?.sequence != nil {
            r.report(r.value("models"), "models", "expected at least one model")
        }
        if !r.has("models") { r.report(node, "models", "required field is missing", hint: "models:\n  - model: path/to/adapter") }
        for m in models {
            let path = m.string("model", required: true).map { modelPath($0, reader: m, key: "model", resolve: resolve) } ?? ""
            var p = ModelMergeParameters()
            if let params = m.object("parameters") {
                p.weight = number(params, "weight", default: 1, range: -100...100)
                p.density = number(params, "density", default: 1, range: 0...1, exclusiveLower: true)
                rejectUnsupportedParameters(params)
                params.finish()
            }
            m.finish()
            if let b = base, path == b { continue }   // the base listed among models (mergekit allows it): not a task vector
            inputs.append(.init(path: path, parameters: p))
        }
        var options = MergeOptions()
        if let params = r.object("parameters") {
            if params.has("normalize") { options.normalize = params.bool("normalize", default: method.defaultNormalize) }
            options.lambda = number(params, "lambda", default: 1, range: -100...100)
            if params.has("rescale") { options.rescale = params.bool("rescale", default: method.defaultRescale) }
            options.rescaleNorm = RescaleNorm(rawValue: params.choice("rescale_norm", RescaleNorm.allCases.map(\.rawValue),
                                                                       default: RescaleNorm.inverseDensity.rawValue)) ?? .inverseDensity
            _ = params.bool("int8_mask", default: false)   // a memory optimization in mergekit: same result
            for key in ["weight", "density"] where params.has(key) {
                params.report(params.value(key), key, "per-model parameter given globally; tune reads it only under models[].parameters",
                              hint: "move it to each model's parameters")
            }
            rejectUnsupportedParameters(params)
            params.finish()
        }
        let dtype = r.has("dtype") ? r.choice("dtype", dtypes, default: "float32") : nil
        r.finish()
        if base == nil, !method.baseOptional, r.has("merge_method") {
            r.report(node, "base_model", "\(method.name) needs a base model (task vectors are models minus the base)")
        }
        try sink.throwIfAny()
        var spec = MergeSpec(method: method, base: base, inputs: inputs)
        spec.options = options
        spec.dtype = dtype
        spec.output = spec.defaultOutput   // as mergekit: full models in, a model out
        return spec
    }

    /// A model reference: a local path. Hugging Face ids and mergekit's `model+lora` are named as unsupported.
    static func modelPath(_ s: String, reader r: YAMLReader, key: String, resolve: (String) -> String) -> String {
        let path = resolve(s)
        if !FileManager.default.fileExists(atPath: path) {
            if s.contains("+") {
                r.report(r.value(key), key, "\"\(s)\": mergekit's model+lora syntax is not supported",
                         hint: "list the LoRA adapter directory itself as a model; tune applies it to base_model")
            } else {
                r.report(r.value(key), key, "\"\(s)\" does not exist (resolved to \(path)); tune reads local files only, not Hugging Face Hub ids")
            }
        }
        return path
    }

    /// A number parameter; mergekit's per-layer gradients (lists) and filters (mappings) are named as unsupported.
    static func number(_ r: YAMLReader, _ key: String, default def: Double, range: ClosedRange<Double>, exclusiveLower: Bool = false) -> Double {
        if let v = r.value(key), v.scalar == nil {
            r.report(v, key, "per-layer gradients and filters are not supported by tune; give a single number")
            return def
        }
        return r.double(key, default: def, range: range, exclusiveLower: exclusiveLower)
    }

    static func rejectUnsupportedParameters(_ r: YAMLReader) {
        for (key, why) in unsupportedParameters.sorted(by: { $0.key < $1.key }) where r.has(key) {
            r.report(r.value(key), key, "mergekit parameter not supported by tune: \(why)")
        }
    }
}
