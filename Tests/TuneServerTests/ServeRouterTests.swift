// ServeRouterTests — `tune serve --router`: a router registered by a real pipeline run (tiny model,
// 2 QLoRA steps, a scripted reference on loopback) answers chat completions. For every eval example,
// the served request's prompt ids equal the eval's, its confidence equals the report's per-example
// confidence, and the route is the one τ implies (local when confidence ≥ τ), for both confidence
// kinds (mean token log-prob, choice margin). A reference that is down, slow, rate-limited past the
// deadline or refuses the key leaves escalated requests answered locally, flagged `local_fallback`
// with the reason; the key appears in no reply, log line or metric.
import Engine
import Foundation
import Hummingbird
import LoopbackHTTP
import Testing
@testable import TuneKit
@testable import TuneServer

/// A finished routing pipeline: its registry, the router's spec and per-example confidences, and the
/// eval conversations (as the reference received them).
private struct RoutedRun {
    let dir: URL
    let registry: String
    let blobs: String
    let base: String
    let spec: RouterSpec
    let confidences: [Double]
    let conversations: [[ChatMessageBody]]
    let promptIDs: [[Int32]]

    static let key = "sk-route-SECRET-77"

    /// The scripted reference: right on even docs ("c<i mod 3>"), wrong on odd ones; usage 40 + i prompt and
    /// 2 completion tokens; only `key` is accepted.
    static func provider() throws -> FakeProvider {
        let p = try FakeProvider(lifetime: 600)
        p.requiredKey = key
        p.chat = { _, messages in
            let i = Int((messages.last { $0["role"] == "user" }?["content"] ?? "").filter(\.isNumber)) ?? 1
            return (i % 2 == 0 ? "c\(i % 3)" : "nope", 40 + i, 2)
        }
        return p
    }

    /// `metric`: `exact_match` (mean-log-prob confidence) or `choice` (margin confidence).
    static func make(metric: String, provider p: FakeProvider) throws -> RoutedRun {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-serve-router-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q8_0)
        func rows(_ r: Range<Int>) -> String { r.map { #"{"prompt": "doc \#($0)", "completion": "c\#($0 % 3)"}"# }.joined(separator: "\n") + "\n" }
        try rows(100..<116).write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
        try rows(0..<8).write(to: dir.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
        let metrics = metric == "choice" ? "[choice]\n  choices: [c0, c1, c2]" : "[exact_match]"
        let yaml = """
            name: tiny-route
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            prepare: {train: data.jsonl, eval: eval.jsonl}
            train:
              method: qlora
              lora: {rank: 4, alpha: 8, dropout: 0.0}
              max_steps: 2
              batch_size: 4
              lr: 0.01
              seq_len: 128
            eval:
              metrics: \(metrics)
              max_new_tokens: 3
              reference:
                - {name: closed, model: gpt-x, base_url: "\(p.url)", api_key_env: ROUTE_KEY, input_per_million: 10, output_per_million: 40}
              costs: {hardware_per_hour: 2}
              routing: {reference: closed, max_escalation: 0.5}
            """
        let path = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        opts.environment = ["ROUTE_KEY": key]
        _ = try PipelineRunner(spec: try PipelineSpec.load(path: path), options: opts).run()

        let reg = try Registry.open(path: dir.appendingPathComponent("reg.sqlite").path, blobRoot: opts.blobRoot)
        let spec = try JSONDecoder().decode(RouterSpec.self, from: Data(contentsOf: URL(fileURLWithPath: try #require(reg.path(of: try reg.resolve("tiny-route-router@1"))))))
        let report = try JSONDecoder().decode(EvalReport.self, from: Data(contentsOf: URL(fileURLWithPath: try #require(reg.path(of: try reg.resolve("tiny-route-eval@1"))) + "/report.json")))
        let routed = try #require(report.models.first { $0.role == spec.local })
        let prepared = try PreparedDataset(directory: try #require(reg.path(of: try reg.resolve("tiny-route-dataset@1"))))
        let examples = try prepared.examples(split: "eval")
        let tok = try DatasetTokenizer.load(modelPath: dir.appendingPathComponent("tiny.gguf").path).tokenizer
        return RoutedRun(dir: dir, registry: dir.appendingPathComponent("reg.sqlite").path, blobs: opts.blobRoot,
                         base: dir.appendingPathComponent("tiny.gguf").path, spec: spec,
                         confidences: try #require(routed.outcomes).map { try #require($0.confidence) },
                         conversations: ChatExport.conversations(examples, tokenizer: tok, template: prepared.manifest.template.name),
                         promptIDs: Evaluator.items(examples).map { Array($0.ids[..<$0.targets[0]]) })
    }

    /// The request of eval example `i`: its conversation up to the answer.
    func messages(_ i: Int) -> [[String: String]] {
        let c = conversations[i]
        return c[..<c.lastIndex { $0.role == "assistant" }!].map { ["role": $0.role, "content": $0.content] }
    }

    /// Whether example `i` escalates under the router's τ (nil: too close to τ to call).
    func escalates(_ i: Int) -> Bool? {
        if let tau = spec.tau, spec.policy == .threshold, abs(confidences[i] - tau) < 1e-4 { return nil }
        return Routing.escalates(confidences[i], spec.policy, tau: spec.tau)
    }

    func serveFixture(environment: [String: String] = ["ROUTE_KEY": key], configure: (inout ServeConfig) -> Void = { _ in }) throws -> ServeFixture {
        try ServeFixture { c, _ in
            c.modelPath = base
            c.modelID = "tiny"
            c.registryPath = registry
            c.blobRoot = blobs
            c.routers = ["tiny-route-router@1"]
            c.environment = environment
            c.routerTimeout = 5
            configure(&c)
        }
    }
}

private func routedChat(_ client: some TestClientProtocol, _ f: ServeFixture, model: String = "tiny-route-router@1",
                        _ messages: [[String: String]], stream: Bool = false) async throws -> (status: HTTPResponse.Status, body: String, header: String?) {
    var h = f.auth
    h[.contentType] = "application/json"
    var body: [String: Any] = ["model": model, "messages": messages]
    if stream { body["stream"] = true }
    return try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(body)) { r in
        (r.status, String(buffer: r.body), r.headers[ServeRoutes.routeHeader])
    }
}

@Suite struct ServeRouterTests {
    @Test(arguments: ["exact_match", "choice"])
    func servedRoutesAreTheEvalsDecisions(_ metric: String) async throws {
        let p = try RoutedRun.provider()
        let run = try RoutedRun.make(metric: metric, provider: p)
        defer { try? FileManager.default.removeItem(at: run.dir) }
        #expect(run.spec.confidence == (metric == "choice" ? "choice_margin" : "mean_token_logprob"))
        let prompt = try #require(run.spec.prompt)
        #expect(prompt.template == "auto" && prompt.maxNewTokens == 3 && prompt.choices == (metric == "choice" ? ["c0", "c1", "c2"] : []))

        // The runtime asks exactly what the eval asked, and finds the same confidence.
        let reg = try Registry.open(path: run.registry, blobRoot: run.blobs)
        let base = try LlamaModel.load(path: run.base)
        let runtime = try RouterRuntime.load(ref: "tiny-route-router@1", registry: reg, base: base, baseFile: "tiny.gguf",
                                             environment: ["ROUTE_KEY": RoutedRun.key])
        for i in run.conversations.indices {
            let msgs = run.messages(i).map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
            let ids = try runtime.promptIDs(msgs)
            #expect(ids == run.promptIDs[i], "example \(i)")
            let c = try runtime.localAnswer(promptIDs: ids).confidence
            #expect(abs(c - run.confidences[i]) < 1e-4, "example \(i): served \(c), eval \(run.confidences[i])")
        }

        let f = try run.serveFixture()
        defer { f.cleanUp() }
        var routes: [String: Int] = [:]
        try await f.live { client in
            try await client.execute(uri: "/v1/models", method: .get, headers: f.auth) { r in
                #expect(String(buffer: r.body).contains(#""id":"tiny-route-router@1""#))
            }
            for i in run.conversations.indices {
                let r = try await routedChat(client, f, run.messages(i))
                #expect(r.status == .ok, "\(r.body)")
                let o = try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
                let info = try #require(o["tune_route"] as? [String: Any])
                let route = try #require(info["route"] as? String)
                routes[route, default: 0] += 1
                #expect(r.header == route && info["router"] as? String == "tiny-route-router@1")
                #expect(abs((info["confidence"] as? Double ?? .nan) - run.confidences[i]) < 1e-4, "example \(i)")
                if let up = run.escalates(i) { #expect(route == (up ? "reference" : "local"), "example \(i): \(info)") }
                let text = ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
                if route == "reference" { #expect(text == (i % 2 == 0 ? "c\(i % 3)" : "nope")) }
                if route == "local", metric == "choice" { #expect(["c0", "c1", "c2"].contains(text ?? "")) }
            }
            try await client.execute(uri: "/metrics", method: .get, headers: f.auth) { r in
                let text = String(buffer: r.body)
                for (route, n) in routes { #expect(text.contains(#"tune_router_requests_total{router="tiny-route-router",route="\#(route)"} \#(n)"#), "\(routes)") }
            }
            // Streamed: one delta with the whole answer; tune_route on the final chunk.
            let s = try await routedChat(client, f, model: "tiny-route-router", run.messages(0), stream: true)
            #expect(s.body.contains(#""tune_route":{"#) && s.body.hasSuffix("data: [DONE]\n\n"), "\(s.body)")
            // Routers answer chat only.
            var h = f.auth
            h[.contentType] = "application/json"
            try await client.execute(uri: "/v1/completions", method: .post, headers: h,
                                     body: try jsonBody(["model": "tiny-route-router@1", "prompt": "doc 1"])) { r in
                #expect(r.status == .badRequest && String(buffer: r.body).contains("is a router"))
            }
        }
        #expect(routes["reference", default: 0] > 0 && routes["local_fallback"] == nil, "\(routes)")
    }

    /// Down, slow, 429 past the deadline, a refused key: escalated requests are answered locally and flagged.
    @Test func aFailingReferenceFallsBackToTheLocalAnswer() async throws {
        let p = try RoutedRun.provider()
        let run = try RoutedRun.make(metric: "exact_match", provider: p)
        defer { try? FileManager.default.removeItem(at: run.dir) }
        let up = try #require(run.conversations.indices.first { run.escalates($0) == true }, "no eval example escalates: \(run.confidences) τ \(String(describing: run.spec.tau))")
        let local = run.conversations.indices.first { run.escalates($0) == false }
        let chatRoute = "POST /v1/chat/completions"

        struct Fault { var name: String; var env: [String: String]; var url: String?; var inject: [LoopbackAction]; var reason: String }
        let closed = try LoopbackServer(lifetime: 1) { _ in .drop }
        let deadURL = closed.url
        let faults = [
            Fault(name: "down", env: ["ROUTE_KEY": RoutedRun.key], url: deadURL, inject: [], reason: "127.0.0.1"),
            Fault(name: "429", env: ["ROUTE_KEY": RoutedRun.key], url: nil,
                  inject: [.json(429, #"{"error":{"message":"slow down","type":"rate_limit"}}"#, headers: ["Retry-After": "60"])], reason: "deadline"),
            Fault(name: "bad key", env: ["ROUTE_KEY": "sk-wrong-SECRET-1"], url: nil, inject: [], reason: "HTTP 401"),
            Fault(name: "slow", env: ["ROUTE_KEY": RoutedRun.key], url: nil, inject: [.delay(4, .json(200, "{}"))], reason: "deadline"),
        ]
        for fault in faults {
            p.inject(chatRoute, fault.inject)
            let f = try run.serveFixture(environment: fault.env) { c in
                c.routerTimeout = 2
                c.routerReferenceURL = fault.url
            }
            defer { f.cleanUp() }
            try await f.live { client in
                let r = try await routedChat(client, f, run.messages(up))
                #expect(r.status == .ok, "\(fault.name): \(r.body)")
                #expect(r.header == "local_fallback", "\(fault.name): \(r.body)")
                let o = try #require(try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any])
                let info = try #require(o["tune_route"] as? [String: Any])
                let reason = info["reason"] as? String ?? ""
                #expect(reason.contains("reference closed failed") && reason.contains(fault.reason), "\(fault.name): \(reason)")
                for secret in [RoutedRun.key, "sk-wrong-SECRET-1"] { #expect(!r.body.contains(secret), "\(fault.name)") }
                if let local {   // a confident request never calls the reference
                    let l = try await routedChat(client, f, run.messages(local))
                    #expect(l.header == "local", "\(fault.name): \(l.body)")
                }
                try await client.execute(uri: "/metrics", method: .get, headers: f.auth) { m in
                    #expect(String(buffer: m.body).contains(#"tune_router_requests_total{router="tiny-route-router",route="local_fallback"} 1"#), "\(fault.name)")
                }
            }
            let log = (try? String(contentsOf: f.dir.appendingPathComponent("access.log"), encoding: .utf8)) ?? ""
            for secret in [RoutedRun.key, "sk-wrong-SECRET-1"] { #expect(!log.contains(secret), "\(fault.name)") }
            _ = closed
        }
        // No key at all: the server refuses to start, naming the variable.
        let f = try run.serveFixture(environment: [:])
        defer { f.cleanUp() }
        let e = await #expect(throws: (any Error).self) { try await f.live { _ in } }
        #expect("\(String(describing: e))".contains("ROUTE_KEY"))
    }
}

/// The official openai SDK asks a served router (scripts/openai_router_check.py): `tune_route`, the
/// `x-tune-route` header and a streamed copy agree, and every route is the eval's.
@Suite struct ServeRouterSDKTests {
    @Test(.enabled(if: SDKVenv.problem == nil, "the openai SDK venv could not be made (see SDKVenv.problem); the SDK check was skipped"))
    func officialSDKGetsTheRoutedAnswers() async throws {
        let p = try RoutedRun.provider()
        let run = try RoutedRun.make(metric: "choice", provider: p)
        defer { try? FileManager.default.removeItem(at: run.dir) }
        let requests: [[String: Any]] = run.conversations.indices.map { i in
            ["messages": run.messages(i), "route": run.escalates(i).map { $0 ? "reference" : "local" } ?? NSNull()]
        }
        let file = run.dir.appendingPathComponent("requests.json")
        try JSONSerialization.data(withJSONObject: requests).write(to: file)
        let f = try run.serveFixture()
        defer { f.cleanUp() }
        let server = try await RunningServer.start(config: { var c = f.config; c.port = 0; return c }())
        let script = packageRoot.appendingPathComponent("scripts/openai_router_check.py").path
        let (status, output) = await Task.detached {
            SDKVenv.capture([SDKVenv.python, script], env: [
                "OPENAI_BASE_URL": "http://127.0.0.1:\(server.port)/v1", "OPENAI_API_KEY": f.config.apiKeys[0],
                "TUNE_ROUTER": "tiny-route-router@1", "TUNE_REQUESTS": file.path,
            ])
        }.value
        await server.stop()
        #expect(status == 0, "scripts/openai_router_check.py failed; its last lines:\n\(output.split(separator: "\n").suffix(25).joined(separator: "\n"))")
        #expect(output.contains(#""reference": "#) && output.contains(#""local": "#), "\(output)")
    }
}
