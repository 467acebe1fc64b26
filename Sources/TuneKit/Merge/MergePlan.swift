// MergePlan — opened inputs and the per-tensor loop: task vectors of every input for one tensor →
// TaskArithmetic.merge → base + λΔ (model output) or a rank-r LoRA factorization (adapter output).

import Engine
import Foundation

struct MergePlan {
    enum Source {
        case adapter(AdapterDeltas)
        case model(ModelTensors)
    }

    let spec: MergeSpec
    let base: ModelTensors?
    let config: LlamaConfig?
    let sources: [Source]
    var rng: SplitMix64
    var kept: [Int]
    var seen: [Int]

    init(_ spec: MergeSpec) throws {
        self.spec = spec
        // No inputs is a conversion (a model re-written in another format or type), which needs a base.
        guard !spec.inputs.isEmpty || (spec.output == .model && spec.base != nil) else {
            throw TuneError(.invalidArgument, "merge: no input models or adapters")
        }
        let fm = FileManager.default
        let isAdapter = spec.inputs.map { fm.fileExists(atPath: ($0.path as NSString).appendingPathComponent(LoRAAdapter.configFile)) }
        if let b = spec.base {
            base = try ModelTensors(path: b)
        } else {
            guard spec.method.baseOptional else {
                throw TuneError(.invalidArgument, "merge: \(spec.method.name) needs a base model (mergekit: base_model)")
            }
            guard !isAdapter.contains(true) else {
                throw TuneError(.invalidArgument, "merge: LoRA adapters need a base model (their shapes and the weights they modify)")
            }
            base = nil
        }
        // Checks that need no tensor: a zero weight sum under normalize, adapters of different bases.
        let weightSum = spec.inputs.reduce(0.0) { $0 + $1.parameters.weight }
        if !spec.inputs.isEmpty, spec.options.normalize ?? spec.method.defaultNormalize, abs(weightSum) < 1e-8 {
            throw TuneError(.invalidArgument, "merge: the input weights sum to \(weightSum); \(spec.method.name) with normalize divides by that sum "
                                + "(give weights with a non-zero sum, or normalize: false)")
        }
        var declared: [(path: String, base: String)] = []
        for (input, adapter) in zip(spec.inputs, isAdapter) where adapter {
            let url = URL(fileURLWithPath: input.path).appendingPathComponent(LoRAAdapter.configFile)
            if let data = try? Data(contentsOf: url),
               let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let name = object["base_model_name_or_path"] as? String, !name.isEmpty {
                declared.append((input.path, name))
            }
        }
        func stem(_ name: String) -> String { // "org/SmolLM2-135M-Instruct", "x/SmolLM2-135M-Instruct.Q4_1.gguf" → "smollm2-135m-instruct"
            let last = (name as NSString).lastPathComponent.lowercased()
            return last.split(separator: ".").first.map(String.init) ?? last
        }
        if let first = declared.first, let other = declared.first(where: { stem($0.base) != stem(first.base) }) {
            throw TuneError(.invalidArgument, "merge: adapters of different base models: \(first.path) was trained on \"\(first.base)\", "
                                + "\(other.path) on \"\(other.base)\" (adapter_config.json base_model_name_or_path); merge adapters of one base")
        }
        var sources: [Source] = []
        var cfg = base?.config
        for (input, adapter) in zip(spec.inputs, isAdapter) {
            if adapter {
                guard let c = cfg else {
                    throw TuneError(.invalidArgument, "merge: \(input.path) is a LoRA adapter, but the base \(spec.base ?? "") has no Llama config (use a GGUF file or an HF directory)")
                }
                sources.append(.adapter(try AdapterDeltas(directory: input.path, model: c)))
            } else {
                let m = try ModelTensors(path: input.path)
                if cfg == nil { cfg = m.config }
                sources.append(.model(m))
            }
        }
        self.sources = sources
        config = cfg
        rng = SplitMix64(seed: spec.seed)
        kept = Array(repeating: 0, count: sources.count)
        seen = Array(repeating: 0, count: sources.count)
    }

    var parameters: [ModelMergeParameters] { spec.inputs.map(\.parameters) }

    /// Task vectors of every input for `name` (shape `shape`), or nil when no input changes it.
    /// `baseValues` is read lazily (only full-model inputs need it).
    mutating func taskVectors(_ name: String, count: Int, baseValues: () throws -> [Float]) throws -> [[Float]]? {
        var out: [[Float]?] = Array(repeating: nil, count: sources.count)
        var any = false
        var b: [Float]? = nil
        for (i, s) in sources.enumerated() {
            switch s {
            case .adapter(let a):
                if let slot = a.slot(for: name) { out[i] = a.delta(slot); any = true }
            case .model(let m):
                guard let shape = m.shape(name) else {
                    throw TuneError(.invalidArgument, "\(m.path): has no tensor '\(name)' (the base has it); models must share the base's architecture")
                }
                guard shape.reduce(1, *) == count else {
                    throw TuneError(.invalidArgument, "\(m.path): tensor '\(name)' has shape \(shape), the base's has \(count) elements")
                }
                var v = try m.floats(name)
                if base != nil {
                    if b == nil { b = try baseValues() }
                    for e in 0..<count { v[e] -= b![e] }
                }
                out[i] = v
                any = true
            }
        }
        guard any else { return nil }
        return out.map { $0 ?? [Float](repeating: 0, count: count) }
    }

    /// λΔ for one tensor, bookkeeping the kept fractions.
    mutating func mergedDelta(_ name: String, _ tvs: [[Float]]) throws -> [Float] {
        var deltas = tvs
        let (delta, stats) = try TaskArithmetic.merge(deltas: &deltas, parameters: parameters, method: spec.method,
                                                      options: spec.options, rng: &rng, label: name)
        for i in kept.indices { kept[i] += stats.kept[i]; seen[i] += stats.elements }
        return delta
    }

    var keptFractions: [Double] { zip(kept, seen).map { $1 > 0 ? Double($0) / Double($1) : 1 } }

    func emptyReport() -> MergeReport {
        MergeReport(method: spec.method.name, output: spec.output.rawValue, format: nil, dtype: nil, directory: "", files: [],
                    inputs: spec.inputs.map(\.path), tensorsMerged: 0, tensorsCopied: 0, keptFraction: [], rank: nil,
                    energyKept: nil, minEnergyKept: nil, seconds: 0, notes: [])
    }

    // MARK: - Adapter output

    mutating func writeAdapter(to dir: String, progress: (String) -> Void,
                               measured: (ProgressUpdate) -> Void = { _ in }) throws -> MergeReport {
        var adapters: [AdapterDeltas] = []
        for (s, input) in zip(sources, spec.inputs) {
            guard case .adapter(let a) = s else {
                throw TuneError(.invalidArgument, "\(input.path): a full model cannot be merged into an adapter (use output: model)")
            }
            adapters.append(a)
        }
        guard let c = config else { throw TuneError(.internal, "merge: no model config for the adapter output") }
        let targets = Set(adapters.flatMap { $0.adapter.config.targets }).sorted()
        let layers = Set(adapters.flatMap { $0.adapter.slots.map(\.layer) }).sorted()
        let cap = targets.map { let s = $0.shape(c); return min(s.in, s.out) }.min() ?? 1
        let rank = min(spec.rank ?? adapters.reduce(0) { $0 + $1.adapter.rank }, cap)
        guard rank >= 1 else { throw TuneError(.invalidArgument, "merge: rank must be a positive integer, got \(rank)") }
        if let r = spec.rank, r > cap {
            throw TuneError(.invalidArgument, "merge: rank \(r) exceeds the smallest adapted matrix dimension \(cap)")
        }
        let out = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: Double(rank), targets: targets,
                                                     layers: layers.count == c.numLayers ? nil : layers), model: c)
        var report = emptyReport()
        var energyTotal = 0.0, energyKept = 0.0, minEnergy = 1.0
        let meter = ProgressMeter(task: "merge", subject: "adapter", total: Double(out.slots.count), unit: "tensors")
        for (n, slot) in out.slots.enumerated() {
            defer { if let u = meter.tick(Double(n + 1)) { measured(u) } }
            let name = AdapterDeltas.weightName(slot)
            let count = slot.outFeatures * slot.inFeatures
            guard let tvs = try taskVectors(name, count: count, baseValues: { [] }) else { continue }
            let delta = try mergedDelta(name, tvs)
            let svd = TruncatedSVD(delta, rows: slot.outFeatures, cols: slot.inFeatures, rank: rank, seed: spec.seed &+ UInt64(n))
            let (a, b) = svd.loraFactors()
            out.a(slot).update(from: a, count: a.count)
            out.b(slot).update(from: b, count: b.count)
            energyTotal += svd.totalEnergy
            energyKept += svd.energyKept * svd.totalEnergy
            minEnergy = min(minEnergy, svd.energyKept)
            report.tensorsMerged += 1
            if n % 16 == 0 { progress("\(name): rank \(rank) keeps \(String(format: "%.4f", svd.energyKept)) of the energy") }
        }
        try out.save(directory: dir, baseModel: spec.base.map { ($0 as NSString).lastPathComponent } ?? "",
                     extraMetadata: ["tune_merge_method": spec.method.name])
        report.rank = rank
        report.energyKept = energyTotal > 0 ? energyKept / energyTotal : 1
        report.minEnergyKept = minEnergy
        report.keptFraction = keptFractions
        return report
    }
}
