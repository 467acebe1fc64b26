// Trainer — the LoRA / QLoRA training loop: seeded data order, gradient accumulation, loss on
// target tokens only (normalized by the optimizer step's target count, as transformers does with
// num_items_in_batch), gradient-norm clipping, AdamW, LR schedule with warmup, periodic evaluation
// and early stop, atomic checkpoints and bit-identical resume. Progress is reported as typed events;
// only the CLI prints.
//
//     let trainer = try LoRATrainer(model: model, options: opts, data: .init(train: seqs, eval: evalSeqs), output: "out/run")
//     let result = try trainer.run { event in … }        // resumes from out/run/checkpoints if present

import CKernels
import Foundation

/// Training and evaluation sequences.
public struct TrainingData: Sendable {
    public var train: [DatasetExample]
    public var eval: [DatasetExample]
    /// Identifies the data for the run key (e.g. the prepared dataset's manifest hash).
    public var fingerprint: String

    public init(train: [DatasetExample], eval: [DatasetExample] = [], fingerprint: String? = nil) {
        self.train = train
        self.eval = eval
        if let fingerprint { self.fingerprint = fingerprint } else {
            var h = SHA256()
            for e in train + [DatasetExample(ids: [-1], mask: [0])] + eval {
                e.ids.withUnsafeBytes { h.update($0) }
                h.update(e.mask)
                e.segmentStarts.withUnsafeBytes { h.update($0) }
            }
            self.fingerprint = h.finalize().hex
        }
    }
}

/// What the trainer reports while it runs.
public enum TrainEvent: Sendable {
    case started(TrainStart)
    case resumed(step: Int, checkpoint: String)
    case step(TrainProgress)
    case eval(EvalRecord)
    case checkpoint(step: Int, path: String)
    case earlyStop(step: Int, bestEvalLoss: Double)
    case interrupted(step: Int, checkpoint: String)
    case finished(TrainResult)
}

public struct TrainStart: Sendable, Codable {
    public var totalSteps: Int
    public var trainSequences: Int
    public var evalSequences: Int
    public var trainTokens: Int
    public var truncatedSequences: Int
    public var trainableParameters: Int
    public var baseWeights: String
    public var activationBytes: Int
}

public struct TrainProgress: Sendable, Codable {
    public var record: StepRecord
    public var totalSteps: Int
    public var epoch: Double
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    public var etaSeconds: Double
}

public struct TrainResult: Sendable, Codable {
    public var steps: Int
    public var totalSteps: Int
    public var finalLoss: Double?
    public var finalEvalLoss: Double?
    public var adapterDirectory: String
    public var interrupted: Bool
    public var stoppedEarly: Bool
    public var tokensPerSecond: Double
    public var log: [StepRecord]
    public var evals: [EvalRecord]
}

public final class LoRATrainer {
    public let model: LlamaModel
    public let options: TrainingOptions
    public let data: TrainingData
    public let output: String
    /// Name of the base model written into adapter_config.json.
    public var baseModelName: String
    public let lora: LoRAAdapter
    private let graph: TrainGraph
    /// AdamW moments on the host (checkpoints) and where the optimizer reads them (the same memory
    /// on a host-addressable backend, device copies otherwise).
    private let m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>
    private let dm: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>
    /// The backend the graph runs on ("cpu", "cuda", …).
    public var backendName: String { graph.k.name }
    /// Set when `fallbackToCPU` moved an `auto` run to the CPU: one line saying why.
    public private(set) var backendNotice: String?
    private let train: [DatasetExample]
    private let eval: [DatasetExample]
    public let truncated: Int

    /// Checks everything (options against the model, data non-empty, output writable) before any work.
    /// - Parameters:
    ///   - backend: where the training graph runs (default CPU). A backend that cannot run this
    ///     model/adapter throws "not supported on … yet: …" here, before any work —
    ///   - fallbackToCPU: — unless this is set (`--backend auto`): then the CPU runs it and
    ///     `backendNotice` says why.
    public init(model base: LlamaModel, options: TrainingOptions, data: TrainingData, output: String,
                baseModelName: String? = nil, backend: any Backend = CPUBackend(), fallbackToCPU: Bool = false) throws {
        try options.validate(model: base.config)
        switch options.baseWeights {
        case .quantized: model = base.hasFloatMatrices ? try base.with(adapter: nil).convertingMatrices(to: .nf4)
                                                       : base.with(adapter: nil)
        case .nf4: model = try base.with(adapter: nil).convertingMatrices(to: .nf4)
        case .f32: model = try base.with(adapter: nil).convertingMatrices(to: .f32)
        case .bf16: model = try base.with(adapter: nil).convertingMatrices(to: .bf16)
        }
        self.options = options
        self.data = data
        self.output = output
        self.baseModelName = baseModelName ?? (base.source as NSString).lastPathComponent
        var cut = 0
        func prepare(_ seqs: [DatasetExample]) throws -> [DatasetExample] {
            try seqs.enumerated().map { i, e in
                guard e.ids.count == e.mask.count, !e.ids.isEmpty else {
                    throw EngineError(.invalidArgument, "training sequence \(i): ids and mask must be non-empty and of equal length")
                }
                for id in e.ids where id < 0 || Int(id) >= base.config.vocabSize {
                    throw EngineError(.invalidArgument, "training sequence \(i): token id \(id) is outside the model's vocabulary [0, \(base.config.vocabSize)); was the data prepared with another tokenizer?")
                }
                guard e.ids.count > options.seqLen else { return e }
                cut += 1
                return DatasetExample(ids: Array(e.ids.prefix(options.seqLen)), mask: Array(e.mask.prefix(options.seqLen)),
                                      segmentStarts: e.segmentStarts.filter { Int($0) < options.seqLen })
            }
        }
        train = try prepare(data.train)
        eval = try prepare(data.eval)
        truncated = cut
        guard !train.isEmpty else { throw EngineError(.invalidArgument, "no training sequences") }
        guard train.contains(where: { TrainBatch([$0][...]).targetCount > 0 }) else {
            throw EngineError(.invalidArgument, "no training sequence has a target token (every loss mask is 0"
                              + (cut > 0 ? " within the first \(options.seqLen) tokens; \(cut) sequences were truncated to --seq-len)" : ")"))
        }
        lora = try LoRAAdapter(config: options.lora, model: base.config, seed: options.seed)
        let seed = options.seed ^ 0xD40F_0D40, bf16 = options.usesBF16Products
        let g: TrainGraph
        do {
            g = try TrainGraph(model: model, lora: lora, dropoutSeed: seed, bf16Products: bf16, kernels: try backend.kernelTable())
        } catch let e as EngineError where fallbackToCPU && e.kind == .unsupported && backend.name != "cpu" {
            g = try TrainGraph(model: model, lora: lora, dropoutSeed: seed, bf16Products: bf16, kernels: .cpu)
            backendNotice = "\(e.message); running on CPU"
        }
        graph = g
        let n = max(1, lora.count)
        m = .allocate(capacity: n); m.initialize(repeating: 0, count: n)
        v = .allocate(capacity: n); v.initialize(repeating: 0, count: n)
        if g.k.hostAddressable { dm = m; dv = v } else {
            dm = try g.k.allocFloats(n); dv = try g.k.allocFloats(n)
            try g.k.zero(dm, count: n); try g.k.zero(dv, count: n)
        }
        try Self.checkWritable(output)
    }

    deinit {
        if !graph.k.hostAddressable { graph.k.free(UnsafeMutableRawPointer(dm)); graph.k.free(UnsafeMutableRawPointer(dv)) }
        m.deallocate(); v.deallocate()
    }

    /// Device → host: parameters and moments (before a checkpoint or the final adapter is written).
    private func pullState() throws {
        guard !graph.k.hostAddressable else { return }
        let n = max(1, lora.count)
        try graph.pullParams()
        try graph.k.download(m, from: CFPtr(dm), count: n)
        try graph.k.download(v, from: CFPtr(dv), count: n)
    }

    /// Host → device after a checkpoint was loaded into `lora.params`, `m`, `v`.
    private func pushState() throws {
        guard !graph.k.hostAddressable else { return }
        let n = max(1, lora.count)
        try graph.pushParams()
        try graph.k.upload(dm, from: CFPtr(m), count: n)
        try graph.k.upload(dv, from: CFPtr(v), count: n)
    }

    private static func checkWritable(_ dir: String) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw EngineError(.io, "\(dir): cannot create output directory (\(error.localizedDescription))")
        }
        let probe = (dir as NSString).appendingPathComponent(".write-test-\(getpid())")
        guard fm.createFile(atPath: probe, contents: Data([1])) else {
            throw EngineError(.io, "\(dir): output directory is not writable")
        }
        try? fm.removeItem(atPath: probe)
    }

    public var checkpointRoot: String { (output as NSString).appendingPathComponent("checkpoints") }

    /// Optimizer steps for the whole run.
    public var totalSteps: Int {
        if let s = options.steps { return s }
        let perStep = options.batchSize * options.gradAccum
        return max(1, Int((options.epochs * Double(train.count) / Double(perStep)).rounded(.up)))
    }

    /// SHA-256 of what makes two runs the same run (a checkpoint from another run is never resumed).
    public var runKey: String {
        var opts = options
        opts.checkpointEvery = 0; opts.keepCheckpoints = 1   // bookkeeping only: changing them keeps the run
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        var h = SHA256()
        h.update(Array((try? enc.encode(opts)) ?? Data()))
        h.update(Array(data.fingerprint.utf8))
        h.update(Array("\(model.config)".utf8))
        return h.finalize().hex
    }

    // MARK: - Data order

    /// The training sequence at global position `k` (epoch k / n, seeded permutation per epoch).
    private var permutationCache: (epoch: Int, perm: [Int])? = nil
    private func sequence(at k: Int) -> DatasetExample {
        let n = train.count, epoch = k / n
        if permutationCache?.epoch != epoch {
            var perm = Array(0..<n)
            if options.shuffle {
                var rng = SplitMix64(seed: options.seed &+ 0x5EED &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
                for i in stride(from: n - 1, to: 0, by: -1) { perm.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            }
            permutationCache = (epoch, perm)
        }
        return train[permutationCache!.perm[k % n]]
    }

    // MARK: - Run

    /// Runs (or resumes) training to the end, or until `shouldStop` returns true after a step (then a
    /// checkpoint is written and the result has `interrupted`). Writes the final adapter to `output`.
    public func run(resume: Bool = true, shouldStop: @escaping () -> Bool = { false },
                    events: (TrainEvent) -> Void = { _ in }) throws -> TrainResult {
        let total = totalSteps
        var state = TrainerState()
        state.totalSteps = total
        state.runKey = runKey
        if resume, let last = CheckpointIO.list(root: checkpointRoot).last {
            let loaded = try CheckpointIO.load(path: last.path, lora: lora, m: m, v: v)
            guard loaded.runKey == state.runKey else {
                throw EngineError(.invalidArgument, "\(last.path) belongs to a run with different options, data or base model; "
                                  + "use another output directory, or delete \(checkpointRoot) to start over")
            }
            state = loaded
            try pushState()
            events(.resumed(step: state.step, checkpoint: last.path))
        }
        let nParams = lora.count
        try graph.reserve(min(options.batchSize * options.seqLen, train.reduce(0) { max($0, $1.ids.count) } * options.batchSize))
        events(.started(TrainStart(totalSteps: total, trainSequences: train.count, evalSequences: eval.count,
                                   trainTokens: train.reduce(0) { $0 + $1.ids.count }, truncatedSequences: truncated,
                                   trainableParameters: nParams, baseWeights: options.baseWeights.rawValue,
                                   activationBytes: graph.activationBytes)))
        let clock = ContinuousClock(), t0 = clock.now
        var tokensThisRun = 0, stepsThisRun = 0
        func seconds() -> Double { let d = clock.now - t0; return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
        var interrupted = false

        while state.step < total && !state.stoppedEarly {
            // Build the step's micro-batches first: the loss is normalized by the step's target count.
            var micro: [TrainBatch] = []
            for _ in 0..<options.gradAccum {
                let seqs = (0..<options.batchSize).map { sequence(at: state.sequencesConsumed + $0) }
                state.sequencesConsumed += options.batchSize
                micro.append(TrainBatch(seqs[...]))
            }
            let targets = micro.reduce(0) { $0 + $1.targetCount }
            let tokens = micro.reduce(0) { $0 + $1.count }
            try graph.zeroGrad()
            var lossSum = 0.0
            if targets > 0 {
                let scale = Float(1.0 / Double(targets))
                for b in micro where b.targetCount > 0 {
                    try graph.forward(b, step: state.step, training: true)
                    lossSum += try graph.loss(b, gradScale: scale).sum
                    try graph.backward(b, step: state.step)
                }
            }
            let k = graph.k
            let norm = k.sumsq(graph.grad, Int64(nParams)).squareRoot()
            if options.maxGradNorm > 0, norm > options.maxGradNorm {
                k.scale(graph.grad, Float(options.maxGradNorm / (norm + 1e-6)), Int64(nParams))
            }
            let lr = options.learningRate(at: state.step, total: total)
            if targets > 0 {
                k.adamwStep(graph.params, graph.grad, dm, dv, Int64(nParams), Float(lr), Float(options.beta1), Float(options.beta2),
                            Float(options.eps), Float(options.weightDecay), Int64(state.step + 1))
            }
            try k.sync("training step \(state.step + 1)")
            state.step += 1
            tokensThisRun += tokens
            let rec = StepRecord(step: state.step, loss: targets > 0 ? lossSum / Double(targets) : 0, learningRate: lr,
                                 gradNorm: norm, tokens: tokens, targetTokens: targets)
            state.log.append(rec)
            let el = seconds(), tps = Double(tokensThisRun) / max(el, 1e-9)
            stepsThisRun += 1
            let remaining = Double(total - state.step) * el / Double(stepsThisRun)
            events(.step(TrainProgress(record: rec, totalSteps: total, epoch: Double(state.sequencesConsumed) / Double(train.count),
                                       tokensPerSecond: tps, elapsedSeconds: el, etaSeconds: remaining)))

            if options.evalEvery > 0, state.step % options.evalEvery == 0, !eval.isEmpty, state.step < total {
                let e = try evaluate(step: state.step)
                record(e, into: &state)
                events(.eval(e))
                if state.stoppedEarly { events(.earlyStop(step: state.step, bestEvalLoss: state.bestEvalLoss ?? e.loss)) }
            }
            if options.checkpointEvery > 0, state.step % options.checkpointEvery == 0, state.step < total {
                try pullState()
                let path = try CheckpointIO.write(root: checkpointRoot, state: state, lora: lora, m: m, v: v,
                                                  baseModel: baseModelName, keep: options.keepCheckpoints)
                events(.checkpoint(step: state.step, path: path))
            }
            if state.step < total, !state.stoppedEarly, shouldStop() {
                try pullState()
                let path = try CheckpointIO.write(root: checkpointRoot, state: state, lora: lora, m: m, v: v,
                                                  baseModel: baseModelName, keep: options.keepCheckpoints)
                events(.interrupted(step: state.step, checkpoint: path))
                interrupted = true
                break
            }
        }
        if !interrupted {
            if !eval.isEmpty, state.evals.last?.step != state.step {
                let e = try evaluate(step: state.step)
                record(e, into: &state)
                events(.eval(e))
            }
            // Final checkpoint first (a crash while writing the final adapter then resumes to "done").
            try pullState()
            let path = try CheckpointIO.write(root: checkpointRoot, state: state, lora: lora, m: m, v: v,
                                              baseModel: baseModelName, keep: options.keepCheckpoints)
            events(.checkpoint(step: state.step, path: path))
            try lora.save(directory: output, baseModel: baseModelName)
            try CheckpointIO.writeJSON(state, to: (output as NSString).appendingPathComponent("trainer_state.json"))
            try CheckpointIO.writeJSON(options, to: (output as NSString).appendingPathComponent("training_args.json"))
        }
        let result = TrainResult(steps: state.step, totalSteps: total, finalLoss: state.log.last?.loss,
                                 finalEvalLoss: state.evals.last?.loss, adapterDirectory: output, interrupted: interrupted,
                                 stoppedEarly: state.stoppedEarly,
                                 tokensPerSecond: Double(tokensThisRun) / max(seconds(), 1e-9), log: state.log, evals: state.evals)
        if !interrupted { events(.finished(result)) }
        return result
    }

    private func record(_ e: EvalRecord, into state: inout TrainerState) {
        state.evals.append(e)
        if let best = state.bestEvalLoss, e.loss >= best {
            state.evalsWithoutImprovement += 1
            if let p = options.earlyStopPatience, state.evalsWithoutImprovement >= p { state.stoppedEarly = true }
        } else {
            state.bestEvalLoss = e.loss
            state.evalsWithoutImprovement = 0
        }
    }

    /// Mean loss over the eval split's target tokens with the current adapter.
    public func evaluate(step: Int) throws -> EvalRecord {
        var sum = 0.0, count = 0
        var i = 0
        while i < eval.count {
            let b = TrainBatch(eval[i..<min(eval.count, i + options.batchSize)])
            i += options.batchSize
            guard b.targetCount > 0 else { continue }
            try graph.forward(b, step: step, training: false)
            let r = try graph.loss(b, gradScale: nil)
            sum += r.sum
            count += r.count
        }
        return EvalRecord(step: step, loss: count > 0 ? sum / Double(count) : 0, targetTokens: count)
    }
}
