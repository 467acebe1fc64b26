// ScheduleBaseTests — `tune base add` policy: a wrong expected hash, an unreadable model, an
// architecture tune cannot train, a remote URL, and a base a scheduled pipeline cannot train on are
// refused with a clear error, and nothing is registered or enqueued. Also the spec's base reference
// forms and schedule: diagnostics.
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct ScheduleBaseTests {
    /// Registers v1 and a schedule, runs `body` (which must be refused), then checks nothing changed.
    private func expectRefused(_ backend: RegistryBackend, _ needle: String, kind: TuneError.Kind,
                               _ body: (ScheduleFixture) throws -> Void) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        try f.base("tiny", "1", seed: 1)
        try f.registry.addSchedule(path: try f.pipeline("a", rank: 32))
        _ = try Scheduler.tick(registry: f.registry)
        let e = tuneError { try body(f) }
        #expect(e?.kind == kind, "\(String(describing: e))")
        #expect(e?.message.contains(needle) == true, "\(e?.message ?? "no error")")
        #expect(try f.registry.bases().map(\.version) == ["1"], "nothing registered")
        #expect(try Scheduler.tick(registry: f.registry).enqueued.isEmpty, "nothing enqueued")
    }

    @Test(arguments: RegistryBackend.allCases) func wrongHashIsRefused(_ backend: RegistryBackend) throws {
        try expectRefused(backend, "expected 00000", kind: .integrity) { f in
            _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: try f.model("v2.gguf", seed: 2), license: "mit",
                                          sha256: String(repeating: "0", count: 64)), to: f.registry)
        }
    }

    @Test(arguments: RegistryBackend.allCases) func unreadableModelIsRefused(_ backend: RegistryBackend) throws {
        try expectRefused(backend, "not a model tune can read", kind: .badData) { f in
            let p = f.dir.appendingPathComponent("junk.gguf").path
            try Data("this is not a gguf file at all".utf8).write(to: URL(fileURLWithPath: p))
            _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: p, license: "mit"), to: f.registry)
        }
        try expectRefused(backend, "no such model file", kind: .fileAccess) { f in
            _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: f.dir.appendingPathComponent("missing.gguf").path, license: "mit"), to: f.registry)
        }
    }

    @Test(arguments: RegistryBackend.allCases) func untrainableArchitectureIsRefused(_ backend: RegistryBackend) throws {
        try expectRefused(backend, "architecture 'mamba' cannot be trained", kind: .invalidArgument) { f in
            var w = GGUFWriter()
            w.set("general.architecture", .string("mamba"))
            try w.addTensor(name: "token_embd.weight", shape: [4, 4], values: [Float](repeating: 0.5, count: 16))
            let p = f.dir.appendingPathComponent("mamba.gguf").path
            try w.write(to: p)
            _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: p, license: "mit"), to: f.registry)
        }
    }

    @Test(arguments: RegistryBackend.allCases) func baseAScheduledPipelineCannotTrainOnIsRefused(_ backend: RegistryBackend) throws {
        // Pipeline `a` uses LoRA rank 32; with one KV head, k_proj/v_proj have only 16 outputs.
        try expectRefused(backend, "incompatible with scheduled pipelines: a: ", kind: .invalidArgument) { f in
            var narrow = LlamaConfig.tiny
            narrow.numKVHeads = 1
            _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: try f.model("narrow.gguf", seed: 2, config: narrow), license: "mit"),
                                    to: f.registry)
        }
    }

    @Test(arguments: RegistryBackend.allCases) func remoteURLIsNotFetched(_ backend: RegistryBackend) throws {
        try expectRefused(backend, "no network fetch", kind: .invalidArgument) { f in
            _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: "https://user:secret@example.com/m.gguf?token=x", license: "mit"), to: f.registry)
        }
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let e = tuneError { _ = try BaseCatalog.add(.init(family: "t", version: "1", model: "https://user:secret@example.com/m.gguf?token=x", license: "mit"), to: f.registry) }
        #expect(e?.message.contains("secret") == false && e?.message.contains("token") == false, "\(e?.message ?? "")")
    }

    @Test(arguments: RegistryBackend.allCases) func fileURLAndExpectedHashAreAccepted(_ backend: RegistryBackend) throws {
        let f = try ScheduleFixture(backend)
        defer { try? FileManager.default.removeItem(at: f.dir) }
        let p = try f.model("v1.gguf", seed: 1)
        let sha = try SHA256.hashFile(p)
        let added = try BaseCatalog.add(.init(family: "tiny", version: "1", model: "file://" + p, license: "apache-2.0", notes: "first", sha256: sha),
                                        to: f.registry)
        #expect(added.base.sha256 == sha && added.base.path == p && added.base.hiddenSize == 64 && added.previous == nil)
        let v2 = try BaseCatalog.add(.init(family: "tiny", version: "2", model: try f.model("v2.gguf", seed: 2), license: "apache-2.0"), to: f.registry)
        #expect(v2.previous == "1" && v2.sameShape == true)
        #expect(try f.registry.base(family: "tiny", version: nil).version == "2")
        #expect(tuneError { _ = try BaseCatalog.add(.init(family: "tiny", version: "2", model: p, license: "x"), to: f.registry) }?.kind == .conflict)
    }

    @Test func specBaseReferencesAndScheduleDiagnostics() throws {
        let ok = try PipelineSpec.parse(yaml: """
            name: p
            base: tiny@latest
            prepare: {train: d.jsonl}
            eval: {metrics: [loss]}
            schedule: {on_base_upgrade: true, cron: "0 3 * * 1", timezone: Europe/Berlin}
            notify: {command: "cat > out.json", webhook: "http://127.0.0.1:9/hook"}
            """, file: "p.yaml")
        #expect(ok.baseReference == BaseReference("tiny@latest") && ok.baseReference?.version == nil)
        #expect(ok.schedule?.cron == "0 3 * * 1" && ok.notify?.webhook != nil)
        #expect(BaseReference("../models/x.gguf") == nil && BaseReference("tiny@2")?.version == "2")
        do {
            _ = try PipelineSpec.parse(yaml: """
                name: p
                base: tiny@2
                prepare: {train: d.jsonl}
                eval: {metrics: [loss]}
                schedule: {on_base_upgrade: true, cron: "61 3 * * 1"}
                notify: {webhook: "ftp://x"}
                """, file: "p.yaml")
            Issue.record("expected diagnostics")
        } catch let e as ConfigError {
            let text = e.description
            #expect(text.contains("p.yaml:5:") && text.contains("schedule.cron: cron \"61 3 * * 1\": minute field"), "\(text)")
            #expect(text.contains("schedule.on_base_upgrade: base tiny@2 is pinned"), "\(text)")
            #expect(text.contains("notify.webhook: expected an http:// or https:// URL"), "\(text)")
        }
    }
}
