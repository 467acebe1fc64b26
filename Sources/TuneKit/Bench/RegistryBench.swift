// RegistryBench — `tune bench registry`: lookup latency of a registry holding many artifacts.
// Fills a fresh registry (SQLite in a temp dir, or a fresh database on a PostgreSQL server; blobs in
// memory) with a realistic mix of kinds and lineage, then times show NAME@N, alias lookup and exposure
// one call at a time, in process.

import Engine
import Foundation

/// Latency percentiles of one operation, in microseconds.
public struct RegistryBenchRow: Codable, Sendable {
    public var operation: String
    public var calls: Int
    public var p50Microseconds: Double
    public var p99Microseconds: Double
    public var maxMicroseconds: Double
    /// Mean rows returned per call (exposure) or 1.
    public var meanResults: Double
    /// The same percentiles of the calling thread's CPU time: wall time minus the time the scheduler ran
    /// something else (on a shared machine a call preempted for one 4 ms tick lands in the wall p99).
    public var cpuP50Microseconds: Double
    public var cpuP99Microseconds: Double

    enum CodingKeys: String, CodingKey {
        case operation, calls, p50Microseconds = "p50_us", p99Microseconds = "p99_us", maxMicroseconds = "max_us"
        case meanResults = "mean_results", cpuP50Microseconds = "cpu_p50_us", cpuP99Microseconds = "cpu_p99_us"
    }
}

public struct RegistryBenchReport: Codable, Sendable {
    /// `sqlite` or `postgres`.
    public var backend: String
    public var artifacts: Int
    public var baseVersions: Int
    public var aliases: Int
    public var fillSeconds: Double
    public var rows: [RegistryBenchRow]

    enum CodingKeys: String, CodingKey {
        case backend, artifacts, rows, baseVersions = "base_versions", aliases, fillSeconds = "fill_seconds"
    }
}

public struct RegistryBench: Sendable {
    /// Total artifacts to register.
    public var artifacts = 100_000
    /// Base model families × versions per family.
    public var baseFamilies = 50, baseVersionsPerFamily = 20
    /// Timed calls per operation.
    public var calls = 2_000
    public var seed: UInt64 = 42

    public init() {}

    /// Builds the registry under `directory` (a fresh temp dir when nil) — or, with `postgres` (a server
    /// URL), in a fresh database there, dropped afterwards — measures, and returns the numbers.
    public func run(directory: URL? = nil, postgres: String? = nil, progress: (String) -> Void = { _ in }) throws -> RegistryBenchReport {
        let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("tune-bench-\(UUID().uuidString)")
        defer { if directory == nil { try? FileManager.default.removeItem(at: dir) } }
        let location = try postgres.map { try RegistryLocation.createScratchDatabase(server: $0, prefix: "tune_bench") }
            ?? dir.appendingPathComponent("registry.sqlite").path
        defer { if postgres != nil { try? RegistryLocation.dropDatabase(location) } }
        return try run(Registry(path: location, blobs: InMemoryBlobStore()), backend: postgres == nil ? "sqlite" : "postgres", progress)
    }

    private func run(_ reg: Registry, backend: String, _ progress: (String) -> Void) throws -> RegistryBenchReport {
        var rng = SplitMix64(seed: seed)
        progress("filling \(artifacts) artifacts")
        let t0 = DispatchTime.now().uptimeNanoseconds
        let shape = try fill(reg, &rng)
        let fillSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        try reg.database.optimize()

        progress("timing \(calls) calls per operation")
        var rows: [RegistryBenchRow] = []
        rows.append(try time("show NAME@N", &rng) { r in
            let (name, versions) = shape.names[Int(r.next() % UInt64(shape.names.count))]
            _ = try reg.resolve(.version(name: name, Int(r.next() % UInt64(versions)) + 1))
            return 1
        })
        rows.append(try time("alias NAME@production", &rng) { r in
            _ = try reg.resolve(.alias(name: shape.aliased[Int(r.next() % UInt64(shape.aliased.count))], "production"))
            return 1
        })
        rows.append(try time("exposure BASE@VERSION", &rng) { r in
            let b = shape.bases[Int(r.next() % UInt64(shape.bases.count))]
            let e = try reg.exposure(base: b)
            return e.artifacts.count + e.aliases.count
        })
        // Governance questions: a recursive walk of lineage per call. Deprecate two base versions and one
        // dataset (each reaching hundreds of adapters, merged models and eval reports), then time
        // `exposure --deprecated` and `exposure --base <sha256 prefix>` (the issue asks < 100 ms at 100k).
        let baseModels = try reg.list(kind: .baseModel)
        let datasetArtifacts = try reg.list(kind: .dataset)
        if baseModels.count >= 2, let d = datasetArtifacts.first {
            try reg.deprecate(baseModels[0].id, reason: "bench: license withdrawn", by: "bench")
            try reg.deprecate(baseModels[baseModels.count / 2].id, reason: "bench: superseded", by: "bench")
            try reg.deprecate(d.id, reason: "bench: data terms changed", by: "bench")
            let governanceCalls = max(1, min(calls, 100))
            rows.append(try time("exposure --deprecated", &rng, calls: governanceCalls) { _ in
                let e = try reg.exposure(.deprecated)
                return e.artifacts.count + e.aliases.count
            })
            rows.append(try time("exposure --base SHA", &rng, calls: governanceCalls) { r in
                let b = baseModels[Int(r.next() % UInt64(baseModels.count))]
                let e = try reg.exposure(.base(String(b.sha256.prefix(12))))
                return e.artifacts.count + e.aliases.count
            })
        }
        return RegistryBenchReport(backend: backend, artifacts: shape.count, baseVersions: shape.bases.count, aliases: shape.aliased.count,
                                   fillSeconds: fillSeconds, rows: rows)
    }

    // MARK: - Fill

    private struct Shape {
        var names: [(String, Int)] = []
        var aliased: [String] = []
        var bases: [BaseRef] = []
        var count = 0
    }

    /// Mix: base models, datasets (2%), adapters (60%, each from a base and a dataset), merged models (30%,
    /// each from an adapter), eval reports (the rest, each of a merged model); 10 versions per name.
    /// Every adapter and merged name gets a `production` alias on its last version.
    private func fill(_ reg: Registry, _ rng: inout SplitMix64) throws -> Shape {
        var shape = Shape()
        let gov = Governance(license: "apache-2.0", createdBy: "bench", createdWith: "tune bench registry")
        let versions = 10
        func blob(_ i: Int) -> Blob {
            Blob(sha256: SHA256.hex(Data("artifact \(i)".utf8)), size: 1000, layout: .file)
        }
        return try reg.write { db in
            var baseIDs: [ArtifactID] = [], datasets: [ArtifactID] = [], adapters: [ArtifactID] = [], merged: [ArtifactID] = []
            func add(_ kind: ArtifactKind, _ name: String, _ inputs: [ArtifactID: String], alias: Bool) throws -> ArtifactID {
                var last = ArtifactID(0)
                for _ in 0..<versions {
                    last = try reg.insert(db, kind: kind, name: name, blob: blob(shape.count), metadata: ["i": .number(Double(shape.count))],
                                          governance: gov, inputs: inputs, run: nil).id
                    shape.count += 1
                }
                shape.names.append((name, versions))
                if alias {
                    try db.execute("INSERT INTO aliases (name, alias, artifact_id, updated_at) VALUES (?, 'production', ?, '')",
                                   [name, last.rawValue])
                    shape.aliased.append(name)
                }
                return last
            }
            for f in 0..<baseFamilies {
                for v in 1...baseVersionsPerFamily {
                    var g = gov
                    (g.baseFamily, g.baseVersion) = ("family-\(f)", "\(v)")
                    baseIDs.append(try reg.insert(db, kind: .baseModel, name: "family-\(f)-v\(v)", blob: blob(shape.count), metadata: [:],
                                                  governance: g, inputs: [:], run: nil).id)
                    shape.bases.append(BaseRef(family: "family-\(f)", version: "\(v)"))
                    shape.count += 1
                }
            }
            let rest = artifacts - shape.count
            for i in 0..<(rest * 2 / 100 / versions) { datasets.append(try add(.dataset, "dataset-\(i)", [:], alias: false)) }
            for i in 0..<(rest * 60 / 100 / versions) {
                let b = baseIDs[Int(rng.next() % UInt64(baseIDs.count))], d = datasets[Int(rng.next() % UInt64(datasets.count))]
                adapters.append(try add(.adapter, "adapter-\(i)", [b: "base", d: "train-data"], alias: true))
            }
            for i in 0..<(rest * 30 / 100 / versions) {
                merged.append(try add(.mergedModel, "merged-\(i)", [adapters[Int(rng.next() % UInt64(adapters.count))]: "adapter"], alias: true))
            }
            var i = 0
            while shape.count + versions <= artifacts {
                _ = try add(.evalReport, "eval-\(i)", [merged[Int(rng.next() % UInt64(merged.count))]: "model"], alias: false)
                i += 1
            }
            return shape
        }
    }

    // MARK: - Timing

    private func time(_ op: String, _ rng: inout SplitMix64, calls: Int? = nil, _ body: (inout SplitMix64) throws -> Int) throws -> RegistryBenchRow {
        let calls = calls ?? self.calls
        for _ in 0..<min(200, calls) { _ = try body(&rng) }  // warm caches
        var us: [Double] = [], cpu: [Double] = []
        var results = 0
        us.reserveCapacity(calls)
        cpu.reserveCapacity(calls)
        for _ in 0..<calls {
            let c = threadCPUNanoseconds(), t = DispatchTime.now().uptimeNanoseconds
            results += try body(&rng)
            us.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1000)
            cpu.append(Double(threadCPUNanoseconds() - c) / 1000)
        }
        us.sort()
        cpu.sort()
        let pct = { (xs: [Double], p: Double) in xs[min(xs.count - 1, Int((Double(xs.count) * p).rounded(.up)) - 1)] }
        return RegistryBenchRow(operation: op, calls: calls, p50Microseconds: pct(us, 0.5), p99Microseconds: pct(us, 0.99),
                                maxMicroseconds: us.last ?? 0, meanResults: Double(results) / Double(calls),
                                cpuP50Microseconds: pct(cpu, 0.5), cpuP99Microseconds: pct(cpu, 0.99))
    }

    private func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
