// LoRAAdapter — low-rank adapters on a Llama model's linear layers, in PEFT's layout.
//
// For a target linear y = x·Wᵀ (W [out, in]) the adapter adds  y += s · (x·Aᵀ)·Bᵀ  with
// A [r, in], B [out, r] and s = alpha/r (rsLoRA: alpha/√r). On disk it is a PEFT adapter
// directory: `adapter_config.json` + `adapter_model.safetensors` with tensors named
// `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight` (and `.lora_B.weight`).
// The engine keeps Q/K rows in HF order (GGUF rows are un-permuted at load), so A/B shapes and
// rows are PEFT's for every source format.
//
// All parameters live in ONE flat f32 buffer (slot after slot, A then B) so the optimizer,
// gradient norms and checkpoints see a single array.
//
//     let lora = try LoRAAdapter(config: .init(rank: 8, alpha: 16), model: model.config, seed: 42)
//     try lora.save(directory: "out/adapter", baseModel: "SmolLM2-135M-Instruct")
//     let again = try LoRAAdapter.load(directory: "out/adapter", model: model.config)

import CKernels
import Foundation

/// A linear layer of a Llama decoder block that LoRA can adapt (PEFT's module names).
public enum LoRATarget: String, CaseIterable, Codable, Sendable, Comparable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The module path inside a layer, as in HF checkpoints: `self_attn.q_proj`, `mlp.gate_proj`.
    public var module: String {
        switch self {
        case .q, .k, .v, .o: "self_attn." + rawValue
        case .gate, .up, .down: "mlp." + rawValue
        }
    }

    /// `(out, in)` features of the adapted matrix.
    public func shape(_ c: LlamaConfig) -> (out: Int, in: Int) {
        let qDim = c.numHeads * c.headDim, kvDim = c.numKVHeads * c.headDim
        switch self {
        case .q: return (qDim, c.hiddenSize)
        case .k, .v: return (kvDim, c.hiddenSize)
        case .o: return (c.hiddenSize, qDim)
        case .gate, .up: return (c.intermediateSize, c.hiddenSize)
        case .down: return (c.hiddenSize, c.intermediateSize)
        }
    }

    /// Parses a module name (`q_proj`, also `q`, `attn_q` / `self_attn.q_proj`); nil when unknown.
    public init?(name: String) {
        let n = Self.bareName(name)
        if let t = LoRATarget(rawValue: n) { self = t; return }
        let aliases: [String: LoRATarget] = ["q": .q, "k": .k, "v": .v, "o": .o, "gate": .gate, "up": .up, "down": .down,
                                             "attn_q": .q, "attn_k": .k, "attn_v": .v, "attn_output": .o,
                                             "ffn_gate": .gate, "ffn_up": .up, "ffn_down": .down]
        guard let t = aliases[n] else { return nil }
        self = t
    }

    public static func < (a: LoRATarget, b: LoRATarget) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// A module name without its `self_attn.` / `mlp.` path.
    private static func bareName(_ name: String) -> String {
        name.hasPrefix("self_attn.") ? String(name.dropFirst(10)) : name.hasPrefix("mlp.") ? String(name.dropFirst(4)) : name
    }

    /// The targets a module name stands for: one (`q_proj`, as `init(name:)`), or the targets a fused
    /// module holds (`qkv_proj` → q, k, v; `gate_up_proj` → gate, up: Phi-3's modules); nil when unknown.
    public static func expand(name: String) -> [LoRATarget]? {
        switch bareName(name) {
        case "qkv_proj", "qkv", "attn_qkv": return [.q, .k, .v]
        case "gate_up_proj", "gate_up": return [.gate, .up]
        default: return LoRATarget(name: name).map { [$0] }
        }
    }

    /// The targets that share one fused module with this one in `architecture` (itself alone when unfused).
    public func fusedGroup(_ architecture: ModelArchitecture) -> [LoRATarget] {
        guard architecture.fusedProjections else { return [self] }
        switch self {
        case .q, .k, .v: return [.q, .k, .v]
        case .gate, .up: return [.gate, .up]
        case .o, .down: return [self]
        }
    }

    /// The PEFT module holding this target in `architecture`'s checkpoints: its own (`self_attn.q_proj`), or for
    /// a family with fused projections (Phi-3) the fused one (`self_attn.qkv_proj`, `mlp.gate_up_proj`).
    public func peftModule(_ architecture: ModelArchitecture) -> String {
        switch fusedGroup(architecture) {
        case [.q, .k, .v]: "self_attn.qkv_proj"
        case [.gate, .up]: "mlp.gate_up_proj"
        default: module
        }
    }

    /// The module's name as PEFT's `target_modules` lists it (`q_proj`; Phi-3's `qkv_proj`).
    public func peftModuleName(_ architecture: ModelArchitecture) -> String { Self.bareName(peftModule(architecture)) }

    /// The first of `targets` whose fused module holds a target not in `targets` (a fused module is adapted
    /// whole), or nil.
    public static func partOfFusedModule(in targets: [LoRATarget], architecture: ModelArchitecture) -> LoRATarget? {
        targets.first { !$0.fusedGroup(architecture).allSatisfy(targets.contains) }
    }
}

/// LoRA hyperparameters (PEFT's `LoraConfig` subset tune supports).
public struct LoRAConfig: Sendable, Equatable, Codable {
    public var rank: Int
    public var alpha: Double
    public var dropout: Double
    public var useRSLoRA: Bool
    public var targets: [LoRATarget]
    /// Layers to adapt (PEFT `layers_to_transform`); nil = all.
    public var layers: [Int]?

    public init(rank: Int = 8, alpha: Double = 16, dropout: Double = 0, useRSLoRA: Bool = false,
                targets: [LoRATarget] = LoRATarget.allCases, layers: [Int]? = nil) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.useRSLoRA = useRSLoRA
        self.targets = targets
        self.layers = layers
    }

    /// The factor on B·A: alpha/r, or alpha/√r with rsLoRA.
    public var scale: Float { Float(useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)) }

    /// Throws a clear error for values no training run can use, before any work starts.
    public func validate(model c: LlamaConfig) throws {
        guard rank > 0 else { throw EngineError(.invalidArgument, "lora rank must be a positive integer, got \(rank)") }
        guard alpha.isFinite, alpha > 0 else { throw EngineError(.invalidArgument, "lora alpha must be > 0, got \(alpha)") }
        guard dropout >= 0, dropout < 1 else { throw EngineError(.invalidArgument, "lora dropout must be in [0, 1), got \(dropout)") }
        guard !targets.isEmpty else { throw EngineError(.invalidArgument, "lora targets must name at least one module") }
        guard Set(targets).count == targets.count else { throw EngineError(.invalidArgument, "lora targets contain duplicates: \(targets.map(\.rawValue))") }
        if let t = LoRATarget.partOfFusedModule(in: targets, architecture: c.architecture) {
            let fused = t.peftModuleName(c.architecture)
            throw EngineError(.invalidArgument, "lora targets: \(c.architecture.rawValue) fuses \(t.fusedGroup(c.architecture).map(\.rawValue).joined(separator: ", ")) into \(fused); target \(fused) (all of them) or none")
        }
        for t in targets {
            let s = t.shape(c)
            guard rank <= min(s.in, s.out) else {
                throw EngineError(.invalidArgument, "lora rank \(rank) exceeds \(t.rawValue)'s smaller dimension \(min(s.in, s.out))")
            }
        }
        if let layers {
            guard !layers.isEmpty else { throw EngineError(.invalidArgument, "lora layers must not be empty") }
            for l in layers where l < 0 || l >= c.numLayers {
                throw EngineError(.invalidArgument, "lora layer \(l) is outside the model's layers 0..<\(c.numLayers)")
            }
        }
    }
}

/// One adapted matrix: where its A and B live in the flat parameter buffer.
public struct LoRASlot: Sendable, Equatable {
    public let layer: Int
    public let target: LoRATarget
    public let inFeatures: Int
    public let outFeatures: Int
    /// Offset of A `[r, in]` in the flat buffer; B `[out, r]` follows at `bOffset`.
    public let aOffset: Int
    public let bOffset: Int
    /// The PEFT module the slot's tensors belong to (`self_attn.q_proj`; `self_attn.qkv_proj` for Phi-3's q).
    public let peftModule: String
    /// First row of this slot's B inside its module's B (0 unless the module is fused: Phi-3's k starts
    /// after q's rows). Slots of one fused module share A (same `aOffset`) and their Bs are contiguous.
    public let fusedRow: Int

    public init(layer: Int, target: LoRATarget, inFeatures: Int, outFeatures: Int, aOffset: Int, bOffset: Int,
                peftModule: String? = nil, fusedRow: Int = 0) {
        self.layer = layer
        self.target = target
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        self.aOffset = aOffset
        self.bOffset = bOffset
        self.peftModule = peftModule ?? target.module
        self.fusedRow = fusedRow
    }

    /// PEFT's tensor name prefix: `base_model.model.model.layers.N.self_attn.q_proj`.
    public var peftPrefix: String { "base_model.model.model.layers.\(layer).\(peftModule)" }

    /// The target whose dropout mask the slot draws: its own, or the first of its fused module's (PEFT drops
    /// a fused module's input once, before the shared A).
    public var dropoutTarget: LoRATarget { LoRATarget.expand(name: peftModule)?.first ?? target }
}

/// LoRA parameters for a model: config, slots and the flat parameter buffer.
public final class LoRAAdapter: @unchecked Sendable {
    public let config: LoRAConfig
    /// Shapes of the model the adapter was built for.
    public let modelConfig: LlamaConfig
    public let slots: [LoRASlot]
    /// Slot index per (layer, target); nil when that matrix is not adapted.
    let slotIndex: [[LoRATarget: Int]]
    /// Flat parameters, `count` floats.
    public let params: UnsafeMutablePointer<Float>
    public let count: Int

    /// Zero-initialized parameters for `config` on a model with `model`'s shapes.
    public init(config: LoRAConfig, model c: LlamaConfig) throws {
        try config.validate(model: c)
        self.config = config
        modelConfig = c
        let layers = config.layers.map { Set($0) } ?? Set(0..<c.numLayers)
        var slots: [LoRASlot] = [], index = [[LoRATarget: Int]](repeating: [:], count: c.numLayers), off = 0
        for l in 0..<c.numLayers where layers.contains(l) {
            // A fused module (Phi-3's qkv_proj, gate_up_proj) is one LoRA: its targets share A and their Bs are
            // its B's row blocks, contiguous here, so the optimizer sees PEFT's parameters and dA sums over them.
            var fusedA: [String: (offset: Int, row: Int)] = [:]
            for t in config.targets.sorted() {
                let s = t.shape(c), module = t.peftModule(c.architecture)
                index[l][t] = slots.count
                if let shared = fusedA[module] {
                    slots.append(LoRASlot(layer: l, target: t, inFeatures: s.in, outFeatures: s.out,
                                          aOffset: shared.offset, bOffset: off, peftModule: module, fusedRow: shared.row))
                    fusedA[module] = (shared.offset, shared.row + s.out)
                    off += config.rank * s.out
                } else {
                    slots.append(LoRASlot(layer: l, target: t, inFeatures: s.in, outFeatures: s.out,
                                          aOffset: off, bOffset: off + config.rank * s.in, peftModule: module))
                    if t.fusedGroup(c.architecture).count > 1 { fusedA[module] = (off, s.out) }
                    off += config.rank * (s.in + s.out)
                }
            }
        }
        self.slots = slots
        slotIndex = index
        count = off
        params = .allocate(capacity: max(1, off))
        params.initialize(repeating: 0, count: max(1, off))
    }

    /// PEFT's default init: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a=√5), B = 0; seeded.
    public convenience init(config: LoRAConfig, model c: LlamaConfig, seed: UInt64) throws {
        try self.init(config: config, model: c)
        var rng = SplitMix64(seed: seed)
        for s in slots where s.fusedRow == 0 {   // a fused module's A once
            let bound = 1 / Float(s.inFeatures).squareRoot()
            for i in 0..<(config.rank * s.inFeatures) { params[s.aOffset + i] = bound * rng.symmetric() }
        }
    }

    deinit { params.deallocate() }

    public var rank: Int { config.rank }
    public var scale: Float { config.scale }

    /// The slot adapting `target` in `layer`, if any.
    public func slot(layer: Int, target: LoRATarget) -> LoRASlot? {
        layer < slotIndex.count ? slotIndex[layer][target].map { slots[$0] } : nil
    }

    /// The slots per PEFT module, in slot order: one slot each, or a fused module's slots (shared A,
    /// contiguous Bs from the first slot's `bOffset`).
    public var moduleGroups: [[LoRASlot]] {
        var out: [[LoRASlot]] = []
        for s in slots {
            if s.fusedRow > 0, let last = out.last?.last, last.aOffset == s.aOffset { out[out.count - 1].append(s) } else { out.append([s]) }
        }
        return out
    }

    /// A `[r, in]` and B `[out, r]` of a slot.
    public func a(_ s: LoRASlot) -> UnsafeMutablePointer<Float> { params + s.aOffset }
    public func b(_ s: LoRASlot) -> UnsafeMutablePointer<Float> { params + s.bOffset }

    /// The dense update of a slot, ΔW = scale · (B·A), `[out, in]` row-major: B [out, r] · A [r, in]
    /// through the f32 GEMM kernel (A transposed to the kernel's [in, r] weight layout), then scaled.
    public func delta(_ s: LoRASlot) -> [Float] {
        let r = rank
        var at = [Float](repeating: 0, count: s.inFeatures * r)   // Aᵀ [in, r]
        let a = self.a(s)
        for j in 0..<r { for k in 0..<s.inFeatures { at[k * r + j] = a[j * s.inFeatures + k] } }
        var out = [Float](repeating: 0, count: s.outFeatures * s.inFeatures)
        let rc = out.withUnsafeMutableBufferPointer { o in
            at.withUnsafeBufferPointer { w in
                ck_matmul_forward(o.baseAddress, b(s), w.baseAddress, Int32(CK_TYPE_F32.rawValue), nil,
                                  Int64(s.outFeatures), Int64(r), Int64(s.inFeatures))
            }
        }
        if rc != 0 { return deltaReference(s) }   // should the kernel refuse the shape
        let sc = scale
        for i in out.indices { out[i] *= sc }
        return out
    }

    /// ΔW by a plain loop (the oracle of `delta`).
    public func deltaReference(_ s: LoRASlot) -> [Float] {
        let r = rank, a = self.a(s), b = self.b(s), sc = scale
        var out = [Float](repeating: 0, count: s.outFeatures * s.inFeatures)
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<s.outFeatures {
                let row = o.baseAddress! + i * s.inFeatures
                for j in 0..<r {
                    let bij = sc * b[i * r + j]
                    if bij == 0 { continue }
                    let arow = a + j * s.inFeatures
                    for k in 0..<s.inFeatures { row[k] += bij * arow[k] }
                }
            }
        }
        return out
    }

    /// Copies all parameters from another adapter of the same layout.
    public func copy(from other: LoRAAdapter) throws {
        guard other.slots == slots, other.config.rank == config.rank else {
            throw EngineError(.invalidArgument, "adapter layouts differ (slots or rank)")
        }
        params.update(from: other.params, count: count)
    }
}

// MARK: - PEFT directory format

extension LoRAAdapter {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"

    /// Writes `adapter_config.json` and `adapter_model.safetensors` (f32) into `directory`
    /// (created if needed). Each file is written atomically; the weights go first, so a crash
    /// never leaves a config pointing at missing weights.
    public func save(directory: String, baseModel: String, extraMetadata: [String: String] = [:]) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw EngineError(.io, "\(directory): cannot create directory (\(error.localizedDescription))")
        }
        var w = SafetensorsWriter(metadata: ["format": "pt"].merging(extraMetadata) { a, _ in a })
        for g in moduleGroups {
            let s = g[0], out = g.reduce(0) { $0 + $1.outFeatures }
            try w.add(name: s.peftPrefix + ".lora_A.weight", shape: [rank, s.inFeatures],
                      values: Array(UnsafeBufferPointer(start: a(s), count: rank * s.inFeatures)), dtype: .f32)
            try w.add(name: s.peftPrefix + ".lora_B.weight", shape: [out, rank],
                      values: Array(UnsafeBufferPointer(start: b(s), count: rank * out)), dtype: .f32)
        }
        try w.write(to: (directory as NSString).appendingPathComponent(Self.weightsFile))
        try HFAtomicWriter.write(path: (directory as NSString).appendingPathComponent(Self.configFile),
                                 chunks: [Array(peftConfigJSON(baseModel: baseModel).utf8)])
    }

    /// PEFT 0.x `LoraConfig` JSON for this adapter (keys PEFT itself writes; values tune supports).
    public func peftConfigJSON(baseModel: String) -> String {
        let c = config
        let dict: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": baseModel,
            "r": c.rank, "lora_alpha": c.alpha, "lora_dropout": c.dropout, "use_rslora": c.useRSLoRA,
            "target_modules": c.targets.sorted().map { $0.peftModuleName(modelConfig.architecture) }
                .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } },
            "layers_to_transform": c.layers.map { $0 as Any } ?? NSNull(),
            "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
            "modules_to_save": NSNull(), "use_dora": false, "rank_pattern": [String: Any](), "alpha_pattern": [String: Any](),
            "revision": NSNull(), "layers_pattern": NSNull(),
        ]
        let data = try! JSONSerialization.data(withJSONObject: dict, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// Loads a PEFT LoRA adapter directory (written by tune or by PEFT) for a model with shapes `model`.
    /// Unsupported PEFT features (DoRA, biases, per-module rank/alpha patterns, fan_in_fan_out,
    /// `modules_to_save`) are clear errors naming the key.
    public static func load(directory: String, model c: LlamaConfig) throws -> LoRAAdapter {
        let cfgPath = (directory as NSString).appendingPathComponent(configFile)
        let weightsPath = (directory as NSString).appendingPathComponent(weightsFile)
        guard let data = FileManager.default.contents(atPath: cfgPath) else {
            throw EngineError(.io, "\(cfgPath): cannot read (is \(directory) a PEFT adapter directory?)")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw EngineError.format(cfgPath, "not a JSON object")
        }
        func fail(_ key: String, _ what: String) -> EngineError { EngineError.format(cfgPath, "'\(key)': \(what)") }
        if let t = json["peft_type"] as? String, t != "LORA" { throw fail("peft_type", "expected \"LORA\", got \"\(t)\"") }
        guard let r = json["r"] as? Int, r > 0 else { throw fail("r", "expected a positive integer") }
        guard let alpha = (json["lora_alpha"] as? NSNumber)?.doubleValue else { throw fail("lora_alpha", "expected a number") }
        let dropout = (json["lora_dropout"] as? NSNumber)?.doubleValue ?? 0
        let rs = json["use_rslora"] as? Bool ?? false
        if json["use_dora"] as? Bool == true { throw fail("use_dora", "DoRA adapters are not supported") }
        if let b = json["bias"] as? String, b != "none" { throw fail("bias", "only \"none\" is supported, got \"\(b)\"") }
        if json["fan_in_fan_out"] as? Bool == true { throw fail("fan_in_fan_out", "true is not supported (Conv1D models)") }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let p = json[key] as? [String: Any], !p.isEmpty { throw fail(key, "per-module patterns are not supported") }
        }
        if let m = json["modules_to_save"] as? [Any], !m.isEmpty { throw fail("modules_to_save", "fully trained extra modules are not supported") }
        var layers: [Int]? = nil
        if let l = json["layers_to_transform"], !(l is NSNull) {
            if let one = l as? Int { layers = [one] } else if let many = l as? [Int] { layers = many }
            else { throw fail("layers_to_transform", "expected an integer or a list of integers") }
        }

        // Which (layer, target) pairs exist is read from the weights; target_modules is cross-checked.
        let st = try SafetensorsFile(path: weightsPath)
        var found: [LoRATarget: Set<Int>] = [:]
        for t in st.tensors {
            guard let (layer, module, _) = parsePEFTName(t.name), let targets = LoRATarget.expand(name: module),
                  targets[0].peftModule(c.architecture) == module else {
                throw EngineError.format(weightsPath, "tensor '\(t.name)' is not a LoRA A/B weight of a \(c.architecture.rawValue) decoder layer")
            }
            for target in targets { found[target, default: []].insert(layer) }
        }
        guard !found.isEmpty else { throw EngineError.format(weightsPath, "no LoRA tensors") }
        let targets = found.keys.sorted()
        let allLayers = Set(found.values.flatMap { $0 })
        for t in targets where found[t] != allLayers {
            throw EngineError.format(weightsPath, "\(t.rawValue) is adapted in layers \(found[t]!.sorted()) but other modules in \(allLayers.sorted()); mixed layouts are not supported")
        }
        if let declared = json["target_modules"] as? [String] {
            let names = Set(declared.flatMap { LoRATarget.expand(name: String($0.split(separator: ".").last ?? "")) ?? [] })
            for t in targets where !names.contains(t) && !declared.contains(where: { $0.hasSuffix(t.rawValue) }) {
                throw fail("target_modules", "\(declared) does not include \(t.peftModuleName(c.architecture)), which the weights adapt")
            }
        }
        let layerList = allLayers.count == c.numLayers ? layers : allLayers.sorted()
        let cfg = LoRAConfig(rank: r, alpha: alpha, dropout: dropout, useRSLoRA: rs, targets: targets, layers: layerList)
        let adapter: LoRAAdapter
        do { adapter = try LoRAAdapter(config: cfg, model: c) } catch let e as EngineError {
            throw EngineError(e.kind, "\(directory): \(e.message)")
        }
        for g in adapter.moduleGroups {
            let s = g[0], out = g.reduce(0) { $0 + $1.outFeatures }
            for (suffix, ptr, shape) in [(".lora_A.weight", adapter.a(s), [r, s.inFeatures]),
                                         (".lora_B.weight", adapter.b(s), [out, r])] {
                let name = s.peftPrefix + suffix
                guard let info = st.tensor(named: name) ?? st.tensor(named: name.replacingOccurrences(of: ".weight", with: ".default.weight")) else {
                    throw EngineError.format(weightsPath, "missing tensor '\(name)'")
                }
                guard info.shape == shape else {
                    throw EngineError.format(weightsPath, "tensor '\(name)': shape \(info.shape), expected \(shape) for this model")
                }
                let values = try st.floats(info)
                guard values.allSatisfy(\.isFinite) else { throw EngineError.format(weightsPath, "tensor '\(name)' holds NaN or Inf") }
                ptr.update(from: values, count: values.count)
            }
        }
        return adapter
    }

    /// `(layer, module, isA)` of a PEFT tensor name (module as `self_attn.q_proj`, `self_attn.qkv_proj`), or nil.
    static func parsePEFTName(_ name: String) -> (Int, String, Bool)? {
        var n = name
        for p in ["base_model.model.", "model."] where n.hasPrefix(p) { n.removeFirst(p.count) }
        let parts = n.split(separator: ".").map(String.init)
        // layers.N.<self_attn|mlp>.<proj>.lora_<A|B>[.default].weight
        guard parts.count >= 6, parts[0] == "layers", let layer = Int(parts[1]), layer >= 0,
              let targets = LoRATarget.expand(name: parts[3]), targets[0].module.hasPrefix(parts[2] + "."),
              parts[4] == "lora_A" || parts[4] == "lora_B", parts.last == "weight" else { return nil }
        return (layer, parts[2] + "." + parts[3], parts[4] == "lora_A")
    }
}
