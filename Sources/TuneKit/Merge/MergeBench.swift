// MergeBench — `tune bench merge`: TIES of three seeded random rank-8 PEFT adapters (all 7 targets)
// into the real model, written as GGUF; wall seconds and peak RSS measured in a child process so the
// RSS is the merge's alone.

import Engine
import Foundation

public struct MergeBench: Sendable {
    public var modelPath = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    public var adapters = 3
    public var rank = 8
    public var density = 0.5
    public var dtype = "q8_0"
    public var output: MergeSpec.Output = .model

    public init() {}

    public struct Measurement: Codable, Sendable {
        public var name: String
        public var seconds: Double
        public var peakRSSBytes: Int
        public var tensorsMerged: Int
    }

    public struct Report: Codable, Sendable {
        public var model: String
        public var adapters: Int
        public var rank: Int
        public var density: Double
        public var dtype: String
        public var results: [Measurement]
        public var note: String
    }

    /// Writes the seeded random adapters under `dir` and returns their paths.
    public func makeAdapters(in dir: String) throws -> [String] {
        let file = try GGUFFile(path: modelPath)
        let c = try LlamaConfig(gguf: file)
        return try (0..<adapters).map { i in
            let a = try LoRAAdapter(config: LoRAConfig(rank: rank, alpha: Double(2 * rank)), model: c)
            var rng = SplitMix64(seed: 1000 + UInt64(i))
            for k in 0..<a.count { a.params[k] = 0.02 * rng.symmetric() }
            let p = (dir as NSString).appendingPathComponent("adapter-\(i)")
            try a.save(directory: p, baseModel: (modelPath as NSString).lastPathComponent)
            return p
        }
    }

    /// The merge itself, in this process (the child side).
    public func work(adapterDirs: [String], out: String) throws -> Measurement {
        var spec = MergeSpec(method: MergeMethods.named("ties")!, base: modelPath,
                             inputs: adapterDirs.map { .init(path: $0, parameters: .init(weight: 1, density: density)) })
        spec.output = output
        spec.format = .gguf
        spec.dtype = dtype
        let t0 = Date()
        let r = try MergeJob.run(spec, outputDirectory: out, overwrite: true)
        return Measurement(name: "tune merge (ties → gguf \(dtype))", seconds: Date().timeIntervalSince(t0),
                           peakRSSBytes: TrainBench.peakRSS(), tensorsMerged: r.tensorsMerged)
    }

    /// Makes the adapters, runs `tune bench merge --worker` as a child, returns its measurement.
    public func run(executable: String, progress: (String) -> Void) throws -> Report {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-merge-\(getpid())").path
        try AtomicFile.makeDirectory(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        progress("writing \(adapters) random rank-\(rank) adapters")
        let dirs = try makeAdapters(in: dir)
        progress("merging (child process)")
        var args = ["bench", "merge", "--json", "--model", modelPath, "--density", "\(density)", "--dtype", dtype,
                    "--worker-out", (dir as NSString).appendingPathComponent("out")]
        for d in dirs { args += ["--worker-adapter", d] }
        let (status, out, err) = TrainBench.execute(executable, args)
        guard status == 0, let line = out.split(separator: "\n").last,
              let m = try? JSONDecoder().decode(Measurement.self, from: Data(line.utf8)) else {
            throw TuneError(.internal, "bench merge worker failed (exit \(status)): \(err.split(separator: "\n").last ?? "")")
        }
        return Report(model: modelPath, adapters: adapters, rank: rank, density: density, dtype: dtype, results: [m],
                      note: "mergekit side by side is not measured: it cannot read GGUF (it needs the base as an HF safetensors directory)")
    }
}
