// RunCLITests — `tune run` killed with SIGKILL mid-pipeline, then run again: it finishes, with no
// duplicate artifacts; a finished pipeline re-runs with every stage cached. `--json` progress is NDJSON
// on stderr (one schema: run/stage/step/eval/done) with the summary alone on stdout; the eval report's
// path is shown, also when the gate fails.
import Foundation
import Testing
import Engine

private func makePipeline() throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
    let rows = (0..<10).map { i in
        #"{"prompt": "document \#(i) text", "completion": "class \#(i % 2)"}"#
    }
    try (rows.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
    let yaml = "name: crashy\nbase: tiny.gguf\nregistry: reg.sqlite\nprepare:\n  train: data.jsonl\nregister:\n  aliases: [staging]\n"
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

@Suite struct RunCLITests {
    @Test(arguments: ["run.after-prepare", "run.before-stage-record", "registry.before-commit"])
    func killedRunResumesWithoutDuplicates(point: String) throws {
        let (dir, p) = try makePipeline()
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path
        let crashed = try tune(["run", p, "--blobs", blobs], env: ["TUNE_FAULT": point])
        #expect(crashed.status == 9, "expected SIGKILL at \(point), got \(crashed.status): \(crashed.stderr)")

        let resumed = try tune(["run", p, "--blobs", blobs, "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let again = try tune(["run", p, "--blobs", blobs, "--json"])
        #expect(again.stdout.contains(#""status":"cached""#) && !again.stdout.contains(#""status":"ran""#))

        let list = try tune(["artifacts", "list", "--registry", dir.appendingPathComponent("reg.sqlite").path,
                             "--blobs", blobs, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let items = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        // The dataset and the base model it was tokenized with (a base-model artifact, found again by sha256 on resume).
        let datasets = items.filter { $0["kind"] as? String == "dataset" }
        #expect(datasets.count == 1, "exactly one dataset version after a crash and a resume, got \(datasets.count)")
        #expect(datasets.first?["name"] as? String == "crashy-dataset")
        #expect(items.filter { $0["kind"] as? String == "base-model" }.count == 1 && items.count == 2, "\(items)")
        let verify = try tune(["artifacts", "verify", "--registry", dir.appendingPathComponent("reg.sqlite").path, "--blobs", blobs])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
    }

    @Test func jsonProgressIsNDJSONOnStderrAndTheSummaryAloneOnStdout() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
        try writeDocRows(30, in: dir)
        let yaml = """
            name: talky
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            \(tinyPrepareAndTrainYAML(steps: 4))
            merge:
              method: task_arithmetic
              adapters: [{adapter: train}]
              output: model
              dtype: q8_0
            eval:
              metrics: [loss, exact_match]
            register:
              aliases: [staging]
            """
        let p = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        let blobs = dir.appendingPathComponent("blobs").path
        let r = try tune(["run", p, "--blobs", blobs, "--json"])
        #expect(r.status == 0, "\(r.stderr)")

        // stdout: the summary and nothing else.
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
        let stages = try #require(summary["stages"] as? [[String: Any]])
        #expect(stages.map { $0["stage"] as? String } == ["prepare", "train", "merge", "eval", "register"])
        #expect(summary["pipeline"] as? String == "talky")

        // stderr: every line one JSON object with an event of the schema.
        let events = try ndjson(r.stderr)
        #expect(events.first?["event"] as? String == "run" && events.first?["pipeline"] as? String == "talky")
        #expect(events.last?["event"] as? String == "done" && events.last?["status"] as? String == "succeeded", "\(r.stderr)")
        for e in events { #expect(e["t"] is Double || e["t"] is Int, "\(e)") }
        for s in ["prepare", "train", "merge", "eval", "register"] {
            for status in ["started", "finished"] {
                #expect(events.contains { $0["event"] as? String == "stage" && $0["stage"] as? String == s && $0["status"] as? String == status },
                        "no \(status) event for \(s)")
            }
        }
        func measured(_ event: String, _ task: String) -> [[String: Any]] {
            events.filter { $0["event"] as? String == event && $0["task"] as? String == task }
        }
        // Per model: examples done of total, ending at total, with a rate and a human ETA.
        for model in ["base", "adapter", "merged"] {
            let ev = measured("eval", "eval").filter { $0["model"] as? String == model }
            let last = try #require(ev.last, "no eval progress for \(model): \(r.stderr)")
            #expect(last["unit"] as? String == "examples" && last["stage"] as? String == "eval")
            #expect((last["done"] as? Double).map { $0 > 0 } == true && last["done"] as? Double == last["total"] as? Double, "\(last)")
            #expect(last["rate"] is Double && last["eta"] as? String == "0s" && last["eta_s"] as? Double == 0, "\(last)")
            #expect(ev.first?["done"] as? Double == 0)
        }
        for e in events.compactMap({ $0["eta"] as? String }) { #expect(isHumanDuration(e), "ETA \(e) is not a human duration") }
        let merge = try #require(measured("step", "merge").last, "no merge progress: \(r.stderr)")
        #expect(merge["unit"] as? String == "tensors" && merge["done"] as? Double == merge["total"] as? Double)
        #expect(!measured("step", "prepare").isEmpty, "no prepare progress: \(r.stderr)")
        #expect(events.contains { $0["event"] as? String == "step" && $0["stage"] as? String == "train" && $0["message"] is String })
        // The registered report: its blob directory and the HTML file in it.
        let report = try #require(events.first { $0["event"] as? String == "eval" && $0["report"] != nil }, "\(r.stderr)")
        let html = try #require(report["html"] as? String)
        #expect(html == (report["report"] as! String) + "/report.html")
        #expect(FileManager.default.fileExists(atPath: html) && html.hasPrefix(blobs), "\(html)")

        // Without --json: the same progress as lines a person reads, and where the report is.
        let human = try tune(["run", p, "--blobs", blobs, "--set", "eval.max_new_tokens=4"])   // a new eval cache key: eval runs again
        #expect(human.status == 0, "\(human.stderr)")
        #expect(!human.stderr.contains("{\""), "\(human.stderr)")
        #expect(human.stderr.contains("      eval: base: 0/"), "\(human.stderr)")
        #expect(human.stderr.contains(" examples/s in "), "\(human.stderr)")
        let line = try #require(human.stderr.split(separator: "\n").first { $0.hasPrefix("      eval: report ") }, "\(human.stderr)")
        let opened = try #require(line.components(separatedBy: " — open ").last)
        #expect(opened.hasSuffix("/report.html") && FileManager.default.fileExists(atPath: opened), "\(line)")

        // A failed gate: the report is still shown, and the last event says why the run failed.
        let failed = try tune(["run", p, "--blobs", blobs, "--json", "--set", "eval.gate={metric: loss, min_delta: 100}"])
        #expect(failed.status == 1, "\(failed.stderr)")
        #expect(failed.stdout.isEmpty, "nothing on stdout when the run fails: \(failed.stdout)")
        let fe = try ndjson(failed.stderr.split(separator: "\n").filter { !$0.hasPrefix("error: ") }.joined(separator: "\n"))
        #expect(fe.contains { $0["event"] as? String == "eval" && ($0["html"] as? String).map { FileManager.default.fileExists(atPath: $0) } == true })
        #expect(fe.last?["event"] as? String == "done" && fe.last?["status"] as? String == "failed"
                && (fe.last?["error"] as? String)?.contains("eval gate failed") == true, "\(failed.stderr)")
    }
}

/// Each non-empty line of `text` as a JSON object with a known `event`.
private func ndjson(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { line in
        let o = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
        #expect(["run", "stage", "step", "eval", "done"].contains(o["event"] as? String ?? ""), "unknown event: \(line)")
        return o
    }
}

/// `2d03h`, `1h02m`, `4m10s`, `12s`, `0.4s` — never `250s`.
private func isHumanDuration(_ s: String) -> Bool {
    s.range(of: #"^(\d+d\d\dh|\d+h\d\dm|\d+m\d\ds|[0-5]?\ds|0\.\ds)$"#, options: .regularExpression) != nil
}
