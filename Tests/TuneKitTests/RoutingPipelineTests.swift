// RoutingPipelineTests — `tune run` (PipelineRunner) with `eval.routing`: prepare → train (2 QLoRA
// steps on the tiny model) → eval against a scripted loopback reference; the eval stage registers
// `PIPELINE-router` (kind `router`) linked to its eval report and to the adapter, with τ and both
// halves' figures in its metadata and router.json, and the API key nowhere in them. A v5 registry (its
// kind CHECK without `router`) gains the kind by migration v6, rows and ids intact.
import Engine
import Foundation
import LoopbackHTTP
import Testing
@testable import TuneKit

@Suite struct RoutingPipelineTests {
    @Test func evalRegistersARouterWithLineage() throws {
        let key = "sk-router-SECRET-9f"
        let p = try FakeProvider(lifetime: 300)
        p.requiredKey = key
        // Right on even docs, wrong on odd ones; usage 40 + i prompt, 2 completion tokens.
        p.chat = { _, messages in
            let i = Int((messages.last { $0["role"] == "user" }?["content"] ?? "").filter(\.isNumber)) ?? 1
            return (i % 2 == 0 ? "c\(i % 3)" : "nope", 40 + i, 2)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-routing-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
        func rows(_ r: Range<Int>) -> String { r.map { #"{"prompt": "doc \#($0)", "completion": "c\#($0 % 3)"}"# }.joined(separator: "\n") + "\n" }
        try rows(100..<116).write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
        try rows(0..<6).write(to: dir.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
        let yaml = """
            name: tiny-route
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            prepare: {train: data.jsonl, eval: eval.jsonl}
            train:
              method: qlora
              lora: {rank: 4, alpha: 8, dropout: 0.0}
              max_steps: 2
              batch_size: 4
              lr: 0.01
              seq_len: 128
            eval:
              metrics: [exact_match]
              max_new_tokens: 3
              reference:
                - {name: closed, model: gpt-x, base_url: "\(p.url)", api_key_env: ROUTE_KEY, input_per_million: 10, output_per_million: 40}
              costs: {hardware_per_hour: 2}
              routing: {reference: closed, max_escalation: 0.5}
            """
        let path = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        opts.environment = ["ROUTE_KEY": key]
        let summary = try PipelineRunner(spec: try PipelineSpec.load(path: path), options: opts).run()
        let eval = try #require(summary.stages.first { $0.stage == .eval })
        #expect(eval.outputs == ["tiny-route-eval@1", "tiny-route-router@1"], "\(eval.outputs)")

        let reg = try Registry.open(path: dir.appendingPathComponent("reg.sqlite").path, blobRoot: opts.blobRoot)
        let router = try reg.resolve("tiny-route-router@1")
        #expect(router.kind == .router)
        let m = router.metadata
        #expect(m["reference"] == .string("closed") && m["reference_model"] == .string("gpt-x") && m["reference_base_url"] == .string(p.url + "/v1"))
        #expect(m["local"] == .string("adapter") && m["local_ref"] == .string("tiny-route-adapter@1") && m["confidence"] == .string("mean_token_logprob"))
        #expect(m["rule"] == .string("max_escalation 0.5") && m["met"] == .bool(true) && m["eval_report"] == .string("tiny-route-eval@1"))
        #expect(m["chosen_on_examples"] == .number(3) && m["reported_on_examples"] == .number(3))
        let inputs = try reg.inputs(of: router.id).map { ($0.artifact.ref, $0.role) }
        #expect(Set(inputs.map { "\($0.0) \($0.1)" }) == ["tiny-route-eval@1 measured_by", "tiny-route-adapter@1 local"], "\(inputs)")
        // The reference is a managed-model artifact the report depends on (not its base): exposure by that
        // model finds the report and the router that escalates to it.
        let evalReport = try reg.resolve("tiny-route-eval@1")
        #expect(try reg.inputs(of: evalReport.id).contains { $0.artifact.kind == .managedModel && $0.artifact.name == "gpt-x" && $0.role == "reference" })
        #expect(evalReport.governance.baseFamily != nil && evalReport.governance.baseFamily != "gpt-x")
        let exposed = Set(try reg.exposure(.managedModel("gpt-x")).artifacts.map(\.ref))
        #expect(exposed.isSuperset(of: ["tiny-route-eval@1", "tiny-route-router@1"]), "\(exposed)")

        // router.json agrees with the eval report's routing section; the key is in neither.
        let file = try #require(reg.path(of: router))
        let spec = try JSONDecoder().decode(RouterSpec.self, from: Data(contentsOf: URL(fileURLWithPath: file)))
        let reportDir = try #require(reg.path(of: try reg.resolve("tiny-route-eval@1")))
        let report = try JSONDecoder().decode(EvalReport.self, from: Data(contentsOf: URL(fileURLWithPath: reportDir + "/report.json")))
        let routing = try #require(report.routing)
        #expect(spec.chosenOn == routing.chosenOn && spec.reportedOn == routing.reportedOn && spec.tau == routing.tau && spec.apiKeyEnv == "ROUTE_KEY")
        if let tau = spec.tau { #expect(m["tau"] == .number(tau)) } else { #expect(m["tau"] == nil) }
        #expect(routing.reportedOn.escalationRate <= 1 && routing.curve.count >= 2)
        for blob in [file, reportDir + "/report.json", reportDir + "/report.html"] {
            #expect(!(try String(contentsOfFile: blob, encoding: .utf8)).contains(key), "\(blob)")
        }
        #expect(!"\(m)".contains(key))
    }

    /// A managed adapter has no log-probabilities: the eval stage refuses routing before evaluating (or paying for) anything.
    @Test func aManagedAdapterCannotBeRoutedAndNothingIsEvaluated() throws {
        let key = "sk-router-managed-SECRET"
        let p = try FakeProvider(lifetime: 300)
        p.requiredKey = key
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-routing-managed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
        let rows = (0..<20).map { #"{"prompt": "doc \#($0)", "completion": "c\#($0 % 3)"}"# }.joined(separator: "\n") + "\n"
        try rows.write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
        let yaml = """
            name: tiny-managed-route
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            prepare: {train: data.jsonl, split: {eval_fraction: 0.25}}
            train:
              backend: openai
              openai: {base_url: "\(p.url)", api_key_env: ROUTE_KEY, model: gpt-4o-mini, hyperparameters: {n_epochs: 1}, poll_interval: 0.05}
            eval:
              metrics: [exact_match]
              reference: [{name: closed, model: gpt-x, base_url: "\(p.url)", api_key_env: ROUTE_KEY}]
              routing: {reference: closed, target_accuracy: 0.9}
            """
        let path = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        opts.environment = ["ROUTE_KEY": key]
        let err = #expect(throws: TuneError.self) { try PipelineRunner(spec: try PipelineSpec.load(path: path), options: opts).run() }
        #expect(err?.message.contains("eval.routing needs the tuned model's confidence") == true, "\(String(describing: err))")
        #expect(p.chatModels.isEmpty, "nothing was evaluated through the API: \(p.chatModels)")
    }

    @Test(arguments: RegistryBackend.allCases) func version5RegistryGainsTheRouterKind(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let v5Kinds = "'dataset', 'adapter', 'merged-model', 'eval-report', 'base-model', 'managed-model'"
        try t.registry.database.write { c in
            if RegistryLocation.isPostgres(t.registry.path) {
                try c.execute("ALTER TABLE artifacts DROP CONSTRAINT artifacts_kind_check", [])
                try c.execute("ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN (\(v5Kinds)))", [])
                try c.execute("UPDATE tune_schema SET version = 5", [])
            } else {
                try c.execute("DROP TABLE artifacts", [])
                try c.execute("""
                    CREATE TABLE artifacts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN (\(v5Kinds))), name TEXT NOT NULL,
                        version INTEGER NOT NULL CHECK (version >= 1), sha256 TEXT NOT NULL CHECK (length(sha256) = 64), size INTEGER NOT NULL,
                        layout TEXT NOT NULL CHECK (layout IN ('file', 'directory', 'reference')), uri TEXT NOT NULL,
                        metadata TEXT NOT NULL DEFAULT '{}', base_family TEXT, base_version TEXT, license TEXT, dataset_source TEXT,
                        data_terms TEXT, created_by TEXT NOT NULL, created_with TEXT NOT NULL, run_id INTEGER REFERENCES runs(id),
                        created_at TEXT NOT NULL, UNIQUE (name, version))
                    """, [])
                try c.execute("PRAGMA user_version = 5", [])
            }
        }
        let v5 = t.registry   // migrated when it opened; it now writes into the v5 table
        let adapter = try t.add(.adapter, "a", "lora")
        let report = try t.add(.evalReport, "a-eval", "report", inputs: [adapter.id: "evaluated"])
        #expect(throws: (any Error).self, "v5 refuses the router kind") {
            try v5.register(NewArtifact(kind: .router, name: "r", source: try t.file("{}")), inputs: [report.id: "measured_by"])
        }
        let migrated = try t.reopen()
        #expect(try schemaVersion(migrated) == 7)
        #expect(try migrated.lineage(of: report.id).ancestors.map(\.id) == [adapter.id], "rows, ids and edges survive the rebuild")
        let router = try migrated.register(NewArtifact(kind: .router, name: "r", source: try t.file("{}")),
                                           inputs: [report.id: "measured_by", adapter.id: "local"])
        let roles = Set(try migrated.inputs(of: router.id).map(\.role))
        #expect(router.kind == .router && roles == ["measured_by", "local"])
        #expect(try schemaVersion(try t.reopen()) == 7)
    }
}
