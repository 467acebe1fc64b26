// TrainBench — training tokens/s and peak RSS for LoRA (f32 base), LoRA (bf16 base) and QLoRA
// (the file's 4-bit base), each measured in its own child process so peak RSS is that mode's alone,
// and PyTorch + PEFT on the same config (scripts/reference/train_bench.py) when a Python with torch
// and peft is available — the ratio is only meaningful side by side, in one invocation.
// `--data FILE.jsonl`: real rows instead of random fixed-length ones — prepared once (the prepare
// stage's defaults, no packing), tune trains on them in order as a flat token stream (no padding),
// the reference gets the same token rows padded per batch (as users run PEFT); both count real tokens.

import CKernels
import Engine
import Foundation

public struct TrainBench: Sendable {
    public var modelPath = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    public var batch = 4
    public var seqLen = 256
    public var rank = 8
    public var steps = 3
    public var warmup = 1
    public var threads = 2
    public var modes: [BaseWeightMode] = [.f32, .bf16, .quantized]
    /// TrainingOptions.bf16Products for every mode (nil: each mode's default — on for the bf16 base only).
    public var bf16Products: Bool? = nil
    /// `--backend` for the workers (nil: TUNE_BACKEND, else auto).
    public var backend: BackendRequest? = nil
    /// Python for the reference, given explicitly (`--python`): it must start and import the reference's
    /// modules, or `run` fails naming it. When nil, `fallbackPythons` are tried in order.
    public var python: String? = nil
    /// Tried in order when `python` is nil; the first that imports the reference's modules runs it, and
    /// none working only leaves the reference out (with a note): TUNE_PYTHON, scripts/reference/.venv, python3.
    public var fallbackPythons: [String] = (ProcessInfo.processInfo.environment["TUNE_PYTHON"].map { [$0] } ?? [])
        + ["scripts/reference/.venv/bin/python", "python3"]
    public var referenceScript = "scripts/reference/train_bench.py"
    /// Train on a real dataset's rows instead of random fixed-length sequences: a JSONL file (prepared
    /// with the prepare stage's defaults, no packing) or a prepared dataset directory; its train split is
    /// taken in order, `batch` rows per step, each row its own length (truncated at `seqLen`), and
    /// tokens/s counts the rows' real tokens (tune's batches are a flat token stream: no padding).
    public var dataPath: String? = nil
    /// LoRA dropout (real fine-tunes run 0.05; the fixed-length bench has used 0).
    public var dropout: Double = 0
    /// Time every kernel-table call of the timed steps (`OpProfile`) and report it per op.
    public var profile = false

    public init() {}

    /// One measured configuration.
    public struct Measurement: Codable, Sendable {
        public var name: String
        public var tokensPerSecond: Double
        public var peakRSSBytes: Int
        public var stepSeconds: [Double]
        public var ratioVsReference: Double?
        public var rssVsReference: Double?
        /// Real tokens per timed step (with --data: the rows' own lengths; otherwise batch × seq-len).
        public var tokensPerStep: Double? = nil
        /// `--profile`: the timed steps' kernel-table calls, op by op.
        public var profile: Profile? = nil
    }

    /// Where the timed steps' time went (`--profile`).
    public struct Profile: Codable, Sendable {
        /// Per op over all timed steps, largest first.
        public var ops: [OpProfile.Row]
        /// Wall time of the timed steps (ops + everything between them).
        public var stepSeconds: Double
        public var steps: Int
        /// tune's f32 tile GEMM on [gemmShape] in the same process (GFLOP/s): what "of GEMM rate" compares with.
        public var gemmRate: Double?
        public var gemmShape: String
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var batch: Int
        public var seqLen: Int
        public var rank: Int
        public var threads: Int
        public var isa: String
        public var results: [Measurement]
        public var reference: Measurement?
        public var referenceNote: String
        /// The dataset whose rows were trained on (nil: random fixed-length sequences).
        public var data: String? = nil
        public var dropout: Double? = nil
    }

    // MARK: - Worker (child process)

    /// Runs `warmup + steps` optimizer steps of one mode in this process on random tokens and
    /// returns tokens/s over the timed steps and this process's peak RSS.
    public func work(mode: BaseWeightMode) throws -> Measurement {
        let model = try LlamaModel.load(path: modelPath)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-train-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let seqs: [DatasetExample]
        if let dataPath {
            seqs = try TrainingDataLoader.load(data: [dataPath], modelPath: modelPath, workDir: out + "-data").0.train
            try? FileManager.default.removeItem(atPath: out + "-data")
        } else {
            var rng = SplitMix64(seed: 1234)
            seqs = (0..<batch).map { _ in
                DatasetExample(ids: (0..<seqLen).map { _ in Int32(rng.next() % UInt64(model.config.vocabSize)) },
                               mask: [UInt8](repeating: 1, count: seqLen))
            }
        }
        var o = TrainingOptions(lora: LoRAConfig(rank: rank, alpha: Double(2 * rank), dropout: dropout))
        o.baseWeights = mode
        o.bf16Products = bf16Products
        o.steps = warmup + steps
        o.batchSize = batch
        o.seqLen = seqLen
        o.learningRate = 1e-4
        o.schedule = .constant
        o.shuffle = false
        let kernel = try BackendSelector.shared.resolve(backend, for: .training)
        let ops = profile ? OpProfile(vocabSize: model.config.vocabSize, loraRank: rank) : nil
        let trainer = try LoRATrainer(model: model, options: o, data: TrainingData(train: seqs), output: out,
                                      backend: ops.map { ProfilingBackend(base: kernel.backend, profile: $0) } ?? kernel.backend,
                                      fallbackToCPU: kernel.request == .auto)
        var stamps: [Double] = [], stepTokens: [Int] = []
        let clock = ContinuousClock(), t0 = clock.now
        _ = try trainer.run(resume: false, events: { e in
            if case .step(let p) = e {
                let d = clock.now - t0
                stamps.append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
                stepTokens.append(p.record.tokens)
                if stamps.count == warmup { ops?.reset() } // profile the timed steps only
            }
        })
        var stepTimes: [Double] = [], tokens = 0, prev = 0.0
        for (i, s) in stamps.enumerated() {
            if i >= warmup { stepTimes.append(s - prev); tokens += stepTokens[i] }
            prev = s
        }
        let total = stepTimes.reduce(0, +)
        let on = trainer.backendName == "cpu" ? "" : " on \(trainer.backendName)"
        let rss = Self.peakRSS() // before the GEMM-rate probe below allocates
        var report: Profile? = nil
        if let ops {
            // tune's f32 tile GEMM on the layer's two largest shapes (up/gate: hidden → intermediate; down:
            // intermediate → hidden) at 512 rows, the faster of the two: this machine's dense f32 rate.
            let c = model.config, h = c.hiddenSize, f = c.intermediateSize
            var rate: Double? = nil, shape = ""
            if trainer.backendName == "cpu" {
                let up = Self.f32GEMMRate(T: 512, K: h, N: f), down = Self.f32GEMMRate(T: 512, K: f, N: h)
                rate = max(up, down)
                shape = up >= down ? "512×\(h) · \(f)×\(h)ᵀ" : "512×\(f) · \(h)×\(f)ᵀ"
            }
            report = Profile(ops: ops.rows(), stepSeconds: total, steps: stepTimes.count, gemmRate: rate, gemmShape: shape)
        }
        return Measurement(name: Self.label(mode, bf16Products: o.usesBF16Products) + on, tokensPerSecond: Double(tokens) / max(total, 1e-9),
                           peakRSSBytes: rss, stepSeconds: stepTimes,
                           tokensPerStep: Double(tokens) / Double(max(1, stepTimes.count)), profile: report)
    }

    /// tune's f32 tile GEMM on [T, K] · [N, K]ᵀ in GFLOP/s, timed as `tune bench gemm` times it
    /// (`GemmBench.time`: the best call): the rate a profile row's GFLOP/s is compared with.
    static func f32GEMMRate(T: Int, K: Int, N: Int) -> Double {
        var rng = SplitMix64(seed: 7)
        let x = (0..<(T * K)).map { _ in rng.symmetric() }, w = (0..<(N * K)).map { _ in rng.symmetric() }
        var out = [Float](repeating: 0, count: T * N)
        let f32 = Int32(GGMLType.f32.rawValue)
        let s = GemmBench.time { _ = ck_matmul_forward(&out, x, w, f32, nil, Int64(T), Int64(K), Int64(N)) }
        return 2 * Double(T) * Double(K) * Double(N) / s / 1e9
    }

    public static func label(_ m: BaseWeightMode, bf16Products: Bool? = nil) -> String {
        let base = switch m {
        case .f32: "tune LoRA (f32 base"
        case .bf16: "tune LoRA (bf16 base"
        case .quantized: "tune QLoRA (4-bit base"
        case .nf4: "tune QLoRA (NF4 base"
        }
        let byDefault = m == .bf16
        guard let p = bf16Products, p != byDefault else { return base + ")" }
        return base + (p ? ", bf16 products)" : ", f32 products)")
    }

    /// VmHWM of this process, in bytes.
    public static func peakRSS() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }

    // MARK: - Parent

    /// Measures every mode in a child `tune bench train --worker MODE` and the PyTorch reference.
    public func run(executable: String, progress: (String) -> Void) throws -> Report {
        let referencePython = try findPython()  // first: a bad explicit --python fails before any measuring
        // --data: prepared once here; the workers read the prepared directory, the reference its rows as JSONL.
        var workerData = dataPath, rowsFile: String? = nil
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-train-data-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        if let dataPath {
            progress("preparing \(dataPath)")
            let (d, prepared) = try TrainingDataLoader.load(data: [dataPath], modelPath: modelPath, workDir: scratch)
            workerData = prepared.directory
            var text = ""
            for e in d.train {
                text += "{\"ids\":[" + e.ids.map(String.init).joined(separator: ",") + "],\"mask\":["
                    + e.mask.map(String.init).joined(separator: ",") + "]}\n"
            }
            let f = (scratch as NSString).appendingPathComponent("rows.jsonl")
            try text.write(toFile: f, atomically: true, encoding: .utf8)
            rowsFile = f
        }
        var results: [Measurement] = []
        for mode in modes {
            let shape = dataPath == nil ? "\(batch)×\(seqLen) tokens" : "\(batch) rows"
            progress("measuring \(Self.label(mode, bf16Products: bf16Products)) (\(warmup) warmup + \(steps) timed steps of \(shape))")
            let args = ["bench", "train", "--worker", mode.rawValue, "--json", "--model", modelPath, "--batch", "\(batch)",
                        "--seq-len", "\(seqLen)", "--rank", "\(rank)", "--steps", "\(steps)", "--warmup", "\(warmup)",
                        "--threads", "\(threads)"] + (bf16Products.map { [$0 ? "--bf16-products" : "--no-bf16-products"] } ?? [])
                + (backend.map { ["--backend", $0.rawValue] } ?? [])
                + (workerData.map { ["--data", $0] } ?? []) + (dropout > 0 ? ["--lora-dropout", "\(dropout)"] : [])
                + (profile ? ["--profile"] : [])
            let (status, out, err) = Self.execute(executable, args)
            guard status == 0, let line = out.split(separator: "\n").last,
                  let m = try? JSONDecoder().decode(Measurement.self, from: Data(line.utf8)) else {
                throw EngineError(.internal, "bench worker for \(mode.rawValue) failed (exit \(status)): \(err.split(separator: "\n").last ?? "")")
            }
            results.append(m)
        }
        var reference: Measurement? = nil
        var note = ""
        if let py = referencePython {
            progress("measuring PyTorch + PEFT with \(py)")
            let (status, out, err) = Self.execute(py, [referenceScript, "--model", modelPath, "--batch", "\(batch)",
                                                          "--seq-len", "\(seqLen)", "--rank", "\(rank)", "--alpha", "\(2 * rank)",
                                                          "--threads", "\(threads)", "--steps", "\(steps)", "--warmup", "\(warmup)"]
                                                + (rowsFile.map { ["--rows", $0] } ?? []) + (dropout > 0 ? ["--lora-dropout", "\(dropout)"] : []))
            if status == 0, let line = out.split(separator: "\n").last,
               let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let tps = obj["tokens_per_s"] as? Double, let rss = obj["peak_rss_bytes"] as? Int {
                let name = "PyTorch \(obj["torch"] as? String ?? "?") + PEFT \(obj["peft"] as? String ?? "?") (fp32)"
                reference = Measurement(name: name + (rowsFile != nil ? ", padded per batch" : ""), tokensPerSecond: tps, peakRSSBytes: rss,
                                        stepSeconds: obj["step_seconds"] as? [Double] ?? [], tokensPerStep: obj["tokens_per_step"] as? Double)
                note = "reference measured in this run with \(py)"
            } else {
                note = "reference failed (exit \(status)): \(err.split(separator: "\n").last ?? "")"
            }
        } else {
            note = "reference: no Python with torch + peft (set TUNE_PYTHON; see scripts/reference/README.md)"
        }
        if let r = reference {
            for i in results.indices {
                results[i].ratioVsReference = results[i].tokensPerSecond / r.tokensPerSecond
                results[i].rssVsReference = Double(results[i].peakRSSBytes) / Double(max(1, r.peakRSSBytes))
            }
        }
        return Report(model: modelPath, batch: batch, seqLen: seqLen, rank: rank, threads: threads,
                      isa: Kernels.active.rawValue, results: results, reference: reference, referenceNote: note,
                      data: dataPath, dropout: dropout)
    }

    /// The modules `referenceScript` imports.
    static let referenceImports = "import torch, peft, transformers, gguf"

    /// The Python that runs the reference: `python` when set — it must start and import
    /// `referenceImports`, or this throws naming it and what failed; otherwise the first of
    /// `fallbackPythons` that does, or nil.
    public func findPython() throws -> String? {
        guard let python else {
            return fallbackPythons.first { Self.execute($0, ["-c", Self.referenceImports]).0 == 0 }
        }
        let r: ProcessRunner.Result
        do { r = try ProcessRunner.run(python, ["-c", Self.referenceImports]) } catch let e as TuneError {
            throw TuneError(.invalidArgument, "--python \(python): \(e.message)")
        }
        guard r.status == 0 else {
            let why = r.stderr.split(separator: "\n").last.map(String.init) ?? "no error output"
            throw TuneError(.invalidArgument, "--python \(python): `\(Self.referenceImports)` failed (exit \(r.status)): \(why); "
                            + "install them for it (scripts/reference/README.md) or leave out --python")
        }
        return python
    }

    /// Runs `exe` (a path or a name on PATH); a program that cannot start reads as exit 127.
    static func execute(_ exe: String, _ args: [String]) -> (Int32, String, String) {
        do {
            let r = try ProcessRunner.run(exe, args)
            return (r.status, r.stdout, r.stderr)
        } catch {
            return (127, "", "\(error)")
        }
    }
}
