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

import Engine
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
    /// Measured progress of a long step: done of total, rate, ETA (`ProgressUpdate`); stage nil for work
    /// outside a stage (hashing an input file for a cache key).
    case measured(stage: StageKind?, progress: ProgressUpdate)
    /// A report a person will open: the registered blob `path` and its HTML file (the eval report).
    case report(stage: StageKind, path: String, html: String)
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
            if let f = options.from, s.order < f.order { return false }
            if let u = options.until, s.order > u.order { return false }
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
        try runWithOutputs(onEvent).summary
    }

    /// Runs the selected stages and returns, besides the summary, every stage's typed outputs.
    public func runWithOutputs(_ onEvent: (RunEvent) -> Void = { _ in }) throws -> (summary: RunSummary, outputs: StageOutputs) {
        if options.base == nil, let ref = spec.baseReference {
            // `base: FAMILY@latest|V`: look the version up in the registry, check its hash, run on its file.
            let reg = try Registry.open(path: registryPath, blobRoot: options.blobRoot)
            let b = try reg.base(family: ref.family, version: ref.version)
            var o = options
            o.base = ResolvedBase(path: try BaseCatalog.verifiedPath(b, hashes: hashes), family: b.family, version: b.version)
            return try PipelineRunner(spec: spec, options: o).runWithOutputs(onEvent)
        }
        let stages = selected
        defer { if !options.dryRun { hashes.save() } }
        guard !stages.isEmpty else { throw TuneError(.invalidArgument, "\(spec.name): no stages selected by --from/--until") }
        let registry = try Registry.open(path: registryPath, blobRoot: options.blobRoot)
        var walk = StageWalk(runner: self, registry: registry, selected: stages, claimPolicy: try options.claimPolicy(),
                             summary: RunSummary(pipeline: spec.name, runID: nil, stages: [],
                                                 overrides: spec.overrides.isEmpty ? nil : spec.overrides))
        try withoutActuallyEscaping(onEvent) { emit in
            walk.emit = emit
            defer { walk.emit = { _ in } }   // the caller's closure must not outlive this call
            for stage in Stages.all { try walk.visit(stage) }
        }
        if let runID = walk.runID { try registry.finishRun(runID, status: .succeeded) }
        walk.summary.runID = walk.runID?.rawValue
        return (walk.summary, walk.outputs)
    }

    // MARK: - Cache keys

    /// sha256 of the canonical JSON of the stage's config and the hashes of everything it reads.
    func cacheKey<S: Stage>(_ stage: S.Type, _ section: S.Section, plan: StagePlan) throws -> String {
        var parts: [String: JSONValue] = [
            "stage": .string(S.kind.rawValue),
            "format_version": .number(Double(TuneKitInfo.formatVersion)),
            "seed": .number(Double(spec.seed)),
            "upstream": .array(plan.outputs.latest.map { .string($0.sha256) }),
        ]
        parts.merge(try S.keyParts(section, plan)) { _, new in new }
        return SHA256.hash(Array(try JSONValue.object(parts).canonicalJSON().utf8)).hex
    }

    /// The artifact name a stage registers its output under.
    public func outputName(_ stage: StageKind) -> String {
        let suffix = Stages.outputSuffixes[stage] ?? stage.rawValue
        return "\(spec.name)-\(suffix)"
    }
}

/// One walk over the stage list: plans, skips, adopts or runs each stage and carries the typed outputs on.
struct StageWalk {
    let runner: PipelineRunner
    let registry: Registry
    let selected: [StageKind]
    /// How a stage's cache key is claimed across processes (StageClaim.swift).
    let claimPolicy: StageClaimPolicy
    var summary: RunSummary
    var emit: (RunEvent) -> Void = { _ in }
    var outputs = StageOutputs()
    var runID: RunID?
    /// Dry run: the first stage that would run (its outputs do not exist yet).
    var wouldRun: StageKind?

    var spec: PipelineSpec { runner.spec }
    var options: RunOptions { runner.options }

    init(runner: PipelineRunner, registry: Registry, selected: [StageKind], claimPolicy: StageClaimPolicy, summary: RunSummary) {
        self.runner = runner
        self.registry = registry
        self.selected = selected
        self.claimPolicy = claimPolicy
        self.summary = summary
    }

    mutating func visit<S: Stage>(_ stage: S.Type) throws {
        guard let section = spec.section(S.self) else { return }
        let plan = StagePlan(runner: runner, registry: registry, outputs: outputs)
        guard selected.contains(S.kind) else {
            // Stages before --from are not run, but their outputs are the selected stages' inputs: they
            // must be finished (cached) already.
            guard S.kind.order < selected[0].order else { return }
            let key = try runner.cacheKey(S.self, section, plan: plan)
            guard let cached = try registry.findStageRun(cacheKey: key) else {
                throw TuneError(.invalidArgument,
                                "\(spec.name): --from \(selected[0].rawValue) needs the \(S.kind.rawValue) stage's outputs, but it has not "
                                    + "finished with this configuration; run without --from (finished stages are skipped anyway)")
            }
            try outputs.record(S.self, try cached.outputs.map { try registry.artifact($0) }, registry: registry)
            return
        }
        let key: String
        do { key = try runner.cacheKey(S.self, section, plan: plan) } catch {
            // A dry run past a stage that would run: this stage reads outputs that do not exist yet.
            guard options.dryRun, let first = wouldRun else { throw error }
            emit(.planned(stage: S.kind, action: "run", reason: "after \(first.rawValue), whose outputs it reads"))
            summary.stages.append(.init(stage: S.kind, status: "would-run", cacheKey: "", outputs: [], seconds: 0))
            return
        }
        if try reuseFinished(S.self, key: key) { return }
        if options.dryRun {
            let why = options.force.contains(S.kind) ? "forced" : "no finished stage with this cache key"
            emit(.planned(stage: S.kind, action: "run", reason: why))
            summary.stages.append(.init(stage: S.kind, status: "would-run", cacheKey: key, outputs: [], seconds: 0))
            wouldRun = wouldRun ?? S.kind
            return
        }
        // One run per cache key across processes: hold the stage's claim while adopting or running it.
        try withStageClaim(stage: S.kind, key: key, pipeline: spec.name, registry: registry, policy: claimPolicy,
                           shouldStop: options.shouldStop, onEvent: emit) {
            try claimed(S.self, section, key: key, plan: plan)
        }
    }

    /// When a run already finished stage `S` with `key` (and it is not forced): takes its outputs (in a dry run,
    /// plans to skip it) and returns true.
    private mutating func reuseFinished<S: Stage>(_ stage: S.Type, key: String) throws -> Bool {
        guard !options.force.contains(S.kind), let cached = try registry.findStageRun(cacheKey: key) else { return false }
        let outs = try cached.outputs.map { try registry.artifact($0) }
        emit(options.dryRun ? .planned(stage: S.kind, action: "skip", reason: "cached (run \(cached.runID))")
                            : .skipped(stage: S.kind, reason: "cached (run \(cached.runID))", outputs: outs.map(\.ref)))
        summary.stages.append(.init(stage: S.kind, status: "cached", cacheKey: key, outputs: outs.map(\.ref), seconds: 0))
        try outputs.record(S.self, outs, registry: registry)
        return true
    }

    /// Runs (or adopts) a stage whose cache key this process holds.
    private mutating func claimed<S: Stage>(_ stage: S.Type, _ section: S.Section, key: String, plan: StagePlan) throws {
        // Another run may have finished the stage while this one checked or waited.
        if try reuseFinished(S.self, key: key) { return }
        if runID == nil { runID = try registry.startRun(pipeline: spec.name, config: try JSONValue(encoding: spec)) }
        let context = StageContext(plan: plan, kind: S.kind, key: key, run: runID!, emit: emit)
        // A crash after a stage's outputs were registered but before its stage run was recorded:
        // adopt those outputs instead of producing (and registering) them a second time.
        if let adopted = try registry.list(name: runner.outputName(S.kind)).first(where: { $0.metadata["cache_key"] == .string(key) }) {
            try registry.recordStageRun(runID: runID!, stage: S.kind.rawValue, cacheKey: key, status: .succeeded, outputs: [adopted.id])
            emit(.skipped(stage: S.kind, reason: "outputs already registered", outputs: [adopted.ref]))
            summary.stages.append(.init(stage: S.kind, status: "adopted", cacheKey: key, outputs: [adopted.ref], seconds: 0))
            S.adopted(section, context)
            try outputs.record(S.self, [adopted], registry: registry)
            return
        }
        emit(.started(stage: S.kind))
        let t0 = Date()
        let outs: [Artifact]
        do {
            outs = try S.run(section, context)
            FaultPoint.hit("run.before-stage-record")
        } catch {
            _ = try? registry.recordStageRun(runID: runID!, stage: S.kind.rawValue, cacheKey: key, status: .failed)
            _ = try? registry.finishRun(runID!, status: .failed)
            throw error
        }
        try registry.recordStageRun(runID: runID!, stage: S.kind.rawValue, cacheKey: key, status: .succeeded, outputs: outs.map(\.id))
        let secs = Date().timeIntervalSince(t0)
        emit(.finished(stage: S.kind, seconds: secs, outputs: outs.map(\.ref)))
        summary.stages.append(.init(stage: S.kind, status: "ran", cacheKey: key, outputs: outs.map(\.ref), seconds: secs))
        try outputs.record(S.self, outs, registry: registry)
    }
}
