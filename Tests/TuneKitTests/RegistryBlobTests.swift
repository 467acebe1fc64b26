// RegistryBlobTests — directory blobs, verify catching tampering, gc, export, crash leftovers.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct RegistryBlobTests {
    @Test(arguments: RegistryBackend.allCases) func directoryBlobIsHashedByManifest(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let files = ["adapter_config.json": #"{"r": 8}"#, "adapter_model.safetensors": "weights", "sub/readme.md": "hi"]
        let a = try t.registry.register(NewArtifact(kind: .adapter, name: "peft", source: t.directory(files)))
        #expect(a.layout == .directory && a.size == Int64(files.values.map(\.utf8.count).reduce(0, +)))
        // Same files elsewhere → same address; one changed byte → different address.
        #expect(try t.registry.blobs.ingest(t.directory(files)).sha256 == a.sha256)
        var changed = files
        changed["sub/readme.md"] = "ho"
        #expect(try t.registry.blobs.ingest(t.directory(changed)).sha256 != a.sha256)
        let stored = try #require(t.registry.path(of: a))
        #expect(try String(contentsOfFile: stored + "/sub/readme.md", encoding: .utf8) == "hi")
        #expect(try t.registry.verify().map(\.status) == [.ok])
    }

    @Test(arguments: RegistryBackend.allCases) func verifyDetectsTamperedAndMissingBlobs(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let a = try t.add(.dataset, "a", "original")
        let d = try t.registry.register(NewArtifact(kind: .adapter, name: "d", source: t.directory(["w.bin": "w"])))
        let c = try t.add(.dataset, "c", "gone")
        #expect(try t.registry.verify().allSatisfy { $0.status == .ok })

        let pa = try #require(t.registry.path(of: a))
        chmod(pa, 0o644)
        try Data("tampered".utf8).write(to: URL(fileURLWithPath: pa))
        let pd = try #require(t.registry.path(of: d))
        chmod(pd + "/w.bin", 0o644)
        try Data("x".utf8).write(to: URL(fileURLWithPath: pd + "/w.bin"))
        try FileManager.default.removeItem(atPath: try #require(t.registry.path(of: c)))

        let r = try t.registry.verify()
        #expect(r.map(\.artifact) == ["a@1", "c@1", "d@1"])
        #expect(r.map(\.status) == [.mismatch, .missing, .mismatch])
        #expect(r[0].actual == SHA256.hex(Data("tampered".utf8)))
        // Export refuses damaged content.
        #expect(tuneError { try t.registry.export(a, to: t.dir.appendingPathComponent("out")) }?.kind == .integrity)
        #expect(!FileManager.default.fileExists(atPath: t.dir.appendingPathComponent("out").path))
    }

    @Test(arguments: RegistryBackend.allCases) func gcRemovesOnlyUnreferencedBlobs(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let kept = try t.add(.dataset, "kept", "kept")
        let orphan = try t.registry.blobs.ingest(t.file("orphan"))
        let orphanDir = try t.registry.blobs.ingest(t.directory(["f": "orphan dir"]))
        let dry = try t.registry.gc(dryRun: true)
        #expect(dry.dryRun && Set(dry.blobs.map(\.sha256)) == [orphan.sha256, orphanDir.sha256])
        #expect(t.registry.blobs.contains(orphan))
        let done = try t.registry.gc()
        #expect(done.blobs.count == 2 && done.bytes == orphan.size + orphanDir.size)
        #expect(!t.registry.blobs.contains(orphan) && !t.registry.blobs.contains(orphanDir))
        #expect(t.registry.blobs.contains(t.registry.blob(of: kept)))
        #expect(try t.registry.gc().blobs.isEmpty)
        #expect(try t.registry.verify().map(\.status) == [.ok])
    }

    @Test(arguments: RegistryBackend.allCases) func gcRemovesOnlyStaleTemporaries(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        _ = try t.add(.dataset, "x", "x")
        let tmp = t.dir.appendingPathComponent("adapters/tmp")
        try Data("partial".utf8).write(to: tmp.appendingPathComponent("old"))
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -7200)],
                                              ofItemAtPath: tmp.appendingPathComponent("old").path)
        try Data("in flight".utf8).write(to: tmp.appendingPathComponent("new"))
        let r = try t.registry.gc()
        #expect(r.temporaries == ["tmp/old"])
        #expect(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("new").path))
    }

    @Test(arguments: RegistryBackend.allCases) func exportCopiesVerifiedContent(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let f = try t.add(.dataset, "f", "file body")
        let d = try t.registry.register(NewArtifact(kind: .adapter, name: "d", source: t.directory(["a/b.txt": "B"])))
        let outF = t.dir.appendingPathComponent("export/f.jsonl"), outD = t.dir.appendingPathComponent("export/d")
        try t.registry.export(f, to: outF)
        try t.registry.export(d, to: outD)
        #expect(try String(contentsOf: outF, encoding: .utf8) == "file body")
        #expect(try String(contentsOf: outD.appendingPathComponent("a/b.txt"), encoding: .utf8) == "B")
        #expect(tuneError { try t.registry.export(f, to: outF) }?.kind == .conflict)
    }

    @Test(arguments: RegistryBackend.allCases) func missingSourceAndSymlinksAreRefused(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        let e = tuneError { _ = try t.registry.register(NewArtifact(kind: .dataset, name: "m", source: URL(fileURLWithPath: "/nonexistent/x"))) }
        #expect(e == TuneError(.notFound, "/nonexistent/x: no such file or directory"))
        let dir = try t.directory(["real": "r"])
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/link", withDestinationPath: dir.path + "/real")
        #expect(tuneError { _ = try t.registry.register(NewArtifact(kind: .adapter, name: "s", source: dir)) }?.kind == .invalidArgument)
        #expect(try t.registry.list().isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: t.dir.path + "/adapters/tmp").isEmpty)
    }

    @Test func inMemoryStoreWorksAsASeam() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-mem-\(UUID().uuidString)")
        let mem = InMemoryBlobStore()
        let reg = try Registry(path: dir.appendingPathComponent("r.sqlite").path, blobs: mem)
        let src = dir.appendingPathComponent("src")
        try Data("hello".utf8).write(to: src)
        let a = try reg.register(NewArtifact(kind: .dataset, name: "m", source: src))
        #expect(try reg.verify().map(\.status) == [.ok])
        mem.tamper(a.sha256, with: Data("evil".utf8))
        #expect(try reg.verify().map(\.status) == [.mismatch])
    }
}
