// ManagedCLITests — `tune run` with `train.backend: openai` end to end against FakeProvider: prepare
// on the tiny model, upload + job + polling with progress lines, eval of the tuned model through chat
// completions, registration with lineage; a re-run creates no job; `tune jobs` sees the job; the
// API key appears nowhere in output, errors or any file the run wrote.
import Engine
import Foundation
import LoopbackHTTP
import Testing

private let key = "sk-tune-e2e-SECRET-9f8e7d6c5b4a"

private func managedPipeline(_ url: String) throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    try writeDocRows(20, in: dir)
    let yaml = managedPipelineYAML(name: "tiny-managed", baseURL: url, apiKeyEnv: "TUNE_TEST_PROVIDER_KEY", model: "gpt-4o-mini",
                                   hyperparameters: "{n_epochs: 2}", pollInterval: 0.05, gate: "{exact_match: {min: 0.9}}")
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

/// The fake's answer: "c<i mod 3>" for the prompt "doc <i>".
private func answer(_ messages: [[String: String]]) -> String {
    let user = messages.last { $0["role"] == "user" }?["content"] ?? ""
    let digits = user.filter(\.isNumber)
    return Int(digits).map { "c\($0 % 3)" } ?? "?"
}

@Suite struct ManagedCLITests {
    @Test func runTrainsAtTheProviderEvaluatesAndRegisters() throws {
        let provider = try FakeProvider(lifetime: 300)
        provider.answer = answer
        provider.requiredKey = key
        let (dir, p) = try managedPipeline(provider.url)
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path
        let env = ["TUNE_TEST_PROVIDER_KEY": key]
        let r = try tune(["run", p, "--blobs", blobs], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["train: uploaded train file", "train: created job ftjob-", "train: job running", "train: step 2/2 loss 0.4000",
                     "train: job succeeded", "eval: adapter (managed): 5 examples", "eval: Gate: exact_match"] {
            #expect(r.stderr.contains(line), "missing \(line) in \(r.stderr)")
        }
        #expect(provider.jobCount == 1)
        let upload = String(decoding: provider.uploads[0], as: UTF8.self)
        #expect(upload.contains(#"{"content":"doc 0","role":"user"},{"content":"c0","role":"assistant"}]}"#), "\(upload)")

        let again = try tune(["run", p, "--blobs", blobs, "--json", "--force", "train"], env: env)
        #expect(again.status == 0 && provider.jobCount == 1, "\(again.stderr)")
        let reg = dir.appendingPathComponent("reg.sqlite").path
        let show = try tune(["artifacts", "show", "tiny-managed-adapter@1", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(show.stdout.contains(#""backend":"openai""#) && show.stdout.contains(#""fine_tuned_model":"ft:gpt-4o-mini:tune:ftjob-"#), "\(show.stdout)")
        let eval = try tune(["artifacts", "show", "tiny-managed-eval@1", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(eval.stdout.contains(#""exact_match":1"#), "\(eval.stdout)")
        let lineage = try tune(["artifacts", "lineage", "tiny-managed-eval@1", "--registry", reg, "--blobs", blobs])
        #expect(lineage.stdout.contains("tiny-managed-adapter") && lineage.stdout.contains("tiny-managed-dataset"), "\(lineage.stdout)")
        // The provider's model is a managed-model artifact (redacted provider, model id) the adapter descends from.
        let managed = try tune(["artifacts", "exposure", "--managed-model", "gpt-4o-mini", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(managed.status == 0, "\(managed.stderr)")
        #expect(managed.stdout.contains(#""kind":"managed-model""#) && managed.stdout.contains(#""name":"gpt-4o-mini""#), "\(managed.stdout)")
        #expect(managed.stdout.contains(#""name":"tiny-managed-adapter""#) && managed.stdout.contains(#""name":"tiny-managed-eval""#)
                && managed.stdout.contains("tiny-managed-adapter@staging"), "\(managed.stdout)")
        #expect(!managed.stdout.contains(#""name":"tiny-managed-dataset""#), "the dataset does not derive from the managed model")
        let none = try tune(["artifacts", "exposure", "--managed-model", "gpt-4o-2024-08-06", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(none.stdout.contains(#""artifacts":[]"#), "\(none.stdout)")

        let jobs = try tune(["jobs", "list", "--base-url", provider.url, "--api-key-env", "TUNE_TEST_PROVIDER_KEY", "--json"], env: env)
        #expect(jobs.status == 0 && jobs.stdout.contains(#""status":"succeeded""#), "\(jobs.stderr)")
        let events = try tune(["jobs", "events", "ftjob-3", "--base-url", provider.url, "--api-key-env", "TUNE_TEST_PROVIDER_KEY"], env: env)
        #expect(events.stdout.contains("Step 2/2: training loss=0.4"), "\(events.stdout) \(events.stderr)")
        let wrongKey = try tune(["jobs", "show", "ftjob-3", "--base-url", provider.url, "--api-key-env", "TUNE_TEST_WRONG"],
                                env: ["TUNE_TEST_WRONG": key + "x"])
        #expect(wrongKey.status == 69 && wrongKey.stderr.contains("HTTP 401") && wrongKey.stderr.contains("Incorrect API key"), "\(wrongKey.stderr)")

        // The key is nowhere: outputs, errors, and every file under the run's directory (registry, WAL, blobs).
        for out in [r, again, show, eval, lineage, managed, jobs, events, wrongKey] {
            #expect(!out.stdout.contains(key) && !out.stderr.contains(key))
        }
        let files = FileManager.default.enumerator(atPath: dir.path)!.compactMap { $0 as? String }
        #expect(files.contains("reg.sqlite"))
        for f in files {
            let data = FileManager.default.contents(atPath: dir.appendingPathComponent(f).path) ?? Data()
            #expect(data.range(of: Data(key.utf8)) == nil, "the key is in \(f)")
        }
    }

    @Test func providerFailureFailsTheStageWithItsMessage() throws {
        let provider = try FakeProvider(lifetime: 300)
        provider.failWith = "the training file has too few examples"
        let (dir, p) = try managedPipeline(provider.url)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["run", p, "--blobs", dir.appendingPathComponent("blobs").path], env: ["TUNE_TEST_PROVIDER_KEY": key])
        #expect(r.status == 69 && r.stderr.contains("error: fine-tuning job ftjob-3 failed: invalid_training_file: the training file has too few examples"),
                "\(r.stderr)")
        #expect(!r.stderr.contains(key))
    }
}
