// ServeManagedE2ETests — one tune as another's managed provider: `tune serve` on 127.0.0.1 (tiny
// model, API key from the environment), then `tune run` of a pipeline with `train.backend: openai`
// pointing at it: the job trains on the server's local trainer, the tuned model is evaluated through
// the server's chat completions, and the result is registered with lineage. A re-run creates no job.
import Engine
import Foundation
import Testing
import TuneKit

private let serveKey = "sk-serve-e2e-7c1d2e3f4a5b"

@Suite struct ServeManagedE2ETests {
    @Test func pipelineTrainsThroughTuneServeEvaluatesAndRegisters() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 2, weightType: .q4_1)

        let serve = try StartedServe(["serve", "--model", model, "--state-dir", dir.appendingPathComponent("state").path, "--port", "0", "--json"],
                                     env: ["TUNE_SERVE_API_KEYS": serveKey], stderr: FileHandle.nullDevice)
        let server = serve.process
        defer { if server.isRunning { server.terminate(); server.waitUntilExit() } }
        let port = try #require(serve.port)
        let baseURL = "http://127.0.0.1:\(port)"

        try writeDocRows(16, in: dir)
        let yaml = managedPipelineYAML(name: "via-serve", baseURL: baseURL, apiKeyEnv: "TUNE_E2E_KEY", model: "tiny", suffix: "e2e",
                                       hyperparameters: "{n_epochs: 1, batch_size: 4}", pollInterval: 0.1)
        let p = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        let blobs = dir.appendingPathComponent("blobs").path
        let env = ["TUNE_E2E_KEY": serveKey]

        let r = try tune(["run", p, "--blobs", blobs], env: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("eval"), "\(r.stderr)")
        let reg = dir.appendingPathComponent("reg.sqlite").path
        let show = try tune(["artifacts", "show", "via-serve-adapter@staging", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(show.status == 0, "\(show.stderr)")
        #expect(show.stdout.contains("ft:tiny:e2e:") && show.stdout.contains(#""backend":"openai""#), "\(show.stdout)")
        let lineage = try tune(["artifacts", "lineage", "via-serve-eval@1", "--registry", reg, "--blobs", blobs])
        #expect(lineage.stdout.contains("via-serve-adapter") && lineage.stdout.contains("via-serve-dataset"), "\(lineage.stdout)")

        // The server holds exactly one job, found again (not created again) by a re-run.
        let again = try tune(["run", p, "--blobs", blobs, "--json"], env: env)
        #expect(again.status == 0 && !again.stdout.contains(#""status":"ran""#), "\(again.stdout)")
        let jobs = try CurlHTTPTransport().send(HTTPRequest(method: "GET", url: "\(baseURL)/v1/fine_tuning/jobs",
                                                            headers: [("Authorization", "Bearer \(serveKey)")]))
        let data = (try JSONSerialization.jsonObject(with: jobs.body) as? [String: Any])?["data"] as? [[String: Any]] ?? []
        #expect(data.count == 1 && data.first?["status"] as? String == "succeeded", "\(jobs.bodyText)")
        #expect(!r.stdout.contains(serveKey) && !r.stderr.contains(serveKey))
    }
}
