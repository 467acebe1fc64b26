// ScheduleCLITests — scheduled re-tunes end to end through the real binary on tiny models: base v1,
// the first scheduled run becomes production, base v2 → one tick enqueues exactly one re-tune, the
// worker runs it and the comparison with production decides whether the alias moves; the webhook
// (a loopback server, first answer 500 so the retry is exercised) and the command hook get the
// summary. Crash safety: a worker SIGKILLed mid-job loses its lease and a second worker finishes the
// job exactly once; two worker processes at once never run the same job.
import Foundation
import Testing
import Engine

private struct Setup {
    let dir: URL
    var reg: String { dir.appendingPathComponent("reg.sqlite").path }
    var blobs: String { dir.appendingPathComponent("blobs").path }
    var loc: [String] { ["--registry", reg, "--blobs", blobs] }

    init(pipelines: [String], webhook: String? = nil) throws {
        dir = try makeTempDir()
        // Seeds picked so that, after the pipeline's 8 steps, v2 beats v1 on eval loss and v3 loses to v2.
        for (v, seed) in [(1, 3), (2, 2), (3, 4)] as [(Int, UInt64)] {
            try TinyLlama.writeGGUF(to: dir.appendingPathComponent("v\(v).gguf").path, config: .tiny, seed: seed, weightType: .q4_1)
        }
        try writeDocRows(30, in: dir)
        for (i, name) in pipelines.enumerated() {
            var yaml = """
            name: \(name)
            base: tiny@latest
            seed: \(5 + i)
            \(tinyPrepareAndTrainYAML())
            eval:
              metrics: [loss, exact_match]
              gate: {metric: loss, min_delta: 0.001}
            schedule: {on_base_upgrade: true}
            notify:
              command: "cat >> notify-\(name).log; echo >> notify-\(name).log"
            """
            if let webhook { yaml += "\n  webhook: \(webhook)" }
            try (yaml + "\n").write(to: dir.appendingPathComponent("\(name).yaml"), atomically: true, encoding: .utf8)
        }
    }

    func run(_ args: [String], env: [String: String] = [:]) throws -> RunResult { try tune(args + loc, env: env) }

    func addBase(_ v: String) throws {
        let r = try run(["base", "add", "tiny", "--version", v, "--model", dir.appendingPathComponent("v\(v).gguf").path, "--license", "apache-2.0"])
        #expect(r.status == 0, "\(r.stderr)")
    }

    func json(_ args: [String]) throws -> Any {
        let r = try run(args + ["--json"])
        #expect(r.status == 0, "\(args): \(r.stderr)")
        return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    }

    func jobs() throws -> [[String: Any]] { (try json(["schedule", "status"]) as? [String: Any])?["jobs"] as? [[String: Any]] ?? [] }

    func version(_ ref: String) throws -> Int? {
        let r = try run(["artifacts", "show", ref, "--json"])
        guard r.status == 0, let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return nil }
        return (o["artifact"] as? [String: Any])?["version"] as? Int
    }
}

/// The job on base `tiny@version` succeeded once, compared loss with production, and decided `promoted` accordingly.
private func expectDecision(_ s: Setup, version: String, promoted: Bool) throws {
    let job = try #require(try s.jobs().first { $0["base_version"] as? String == version })
    #expect(job["state"] as? String == "succeeded" && job["attempts"] as? Int == 1)
    let result = try #require(job["result"] as? [String: Any])
    let loss = try #require((result["metrics"] as? [String: Any])?["loss"] as? [String: Any])
    let (cand, prod) = (try #require(loss["candidate"] as? Double), try #require(loss["production"] as? Double))
    #expect((cand <= prod) == promoted, "loss \(cand) vs production \(prod)")
    #expect((result["decision"] as? [String: Any])?["promoted"] as? Bool == promoted, "\(result)")
    #expect(((result["notify"] as? [String: Any])?["webhook"] as? [String: Any])?["ok"] as? Bool == true)
}

@Suite(.serialized) struct ScheduleCLITests {
    @Test func baseUpgradeRetunesComparesWithProductionAndNotifies() throws {
        let server = try ScheduleWebhookServer(statuses: [500])
        defer { server.stop() }
        let s = try Setup(pipelines: ["tiny-task"], webhook: server.url)
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try s.addBase("1")
        #expect(try s.run(["schedule", "add", s.dir.appendingPathComponent("tiny-task.yaml").path]).status == 0)
        #expect(try s.run(["schedule", "tick"]).stdout.contains("enqueued job 1: tiny-task on tiny@1"))
        let first = try s.run(["schedule", "worker", "--once"])
        #expect(first.status == 0 && first.stdout.contains("succeeded, promoted"), "\(first.stdout)\n\(first.stderr)")
        #expect(try s.version("tiny-task-adapter@production") == 1)

        try s.addBase("2")
        let tick = try s.json(["schedule", "tick"]) as? [String: Any]
        let enq = tick?["enqueued"] as? [[String: Any]] ?? []
        #expect(enq.count == 1 && enq.first?["base_version"] as? String == "2", "\(String(describing: tick))")
        #expect(((try s.json(["schedule", "tick"]) as? [String: Any])?["enqueued"] as? [Any])?.isEmpty == true, "a second tick enqueues nothing")

        // v2 is at least as good as production (v1's adapter): promoted, v1 becomes previous.
        let second = try s.run(["schedule", "worker", "--once"])
        #expect(second.status == 0 && second.stdout.contains("succeeded, promoted — at least as good as tiny-task-adapter@1"), "\(second.stdout)\n\(second.stderr)")
        try expectDecision(s, version: "2", promoted: true)
        #expect(try s.version("tiny-task-adapter@production") == 2 && s.version("tiny-task-adapter@previous") == 1)

        // v3 is worse than production (v2's adapter): recorded, production kept.
        try s.addBase("3")
        #expect(try s.run(["schedule", "tick"]).stdout.contains("enqueued job 3: tiny-task on tiny@3"))
        let third = try s.run(["schedule", "worker", "--once"])
        #expect(third.status == 0 && third.stdout.contains("worse than tiny-task-adapter@2"), "\(third.stdout)\n\(third.stderr)")
        try expectDecision(s, version: "3", promoted: false)
        #expect(try s.version("tiny-task-adapter@production") == 2)

        // The webhook: the first job's POST got a 500 and was retried; then one summary per job.
        let bodies = server.received
        #expect(bodies.count == 4, "\(bodies)")
        #expect(bodies.last?.contains(#""trigger":"base_upgrade""#) == true && bodies.last?.contains(#""metrics""#) == true)
        let log = try String(contentsOf: s.dir.appendingPathComponent("notify-tiny-task.log"), encoding: .utf8)
        #expect(log.split(separator: "\n").count == 3 && log.contains(#""base":"tiny@2""#))

        // Rollback is an ordinary promote.
        #expect(try s.run(["artifacts", "promote", "tiny-task-adapter@1", "--alias", "production"]).status == 0)
        #expect(try s.version("tiny-task-adapter@production") == 1 && s.version("tiny-task-adapter@previous") == 2)
        let history = try s.run(["schedule", "history", "2"]).stdout
        #expect(history.contains("queued → leased") && history.contains("running → succeeded"), "\(history)")
    }

    @Test func killedWorkerLosesItsLeaseAndAnotherFinishesTheJobOnce() throws {
        let s = try Setup(pipelines: ["crash-task"])
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try s.addBase("1")
        #expect(try s.run(["schedule", "add", s.dir.appendingPathComponent("crash-task.yaml").path]).status == 0)
        #expect(try s.run(["schedule", "tick"]).status == 0)
        // SIGKILL after the pipeline ran, before the job is completed (the FaultPoint sends it to itself).
        let killed = try s.run(["schedule", "worker", "--once", "--lease", "2", "--owner", "doomed"], env: ["TUNE_FAULT": "schedule.before-complete"])
        #expect(killed.status == 9, "expected SIGKILL, got \(killed.status): \(killed.stderr)")
        let stuck = try #require(try s.jobs().first)
        #expect(stuck["state"] as? String == "running" && stuck["lease_owner"] as? String == "doomed")
        Thread.sleep(forTimeInterval: 2.2)   // the lease expires; no heartbeat renews it
        let rescue = try s.run(["schedule", "worker", "--once", "--owner", "rescuer"])
        #expect(rescue.status == 0 && rescue.stdout.contains("succeeded, promoted"), "\(rescue.stdout)\n\(rescue.stderr)")
        let job = try #require(try s.jobs().first)
        #expect(job["state"] as? String == "succeeded" && job["attempts"] as? Int == 2)
        let h = (try s.json(["schedule", "history", "1"]) as? [[String: Any]] ?? []).map { "\($0["to"] as? String ?? "")/\($0["owner"] as? String ?? "")" }
        #expect(h == ["queued/", "leased/doomed", "running/doomed", "leased/rescuer", "running/rescuer", "succeeded/rescuer",
                    "succeeded/"], "the last row records the notification: \(h)")
        // Exactly once: one adapter version (the rescuer reused the killed worker's registered stages), one promotion.
        let adapters = try s.json(["artifacts", "list", "--name", "crash-task-adapter"]) as? [Any]
        #expect(adapters?.count == 1)
        #expect(try s.version("crash-task-adapter@production") == 1)
        #expect(try s.run(["schedule", "worker", "--once"]).stdout.contains("no job due"))
    }

    @Test func twoWorkerProcessesNeverRunTheSameJob() throws {
        let names = ["pa", "pb", "pc"]
        let s = try Setup(pipelines: names)
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try s.addBase("1")
        for n in names { #expect(try s.run(["schedule", "add", s.dir.appendingPathComponent("\(n).yaml").path]).status == 0) }
        #expect(try s.run(["schedule", "tick"]).stdout.components(separatedBy: "enqueued job").count == 4)
        let procs = try (0..<2).map { i -> (Process, Pipe) in
            let p = Process(), out = Pipe()
            p.executableURL = tuneBinary
            p.arguments = ["schedule", "worker", "--drain", "--json", "--owner", "w\(i)", "--threads", "1"] + s.loc
            p.currentDirectoryURL = packageRoot
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            return (p, out)
        }
        var ran: [Int] = []
        for (p, out) in procs {
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\(text)")
            for line in text.split(separator: "\n") {
                let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                if let id = o?["job"] as? Int { ran.append(id) }
            }
        }
        #expect(ran.sorted() == [1, 2, 3], "each job exactly once: \(ran)")
        let jobs = try s.jobs()
        #expect(jobs.count == 3 && jobs.allSatisfy { $0["state"] as? String == "succeeded" && $0["attempts"] as? Int == 1 }, "\(jobs)")
    }

    @Test func baseAddRefusalsExitWithClearErrorsAndEnqueueNothing() throws {
        let s = try Setup(pipelines: ["p"])
        defer { try? FileManager.default.removeItem(at: s.dir) }
        try s.addBase("1")
        #expect(try s.run(["schedule", "add", s.dir.appendingPathComponent("p.yaml").path]).status == 0)
        #expect(try s.run(["schedule", "tick"]).status == 0)
        let v2 = s.dir.appendingPathComponent("v2.gguf").path
        let wrong = try s.run(["base", "add", "tiny", "--version", "2", "--model", v2, "--license", "mit", "--sha256", String(repeating: "a", count: 64)])
        #expect(wrong.status == 65 && wrong.stderr.contains("sha256 is") && wrong.stderr.contains("nothing registered"), "\(wrong.stderr)")
        let remote = try s.run(["base", "add", "tiny", "--version", "2", "--model", "https://example.com/m.gguf", "--license", "mit"])
        #expect(remote.status == 65 && remote.stderr.contains("no network fetch"), "\(remote.stderr)")
        let missing = try s.run(["base", "add", "tiny", "--version", "2", "--model", s.dir.appendingPathComponent("nope.gguf").path, "--license", "mit"])
        #expect(missing.status == 66, "\(missing.stderr)")
        #expect(try s.run(["schedule", "tick"]).stdout.contains("nothing enqueued"))
        let list = try s.run(["base", "list"]).stdout
        #expect(list.contains("tiny@1") && !list.contains("tiny@2"), "\(list)")
    }
}
