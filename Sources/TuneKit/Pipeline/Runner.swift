// Runner — runs a pipeline's stages in order, skipping every stage whose cache key the registry
// already holds, so a finished pipeline re-runs in well under a second and a crashed one resumes
// at its first unfinished stage.
//
//     let runner = try PipelineRunner(spec: spec, options: .init())
//     let summary = try runner.run { event in print(event) }
//
// Cache key of a stage = sha256(canonical JSON of {stage, config, inputs' hashes, format version}).
// A stage's outputs are registered (blob first, then one transaction) together with its stage-run
// record, so after `kill -9` either the stage is recorded with its outputs or it runs again.

import Foundation

/// Options of one `tune run`.
public struct RunOptions: Sendable {
    public var dryRun = false
    public var force: Set<StageKind> = []
    public var from: StageKind?
    public var until: StageKind?
    public var registryPath: String?
    public var blobRoot = "adapters"
    /// Polled between training steps; true stops the run after a checkpoint (SIGINT).
    public var shouldStop: @Sendable () -> Bool = { false }
    /// The base model to use instead of resolving `base:` (the scheduler swaps bases this way).
    public var base: ResolvedBase?
    /// Environment the managed backend reads (API key, base URL); the process's by default.
    public var environment: [String: String] = ProcessInfo.processInfo.environment
    /// HTTP for the managed backend (libcurl by default).
    public var transport: any HTTPTransport = CurlHTTPTransport()
    /// `--no-wait`: when another process is running a stage this run needs, fail naming it instead of waiting.
    public var noWait = false
    /// Stage claims (StageClaim.swift): nil takes TUNE_CLAIM_STALE_SECONDS / TUNE_CLAIM_HEARTBEAT_SECONDS /
    /// TUNE_CLAIM_POLL_SECONDS from `environment`, else 120 / 15 / 1 seconds.
    public var claimStaleAfter: TimeInterval?
    public var claimHeartbeatInterval: TimeInterval?
    public var claimPollInterval: TimeInterval?
    public init() {}

    /// The claim policy these options ask for; a malformed value is an error naming it.
    public func claimPolicy() throws -> StageClaimPolicy {
        var p = try StageClaimPolicy.fromEnvironment(environment)
        p.wait = !noWait
        if let v = claimStaleAfter { p.staleAfter = v }
        if let v = claimHeartbeatInterval { p.heartbeatInterval = v }
        if let v = claimPollInterval { p.pollInterval = v }
        try p.validate()
        return p
    }
}

/// A base model resolved to a file: from the registry's bases (family and version set) or a plain path.
public struct ResolvedBase: Sendable, Hashable {
    public var path: String
    public var family: String?
    public var version: String?
    public init(path: String, family: String? = nil, version: String? = nil) {
        self.path = path
        self.family = family
        self.version = version
    }
}

/// What the runner reports as it goes (rendered by the CLI as text or `--json` lines).
public enum RunEvent: Sendable, Equatable {
    case planned(stage: StageKind, action: String, reason: String)
    case started(stage: StageKind)
    case finished(stage: StageKind, seconds: Double, outputs: [String])
    case skipped(stage: StageKind, reason: String, outputs: [String])
    /// A progress line from inside a long stage (training steps, evaluations).
    case progress(stage: StageKind, message: String)
    /// Another process holds the stage's claim: "waiting for <stage>: held by pid P on HOST since T".
    case waiting(stage: StageKind, message: String)
}

/// The outcome of a run.
public struct RunSummary: Codable, Sendable {
    public struct Stage: Codable, Sendable {
        public var stage: StageKind
        public var status: String
        public var cacheKey: String
        public var outputs: [String]
        public var seconds: Double
        /// The Slurm job that ran the stage (`executor: slurm`).
        public var slurmJobID: String?
        enum CodingKeys: String, CodingKey { case stage, status, outputs, seconds, cacheKey = "cache_key", slurmJobID = "slurm_job_id" }
    }
    public var pipeline: String
    public var runID: Int64?
    public var stages: [Stage]
    /// The run's `--set` overrides (absent when there are none).
    public var overrides: [PipelineOverride]?
    enum CodingKeys: String, CodingKey { case pipeline, stages, overrides, runID = "run_id" }
}

/// Runs one pipeline against one registry.
public struct PipelineRunner {
    public let spec: PipelineSpec
    public let options: RunOptions
    /// Stages this version of tune can execute; the others fail at plan time with a clear message.
    public static let implemented: Set<StageKind> = [.prepare, .train, .merge, .eval, .register]

    /// Hashes of input files, remembered beside the registry (so an unchanged 100 MB base is read once).
    let hashes: FileHashCache

    public init(spec: PipelineSpec, options: RunOptions) {
        self.spec = spec
        self.options = options
        let registry = Self.registryPath(spec: spec, options: options)
        hashes = FileHashCache(file: (RegistryLocation.stateDirectory(registry) as NSString).appendingPathComponent("file-hashes.json"))
    }

    /// The stages selected by `--from` / `--until`, in flow order.
    public var selected: [StageKind] {
        spec.stages.filter { s in
            let i = StageKind.allCases.firstIndex(of: s)!
            if let f = options.from, i < StageKind.allCases.firstIndex(of: f)! { return false }
            if let u = options.until, i > StageKind.allCases.firstIndex(of: u)! { return false }
            return true
        }
    }

    /// The registry database this run uses: --registry, else the pipeline's `registry:` (a path, relative to the
    /// pipeline file, or a postgres:// URL), else TUNE_REGISTRY, else .tune/registry.sqlite.
    public var registryPath: String { Self.registryPath(spec: spec, options: options) }

    static func registryPath(spec: PipelineSpec, options: RunOptions) -> String {
        options.registryPath ?? spec.registry.map { RegistryLocation.isPostgres($0) ? $0 : resolve($0, in: spec) }
            ?? ProcessInfo.processInfo.environment["TUNE_REGISTRY"] ?? Registry.defaultPath
    }

    func resolve(_ path: String) -> String { Self.resolve(path, in: spec) }

    /// The base model file: the resolved base when given, else `base:` as a path.
    var basePath: String { options.base?.path ?? resolve(spec.base) }

    /// The base family recorded on outputs: the registered family, else the model's file name.
    var baseFamily: String { options.base?.family ?? (basePath as NSString).lastPathComponent }

    static func resolve(_ path: String, in spec: PipelineSpec) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: spec.baseDirectory).appendingPathComponent(path).standardized.path
    }

    /// Runs (or with `dryRun`, only plans) the selected stages.
    public func run(_ onEvent: (RunEvent) -> Void = { _ in }) throws -> RunSummary {
        if options.base == nil, let ref = spec.baseReference {
            // `base: FAMILY@latest|V`: look the version up in the registry, check its hash, run on its file.
            let reg = try Registry.open(path: registryPath, blobRoot: options.blobRoot)
            let b = try reg.base(family: ref.family, version: ref.version)
            var o = options
            o.base = ResolvedBase(path: try BaseCatalog.verifiedPath(b, hashes: hashes), family: b.family, version: b.version)
            return try PipelineRunner(spec: spec, options: o).run(onEvent)
        }
        let stages = selected
        defer { if !options.dryRun { hashes.save() } }
        guard !stages.isEmpty else { throw TuneError(.invalidArgument, "\(spec.name): no stages selected by --from/--until") }
        if let missing = stages.first(where: { !Self.implemented.contains($0) }) {
            throw TuneError(.invalidArgument,
                            "\(spec.name): the \(missing.rawValue) stage is not implemented yet in this version of tune; "
                                + "run the stages before it with --until \(StageKind.allCases[StageKind.allCases.firstIndex(of: missing)! - 1].rawValue)")
        }
        let registry = try Registry.open(path: registryPath,
                                         blobRoot: options.blobRoot)
        let claimPolicy = try options.claimPolicy()
        var summary = RunSummary(pipeline: spec.name, runID: nil, stages: [], overrides: spec.overrides.isEmpty ? nil : spec.overrides)
        var runID: RunID?
        var upstream: [Artifact] = []
        var earlier: [Artifact] = []   // every output so far (eval reads the dataset and the adapter)
        // Stages before --from are not run, but their outputs are the selected stages' inputs: they
        // must be finished (cached) already.
        for stage in spec.stages where !stages.contains(stage) && StageKind.allCases.firstIndex(of: stage)! < StageKind.allCases.firstIndex(of: stages[0])! {
            let key = try cacheKey(stage, upstream: upstream, registry: registry)
            guard let cached = try registry.findStageRun(cacheKey: key) else {
                throw TuneError(.invalidArgument,
                                "\(spec.name): --from \(stages[0].rawValue) needs the \(stage.rawValue) stage's outputs, but it has not "
                                    + "finished with this configuration; run without --from (finished stages are skipped anyway)")
            }
            let outs = try cached.outputs.map { try registry.artifact($0) }
            if !outs.isEmpty { upstream = outs; earlier += outs }
        }
        var wouldRun: StageKind?   // dry run: the first stage that would run (its outputs do not exist yet)
        for stage in stages {
            let key: String
            do { key = try cacheKey(stage, upstream: upstream, registry: registry) } catch {
                // `adapter: train` is the adapter the train stage has not produced yet: merge runs after it.
                guard options.dryRun, stage == .merge, let first = wouldRun, spec.merge!.inputs.contains(where: { $0.adapter == "train" })
                else { throw error }
                onEvent(.planned(stage: stage, action: "run", reason: "after \(first.rawValue), whose adapter it merges"))
                summary.stages.append(.init(stage: stage, status: "would-run", cacheKey: "", outputs: [], seconds: 0))
                continue
            }
            let cached = options.force.contains(stage) ? nil : try registry.findStageRun(cacheKey: key)
            if let cached {
                let outs = try cached.outputs.map { try registry.artifact($0) }
                onEvent(options.dryRun ? .planned(stage: stage, action: "skip", reason: "cached (run \(cached.runID))")
                                       : .skipped(stage: stage, reason: "cached (run \(cached.runID))", outputs: outs.map(\.ref)))
                summary.stages.append(.init(stage: stage, status: "cached", cacheKey: key, outputs: outs.map(\.ref), seconds: 0))
                if !outs.isEmpty { upstream = outs; earlier += outs }
                continue
            }
            if options.dryRun {
                let why = options.force.contains(stage) ? "forced" : "no finished stage with this cache key"
                onEvent(.planned(stage: stage, action: "run", reason: why))
                summary.stages.append(.init(stage: stage, status: "would-run", cacheKey: key, outputs: [], seconds: 0))
                wouldRun = wouldRun ?? stage
                continue
            }
            // One run per cache key across processes: hold the stage's claim while adopting or executing it.
            try withStageClaim(stage: stage, key: key, pipeline: spec.name, registry: registry, policy: claimPolicy,
                               shouldStop: options.shouldStop, onEvent: onEvent) {
            // Holding the claim: another run may have finished the stage while this one checked or waited.
            if !options.force.contains(stage), let cached = try registry.findStageRun(cacheKey: key) {
                let outs = try cached.outputs.map { try registry.artifact($0) }
                onEvent(.skipped(stage: stage, reason: "cached (run \(cached.runID))", outputs: outs.map(\.ref)))
                summary.stages.append(.init(stage: stage, status: "cached", cacheKey: key, outputs: outs.map(\.ref), seconds: 0))
                if !outs.isEmpty { upstream = outs; earlier += outs }
                return
            }
            if runID == nil { runID = try registry.startRun(pipeline: spec.name, config: try JSONValue(encoding: spec)) }
            // A crash after a stage's outputs were registered but before its stage run was recorded:
            // adopt those outputs instead of producing (and registering) them a second time.
            if let adopted = try registry.list(name: outputName(stage)).first(where: { $0.metadata["cache_key"] == .string(key) }) {
                try registry.recordStageRun(runID: runID!, stage: stage.rawValue, cacheKey: key, status: .succeeded,
                                            outputs: [adopted.id])
                onEvent(.skipped(stage: stage, reason: "outputs already registered", outputs: [adopted.ref]))
                summary.stages.append(.init(stage: stage, status: "adopted", cacheKey: key, outputs: [adopted.ref], seconds: 0))
                upstream = [adopted]
                earlier.append(adopted)
                if stage == .train { // a crash between registering and recording left the checkpoints behind
                    try? FileManager.default.removeItem(atPath: trainWorkDirectory(key: key, registryPath: registryPath))
                }
                return
            }
            onEvent(.started(stage: stage))
            let t0 = Date()
            let outs: [Artifact]
            do {
                outs = try execute(stage, key: key, upstream: stage == .eval || stage == .register ? earlier : upstream,
                                   registry: registry, run: runID!, onEvent: onEvent)
                FaultPoint.hit("run.before-stage-record")
            } catch {
                _ = try? registry.recordStageRun(runID: runID!, stage: stage.rawValue, cacheKey: key, status: .failed)
                _ = try? registry.finishRun(runID!, status: .failed)
                throw error
            }
            try registry.recordStageRun(runID: runID!, stage: stage.rawValue, cacheKey: key, status: .succeeded,
                                        outputs: outs.map(\.id))
            let secs = Date().timeIntervalSince(t0)
            onEvent(.finished(stage: stage, seconds: secs, outputs: outs.map(\.ref)))
            summary.stages.append(.init(stage: stage, status: "ran", cacheKey: key, outputs: outs.map(\.ref), seconds: secs))
            if !outs.isEmpty { upstream = outs; earlier += outs }
            }
        }
        if let runID { try registry.finishRun(runID, status: .succeeded) }
        summary.runID = runID?.rawValue
        return summary
    }

    // MARK: - Cache keys

    /// sha256 of the canonical JSON of the stage's config and the hashes of everything it reads.
    func cacheKey(_ stage: StageKind, upstream: [Artifact], registry: Registry) throws -> String {
        var parts: [String: JSONValue] = [
            "stage": .string(stage.rawValue),
            "format_version": .number(Double(TuneKitInfo.formatVersion)),
            "seed": .number(Double(spec.seed)),
            "upstream": .array(upstream.map { .string($0.sha256) }),
        ]
        switch stage {
        case .prepare:
            let p = spec.prepare!
            parts["config"] = try JSONValue(encoding: p.config)
            var files = p.train.map(resolve)
            if let e = p.config.split.evalFile { files.append(resolve(e)) }
            parts["inputs"] = .array(try files.map { .string(try hashes.sha256($0)) })
            parts["tokenizer"] = .string(try DatasetTokenizer.load(modelPath: basePath).sha256)
        case .register:
            parts["config"] = try JSONValue(encoding: spec.register!)
        case .train:
            var t = spec.train!
            if t.backend == "openai", let m = t.openai {
                // What is trained and where: the provider URL enters resolved (redacted), the API key never.
                t.openai = m.keyed
                parts["provider"] = .string(redactedURL((try? OpenAIClient.apiRoot(m.resolvedBaseURL(environment: options.environment)))
                                                        ?? m.resolvedBaseURL(environment: options.environment)))
            }
            parts["config"] = try JSONValue(encoding: t)
            parts["base"] = .string(try hashes.sha256(basePath))
        case .eval:
            parts["config"] = try JSONValue(encoding: spec.eval!)
            parts["base"] = .string(try hashes.sha256(basePath))
        case .merge:
            parts["config"] = try JSONValue(encoding: spec.merge!)
            parts["base"] = .string(try hashes.sha256(basePath))
            parts["inputs"] = .array(try resolveMergeInputs(upstream: upstream, registry: registry).map { .string($0.sha256) })
        }
        return SHA256.hash(Array(try JSONValue.object(parts).canonicalJSON().utf8)).hex
    }

    // MARK: - Stages

    /// The artifact name a stage registers its output under.
    func outputName(_ stage: StageKind) -> String {
        switch stage {
        case .prepare: "\(spec.name)-dataset"
        case .train: "\(spec.name)-adapter"
        case .merge: "\(spec.name)-merged"
        case .eval: "\(spec.name)-eval"
        case .register: "\(spec.name)-registered"
        }
    }

    func execute(_ stage: StageKind, key: String, upstream: [Artifact], registry: Registry, run: RunID,
                 onEvent: (RunEvent) -> Void) throws -> [Artifact] {
        switch stage {
        case .prepare:
            let p = spec.prepare!
            let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("tune-prepare-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: work) }
            var config = p.config
            config.split.evalFile = config.split.evalFile.map(resolve)
            if config.split.seed == 0 { config.split.seed = spec.seed }
            let manifest = try PrepareStage.run(inputs: p.train.map(resolve), config: config,
                                                tokenizer: try DatasetTokenizer.load(modelPath: basePath),
                                                outputDir: work.path)
            FaultPoint.hit("run.after-prepare")
            let counts: [String: JSONValue] = [
                "kept": .number(Double(manifest.counts.kept)),
                "dropped": .number(Double(manifest.counts.droppedTotal)),
            ]
            let new = NewArtifact(kind: .dataset, name: outputName(.prepare), source: work,
                                  metadata: ["counts": .object(counts), "pipeline": .string(spec.name), "cache_key": .string(key)],
                                  governance: Governance(datasetSource: p.train.joined(separator: ", ")))
            return [try registry.register(new, inputs: Dictionary(uniqueKeysWithValues: upstream.map { ($0.id, "input") }), run: run)]
        case .register:
            // The aliases go to the newest model the pipeline produced (merged model, else adapter), else its last output.
            guard let last = upstream.last(where: { $0.kind == .mergedModel }) ?? upstream.last(where: { $0.kind == .adapter })
                    ?? upstream.last else {
                throw TuneError(.invalidArgument, "\(spec.name): register has nothing to register (no earlier stage produced an artifact)")
            }
            for alias in spec.register!.aliases { try registry.setAlias(alias, to: last.id) }
            return [last]
        case .train:
            return [try executeTrain(key: key, upstream: upstream, registry: registry, run: run, onEvent: onEvent)]
        case .eval:
            return [try executeEval(key: key, upstream: upstream, registry: registry, run: run, onEvent: onEvent)]
        case .merge:
            return [try executeMerge(key: key, upstream: upstream, registry: registry, run: run, onEvent: onEvent)]
        }
    }
}
