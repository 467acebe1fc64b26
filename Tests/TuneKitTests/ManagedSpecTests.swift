// ManagedSpecTests — `train.openai:` parsing with positioned diagnostics, and the managed train
// stage's cache key: model and provider URL are in it, the API key and polling settings are not.
import Engine
import Foundation
import Testing
import TuneKit

private func problems(_ yaml: String) -> String {
    do { _ = try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml"); return "ok" } catch let e as ConfigError {
        return e.description
    } catch { return "unexpected: \(error)" }
}

@Suite struct ManagedSpecTests {
    @Test func parsesTheOpenAISection() throws {
        let spec = try PipelineSpec.parse(yaml: """
            name: m
            base: tiny.gguf
            train:
              backend: openai
              openai:
                model: gpt-4o-mini-2024-07-18
                base_url: http://127.0.0.1:8080
                api_key_env: MY_KEY
                suffix: shipping
                seed: 9
                hyperparameters: {n_epochs: 3, batch_size: 8, learning_rate_multiplier: 1.8}
                poll_interval: 2
                timeout: 600
                max_attempts: 4
                eval_concurrency: 2
            """, file: "pipeline.yaml")
        let m = try #require(spec.train?.openai)
        #expect(spec.train?.backend == "openai" && m.model == "gpt-4o-mini-2024-07-18" && m.apiKeyEnv == "MY_KEY")
        #expect(m.baseURL == "http://127.0.0.1:8080" && m.suffix == "shipping" && m.seed == 9)
        #expect(m.nEpochs == 3 && m.batchSize == 8 && m.learningRateMultiplier == 1.8)
        #expect(m.pollInterval == 2 && m.timeout == 600 && m.maxAttempts == 4 && m.evalConcurrency == 2)
        #expect(m.resolvedBaseURL(environment: [:]) == "http://127.0.0.1:8080")
        #expect(try OpenAIClient.apiRoot(m.resolvedBaseURL(environment: [:])) == "http://127.0.0.1:8080/v1")
        #expect(ManagedTrainConfig().resolvedBaseURL(environment: ["OPENAI_BASE_URL": "https://x.example/v1"]) == "https://x.example/v1")
        #expect(ManagedTrainConfig().resolvedBaseURL(environment: [:]) == "https://api.openai.com/v1")
    }

    @Test func badFieldsAreReportedWithPositions() {
        let out = problems("""
            name: m
            base: tiny.gguf
            train:
              backend: openai
              openai:
                model: gpt-4o-mini
                api_key: sk-abc
                base_url: ftp://nope
                hyperparameters: {n_epochs: 0, lr: 2}
                poll_interval: -1
            """)
        let expected = """
            pipeline.yaml:7:14: train.openai.api_key: the API key is never written in a pipeline file
              hint: export it (e.g. OPENAI_API_KEY) and name the variable with api_key_env
            pipeline.yaml:8:15: train.openai.base_url: expected an http(s) URL such as https://api.openai.com/v1, got "ftp://nope"
            pipeline.yaml:9:33: train.openai.hyperparameters.n_epochs: expected a positive integer, got 0
            pipeline.yaml:9:36: train.openai.hyperparameters.lr: unknown field
              hint: known fields here: batch_size, learning_rate_multiplier, n_epochs
            pipeline.yaml:10:20: train.openai.poll_interval: expected a number in (0.0, 3600.0], got -1
            """
        let got = out.split(separator: "\n").map(String.init), want = expected.split(separator: "\n").map(String.init)
        #expect(got.count == want.count, "\(out)")
        for (g, w) in zip(got, want) { #expect(g == w) }
    }

    @Test func cacheKeyHasModelAndProviderButNotTheKeyOrPatience() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-mspec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 1, weightType: .q8_0)
        try #"{"prompt": "a", "completion": "b"}"#.write(to: dir.appendingPathComponent("d.jsonl"), atomically: true, encoding: .utf8)
        func key(_ openai: String, env: [String: String] = ["OPENAI_API_KEY": "k1"]) throws -> String {
            let yaml = "name: m\nbase: tiny.gguf\nregistry: r.sqlite\nprepare:\n  train: d.jsonl\ntrain:\n  backend: openai\n  openai: {\(openai)}\n"
            let p = dir.appendingPathComponent("p.yaml").path
            try yaml.write(toFile: p, atomically: true, encoding: .utf8)
            var o = RunOptions()
            o.dryRun = true
            o.environment = env
            o.blobRoot = dir.appendingPathComponent("blobs").path
            return try PipelineRunner(spec: try PipelineSpec.load(path: p), options: o).run().stages[1].cacheKey
        }
        let k = try key("model: a")
        #expect(try key("model: a", env: ["OPENAI_API_KEY": "k2"]) == k)
        #expect(try key("model: a, poll_interval: 3, max_attempts: 2, api_key_env: OTHER") == k)
        #expect(try key("model: b") != k)
        #expect(try key("model: a", env: ["OPENAI_BASE_URL": "http://127.0.0.1:9/v1"]) != k)
        #expect(try key("model: a, base_url: https://api.openai.com/v1") == k)
        #expect(try key("model: a, hyperparameters: {n_epochs: 2}") != k)
    }
}
