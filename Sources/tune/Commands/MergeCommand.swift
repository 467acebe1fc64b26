// tune merge — merge LoRA adapters or full models (linear, task arithmetic, TIES, DARE) from a
// mergekit YAML config or from flags, into a re-factored adapter or a full model (safetensors / GGUF).
import ArgumentParser
import Foundation
import TuneKit

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge adapters or models with mergekit's methods (linear, task_arithmetic, ties, dare_ties, dare_linear).",
        discussion: "Either --config merge.yaml (mergekit's format) or --base M --adapter A --adapter B --method ties. See docs/merge.md.")
    @Option(help: "mergekit YAML config (merge_method, base_model, models, parameters, dtype).") var config: String?
    @Option(help: "Output directory (written atomically).") var out: String
    @Option(help: "Base model (.gguf, HF directory or .safetensors); overrides base_model.") var base: String?
    @Option(help: "Input adapter or model (repeatable; quick form without --config).") var adapter: [String] = []
    @Option(help: "Merge method (quick form).") var method = "ties"
    @Option(help: "Weight per input (repeat once per --adapter, or once for all).") var weight: [Double] = []
    @Option(help: "Density per input in (0, 1] (repeat once per --adapter, or once for all).") var density: [Double] = []
    @Option(help: "normalize: true or false (default: the method's).") var normalize: Bool?
    @Option(help: "Scale of the merged task vector.") var lambda: Double?
    @Option(help: "Output kind: adapter (re-factored by truncated SVD) or model. Default: model when any input is a full model (as mergekit), else adapter.")
    var output: MergeSpec.Output?
    @Option(help: "Model file format: safetensors (HF layout) or gguf.") var format: MergeSpec.ModelFormat = .safetensors
    @Option(help: "Element type: float32|float16|bfloat16 (safetensors); f32|f16|bf16|q8_0|q4_0|q4_1 or llama.cpp presets q4_k_m|q5_k_m|q4_k_s|q5_k_s|q6_k|q4_k|q5_k (gguf).") var dtype: String?
    @Option(help: "Rank of a merged adapter (default: sum of the input ranks).") var rank: Int?
    @Option(help: "Seed for DARE's random masks.") var seed: UInt64 = 0
    @Flag(help: "Replace a non-empty --out directory.") var force = false
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            try global.apply()
            var spec = try MergeCLI.spec(config: config, base: base, inputs: adapter, method: method, weights: weight,
                                         densities: density, normalize: normalize, lambda: lambda)
            spec.output = try MergeCLI.output(output, for: spec)
            spec.format = format
            if let dtype { spec.dtype = dtype }
            spec.rank = rank
            spec.seed = seed
            let r = try MergeJob.run(spec, outputDirectory: out, overwrite: force) { msg in
                if !global.json { FileHandle.standardError.write(Data("… \(msg)\n".utf8)) }
            }
            if global.json { try Output.json(r); return }
            Output.text(MergeCLI.summary(r))
        }
    }
}

extension MergeSpec.Output: ExpressibleByArgument {}
extension MergeSpec.ModelFormat: ExpressibleByArgument {}
