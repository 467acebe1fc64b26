// MergeSpec+CLI — `tune merge`'s two input forms (mergekit YAML, or flags) as one MergeSpec, and the
// text summary it prints.

import Foundation

public enum MergeCLI {
    /// A spec from `--config` (mergekit YAML; `base` overrides base_model) or from the quick-form flags.
    public static func spec(config: String?, base: String?, inputs: [String], method: String, weights: [Double],
                            densities: [Double], normalize: Bool?, lambda: Double?) throws -> MergeSpec {
        var spec: MergeSpec
        if let config {
            guard inputs.isEmpty else {
                throw TuneError(.invalidArgument, "--adapter cannot be combined with --config (list the inputs under models: in \(config))")
            }
            spec = try MergekitConfig.load(path: config)
            if let base { spec.base = base }
        } else {
            guard let m = MergeMethods.named(method) else {
                throw TuneError(.invalidArgument, "--method \(method): expected one of \(MergeMethods.names.joined(separator: ", "))")
            }
            guard !inputs.isEmpty else { throw TuneError(.invalidArgument, "give --config merge.yaml, or --adapter at least once") }
            func per(_ values: [Double], _ flag: String, default d: Double) throws -> [Double] {
                if values.isEmpty { return Array(repeating: d, count: inputs.count) }
                if values.count == 1 { return Array(repeating: values[0], count: inputs.count) }
                guard values.count == inputs.count else {
                    throw TuneError(.invalidArgument, "--\(flag) given \(values.count) times for \(inputs.count) inputs (give it once, or once per --adapter)")
                }
                return values
            }
            let w = try per(weights, "weight", default: 1), d = try per(densities, "density", default: 1)
            for x in d where !(x > 0 && x <= 1) { throw TuneError(.invalidArgument, "--density \(x): expected a number in (0, 1]") }
            for path in inputs + (base.map { [$0] } ?? []) where !FileManager.default.fileExists(atPath: path) {
                throw TuneError(.notFound, "\(path): no such file or directory")
            }
            spec = MergeSpec(method: m, base: base, inputs: zip(inputs, zip(w, d)).map {
                .init(path: $0.0, parameters: .init(weight: $0.1.0, density: $0.1.1))
            })
        }
        if let normalize { spec.options.normalize = normalize }
        if let lambda { spec.options.lambda = lambda }
        return spec
    }

    /// The output kind: `requested` (`--output`), else the spec's default (a model when any input is a full
    /// model, as mergekit does; else an adapter). An adapter asked for over full-model inputs is an error.
    public static func output(_ requested: MergeSpec.Output?, for spec: MergeSpec) throws -> MergeSpec.Output {
        guard let requested else { return spec.defaultOutput }
        if requested == .adapter, let full = spec.fullModelInputs.first {
            throw TuneError(.invalidArgument, "--output adapter: \(full) is a full model, and a full model cannot be merged into an adapter "
                                + "(use --output model, or leave --output out: full-model inputs give a model, as in mergekit)")
        }
        return requested
    }

    /// Human summary of a finished merge.
    public static func summary(_ r: MergeReport) -> String {
        var lines = ["merged \(r.inputs.count) inputs with \(r.method) → \(r.directory) (\(r.output)\(r.format.map { ", \($0)" } ?? "")\(r.dtype.map { " \($0)" } ?? ""))"]
        lines.append("tensors: \(r.tensorsMerged) merged, \(r.tensorsCopied) copied unchanged; \(String(format: "%.2f", r.seconds)) s")
        if r.keptFraction.contains(where: { $0 < 1 }) {
            lines.append("kept by sparsification: " + r.keptFraction.map { String(format: "%.3f", $0) }.joined(separator: ", "))
        }
        if let rank = r.rank, let e = r.energyKept, let m = r.minEnergyKept {
            lines.append(String(format: "adapter rank %d keeps %.6f of ΔW's energy (worst matrix %.6f)", rank, e, m))
        }
        lines.append("files: " + r.files.joined(separator: ", "))
        lines += r.notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }
}
