// MergeJob — the I/O shell around TaskArithmetic: open the base and the inputs, merge tensor by
// tensor, write a merged adapter (re-factored by truncated SVD) or a full model (HF safetensors or
// GGUF) into a staging directory, then rename it into place. Used by `tune merge` and the pipeline.
//
//     var spec = MergeSpec(method: MergeMethods.named("ties")!, base: "model.gguf",
//                          inputs: [.init(path: "a"), .init(path: "b")])
//     spec.output = .model; spec.format = .gguf; spec.dtype = "q8_0"
//     let report = try MergeJob.run(spec, outputDirectory: "out/merged")

import Engine
import Foundation

/// Everything one merge needs; paths are resolved by the caller.
public struct MergeSpec: Sendable, Hashable, Codable {
    public struct Input: Sendable, Hashable, Codable {
        /// PEFT adapter directory, HF model directory, `.safetensors` file or `.gguf` file.
        public var path: String
        public var parameters: ModelMergeParameters
        public init(path: String, parameters: ModelMergeParameters = .init()) {
            self.path = path
            self.parameters = parameters
        }
    }
    public enum Output: String, Sendable, Hashable, Codable, CaseIterable { case adapter, model }
    public enum ModelFormat: String, Sendable, Hashable, Codable, CaseIterable { case safetensors, gguf }

    public var method: MergeMethod
    /// Base model path; nil only for `linear` over full models (the models themselves are mixed).
    public var base: String?
    public var inputs: [Input]
    public var options = MergeOptions()
    public var seed: UInt64 = 0
    public var output: Output = .adapter
    public var format: ModelFormat = .safetensors
    /// Element type of merged tensors: safetensors `float32|float16|bfloat16` (also `f32|f16|bf16`);
    /// GGUF `f32|f16|bf16|q8_0|q4_0|q4_1` or a llama.cpp preset (`q4_k_m`, …: GGUFQuantPreset).
    /// Nil: float32 for safetensors, f16 for GGUF.
    public var dtype: String?
    /// Rank of a merged adapter; nil = sum of the input ranks (exact for linear/task arithmetic), capped.
    public var rank: Int?

    public init(method: MergeMethod, base: String?, inputs: [Input]) {
        self.method = method
        self.base = base
        self.inputs = inputs
    }

    /// Whether `path` is a full model (HF directory, .safetensors, .gguf) rather than a PEFT adapter directory.
    public static func isFullModel(_ path: String) -> Bool {
        !FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(LoRAAdapter.configFile))
    }

    /// The inputs that are full models, in order.
    public var fullModelInputs: [String] { inputs.map(\.path).filter(Self.isFullModel) }

    /// The output when none is asked for: a model when any input is a full model (mergekit's only mode:
    /// a full model's task vector is dense and cannot be stored as an adapter), else an adapter.
    public var defaultOutput: Output { fullModelInputs.isEmpty ? .adapter : .model }
}

/// What a merge did.
public struct MergeReport: Codable, Sendable {
    public var method: String
    public var output: String
    public var format: String?
    public var dtype: String?
    public var directory: String
    public var files: [String]
    public var inputs: [String]
    /// Tensors computed by the merge / copied unchanged from the base.
    public var tensorsMerged: Int
    public var tensorsCopied: Int
    /// Fraction of entries kept by sparsification, per input (1 without sparsification).
    public var keptFraction: [Double]
    /// Merged adapter: its rank, Σσ²_kept/‖ΔW‖² over all matrices, and the worst single matrix.
    public var rank: Int?
    public var energyKept: Double?
    public var minEnergyKept: Double?
    public var seconds: Double
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case method, output, format, dtype, directory, files, inputs, rank, seconds, notes
        case tensorsMerged = "tensors_merged", tensorsCopied = "tensors_copied", keptFraction = "kept_fraction"
        case energyKept = "energy_kept", minEnergyKept = "min_energy_kept"
    }
}

public enum MergeJob {
    /// Runs a merge and writes its result to `outputDirectory` (atomically: staged beside it, then renamed).
    /// An existing non-empty `outputDirectory` is replaced only with `overwrite`.
    public static func run(_ spec: MergeSpec, outputDirectory: String, overwrite: Bool = false,
                           progress: (String) -> Void = { _ in },
                           measured: (ProgressUpdate) -> Void = { _ in }) throws -> MergeReport {
        let t0 = Date()
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: outputDirectory, isDirectory: &isDir) {
            let empty = isDir.boolValue && ((try? fm.contentsOfDirectory(atPath: outputDirectory))?.isEmpty ?? false)
            guard empty || overwrite else {
                throw TuneError(.invalidArgument, "\(outputDirectory): already exists and is not empty (choose another --out, or pass --force)")
            }
        }
        let parent = (outputDirectory as NSString).deletingLastPathComponent
        let staging = ((parent.isEmpty ? "." : parent) as NSString)
            .appendingPathComponent(".\((outputDirectory as NSString).lastPathComponent).tmp-\(UUID().uuidString.prefix(8))")
        try AtomicFile.makeDirectory(staging)
        defer { try? fm.removeItem(atPath: staging) }

        var plan = try MergePlan(spec)
        var report: MergeReport
        switch spec.output {
        case .adapter: report = try plan.writeAdapter(to: staging, progress: progress, measured: measured)
        case .model: report = try plan.writeModel(to: staging, progress: progress, measured: measured)
        }
        report.directory = outputDirectory
        report.seconds = Date().timeIntervalSince(t0)
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try enc.encode(MergeProvenance(spec: spec, report: report)), to: (staging as NSString).appendingPathComponent("tune_merge.json"))
        report.files = ((try? fm.contentsOfDirectory(atPath: staging)) ?? []).sorted()

        // Move into place: the old directory (if any) aside, the new one in, the old one removed.
        let aside = staging + ".old"
        if fm.fileExists(atPath: outputDirectory) { try AtomicFile.rename(outputDirectory, to: aside) }
        try AtomicFile.rename(staging, to: outputDirectory)
        try? fm.removeItem(atPath: aside)
        AtomicFile.syncDirectory(parent.isEmpty ? "." : parent)
        return report
    }
}

/// `tune_merge.json`: the merge's inputs and outcome, written beside the outputs.
struct MergeProvenance: Codable {
    var spec: MergeSpec
    var report: MergeReport
}
