// RegistryBackfillTests — an upgraded registry links its past runs' outputs to base-model / managed-model
// artifacts ([5/7]: "migrates in place, backfilling base artifacts for past runs where the file is still
// present"), on SQLite and PostgreSQL; eval references become managed-model parents of the eval report.

import Engine
import Foundation
import Testing
@testable import TuneKit

@Suite struct RegistryBackfillTests {
    /// Past runs as a registry from before schema v5 holds them: runs with their pipeline, stage runs and
    /// outputs, and no model artifacts in the lineage.
    struct PastRuns {
        var dataset, adapter, merged, report, goneAdapter, managedAdapter, laterBase: Artifact
        var baseSHA: String
    }

    func makePastRuns(_ t: TempRegistry) throws -> PastRuns {
        let r = t.registry
        let models = t.dir.appendingPathComponent("pipe/models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        let basePath = models.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: basePath, config: .tiny, seed: 1, weightType: .q8_0)
        let pipeDir = t.dir.appendingPathComponent("pipe").path
        func run(_ base: String) throws -> RunID {
            try r.startRun(pipeline: "docs", config: .object(["name": .string("docs"), "base": .string(base), "baseDirectory": .string(pipeDir)]))
        }
        func stage(_ run: RunID, _ name: String, _ out: Artifact) throws {
            _ = try r.recordStageRun(runID: run, stage: name, cacheKey: "\(name)-\(out.id)", status: .succeeded, outputs: [out.id])
        }
        // A run on models/tiny.gguf (a path relative to the pipeline, as `base:` is written).
        let r1 = try run("models/tiny.gguf")
        let dataset = try r.register(NewArtifact(kind: .dataset, name: "docs-data", source: try t.file("rows"),
                                                 governance: Governance(baseFamily: "tiny.gguf", dataTerms: "CC-BY-4.0")), run: r1)
        try stage(r1, "prepare", dataset)
        let adapter = try r.register(NewArtifact(kind: .adapter, name: "docs-adapter", source: try t.file("lora"), metadata: ["base_model": .string("tiny.gguf")],
                                                 governance: Governance(baseFamily: "tiny.gguf")), inputs: [dataset.id: "input"], run: r1)
        try stage(r1, "train", adapter)
        let merged = try r.register(NewArtifact(kind: .mergedModel, name: "docs-model", source: try t.file("merged"), metadata: ["base_model": .string("tiny.gguf")]),
                                    inputs: [adapter.id: "input"], run: r1)
        try stage(r1, "merge", merged)
        let report = try r.register(NewArtifact(kind: .evalReport, name: "docs-eval", source: try t.file("report")), inputs: [merged.id: "evaluated"], run: r1)
        try stage(r1, "eval", report)
        _ = try r.setAlias("staging", to: merged.id)
        // A run whose base file has since been deleted.
        let r2 = try run("models/old.gguf")
        let goneAdapter = try r.register(NewArtifact(kind: .adapter, name: "old-adapter", source: try t.file("old lora"), metadata: ["base_model": .string("old.gguf")]), run: r2)
        try stage(r2, "train", goneAdapter)
        // A managed run: the adapter names the provider's model.
        let r3 = try run("models/tiny.gguf")
        let managedAdapter = try r.register(NewArtifact(kind: .adapter, name: "docs-managed", source: try t.file("ft record"), metadata: [
            "backend": .string("openai"), "model": .string("gpt-4o-mini-2024-07-18"), "base_url": .string("http://127.0.0.1:9/v1"),
        ]), run: r3)
        try stage(r3, "train", managedAdapter)
        // A run made after v5 already links its base: left alone.
        let r4 = try run("models/tiny.gguf")
        let laterBase = try r.registerReference(kind: .baseModel, name: "other-base", path: "/nowhere", sha256: String(repeating: "c", count: 64),
                                                size: 1, metadata: [:], governance: Governance())
        let laterAdapter = try r.register(NewArtifact(kind: .adapter, name: "later-adapter", source: try t.file("later")), inputs: [laterBase.id: "base"], run: r4)
        try stage(r4, "train", laterAdapter)
        return PastRuns(dataset: dataset, adapter: adapter, merged: merged, report: report, goneAdapter: goneAdapter,
                        managedAdapter: managedAdapter, laterBase: laterBase, baseSHA: try SHA256.hashFile(basePath))
    }

    @Test(arguments: RegistryBackend.allCases) func upgradeLinksPastRunsToTheirBaseWhereTheFileIsStillThere(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let past = try makePastRuns(t)
        // Before the upgrade (the fresh registry's backfill ran when it had no runs), exposure cannot see them.
        #expect(try t.registry.exposure(.base(String(past.baseSHA.prefix(12)))).artifacts.isEmpty)
        #expect(try t.registry.backfill()?.linked == [])

        try rewindSchema(t.registry, to: 6, dropping: ["backfills"])
        let upgraded = try t.reopen()
        #expect(try schemaVersion(upgraded) == 7)
        let done = try #require(try upgraded.backfill())

        // exposure --base by sha256: the base, the dataset, adapter, merged model, eval report and the staging alias.
        let e = try upgraded.exposure(.base(String(past.baseSHA.prefix(12))))
        let refs = Set(e.artifacts.map(\.ref))
        let base = try #require(e.artifacts.first { $0.kind == .baseModel })
        #expect(base.sha256 == past.baseSHA && base.matched)
        #expect(refs == [base.ref, past.dataset.ref, past.adapter.ref, past.merged.ref, past.report.ref])
        #expect(e.aliases.map { "\($0.name)@\($0.alias)" } == ["docs-model@staging"])
        // The base was read from its own metadata and is recorded by reference, not copied.
        let baseArtifact = try upgraded.artifact(base.id)
        #expect(baseArtifact.layout == .reference && baseArtifact.governance.baseVersion == "sha256-\(past.baseSHA.prefix(12))")
        #expect(try upgraded.inputs(of: past.dataset.id).contains { $0.artifact.id == base.id && $0.role == "tokenizer" })
        #expect(try upgraded.inputs(of: past.adapter.id).contains { $0.artifact.id == base.id && $0.role == "base" })
        // The v2 exposure index follows the new edges down to the report.
        let indexed = try upgraded.exposure(base: BaseRef(family: try #require(baseArtifact.governance.baseFamily),
                                                          version: try #require(baseArtifact.governance.baseVersion)),
                                            kinds: [.dataset, .adapter, .mergedModel, .evalReport])
        #expect(Set(indexed.artifacts.map(\.id)) == [past.dataset.id, past.adapter.id, past.merged.id, past.report.id])

        // The managed run: its adapter is found by the managed model.
        let managed = try upgraded.exposure(.managedModel("gpt-4o-mini"))
        #expect(Set(managed.artifacts.map(\.ref)).contains(past.managedAdapter.ref))
        #expect(managed.artifacts.contains { $0.kind == .managedModel && $0.name == "gpt-4o-mini-2024-07-18" })

        // What could not be known is left alone and said.
        #expect(try upgraded.inputs(of: past.goneAdapter.id).isEmpty)
        #expect(done.skipped.count == 1 && done.skipped[0].hasPrefix("old-adapter@1: base ") && done.skipped[0].hasSuffix("is gone"))
        #expect(done.linked.count == 4, "dataset, adapter, merged model, managed adapter: \(done.linked)")

        // Once only: opening again links nothing more, and a deleted record is not re-run by a plain open.
        let edges = try upgraded.database.read { c in try c.scalar(Int.self, "SELECT count(*) FROM lineage") }
        let again = try t.reopen()
        #expect(try again.database.read { c in try c.scalar(Int.self, "SELECT count(*) FROM lineage") } == edges)
        #expect(try again.backfill() == done)
    }

    @Test func aChangedRegisteredBaseIsNotLinked() throws {
        let t = try TempRegistry(.sqlite)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let file = try t.file("weights v1", name: "base.bin")
        let sha = try SHA256.hashFile(file.path)
        // A registry with base fam@1 (this file) and one past train run on it, its output `name`.
        func pastRunOnRegisteredBase(_ t: TempRegistry, output name: String) throws -> Artifact {
            try t.registry.write { db in
                _ = try t.registry.insertBase(db, BaseModel(family: "fam", version: "1", seq: 0, path: file.path, sha256: sha, size: 10,
                                                             format: "gguf", architecture: "llama", hiddenSize: 8, numLayers: 1, vocabSize: 32,
                                                             license: "apache-2.0", notes: nil, createdBy: "t", createdAt: ""))
            }
            let run = try t.registry.startRun(pipeline: "p", config: .object(["base": .string("fam@1"), "baseDirectory": .string(t.dir.path)]))
            let out = try t.registry.register(NewArtifact(kind: .adapter, name: name, source: try t.file("a"),
                                                          governance: Governance(baseFamily: "fam", baseVersion: "1")), run: run)
            _ = try t.registry.recordStageRun(runID: run, stage: "train", cacheKey: "k1", status: .succeeded, outputs: [out.id])
            return out
        }
        let ok = try pastRunOnRegisteredBase(t, output: "ok")
        try rewindSchema(t.registry, to: 6, dropping: ["backfills"])
        // Linked while the file still has its registered sha256; the registered license comes along.
        let upgraded = try t.reopen()
        let parent = try #require(try upgraded.inputs(of: ok.id).first)
        #expect(parent.role == "base" && parent.artifact.kind == .baseModel && parent.artifact.governance.license == "apache-2.0")
        #expect(parent.artifact.governance.baseFamily == "fam" && parent.artifact.governance.baseVersion == "1")

        // The same registry again, with the file changed since: refused with the reason.
        let t2 = try TempRegistry(.sqlite)
        defer { try? FileManager.default.removeItem(at: t2.dir) }
        let changed = try pastRunOnRegisteredBase(t2, output: "changed")
        try Data("weights v2".utf8).write(to: file)
        try rewindSchema(t2.registry, to: 6, dropping: ["backfills"])
        let upgraded2 = try t2.reopen()
        #expect(try upgraded2.inputs(of: changed.id).isEmpty)
        #expect(try upgraded2.backfill()?.skipped == ["changed@1: base fam@1: \(file.path) changed since it was registered"])
    }
}
