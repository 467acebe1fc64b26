// DriftTests — drift rechecks (docs/governance.md, "Drift") on tiny models against a scripted loopback
// provider: a recheck of an unchanged (fully cached) pipeline re-evaluates production and the reference
// on the pinned eval split, registers a new eval report of the same model (lineage, `recheck: true`),
// and runs the notify hook only when a compared metric dropped by more than drift.max_drop — for a
// scripted reference that degrades, for a managed production model swapped under the same id, and for a
// recheck enqueued by `schedule.recheck` and run by the worker. Also: the comparison rule by hand, the
// history, and the unpinned-model validation warning.
import Engine
import Foundation
import LoopbackHTTP
import Testing
@testable import TuneKit

private let key = "sk-drift-SECRET-5e6f"
private let keyEnv = "TUNE_TEST_DRIFT_KEY"

/// Train rows "doc 100…119", eval rows "doc 0…3" (the eval split is exactly these four); answer "c<i mod 3>".
private func driftFixture(_ yamlBody: (String) -> String) throws -> (dir: URL, pipeline: String, registry: Registry) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-drift-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    let train = (100..<120).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
    try (train.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
    let eval = (0..<4).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
    try (eval.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
    let p = dir.appendingPathComponent("p.yaml").path
    try yamlBody(dir.path).write(toFile: p, atomically: true, encoding: .utf8)
    let reg = try Registry.open(path: dir.appendingPathComponent("reg.sqlite").path, blobRoot: dir.appendingPathComponent("blobs").path)
    return (dir, p, reg)
}

private func runOptions(_ dir: URL) -> RunOptions {
    var o = RunOptions()
    o.blobRoot = dir.appendingPathComponent("blobs").path
    o.environment = [keyEnv: key]
    return o
}

private func recheckOptions() -> RecheckOptions {
    var o = RecheckOptions()
    o.environment = [keyEnv: key]
    return o
}

/// The notify hook's JSON lines so far.
private func notifications(_ dir: URL) -> [[String: Any]] {
    guard let text = try? String(contentsOf: dir.appendingPathComponent("notified.jsonl"), encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
}

/// Answers "c<i mod 3>" for doc i unless i is in `wrong` (a mutable script shared with the provider's thread).
private final class DriftScript: @unchecked Sendable {
    private let lock = NSLock()
    private var wrongDocs: Set<Int> = []
    var wrong: Set<Int> { get { lock.withLock { wrongDocs } } set { lock.withLock { wrongDocs = newValue } } }
    func answer(_ messages: [[String: String]]) -> (text: String, promptTokens: Int, completionTokens: Int) {
        let i = Int((messages.last { $0["role"] == "user" }?["content"] ?? "").filter(\.isNumber)) ?? -1
        return (wrong.contains(i) ? "nope" : "c\(i % 3)", 50, 2)
    }
}

@Suite(.serialized) struct DriftTests {
    /// Local adapter in production, one reference model behind the scripted provider; base registered as tiny@1
    /// so the same pipeline can also be scheduled.
    @Test func recheckReevaluatesUnchangedPipelineAndNotifiesOnlyBeyondMaxDrop() throws {
        let provider = try FakeProvider()
        provider.requiredKey = key
        let script = DriftScript()
        provider.chat = { _, messages in script.answer(messages) }
        let (dir, path, reg) = try driftFixture { _ in """
            name: tiny-drift
            base: tiny@latest
            registry: reg.sqlite
            seed: 5
            prepare:
              train: data.jsonl
              eval: eval.jsonl
            train:
              lora: {rank: 4, alpha: 8, dropout: 0.0}
              max_steps: 2
              batch_size: 4
              seq_len: 128
            eval:
              metrics: [exact_match, contains, loss]
              max_new_tokens: 4
              reference:
                - {name: closed, model: gpt-4o-mini-2024-07-18, base_url: "\(provider.url)", api_key_env: \(keyEnv), concurrency: 1}
            register:
              aliases: [production]
            drift: {max_drop: 0.3, metric: [exact_match, loss]}
            schedule: {recheck: "0 6 * * 1"}
            notify:
              command: "cat >> notified.jsonl; echo >> notified.jsonl"
            """ }
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try BaseCatalog.add(.init(family: "tiny", version: "1", model: dir.appendingPathComponent("tiny.gguf").path, license: "apache-2.0"),
                                to: reg)
        let spec = try PipelineSpec.load(path: path)
        #expect(spec.warnings.isEmpty, "a pinned snapshot gives no warning: \(spec.warnings)")

        // The pipeline once, then again: the second run evaluates nothing (fully cached).
        let first = try PipelineRunner(spec: spec, options: runOptions(dir)).run()
        #expect(first.stages.map(\.status) == ["ran", "ran", "ran", "ran"])
        let production = try reg.resolve("tiny-drift-adapter@production")
        let chatsAfterRun = provider.chatModels.count
        #expect(chatsAfterRun == 4)
        let second = try PipelineRunner(spec: spec, options: runOptions(dir)).run()
        #expect(second.stages.map(\.status) == ["cached", "cached", "cached", "cached"])
        #expect(provider.chatModels.count == chatsAfterRun, "a cached run asks the reference nothing")
        #expect(try reg.list(name: "tiny-drift-eval").count == 1)

        // Recheck, nothing changed: production and the reference evaluated again, a new report, no drift, no hook.
        let same = try Recheck.run(spec: spec, registry: reg, options: recheckOptions())
        #expect(same.production == production.ref && same.report == "tiny-drift-eval@2" && same.baseline == "tiny-drift-eval@1")
        #expect(provider.chatModels.count == chatsAfterRun + 4, "the reference was asked again")
        #expect(!same.drifted && notifications(dir).isEmpty)
        let compared = Dictionary(uniqueKeysWithValues: same.comparisons.map { ("\($0.model) \($0.metric)", $0) })
        #expect(Set(compared.keys) == ["production exact_match", "production loss", "reference:closed exact_match"], "\(compared.keys)")
        #expect(compared["reference:closed exact_match"]?.current == 1 && compared["reference:closed exact_match"]?.drop == 0)
        let loss = try #require(compared["production loss"])
        #expect(loss.current.isFinite && abs(loss.drop) < 1e-6, "the same model on the same split: \(loss)")
        let report = try reg.resolve("tiny-drift-eval@2")
        #expect(report.metadata["recheck"] == .bool(true) && report.metadata["trigger"] == .string("manual"))
        #expect(report.metadata["cache_key"] == nil, "a recheck is never adopted as the eval stage's output")
        let inputs = try reg.inputs(of: report.id).map { "\($0.role) \($0.artifact.ref)" }.sorted()
        // The reference is recorded as the eval stage records it: the same managed-model artifact, role `reference`.
        #expect(inputs == ["data tiny-drift-dataset@1", "evaluated \(production.ref)", "reference gpt-4o-mini-2024-07-18@1"], "\(inputs)")
        let stored = try StoredEvalReport.load(directory: try #require(reg.path(of: report)), ref: report.ref)
        let adapterEval = try #require(stored.models.first { $0.role == "adapter" })
        #expect(adapterEval.model == production.ref && stored.models.contains { $0.role == "reference" && $0.model == "closed" })
        #expect(!stored.models.contains { $0.role == "base" }, "a recheck evaluates production, not the base")
        let page = try String(contentsOfFile: (try #require(reg.path(of: report)) as NSString).appendingPathComponent("history.html"), encoding: .utf8)
        #expect(page.contains("<h2>reference:closed exact_match</h2>") && page.contains("tiny-drift-eval (this recheck)") && page.contains("<polyline"))
        #expect(!page.contains("<script") && !page.contains("http"), "self-contained")

        // One answer of four wrong: exact_match drops 0.25 ≤ max_drop 0.3 — recorded, no hook.
        script.wrong = [3]
        let small = try Recheck.run(spec: spec, registry: reg, options: recheckOptions())
        #expect(!small.drifted && notifications(dir).isEmpty)
        #expect(small.comparisons.first { $0.model == "reference:closed" }?.drop == 0.25)

        // Two wrong: 0.5 > 0.3 — drift, the hook hears it once, naming the reference and the numbers.
        script.wrong = [0, 3]
        let drifted = try Recheck.run(spec: spec, registry: reg, options: recheckOptions())
        #expect(drifted.drifted && drifted.report == "tiny-drift-eval@4")
        let sent = notifications(dir)
        #expect(sent.count == 1)
        let n = try #require(sent.first)
        #expect(n["event"] as? String == "drift_check" && n["drifted"] as? Bool == true && n["production"] as? String == production.ref)
        let hit = (n["comparisons"] as? [[String: Any]] ?? []).first { $0["drifted"] as? Bool == true }
        #expect(hit?["model"] as? String == "reference:closed" && hit?["current"] as? Double == 0.5 && hit?["baseline"] as? Double == 1)
        #expect(hit?["baseline_report"] as? String == "tiny-drift-eval@1", "compared with the accepted eval, not the last recheck")

        // The pipeline itself is still fully cached: a recheck report is never taken for the eval stage's output.
        #expect(try PipelineRunner(spec: spec, options: runOptions(dir)).run().stages.map(\.status) == ["cached", "cached", "cached", "cached"])

        // History: the pipeline's eval, then three rechecks; the reference's exact_match over time.
        let h = try reg.evalHistory(of: production)
        #expect(h.points.map(\.kind) == ["eval", "recheck", "recheck", "recheck"])
        #expect(h.points.map { $0.references["closed"]?["exact_match"] } == [1, 1, 0.75, 0.5])
        #expect(h.points.map(\.drifted) == [nil, false, false, true])
        #expect(h.accepted?.report == "tiny-drift-eval@1" && h.columns.contains("reference:closed exact_match"))

        // Scheduled: `schedule add`, a tick past Monday 06:00 enqueues one recheck job; the worker runs it and,
        // on drift, notifies after committing the job.
        let start = try #require(Stamp.date("2026-11-30T12:00:00Z"))   // a Monday, after 06:00
        _ = try reg.addSchedule(path: path, now: start)
        let clock = ManualClock(start.addingTimeInterval(7 * 86_400))
        let tick = try Scheduler.tick(registry: reg, clock: clock)
        #expect(tick.enqueued.map(\.triggerKey) == ["recheck:2026-12-07T06:00:00.000Z"], "\(tick)")
        #expect(try Scheduler.tick(registry: reg, clock: clock).enqueued.isEmpty, "idempotent")
        var worker = Worker(registry: reg, clock: clock, owner: "drift-test", leaseDuration: 60)
        worker.recheck.environment = [keyEnv: key]
        let outcome = try #require(try worker.runOnce())
        #expect(outcome.status == "succeeded" && !outcome.promoted && outcome.message.hasPrefix("drift: reference:closed exact_match"), "\(outcome)")
        #expect(notifications(dir).count == 2)
        let job = try #require(try JobQueue(registry: reg, clock: clock).jobs(limit: 5).first)
        if case .object(let r)? = job.result {
            #expect(r["report"] == .string("tiny-drift-eval@5") && r["trigger"] == .string("recheck:2026-12-07T06:00:00.000Z"))
        } else { Issue.record("job result missing: \(String(describing: job.result))") }
        #expect(try reg.resolve("tiny-drift-adapter@production").id == production.id, "a recheck never moves production")
        #expect(try reg.resolve("tiny-drift-eval@5").metadata["trigger"] == .string("recheck:2026-12-07T06:00:00.000Z"))
    }

    /// `cron` and `recheck` on one schedule: each fire time gives its own job once (keys `cron:` / `recheck:`), on both backends.
    @Test(arguments: RegistryBackend.allCases) func tickEnqueuesRechecksBesideCronOnce(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        try f.base("tiny", "1", seed: 1)
        let t0 = try #require(Stamp.date("2026-11-23T12:00:00Z"))   // a Monday
        let p = try f.pipeline("both", schedule: "{cron: \"0 3 * * *\", recheck: \"0 6 * * 1\"}")
        try f.registry.addSchedule(path: p, now: t0)
        let clock = ManualClock(t0.addingTimeInterval(86_400))
        let first = try Scheduler.tick(registry: f.registry, clock: clock)
        #expect(first.enqueued.map(\.triggerKey) == ["cron:2026-11-24T03:00:00.000Z"], "no Monday 06:00 yet: \(first)")
        #expect(first.enqueued.allSatisfy { !Recheck.isRecheck($0) })
        clock.set(try #require(Stamp.date("2026-11-30T07:00:00Z")))   // past the next Monday 06:00
        let second = try Scheduler.tick(registry: f.registry, clock: clock)
        #expect(second.enqueued.map(\.triggerKey) == ["cron:2026-11-30T03:00:00.000Z", "recheck:2026-11-30T06:00:00.000Z"], "\(second)")
        #expect(second.enqueued.map { Recheck.isRecheck($0) } == [false, true] && second.enqueued.allSatisfy { $0.trigger == .cron })
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.isEmpty, "idempotent")
        // The recheck cron is read from the file at each tick: removing it stops new recheck jobs.
        try String(contentsOfFile: p, encoding: .utf8).replacingOccurrences(of: ", recheck: \"0 6 * * 1\"", with: "")
            .write(toFile: p, atomically: true, encoding: .utf8)
        clock.set(try #require(Stamp.date("2026-12-07T07:00:00Z")))
        #expect(try Scheduler.tick(registry: f.registry, clock: clock).enqueued.map(\.triggerKey) == ["cron:2026-12-07T03:00:00.000Z"])
    }

    /// A managed fine-tune in production whose provider swaps the model behind the same id: the recheck sees
    /// production's own exact_match drop and notifies; before the swap it does not.
    @Test func swappedManagedModelDriftsAndNotifies() throws {
        let provider = try FakeProvider()
        provider.requiredKey = key
        let script = DriftScript()
        provider.chat = { _, messages in script.answer(messages) }
        let (dir, path, reg) = try driftFixture { _ in """
            name: tiny-managed
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            prepare:
              train: data.jsonl
              eval: eval.jsonl
            train:
              backend: openai
              openai:
                base_url: "\(provider.url)"
                api_key_env: \(keyEnv)
                model: gpt-4o-mini-2024-07-18
                poll_interval: 0.01
            eval:
              metrics: [exact_match, contains]
              max_new_tokens: 4
            register:
              aliases: [production]
            drift: {max_drop: 0.1}
            notify:
              command: "cat >> notified.jsonl; echo >> notified.jsonl"
            """ }
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = try PipelineSpec.load(path: path)
        _ = try PipelineRunner(spec: spec, options: runOptions(dir)).run()
        let production = try reg.resolve("tiny-managed-adapter@production")
        #expect(ManagedModelRecord.isManaged(production))

        let same = try Recheck.run(spec: spec, registry: reg, options: recheckOptions())
        #expect(!same.drifted && notifications(dir).isEmpty)
        #expect(same.comparisons.map(\.metric) == ["exact_match"], "no gate: drift.metric defaults to … \(same.comparisons)")

        script.wrong = [1]   // the provider now serves another model under the same fine-tune id
        let swapped = try Recheck.run(spec: spec, registry: reg, options: recheckOptions())
        #expect(swapped.drifted)
        let c = try #require(swapped.comparisons.first { $0.model == "production" })
        #expect(c.baseline == 1 && c.current == 0.75 && c.drop == 0.25 && c.drifted)
        #expect(notifications(dir).count == 1)
        #expect(try reg.evalHistory(of: production).points.map { $0.metrics["exact_match"] } == [1, 1, 0.75])
    }

    @Test func comparisonRuleByHand() {
        func point(_ report: String, _ kind: String, gate: Bool?, _ metrics: [String: Double], refs: [String: [String: Double]] = [:]) -> MetricHistoryPoint {
            MetricHistoryPoint(report: report, reportID: ArtifactID(1), createdAt: "", kind: kind, gatePassed: gate, trigger: nil, evaluated: nil,
                               role: "adapter", dataset: nil, metrics: metrics, references: refs, drifted: nil)
        }
        let h = MetricHistory(artifact: "m@1", sha256: "", points: [
            point("e@1", "eval", gate: true, ["exact_match": 0.8, "loss": 1.0]),
            point("e@2", "eval", gate: false, ["exact_match": 0.1, "loss": 9.0]),   // a failed gate is no baseline
            point("e@3", "recheck", gate: nil, ["exact_match": 0.79, "loss": 1.01], refs: ["g": ["exact_match": 0.9]]),
        ])
        #expect(h.accepted?.report == "e@1")
        let cs = Recheck.compare(current: ["production": ["exact_match": 0.7, "loss": 1.05], "reference:g": ["exact_match": 0.85]],
                                 history: h, metrics: ["exact_match", "loss"], maxDrop: 0.05)
        let by = Dictionary(uniqueKeysWithValues: cs.map { ("\($0.model) \($0.metric)", $0) })
        // 0.8 → 0.7: a drop of 0.1 > 0.05. Loss is lower-is-better: 1.0 → 1.05 is a drop of 0.05, not beyond.
        #expect(by["production exact_match"]?.drifted == true && abs((by["production exact_match"]?.drop ?? 0) - 0.1) < 1e-12)
        #expect(by["production loss"]?.lowerIsBetter == true && by["production loss"]?.drifted == false)
        #expect(abs((by["production loss"]?.drop ?? 0) - 0.05) < 1e-12)
        // The reference is not in the accepted eval: its first value (the e@3 recheck) is its baseline.
        #expect(by["reference:g exact_match"]?.baselineReport == "e@3" && by["reference:g exact_match"]?.drifted == false)
        #expect(cs.first?.model == "production", "production first")
        // Better is never drift.
        #expect(Recheck.compare(current: ["production": ["loss": 0.5]], history: h, metrics: ["loss"], maxDrop: 0).allSatisfy { !$0.drifted })
    }

    /// The history's SQL (the same content = the same model) on SQLite and PostgreSQL (skipped without TUNE_TEST_POSTGRES).
    @Test(arguments: RegistryBackend.allCases) func historyFollowsTheModelsContentOnBothBackends(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let data = try t.add(.dataset, "m-dataset", "rows")
        let merged = try t.add(.mergedModel, "m-merged", "weights", inputs: [data.id: "input"])
        let other = try t.add(.mergedModel, "other-merged", "other weights")
        let registered = try t.registry.registerVersion(of: merged, as: "shipping", metadata: [:], governance: merged.governance, run: nil)
        func report(_ subject: Artifact, _ meta: [String: JSONValue], _ value: Double, reference: Double?) throws -> Artifact {
            var models = [#"{"role": "base", "model": "b", "metrics": {"exact_match": 0.1}}"#,
                          #"{"role": "merged", "model": "\#(subject.ref)", "metrics": {"exact_match": \#(value), "loss": "nan"}}"#]
            if let reference { models.append(#"{"role": "reference", "model": "g", "metrics": {"exact_match": \#(reference)}}"#) }
            let dir = try t.directory(["report.json": #"{"subjects": {"merged": "\#(subject.ref)", "base": "b"}, "dataset": "\#(data.ref)", "models": [\#(models.joined(separator: ","))]}"#])
            return try t.registry.register(NewArtifact(kind: .evalReport, name: "m-eval", source: dir, metadata: meta),
                                           inputs: [data.id: "data", subject.id: "evaluated"])
        }
        let first = try report(merged, ["gate_passed": .bool(true)], 0.8, reference: nil)
        _ = try report(other, ["gate_passed": .bool(true)], 0.2, reference: 0.5)
        let recheck = try report(registered, ["recheck": .bool(true), "trigger": .string("manual"), "drifted": .bool(true)], 0.7, reference: 0.9)
        for model in [merged, registered] {
            let h = try t.registry.evalHistory(of: model)
            #expect(h.points.map(\.report) == [first.ref, recheck.ref], "only reports of this content: \(h.points.map(\.report))")
            #expect(h.points.map(\.kind) == ["eval", "recheck"] && h.points.map(\.role) == ["merged", "merged"])
            #expect(h.points.map { $0.metrics } == [["exact_match": 0.8], ["exact_match": 0.7]], "the base's and nan are left out")
            #expect(h.points.map { $0.references["g"]?["exact_match"] } == [nil, 0.9])
            #expect(h.points.map(\.dataset) == [data.ref, data.ref] && h.points[1].trigger == "manual" && h.points[1].drifted == true)
            #expect(h.columns == ["exact_match", "reference:g exact_match"] && MetricHistory.value(h.points[1], "reference:g exact_match") == 0.9)
            #expect(h.accepted?.report == first.ref)
        }
    }

    @Test func unpinnedManagedModelsWarnAndDriftKeysValidate() throws {
        let yaml = """
            name: w
            base: tiny.gguf
            prepare: {train: data.jsonl}
            train:
              backend: openai
              openai: {model: gpt-4o-mini}
            eval:
              metrics: [exact_match]
              reference:
                - {name: a, model: gpt-4o}
                - {name: b, model: gpt-4o-2024-08-06}
                - {name: c, model: "ft:gpt-4o-mini-2024-07-18:org::abc"}
            drift: {max_drop: 0.05, metric: accuracy}
            """
        let spec = try PipelineSpec.parse(yaml: yaml, file: "p.yaml")
        let ws = spec.warnings.map(\.description)
        #expect(ws.count == 2, "\(ws)")
        #expect(ws.contains { $0.hasPrefix("p.yaml:6:") && $0.contains(": train.openai.model: model id \"gpt-4o-mini\" is not pinned to a snapshot") }, "\(ws)")
        #expect(ws.contains { $0.hasPrefix("p.yaml:10:") && $0.contains(": eval.reference[0].model: model id \"gpt-4o\" is not pinned") }, "\(ws)")
        #expect(spec.drift == DriftSection(maxDrop: 0.05, metrics: ["accuracy"]))
        #expect(spec.drift?.resolvedMetrics(try #require(spec.eval?.config)) == ["exact_match"])
        #expect(ManagedModelID.isPinned("gpt-4-0613") && !ManagedModelID.isPinned("gpt-4o-mini"))
        // A `--set` value is named by its argument; pinning it there removes that warning.
        let set = try PipelineSpec.parse(yaml: yaml, file: "p.yaml", overrides: [try PipelineOverride(argument: "train.openai.model=o1")])
        #expect(set.warnings.contains { $0.file.hasPrefix("--set train.openai.model=o1") && $0.path == "train.openai.model" }, "\(set.warnings)")
        let pinned = try PipelineSpec.parse(yaml: yaml, file: "p.yaml", overrides: [try PipelineOverride(argument: "train.openai.model=o1-2024-12-17")])
        #expect(pinned.warnings.map(\.path) == ["eval.reference[0].model"], "\(pinned.warnings)")

        func problems(_ y: String) -> String {
            do { _ = try PipelineSpec.parse(yaml: y, file: "p.yaml"); return "ok" } catch { return "\(error)" }
        }
        let bad = problems("""
            name: w
            base: tiny.gguf
            prepare: {train: data.jsonl}
            eval: {metrics: [exact_match]}
            drift: {max_drop: -1, metric: perplexity, max_dorp: 2}
            """)
        #expect(bad.contains("drift.max_drop"), "\(bad)")
        #expect(bad.contains("drift.metric: metric \"perplexity\" is not computed by eval.metrics"), "\(bad)")
        #expect(bad.contains("drift.max_dorp: unknown field"), "\(bad)")
        #expect(problems("name: w\nbase: tiny.gguf\nprepare: {train: d.jsonl}\ndrift: {max_drop: 0.1}\n").contains("drift: drift compares eval metrics"))
        let cron = problems("name: w\nbase: tiny@latest\nprepare: {train: d.jsonl}\neval: {metrics: [loss]}\nschedule: {recheck: \"61 6 * * 1\"}\n")
        #expect(cron.contains("schedule.recheck: cron \"61 6 * * 1\""), "\(cron)")
        #expect(problems("name: w\nbase: tiny@latest\nprepare: {train: d.jsonl}\neval: {metrics: [loss]}\nschedule: {recheck: \"0 6 * * 1\"}\nregister: {aliases: [production]}\n") == "ok",
                "a recheck-only schedule moves nothing, so the pipeline may set production itself")
    }
}
