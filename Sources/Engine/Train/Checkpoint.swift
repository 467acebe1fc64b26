// Checkpoint — everything a run needs to continue bit-identically: adapter, AdamW moments, step,
// data position and the loss log. A checkpoint is a directory written under a temporary name and
// renamed into place only when every file in it is on disk, so a crash (or a full disk) at any
// moment leaves the previous checkpoint intact and never a half-written one under a final name.
//
//     OUT/checkpoints/checkpoint-000050/
//         adapter_config.json  adapter_model.safetensors   (PEFT adapter at step 50)
//         optimizer.safetensors                             (exp_avg, exp_avg_sq: AdamW moments)
//         trainer_state.json                                (TrainerState)

import Foundation

/// One logged optimizer step.
public struct StepRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var loss: Double
    public var learningRate: Double
    public var gradNorm: Double
    public var tokens: Int
    public var targetTokens: Int
}

/// One evaluation on the eval split.
public struct EvalRecord: Codable, Sendable, Equatable {
    public var step: Int
    public var loss: Double
    public var targetTokens: Int
}

/// The resumable state of a run (besides parameters and moments).
public struct TrainerState: Codable, Sendable, Equatable {
    public static let formatVersion = 1
    public var format = TrainerState.formatVersion
    /// Optimizer steps completed.
    public var step = 0
    public var totalSteps = 0
    /// Training sequences consumed so far (the data position; epochs follow from it).
    public var sequencesConsumed = 0
    /// SHA-256 of the options, data and base model this run was started with.
    public var runKey = ""
    public var log: [StepRecord] = []
    public var evals: [EvalRecord] = []
    public var bestEvalLoss: Double? = nil
    public var evalsWithoutImprovement = 0
    public var stoppedEarly = false
}

enum CheckpointIO {
    static let prefix = "checkpoint-"

    static func name(step: Int) -> String { prefix + String(format: "%06d", step) }

    /// Writes a checkpoint of `step` into `root` (created if needed), then prunes to `keep` newest.
    static func write(root: String, state: TrainerState, lora: LoRAAdapter, m: UnsafePointer<Float>, v: UnsafePointer<Float>,
                      baseModel: String, keep: Int) throws -> String {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: root, withIntermediateDirectories: true) } catch {
            throw EngineError(.io, "\(root): cannot create checkpoint directory (\(error.localizedDescription))")
        }
        let final = (root as NSString).appendingPathComponent(name(step: state.step))
        let tmp = (root as NSString).appendingPathComponent(".tmp-\(name(step: state.step))-\(getpid())")
        try? fm.removeItem(atPath: tmp)
        var ok = false
        defer { if !ok { try? fm.removeItem(atPath: tmp) } }
        try lora.save(directory: tmp, baseModel: baseModel)
        var opt = SafetensorsWriter(metadata: ["format": "pt", "step": String(state.step)])
        try opt.add(name: "exp_avg", shape: [lora.count], values: Array(UnsafeBufferPointer(start: m, count: lora.count)), dtype: .f32)
        try opt.add(name: "exp_avg_sq", shape: [lora.count], values: Array(UnsafeBufferPointer(start: v, count: lora.count)), dtype: .f32)
        try opt.write(to: (tmp as NSString).appendingPathComponent("optimizer.safetensors"))
        try writeJSON(state, to: (tmp as NSString).appendingPathComponent("trainer_state.json"))
        if fm.fileExists(atPath: final) { try? fm.removeItem(atPath: final) }
        guard rename(tmp, final) == 0 else {
            throw EngineError(.io, "\(final): cannot move checkpoint into place (\(String(cString: strerror(errno))))")
        }
        ok = true
        fsyncDirectory(root)
        // Prune: keep the newest `keep` complete checkpoints.
        let all = list(root: root)
        for (_, path) in all.dropLast(keep) { try? fm.removeItem(atPath: path) }
        return final
    }

    /// Complete checkpoints under `root`, oldest first. Temp directories of crashed writes are removed.
    static func list(root: String) -> [(step: Int, path: String)] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: root) else { return [] }
        var out: [(Int, String)] = []
        for n in names {
            let path = (root as NSString).appendingPathComponent(n)
            if n.hasPrefix(".tmp-") { try? fm.removeItem(atPath: path); continue }
            guard n.hasPrefix(prefix), let step = Int(n.dropFirst(prefix.count)),
                  fm.fileExists(atPath: (path as NSString).appendingPathComponent("trainer_state.json")) else { continue }
            out.append((step, path))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// Loads a checkpoint's state, parameters and moments into `lora`, `m`, `v`.
    static func load(path: String, lora: LoRAAdapter, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>) throws -> TrainerState {
        let statePath = (path as NSString).appendingPathComponent("trainer_state.json")
        guard let data = FileManager.default.contents(atPath: statePath) else { throw EngineError(.io, "\(statePath): cannot read") }
        let state: TrainerState
        do { state = try decoder.decode(TrainerState.self, from: data) } catch {
            throw EngineError.format(statePath, "not a trainer state (\(error))")
        }
        guard state.format == TrainerState.formatVersion else {
            throw EngineError.format(statePath, "format \(state.format), this tune reads \(TrainerState.formatVersion)")
        }
        let saved = try LoRAAdapter.load(directory: path, model: lora.modelConfig)
        try lora.copy(from: saved)
        let optPath = (path as NSString).appendingPathComponent("optimizer.safetensors")
        let st = try SafetensorsFile(path: optPath)
        for (name, dst) in [("exp_avg", m), ("exp_avg_sq", v)] {
            guard let t = st.tensor(named: name), t.shape == [lora.count] else {
                throw EngineError.format(optPath, "missing or mis-shaped tensor '\(name)' (expected [\(lora.count)])")
            }
            let vals = try st.floats(t)
            dst.update(from: vals, count: vals.count)
        }
        return state
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }

    static func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        enc.keyEncodingStrategy = .convertToSnakeCase
        let data: Data
        do { data = try enc.encode(value) } catch { throw EngineError(.internal, "encoding \(path): \(error)") }
        try HFAtomicWriter.write(path: path, chunks: [[UInt8](data) + [10]])
    }

    static func fsyncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }
}
