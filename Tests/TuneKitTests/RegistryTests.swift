// RegistryTests — registering, versions, references, aliases with history, lineage, exposure, runs.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct RegistryTests {
    @Test(arguments: RegistryBackend.allCases) func versionsIncrementPerNameAndContentIsAddressed(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let a1 = try t.add(.dataset, "chat", "one")
        let a2 = try t.add(.dataset, "chat", "two")
        let b1 = try t.add(.dataset, "other", "one")
        #expect((a1.version, a2.version, b1.version) == (1, 2, 1))
        #expect(a1.sha256 == SHA256.hex(Data("one".utf8)))
        #expect(b1.sha256 == a1.sha256)  // same content, one blob
        #expect(a1.uri == "sha256/\(a1.sha256.prefix(2))/\(a1.sha256)")
        let path = try #require(t.registry.path(of: a1))
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "one")
        #expect(a1.size == 3 && a1.layout == .file)
    }

    @Test(arguments: RegistryBackend.allCases) func references(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let v1 = try t.add(.adapter, "lora", "v1")
        let v2 = try t.add(.adapter, "lora", "v2")
        #expect(try t.registry.resolve("lora").id == v2.id)
        #expect(try t.registry.resolve("lora@latest").id == v2.id)
        #expect(try t.registry.resolve("lora@1").id == v1.id)
        #expect(try t.registry.resolve("sha256:\(v1.sha256.prefix(10))").id == v1.id)
        try t.registry.setAlias("staging", to: v1.id)
        #expect(try t.registry.resolve("lora@staging").id == v1.id)

        #expect(tuneError { _ = try t.registry.resolve("lora@7") }
                == TuneError(.notFound, "no artifact 'lora@7' (latest version is 2)"))
        #expect(tuneError { _ = try t.registry.resolve("nope") } == TuneError(.notFound, "no artifact named 'nope'"))
        #expect(tuneError { _ = try t.registry.resolve("lora@production") }
                == TuneError(.notFound, "no alias 'production' on 'lora' (aliases: staging)"))
        #expect(tuneError { _ = try t.registry.resolve("sha256:00000000") }?.kind == .notFound)
        #expect(tuneError { _ = try t.registry.resolve("sha256:xyz") }?.kind == .invalidArgument)
        #expect(tuneError { _ = try t.registry.resolve("bad name") }?.kind == .invalidArgument)
        #expect(tuneError { _ = try t.registry.resolve("lora@0") }?.kind == .invalidArgument)
    }

    @Test(arguments: RegistryBackend.allCases) func ambiguousDigestPrefix(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let a = try t.add(.dataset, "a", "same")
        _ = try t.add(.dataset, "b", "same")
        let e = try #require(tuneError { _ = try t.registry.resolve("sha256:\(a.sha256.prefix(8))") })
        #expect(e.kind == .invalidArgument)
        #expect(e.message.contains("matches 2 artifacts (a@1, b@1)"))
    }

    @Test(arguments: RegistryBackend.allCases) func kindIsFixedPerName(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        try t.add(.dataset, "x", "1")
        let e = tuneError { try t.add(.adapter, "x", "2") }
        #expect(e == TuneError(.conflict, "'x' is registered as dataset; cannot add a version of kind adapter"))
    }

    @Test(arguments: RegistryBackend.allCases) func productionPromotionKeepsPreviousAndHistory(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let v1 = try t.add(.mergedModel, "m", "1"), v2 = try t.add(.mergedModel, "m", "2")
        let first = try t.registry.setAlias("production", to: v1.id, by: "alice")
        #expect(first.map(\.alias) == ["production"])
        let second = try t.registry.setAlias("production", to: v2.id, by: "bob")
        #expect(second.map(\.alias) == ["production", "previous"])
        #expect(second[0].fromVersion == 1 && second[0].toVersion == 2)
        #expect(try t.registry.resolve("m@previous").id == v1.id)
        #expect(try t.registry.setAlias("production", to: v2.id).isEmpty)  // no-op
        // Roll back.
        try t.registry.setAlias("production", to: t.registry.resolve("m@previous").id)
        #expect(try t.registry.resolve("m@production").version == 1)
        #expect(try t.registry.resolve("m@previous").version == 2)
        let h = try t.registry.aliasHistory(name: "m", alias: "production")
        #expect(h.map(\.toVersion) == [1, 2, 1])
        #expect(h.map(\.fromVersion) == [nil, 1, 2])
        #expect(h.map(\.changedBy).prefix(2) == ["alice", "bob"])
        #expect(try t.registry.aliases(name: "m").map(\.alias) == ["previous", "production"])
        #expect(tuneError { try t.registry.setAlias("latest", to: v1.id) }?.kind == .invalidArgument)
        #expect(tuneError { try t.registry.setAlias("7", to: v1.id) }?.kind == .invalidArgument)
    }

    @Test(arguments: RegistryBackend.allCases) func lineageAndInheritedBase(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let base = try t.add(.baseModel, "smol", "weights", license: "apache-2.0")
        #expect(base.governance.baseFamily == "smol" && base.governance.baseVersion == "1")
        let data = try t.add(.dataset, "chat", "rows")
        let lora = try t.add(.adapter, "lora", "A", inputs: [base.id: "base", data.id: "train-data"])
        #expect(lora.governance.baseFamily == "smol" && lora.governance.baseVersion == "1")
        let merged = try t.add(.mergedModel, "merged", "M", inputs: [lora.id: "adapter"])
        let report = try t.add(.evalReport, "report", "R", inputs: [merged.id: "model"])

        let l = try t.registry.lineage(of: lora.id)
        #expect(Set(l.ancestors.map(\.name)) == ["smol", "chat"])
        #expect(Set(l.descendants.map(\.name)) == ["merged", "report"])
        #expect(l.edges.contains(LineageEdge(parent: data.id, child: lora.id, role: "train-data")))
        #expect(l.edges.count == 4)
        let inputs = try t.registry.inputs(of: lora.id)
        #expect(inputs.map(\.role).sorted() == ["base", "train-data"])
        #expect(try t.registry.lineage(of: report.id).ancestors.count == 4)
        #expect(tuneError { try t.add(.adapter, "bad", "x", inputs: [ArtifactID(999): "base"]) }?.kind == .notFound)
    }

    @Test(arguments: RegistryBackend.allCases) func exposureFollowsRecordsAndLineage(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let smol1 = BaseRef(family: "SmolLM2", version: "1"), smol2 = BaseRef(family: "SmolLM2", version: "2")
        let a = try t.add(.adapter, "support-lora", "a", base: smol1, license: "apache-2.0")
        let b = try t.add(.adapter, "sql-lora", "b", base: smol2)
        let m = try t.add(.mergedModel, "support-merged", "m", inputs: [a.id: "adapter"])
        _ = try t.add(.evalReport, "support-eval", "e", inputs: [m.id: "model"])
        // A merge of adapters on two bases is exposed to both (lineage, not its own record).
        let mix = try t.add(.mergedModel, "mix", "x", inputs: [a.id: "adapter", b.id: "adapter"])
        #expect(mix.governance.baseFamily == nil)
        try t.registry.setAlias("production", to: m.id)
        try t.registry.setAlias("staging", to: b.id)

        let e = try t.registry.exposure(base: smol1)
        #expect(e.artifacts.map { "\($0.name)@\($0.version)" } == ["mix@1", "support-lora@1", "support-merged@1"])
        #expect(e.artifacts.first { $0.name == "support-lora" }?.direct == true)
        #expect(e.artifacts.first { $0.name == "mix" }?.direct == false)
        #expect(e.aliases.map { "\($0.name)@\($0.alias)" } == ["support-merged@production"])
        let e2 = try t.registry.exposure(base: smol2)
        #expect(e2.artifacts.map(\.name) == ["mix", "sql-lora"])
        #expect(e2.aliases.map(\.alias) == ["staging"])
        #expect(try t.registry.exposure(base: BaseRef(family: "Other", version: "1")).artifacts.isEmpty)
        #expect(try BaseRef(parsing: "org/model@2024-11") == BaseRef(family: "org/model", version: "2024-11"))
        #expect(tuneError { _ = try BaseRef(parsing: "nobase") }?.kind == .invalidArgument)
    }

    @Test(arguments: RegistryBackend.allCases) func runsAndStageCacheKeys(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let run = try t.registry.startRun(pipeline: "sample.yaml", config: .object(["seed": .number(7)]))
        let out = try t.registry.register(NewArtifact(kind: .dataset, name: "prep", source: t.file("p")), run: run)
        #expect(out.runID == run)
        #expect(try t.registry.findStageRun(cacheKey: "k1") == nil)
        try t.registry.recordStageRun(runID: run, stage: "prepare", cacheKey: "k1", status: .failed)
        #expect(try t.registry.findStageRun(cacheKey: "k1") == nil)
        try t.registry.recordStageRun(runID: run, stage: "prepare", cacheKey: "k1", status: .succeeded, outputs: [out.id],
                                      config: .object(["max_len": .number(512)]))
        let hit = try #require(try t.registry.findStageRun(cacheKey: "k1"))
        #expect(hit.outputs == [out.id] && hit.stage == "prepare" && hit.config == .object(["max_len": .number(512)]))
        try t.registry.finishRun(run, status: .succeeded)
        let r = try t.registry.run(run)
        #expect(r.status == .succeeded && r.finishedAt != nil && r.config == .object(["seed": .number(7)]))
        #expect(try t.registry.stageRuns(of: run).map(\.status) == [.failed, .succeeded])
        #expect(tuneError { try t.registry.recordStageRun(runID: RunID(42), stage: "x", cacheKey: "k", status: .running) }?.kind == .notFound)
    }

    @Test(arguments: RegistryBackend.allCases) func metadataAndGovernanceRoundTrip(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let gov = Governance(baseFamily: "smol", baseVersion: "2", license: "apache-2.0", datasetSource: "s3://bucket/chat",
                             dataTerms: "internal use only", createdBy: "ci-bot", createdWith: "tune test")
        let meta = try JSONValue.object(parsing: #"{"rank": 16, "targets": ["q", "v"], "note": null}"#, what: "--metadata")
        let a = try t.registry.register(NewArtifact(kind: .adapter, name: "g", source: t.file("g"), metadata: meta, governance: gov))
        let back = try t.registry.resolve("g@1")
        #expect(back == a)
        #expect(back.governance == gov && back.metadata["rank"] == .number(16))
        #expect(tuneError { _ = try JSONValue.object(parsing: "[1]", what: "--metadata") }?.kind == .invalidArgument)
        #expect(try t.registry.list(kind: .adapter).map(\.ref) == ["g@1"])
    }

    @Test(arguments: RegistryBackend.allCases) func reopenKeepsEverythingAndMigrationIsIdempotent(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        try t.add(.dataset, "d", "x")
        let again = try t.reopen()
        #expect(try again.resolve("d").version == 1)
    }
}
