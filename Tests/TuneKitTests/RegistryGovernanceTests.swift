// RegistryGovernanceTests — schema v5 on both backends: base models registered by reference (found by
// sha256, not copied, verified where they are), registered versions sharing a blob, exposure for any
// question (recursive walk, chains, aliases), deprecations, the governance view, and the in-place
// migration of a v4 registry (whose CHECK constraints do not know `managed-model` / `reference`).
import Engine
import Foundation
import Testing
import TuneKit

/// base (reference) → dataset (data terms) → adapter → merged → registered version (alias production); an eval report of merged.
private func fillChain(_ t: TempRegistry) throws -> (base: Artifact, data: Artifact, adapter: Artifact, merged: Artifact, eval: Artifact, registered: Artifact) {
    let model = try t.file("pretend this is a 100 MB model", name: "model.gguf")
    let sha = SHA256.hex(try Data(contentsOf: model))
    let base = try t.registry.registerReference(kind: .baseModel, name: "Tiny-Base", path: model.path, sha256: sha, size: 30, metadata: [:],
                                                governance: Governance(baseFamily: "Tiny-Base", baseVersion: "1.0", license: "apache-2.0"))
    let data = try t.registry.register(NewArtifact(kind: .dataset, name: "docs-dataset", source: try t.file("rows"), metadata: [:],
                                                   governance: Governance(license: "CC-BY-4.0", datasetSource: "train.jsonl", dataTerms: "CC-BY-4.0 — research only")),
                                       inputs: [base.id: "tokenizer"])
    let adapter = try t.add(.adapter, "docs-adapter", "lora", license: "apache-2.0", inputs: [data.id: "input", base.id: "base"])
    let merged = try t.add(.mergedModel, "docs-merged", "merged", license: "apache-2.0", inputs: [adapter.id: "merged", base.id: "base"])
    let eval = try t.add(.evalReport, "docs-eval", "report", inputs: [merged.id: "evaluated", data.id: "dataset"])
    let registered = try t.registry.registerVersion(of: merged, as: "docs-model", metadata: ["notes": .string("v1")],
                                                    governance: merged.governance, run: nil)
    try t.registry.setAlias("production", to: registered.id)
    return (base, data, adapter, merged, eval, registered)
}

@Suite struct RegistryGovernanceTests {
    @Test(arguments: RegistryBackend.allCases) func baseByReferenceIsFoundBySHAAndVerifiedInPlace(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let c = try fillChain(t)
        #expect(c.base.layout == .reference && c.base.uri.hasPrefix("file:///"))
        #expect(try t.registry.blobs.storedBlobs().allSatisfy { $0.sha256 != c.base.sha256 }, "a referenced base is not copied")
        let again = try t.registry.registerReference(kind: .baseModel, name: "Other-Name", path: "/elsewhere/model.gguf", sha256: c.base.sha256,
                                                     size: 30, metadata: [:], governance: Governance())
        #expect(again.id == c.base.id, "the same content is the same base artifact")
        #expect(try t.registry.verify([c.base.id]).first?.status == .ok)
        #expect(try t.registry.resolve("sha256:\(c.base.sha256.prefix(10))").id == c.base.id)
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: t.registry.path(of: c.base)!))
        #expect(try t.registry.verify([c.base.id]).first?.status == .mismatch)
        // A registered version shares the merged model's blob and descends from it.
        #expect(c.registered.sha256 == c.merged.sha256 && c.registered.kind == .mergedModel)
        #expect(try t.registry.inputs(of: c.registered.id).map(\.role) == ["registered"])
        // Data terms travel to descendants that state none.
        #expect(c.eval.governance.dataTerms == "CC-BY-4.0 — research only" && c.registered.governance.dataTerms == "CC-BY-4.0 — research only")
        #expect(c.eval.governance.baseFamily == "Tiny-Base" && c.eval.governance.baseVersion == "1.0")
    }

    @Test(arguments: RegistryBackend.allCases) func exposureAnswersEveryQuestionWithChainsAndAliases(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let c = try fillChain(t)
        let unrelated = try t.add(.adapter, "other-adapter", "x", license: "mit")
        let all = Set([c.base, c.data, c.adapter, c.merged, c.eval, c.registered].map(\.ref))
        for q in [ExposureQuestion.base(String(c.base.sha256.prefix(8))), .base("Tiny-Base"), .base("Tiny-Base@1.0"), .base("1.0")] {
            let e = try t.registry.exposure(q)
            #expect(Set(e.artifacts.map(\.ref)) == all, "\(q)")
            #expect(e.aliases.map { "\($0.name)@\($0.alias)" } == ["docs-model@production"], "\(q)")
            let reg = try #require(e.artifacts.first { $0.id == c.registered.id })
            // The chain starts at a matched artifact (FAMILY@VERSION also matches the records naming that base).
            let start = try #require(e.artifacts.first { $0.ref == reg.chain.first })
            #expect(start.matched && reg.chain.last == "docs-model@1", "\(q): \(reg.chain)")
            if case .base(let b) = q, b.count == 8 {
                #expect(reg.chain == ["Tiny-Base@1", "docs-merged@1", "docs-model@1"], "shortest path from the base: \(reg.chain)")
            }
            #expect(reg.aliases == ["docs-model@production"])
        }
        let byData = try t.registry.exposure(.dataset("docs-dataset"))
        #expect(Set(byData.artifacts.map(\.ref)) == all.subtracting([c.base.ref]))
        #expect(try t.registry.exposure(.dataset("train.jsonl")).artifacts.count == byData.artifacts.count)
        #expect(try t.registry.exposure(.license("mit")).artifacts.map(\.ref) == [unrelated.ref])
        #expect(try t.registry.exposure(.license("cc-by-4.0")).artifacts.contains { $0.id == c.registered.id }, "license in the data terms")
        #expect(try t.registry.exposure(.base("nobody")).artifacts.isEmpty)

        #expect(try t.registry.exposure(.deprecated).artifacts.isEmpty)
        try t.registry.deprecate(c.adapter.id, reason: "trained on withdrawn data", effective: "2026-12-31")
        let d = try t.registry.exposure(.deprecated)
        #expect(Set(d.artifacts.map(\.ref)) == Set([c.adapter, c.merged, c.eval, c.registered].map(\.ref)))
        #expect(d.artifacts.filter { $0.deprecation != nil }.map(\.ref) == [c.adapter.ref])
        #expect(d.aliases.map(\.alias) == ["production"])
        #expect(try t.registry.deprecation(of: c.adapter.id)?.effective == "2026-12-31")
        #expect(try t.registry.deprecation(of: c.merged.id) == nil)
        // Deprecating again replaces the reason.
        try t.registry.deprecate(c.adapter.id, reason: "superseded")
        #expect(try t.registry.deprecation(of: c.adapter.id)?.reason == "superseded")
        #expect(tuneError { try t.registry.deprecate(c.adapter.id, reason: " ") }?.kind == .invalidArgument)

        let view = try t.registry.governanceView()
        let row = try #require(view.first { $0.artifact == c.registered.ref })
        #expect(row.deprecated && row.deprecatedBecause == ["docs-adapter@1: superseded"] && row.aliases == ["docs-model@production"])
        #expect(row.base == "Tiny-Base@1.0" && row.license == "apache-2.0" && row.dataTerms == "CC-BY-4.0 — research only")
        #expect(view.first { $0.artifact == c.base.ref }?.deprecated == false)
        let csv = GovernanceRow.csv(view)
        #expect(csv.contains("\"CC-BY-4.0 — research only\"") == false && csv.contains("docs-model@1,merged-model,docs-model,1,"))
        #expect(GovernanceRow.csv([row]).components(separatedBy: "\r\n")[1].contains(",docs-adapter@1: superseded"))
    }

    @Test(arguments: RegistryBackend.allCases) func version4RegistryMigratesInPlace(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        // A v4 registry: the artifacts table with v4's CHECK constraints (no managed-model, no reference layout), no deprecations.
        let v4Kinds = "'dataset', 'adapter', 'merged-model', 'eval-report', 'base-model'"
        try t.registry.database.write { c in
            try c.execute("DROP TABLE deprecations", [])
            if RegistryLocation.isPostgres(t.registry.path) {
                try c.execute("ALTER TABLE artifacts DROP CONSTRAINT artifacts_kind_check", [])
                try c.execute("ALTER TABLE artifacts ADD CONSTRAINT artifacts_kind_check CHECK (kind IN (\(v4Kinds)))", [])
                try c.execute("ALTER TABLE artifacts DROP CONSTRAINT artifacts_layout_check", [])
                try c.execute("ALTER TABLE artifacts ADD CONSTRAINT artifacts_layout_check CHECK (layout IN ('file', 'directory'))", [])
                try c.execute("UPDATE tune_schema SET version = 4", [])
            } else {
                try c.execute("DROP TABLE artifacts", [])
                try c.execute("""
                    CREATE TABLE artifacts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN (\(v4Kinds))), name TEXT NOT NULL,
                        version INTEGER NOT NULL CHECK (version >= 1), sha256 TEXT NOT NULL CHECK (length(sha256) = 64), size INTEGER NOT NULL,
                        layout TEXT NOT NULL CHECK (layout IN ('file', 'directory')), uri TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
                        base_family TEXT, base_version TEXT, license TEXT, dataset_source TEXT, data_terms TEXT, created_by TEXT NOT NULL,
                        created_with TEXT NOT NULL, run_id INTEGER REFERENCES runs(id), created_at TEXT NOT NULL, UNIQUE (name, version))
                    """, [])
                try c.execute("CREATE INDEX artifacts_sha256 ON artifacts(sha256)", [])
                try c.execute("PRAGMA user_version = 4", [])
            }
        }
        let v4 = t.registry   // this handle migrated when it opened; it now writes into the v4 tables
        let base = try t.add(.baseModel, "fam", "weights", base: BaseRef(family: "fam", version: "1"), license: "apache-2.0")
        let adapter = try t.add(.adapter, "a", "lora", inputs: [base.id: "base"])
        try v4.setAlias("production", to: adapter.id)
        #expect(tuneError { _ = try v4.registerReference(kind: .baseModel, name: "ref", path: "/m", sha256: String(repeating: "b", count: 64),
                                                        size: 1, metadata: [:], governance: Governance()) } != nil, "v4 refuses the reference layout")

        let migrated = try t.reopen()
        #expect(try schemaVersion(migrated) == 7)
        #expect(try migrated.lineage(of: adapter.id).ancestors.map(\.id) == [base.id], "rows, ids and edges survive the rebuild")
        #expect(try migrated.resolve("a@production").id == adapter.id)
        let m = try migrated.register(NewArtifact(kind: .managedModel, name: "gpt-4o-mini-2024-07-18", source: try t.file("{}")))
        #expect(m.kind == .managedModel)
        #expect(try migrated.register(NewArtifact(kind: .router, name: "r", source: try t.file("{}"))).kind == .router, "v6: the router kind")
        let ref = try migrated.registerReference(kind: .baseModel, name: "ref", path: "/m", sha256: String(repeating: "b", count: 64), size: 1,
                                                 metadata: [:], governance: Governance())
        #expect(ref.layout == .reference)
        try migrated.deprecate(base.id, reason: "gone")
        #expect(Set(try migrated.exposure(.deprecated).artifacts.map(\.id)) == [base.id, adapter.id])
        #expect(try migrated.exposure(base: BaseRef(family: "fam", version: "1")).artifacts.map(\.id) == [adapter.id], "v2 exposure index intact")
        // Opening again applies nothing.
        #expect(try schemaVersion(try t.reopen()) == 7)
    }

    @Test func managedModelIDsSplitIntoFamilyAndSnapshot() {
        #expect(ManagedModelID.split("gpt-4o-mini-2024-07-18") == ("gpt-4o-mini", "2024-07-18"))
        #expect(ManagedModelID.split("gpt-4-0613") == ("gpt-4", "0613"))
        #expect(ManagedModelID.split("gpt-4o-mini") == ("gpt-4o-mini", nil))
        #expect(ManagedModelID.artifactName("ft:gpt-4o-mini:org::abc") == "ft-gpt-4o-mini-org-abc")
    }
}
