// ArtifactsCLITests — `tune artifacts` end to end through the built binary: output contract, errors
// and exit codes, tamper detection, gc, crash consistency and two concurrent writer processes.
import Foundation
import Testing

/// A temp dir with registry flags for it.
private struct CLIRegistry {
    let dir: URL
    init() throws { dir = try makeTempDir() }
    var flags: [String] { ["--registry", dir.path + "/.tune/registry.sqlite", "--blobs", dir.path + "/adapters"] }

    func run(_ args: [String], env: [String: String] = [:]) throws -> RunResult {
        try tune(["artifacts"] + args + flags, env: env)
    }

    func file(_ name: String, _ text: String) throws -> String {
        let p = dir.path + "/" + name
        try Data(text.utf8).write(to: URL(fileURLWithPath: p))
        return p
    }
}

private func json(_ s: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(s.utf8)) }

@Suite struct ArtifactsCLITests {
    @Test func addShowPromoteExposureJSON() throws {
        let r = try CLIRegistry()
        let d = try r.run(["add", try r.file("d.jsonl", "rows"), "--name", "chat", "--kind", "dataset",
                           "--dataset-source", "s3://b/chat", "--data-terms", "internal", "--json"])
        #expect(d.status == 0, "\(d.stderr)")
        let a = try r.run(["add", try r.file("a.bin", "lora"), "--name", "chat-lora", "--kind", "adapter", "--base", "smol@1",
                           "--license", "apache-2.0", "--parent", "train-data=chat@1", "--metadata", #"{"rank":8}"#])
        #expect(a.status == 0 && a.stdout.hasPrefix("registered chat-lora@1 sha256:"), "\(a.stderr)")
        #expect(try r.run(["promote", "chat-lora@1", "--to", "production"]).stdout == "chat-lora@production: unset → v1\n")

        let show = try r.run(["show", "chat-lora@production", "--json"])
        #expect(show.status == 0)
        let o = try #require(try json(show.stdout) as? [String: Any])
        let art = try #require(o["artifact"] as? [String: Any])
        #expect(Set(art.keys) == ["created_at", "governance", "id", "kind", "layout", "metadata", "name", "sha256", "size",
                                  "uri", "version"])
        #expect(art["kind"] as? String == "adapter" && art["version"] as? Int == 1)
        #expect((art["governance"] as? [String: Any])?["base_family"] as? String == "smol")
        #expect((art["metadata"] as? [String: Any])?["rank"] as? Int == 8)
        #expect(o["aliases"] as? [String] == ["production"])
        #expect(((o["inputs"] as? [[String: Any]])?.first?["role"]) as? String == "train-data")
        #expect(show.stdout.hasPrefix(#"{"aliases":["production"],"artifact":{"created_at":"#))  // sorted keys

        let e = try r.run(["exposure", "smol@1", "--json"])
        let eo = try #require(try json(e.stdout) as? [String: Any])
        #expect((eo["artifacts"] as? [[String: Any]])?.map { $0["name"] as? String } == ["chat-lora"])
        #expect((eo["aliases"] as? [[String: Any]])?.first?["alias"] as? String == "production")

        let list = try r.run(["list", "--json"])
        #expect((try json(list.stdout) as? [[String: Any]])?.count == 2)
        let lineage = try r.run(["lineage", "chat-lora"])
        #expect(lineage.stdout.contains("chat@1 (dataset) --train-data--> chat-lora@1 (adapter)"))
        let path = try r.run(["path", "chat"])
        #expect(try String(contentsOfFile: path.stdout.trimmingCharacters(in: .newlines), encoding: .utf8) == "rows")
        let out = r.dir.path + "/exported.jsonl"
        #expect(try r.run(["export", "chat", "--out", out]).status == 0)
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "rows")
    }

    @Test func errorsAreOneLineWithExitCodes() throws {
        let r = try CLIRegistry()
        _ = try r.run(["add", try r.file("x", "x"), "--name", "foo", "--kind", "dataset"])
        let missing = try r.run(["show", "foo@7"])
        #expect(missing.status == 66)
        #expect(missing.stderr == "error: no artifact 'foo@7' (latest version is 1)\n")
        let badRef = try r.run(["show", "sha256:zz"])
        #expect(badRef.status == 65 && badRef.stderr.split(separator: "\n").count == 1)
        let badKind = try r.run(["add", try r.file("y", "y"), "--name", "foo", "--kind", "adapter"])
        #expect(badKind.status == 65)
        #expect(badKind.stderr == "error: 'foo' is registered as dataset; cannot add a version of kind adapter\n")
        let unknownKind = try r.run(["add", try r.file("z", "z"), "--name", "z", "--kind", "model"])
        #expect(unknownKind.status == 65 && unknownKind.stderr.hasPrefix("error: --kind 'model': expected one of dataset"))
        let noFile = try r.run(["add", r.dir.path + "/nope", "--name", "n", "--kind", "dataset"])
        #expect(noFile.status == 66 && noFile.stderr == "error: \(r.dir.path)/nope: no such file or directory\n")
    }

    @Test func verifyDetectsTamperedBlobAndGCDryRun() throws {
        let r = try CLIRegistry()
        _ = try r.run(["add", try r.file("a", "good"), "--name", "a", "--kind", "dataset"])
        #expect(try r.run(["verify"]).status == 0)
        let p = try r.run(["path", "a"]).stdout.trimmingCharacters(in: .newlines)
        chmod(p, 0o644)
        try Data("evil".utf8).write(to: URL(fileURLWithPath: p))
        let v = try r.run(["verify"])
        #expect(v.status == 65)
        #expect(v.stdout.hasPrefix("mismatch a@1"))
        #expect(v.stderr == "error: 1 of 1 artifacts failed verification: a@1\n")

        // An unreferenced blob: gc --dry-run lists it and keeps it; gc removes it.
        let orphan = try r.file("orphan", "orphan")
        _ = try r.run(["add", orphan, "--name", "b", "--kind", "dataset"], env: ["TUNE_FAULT": "registry.before-commit"])
        let dry = try r.run(["gc", "--dry-run", "--json"])
        let blobs = try #require((try json(dry.stdout) as? [String: Any])?["blobs"] as? [[String: Any]])
        #expect(blobs.count == 1 && blobs[0]["size"] as? Int == 6)
        #expect(try r.run(["gc", "--dry-run"]).stdout.hasSuffix("would remove 1 blobs, 6 bytes, 0 temporaries\n"))
        #expect(try r.run(["gc"]).stdout.hasSuffix("removed 1 blobs, 6 bytes, 0 temporaries\n"))
        #expect(try r.run(["gc", "--dry-run"]).stdout == "would remove 0 blobs, 0 bytes, 0 temporaries\n")
    }

    @Test func crashDuringRegistrationLeavesWholeArtifactOrNothing() throws {
        let r = try CLIRegistry()
        _ = try r.run(["add", try r.file("first", "first"), "--name", "m", "--kind", "adapter"])
        for point in ["blob.before-rename", "registry.after-blob", "registry.before-commit"] {
            let crashed = try r.run(["add", try r.file("c-\(point)", point), "--name", "m", "--kind", "adapter"],
                                    env: ["TUNE_FAULT": point])
            #expect(crashed.status == 9, "\(point): status \(crashed.status) \(crashed.stderr)")  // SIGKILL
            let list = try r.run(["list", "--json"])
            #expect((try json(list.stdout) as? [[String: Any]])?.count == 1, "\(point)")
            #expect(try r.run(["verify"]).status == 0, "\(point)")
        }
        // The next registration continues the version sequence with nothing lost.
        let next = try r.run(["add", try r.file("next", "next"), "--name", "m", "--kind", "adapter"])
        #expect(next.stdout.hasPrefix("registered m@2 "))
        let dry = try r.run(["gc", "--dry-run", "--json"])
        #expect(((try json(dry.stdout) as? [String: Any])?["blobs"] as? [Any])?.count == 2)
    }

    @Test func twoProcessesRegisteringAndPromotingConcurrently() throws {
        let r = try CLIRegistry()
        let ops = 100
        // Each worker: 50 registrations of new versions of one shared name, each followed by a promotion.
        var workers: [Process] = []
        for w in 0..<2 {
            var script = "set -e\n"
            for i in 0..<(ops / 2) {
                let f = r.dir.path + "/w\(w)-\(i)"
                try Data("worker \(w) op \(i)".utf8).write(to: URL(fileURLWithPath: f))
                script += "'\(tuneBinary.path)' artifacts add '\(f)' --name shared --kind adapter \(r.flags.joined(separator: " ")) >/dev/null\n"
                script += "'\(tuneBinary.path)' artifacts promote shared@latest --to \(w == 0 ? "production" : "staging") \(r.flags.joined(separator: " ")) >/dev/null\n"
            }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", script]
            try p.run()
            workers.append(p)
        }
        for p in workers { p.waitUntilExit() }
        #expect(workers.map(\.terminationStatus) == [0, 0])

        let list = try #require(try json(try r.run(["list", "--json"]).stdout) as? [[String: Any]])
        #expect(list.count == ops)
        #expect(list.compactMap { $0["version"] as? Int }.sorted() == Array(1...ops))
        #expect(Set(list.compactMap { $0["sha256"] as? String }).count == ops)
        #expect(try r.run(["verify"]).status == 0)
        for alias in ["production", "staging"] {
            #expect(try r.run(["show", "shared@\(alias)"]).status == 0)
        }
        #expect(try r.run(["gc", "--dry-run"]).stdout == "would remove 0 blobs, 0 bytes, 0 temporaries\n")
    }
}
