// RunConcurrencyCLITests — several `tune run` processes of one pipeline on one registry at once (a cron
// job and a person, two terminals): each stage runs once, in one process, the others wait and reuse
// its outputs, every process exits 0; `--no-wait` names the holder; a holder killed with SIGKILL
// mid-train is taken over when its heartbeat goes stale, and the run resumes and finishes.
import Foundation
import Testing
import Engine
import TuneKit

/// Claims refreshed and polled fast enough for tests that take seconds.
private let fastClaims = ["TUNE_CLAIM_HEARTBEAT_SECONDS": "0.2", "TUNE_CLAIM_POLL_SECONDS": "0.05", "TUNE_CLAIM_STALE_SECONDS": "30"]

/// A started `tune` process whose stderr goes to a file (so many can run without pipes filling up).
private struct Started {
    let process: Process
    let log: URL
    var stderr: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

    init(_ args: [String], env: [String: String], log: URL) throws {
        process = Process()
        process.executableURL = tuneBinary
        process.arguments = args
        process.currentDirectoryURL = packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        self.log = log
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        process.standardError = h
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        try h.close()
    }

    func wait() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Waits until stderr contains `text` (or the process ends, or `seconds` pass).
    func waitFor(_ text: String, seconds: Double = 120) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stderr.contains(text) { return true }
            if !process.isRunning { return stderr.contains(text) }
            usleep(10_000)
        }
        return false
    }
}

/// Where the test pipelines keep their registry: the SQLite file beside the pipeline, or a fresh
/// PostgreSQL database when TUNE_TEST_POSTGRES is set.
enum CLIRegistryBackend: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }

    func registry(in dir: URL) throws -> (location: String, drop: () -> Void) {
        switch self {
        case .sqlite: return (dir.appendingPathComponent("reg.sqlite").path, {})
        case .postgres:
            guard let server = ProcessInfo.processInfo.environment["TUNE_TEST_POSTGRES"].flatMap({ $0.isEmpty ? nil : $0 }) else {
                try Test.cancel("PostgreSQL case skipped: TUNE_TEST_POSTGRES is unset (scripts/test starts a server with scripts/pg-local and sets it)")
            }
            let url = try RegistryLocation.createScratchDatabase(server: server, prefix: "tune_test")
            return (url, { try? RegistryLocation.dropDatabase(url) })
        }
    }
}

/// A pipeline named `name` on a tiny generated model with `sections` (YAML at column 0), in a fresh directory.
private func makePipeline(_ name: String, _ sections: String) throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    try writeDocRows(30, in: dir)
    let yaml = "name: \(name)\nbase: tiny.gguf\nregistry: reg.sqlite\nseed: 5\n" + sections + "\n"
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

/// `tune artifacts list --json` names, one entry per version.
private func artifactNames(registry: String, blobs: String) throws -> [String] {
    let list = try tune(["artifacts", "list", "--registry", registry, "--blobs", blobs, "--json"])
    #expect(list.status == 0, "\(list.stderr)")
    let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
    // The base the runs share is recorded once, by reference (docs/governance.md): exactly one base-model artifact.
    let bases = items.filter { $0["kind"] as? String == "base-model" }
    #expect(bases.count == 1, "one base-model artifact for the shared base, got \(bases.count)")
    return items.filter { $0["kind"] as? String != "base-model" }.compactMap { $0["name"] as? String }.sorted()
}

/// Starts `n` `tune run` of `pipeline` at once and waits for all of them.
private func runConcurrently(_ n: Int, _ pipeline: String, dir: URL, registry: String, env: [String: String] = [:]) throws -> [(Int32, String)] {
    let blobs = dir.appendingPathComponent("blobs").path
    let started = try (0..<n).map { i in
        try Started(["run", pipeline, "--registry", registry, "--blobs", blobs, "--threads", "1"], env: fastClaims.merging(env) { $1 },
                    log: dir.appendingPathComponent("run-\(i).log"))
    }
    return started.map { ($0.wait(), $0.stderr) }
}

@Suite("RunConcurrencyCLI", .serialized)
struct RunConcurrencyCLITests {
    @Test("4 concurrent runs of a prepare-only pipeline: one dataset version, all exit 0", arguments: CLIRegistryBackend.allCases)
    func concurrentPrepareOnly(_ backend: CLIRegistryBackend) throws {
        let (dir, p) = try makePipeline("racy", "prepare:\n  train: data.jsonl\nregister:\n  aliases: [staging]")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (registry, drop) = try backend.registry(in: dir)
        defer { drop() }
        // Whoever claims prepare holds it 3 s, so the other three are certainly running meanwhile.
        let runs = try runConcurrently(4, p, dir: dir, registry: registry, env: ["TUNE_FAULT_PAUSE": "run.after-prepare:3"])
        for (status, stderr) in runs { #expect(status == 0, "\(stderr)") }
        #expect(try artifactNames(registry: registry, blobs: dir.appendingPathComponent("blobs").path) == ["racy-dataset"])
        #expect(runs.filter { $0.1.contains("waiting for prepare: held by pid ") }.count == 3, "\(runs.map(\.1))")
        // Each stage ran in exactly one process; the others found it finished (after waiting, or not).
        for stage in ["prepare", "register"] {
            #expect(runs.filter { $0.1.contains("done  \(stage)") }.count == 1, "\(runs.map(\.1))")
            #expect(runs.filter { $0.1.contains("skip  \(stage): cached") }.count == 3, "\(runs.map(\.1))")
        }
        let reg = try Registry.open(path: registry, blobRoot: dir.appendingPathComponent("blobs").path)
        #expect(try reg.stageClaims().isEmpty, "every claim released")
    }

    @Test("4 concurrent runs of prepare → train: one adapter version, all exit 0")
    func concurrentTrain() throws {
        let (dir, p) = try makePipeline("racy-train", tinyPrepareAndTrainYAML(steps: 8, evalEvery: 4))
        defer { try? FileManager.default.removeItem(at: dir) }
        let registry = dir.appendingPathComponent("reg.sqlite").path
        // Whoever runs a stage holds it 2 s more before recording it, so the others wait at prepare, then at train.
        let runs = try runConcurrently(4, p, dir: dir, registry: registry, env: ["TUNE_FAULT_PAUSE": "run.before-stage-record:2"])
        for (status, stderr) in runs { #expect(status == 0, "\(stderr)") }
        #expect(try artifactNames(registry: registry, blobs: dir.appendingPathComponent("blobs").path) == ["racy-train-adapter", "racy-train-dataset"])
        #expect(runs.filter { $0.1.contains("waiting for train: held by pid ") }.count == 3, "\(runs.map(\.1))")
        #expect(runs.filter { $0.1.contains("done  prepare") }.count == 1, "\(runs.map(\.1))")
        #expect(runs.filter { $0.1.contains("done  train") }.count == 1, "\(runs.map(\.1))")
        #expect(runs.filter { $0.1.contains("skip  train: cached") }.count == 3, "\(runs.map(\.1))")
    }

    @Test("a holder killed with SIGKILL mid-train is taken over once its heartbeat is stale; --no-wait names it")
    func killedHolderIsTakenOver() throws {
        let (dir, p) = try makePipeline("killy", tinyPrepareAndTrainYAML(steps: 400, evalEvery: 400))
        defer { try? FileManager.default.removeItem(at: dir) }
        let registry = dir.appendingPathComponent("reg.sqlite").path, blobs = dir.appendingPathComponent("blobs").path
        let args = ["run", p, "--registry", registry, "--blobs", blobs, "--threads", "1"]
        // The holder claims train as if on another node (its pid cannot be checked from here).
        let holder = try Started(args, env: fastClaims.merging(["TUNE_CLAIM_HOST": "node-a"]) { $1 }, log: dir.appendingPathComponent("holder.log"))
        defer { if holder.process.isRunning { kill(holder.process.processIdentifier, SIGKILL) } }
        #expect(holder.waitFor("run   train"), "\(holder.stderr)")
        let pid = holder.process.processIdentifier

        let refused = try tune(args + ["--no-wait"], env: fastClaims)
        #expect(refused.status == 65, "\(refused.stderr)")
        #expect(refused.stderr.contains("error: killy: the train stage is being run by another process: pid \(pid) on node-a since "),
                "\(refused.stderr)")

        let stale = 2.0
        let waiter = try Started(args, env: fastClaims.merging(["TUNE_CLAIM_STALE_SECONDS": "\(stale)"]) { $1 },
                                 log: dir.appendingPathComponent("waiter.log"))
        #expect(waiter.waitFor("waiting for train: held by pid \(pid) on node-a since "), "\(waiter.stderr)")
        #expect(holder.process.isRunning, "the holder finished its 400 steps before the waiter waited: \(holder.stderr)")
        kill(pid, SIGKILL)
        let killedAt = Date()
        #expect(holder.wait() == 9)
        #expect(waiter.waitFor("took over the claim of pid \(pid) on node-a (no heartbeat since "), "\(waiter.stderr)")
        let tookOver = Date().timeIntervalSince(killedAt)
        #expect(tookOver >= stale - 0.5, "taken over \(tookOver) s after the kill, before the heartbeat was stale")
        #expect(waiter.wait() == 0, "\(waiter.stderr)")
        #expect(waiter.stderr.components(separatedBy: "waiting for train").count == 2, "one waiting line: \(waiter.stderr)")
        #expect(waiter.stderr.contains("done  train"), "\(waiter.stderr)")
        #expect(try artifactNames(registry: registry, blobs: blobs) == ["killy-adapter", "killy-dataset"])
        #expect(try Registry.open(path: registry, blobRoot: blobs).stageClaims().isEmpty)
    }

    @Test("a holder killed on this host is taken over at once (its pid is gone)")
    func deadLocalHolderIsTakenOverAtOnce() throws {
        let (dir, p) = try makePipeline("crashy", "prepare:\n  train: data.jsonl")
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path
        let crashed = try tune(["run", p, "--blobs", blobs], env: fastClaims.merging(["TUNE_FAULT": "run.after-prepare"]) { $1 })
        #expect(crashed.status == 9, "\(crashed.stderr)")
        let reg = try Registry.open(path: dir.appendingPathComponent("reg.sqlite").path, blobRoot: blobs)
        let left = try #require(try reg.stageClaims().first, "the killed run left its claim behind")
        let t0 = Date()
        let r = try tune(["run", p, "--blobs", blobs], env: ["TUNE_CLAIM_STALE_SECONDS": "600", "TUNE_CLAIM_POLL_SECONDS": "0.05"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(Date().timeIntervalSince(t0) < 60)
        #expect(r.stderr.contains("took over the claim of pid \(left.pid) on \(left.host) (its process is gone)"), "\(r.stderr)")
        #expect(!r.stderr.contains("waiting for"), "\(r.stderr)")
        #expect(try reg.stageClaims().isEmpty)
    }
}
