// ServeRouteTests — in-process route tests: auth (401 says nothing), 413, JSONL validation errors with
// line numbers in the job's error, OpenAI error shapes, rate limiting, metrics text.
import Foundation
import Hummingbird
import Testing
@testable import TuneServer
import Engine

@Suite struct ServeRouteTests {
    @Test func unauthorizedRequestsGet401AndLearnNothing() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        try await f.live { client in
            var bodies: [String] = []
            for headers: HTTPFields in [[:], [.authorization: "Bearer sk-wrong"], [.authorization: "Bearer "], [.authorization: "sk-test-1"],
                                        [.authorization: "Bearer sk-test-1x"]] {
                for (uri, method) in [("/v1/models", HTTPRequest.Method.get), ("/v1/files", .post), ("/v1/nope", .get), ("/metrics", .get)] {
                    try await client.execute(uri: uri, method: method, headers: headers) { r in
                        #expect(r.status == .unauthorized, "\(uri) \(headers)")
                        bodies.append(String(buffer: r.body))
                    }
                }
            }
            #expect(Set(bodies).count == 1, "every 401 body is the same")
            let o = try JSONSerialization.jsonObject(with: Data(bodies[0].utf8)) as? [String: Any]
            let e = o?["error"] as? [String: Any]
            #expect(e?["code"] as? String == "invalid_api_key" && e?["type"] as? String == "invalid_request_error")
            #expect(!bodies[0].contains("sk-test"))
            for key in f.config.apiKeys {
                try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer \(key)"]) { r in
                    #expect(r.status == .ok)
                    let ids = (try json(r)["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String }
                    #expect(ids == ["tiny"])
                }
            }
        }
        // The access log names the key by id, never the key itself.
        let log = try String(contentsOfFile: f.config.accessLogPath!, encoding: .utf8)
        let lines = log.split(separator: "\n")
        #expect(lines.count >= 22)
        #expect(!log.contains("sk-test") && !log.contains("sk-wrong"))
        let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any]
        #expect(last?["key_id"] as? String == AuthMiddleware.keyID("sk-test-2"))
        #expect(last?["status"] as? Int == 200 && last?["path"] as? String == "/v1/models" && last?["method"] as? String == "GET")
    }

    @Test func oversizedUploadGets413() async throws {
        let f = try ServeFixture { c, _ in c.maxUploadBytes = 2048 }
        defer { f.cleanUp() }
        try await f.live { client in
            let (body, type) = multipart(file: ServeFixture.chatJSONL(100))
            var h = f.auth
            h[.contentType] = type
            try await client.execute(uri: "/v1/files", method: .post, headers: h, body: body) { r in
                #expect(r.status == .contentTooLarge)
                let o = try json(r); #expect((o["error"] as? [String: Any])?["code"] as? String == "request_too_large")
            }
            // A small one still fits, and nothing was stored by the refused one.
            _ = try await client.upload(ServeFixture.chatJSONL(2), headers: f.auth)
            try await client.execute(uri: "/v1/files", method: .get, headers: f.auth) { r in
                let o = try json(r); #expect((o["data"] as? [Any])?.count == 1)
            }
        }
    }

    @Test func malformedJSONLFailsValidationWithLineNumbers() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        let bad = ServeFixture.chatJSONL(1)
            + "{not json\n"
            + #"{"messages": [{"role": "bot", "content": "hi"}]}"# + "\n"
            + #"[1, 2]"# + "\n"
            + #"{"messages": [{"role": "user", "content": "only a question"}]}"# + "\n"
            + ServeFixture.chatJSONL(1)
        try await f.live { client in
            let file = try await client.upload(bad, headers: f.auth)
            let job = try await client.createJob(["model": "tiny", "training_file": file], headers: f.auth)
            #expect(job["status"] as? String == "failed")
            let error = job["error"] as? [String: Any]
            #expect(error?["code"] as? String == "invalid_training_file")
            #expect(error?["param"] as? String == "training_file")
            let message = error?["message"] as? String ?? ""
            #expect(message.contains("line 2: not valid JSON"), "\(message)")
            #expect(message.contains(#"line 3: messages[0].role: expected one of system, user, assistant, got "bot""#), "\(message)")
            #expect(message.contains("line 4: expected a JSON object, got a list"), "\(message)")
            #expect(message.contains("line 5: no assistant message to train on"), "\(message)")
            #expect(!message.contains("line 1:") && !message.contains("line 6:"))
            // The lifecycle is in the events: validating, then the failure.
            let id = job["id"] as! String
            try await client.execute(uri: "/v1/fine_tuning/jobs/\(id)/events", method: .get, headers: f.auth) { r in
                let messages = (try json(r)["data"] as? [[String: Any]])?.compactMap { $0["message"] as? String } ?? []
                #expect(messages.last?.hasPrefix("Validating training file") == true)
                #expect(messages.first?.contains("line 2") == true)
            }
        }
    }

    @Test func badRequestsGetOpenAIErrors() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        try await f.live { client in
            var h = f.auth
            h[.contentType] = "application/json"
            func expectError(_ uri: String, _ method: HTTPRequest.Method, _ body: [String: Any]?, status: HTTPResponse.Status,
                             param: String?, code: String? = nil) async throws {
                try await client.execute(uri: uri, method: method, headers: h, body: try body.map(jsonBody)) { r in
                    #expect(r.status == status, "\(uri): \(String(buffer: r.body))")
                    let e = try json(r)["error"] as? [String: Any]
                    #expect(e?["message"] is String)
                    if let param { #expect(e?["param"] as? String == param, "\(String(buffer: r.body))") }
                    if let code { #expect(e?["code"] as? String == code, "\(String(buffer: r.body))") }
                }
            }
            try await expectError("/v1/fine_tuning/jobs", .post, ["model": "tiny"], status: .badRequest, param: "training_file",
                                  code: "missing_required_parameter")
            try await expectError("/v1/fine_tuning/jobs", .post, ["model": "gpt-4o", "training_file": "file-x"], status: .badRequest,
                                  param: "model", code: "model_not_available")
            try await expectError("/v1/fine_tuning/jobs", .post, ["model": "tiny", "training_file": "file-x"], status: .badRequest,
                                  param: "training_file", code: "invalid_file")
            try await expectError("/v1/fine_tuning/jobs", .post,
                                  ["model": "tiny", "training_file": "file-x", "hyperparameters": ["n_epochs": "many"]],
                                  status: .badRequest, param: "hyperparameters.n_epochs")
            try await expectError("/v1/fine_tuning/jobs/ftjob-nope", .get, nil, status: .notFound, param: "fine_tuning_job_id")
            try await expectError("/v1/files/file-nope", .get, nil, status: .notFound, param: "id")
            try await expectError("/v1/models/ft:tiny::ftjob-nope", .get, nil, status: .notFound, param: "model", code: "model_not_found")
            try await expectError("/v1/chat/completions", .post, ["model": "nope", "messages": [["role": "user", "content": "x"]]],
                                  status: .notFound, param: "model", code: "model_not_found")
            try await expectError("/v1/chat/completions", .post,
                                  ["model": "tiny", "messages": [["role": "user", "content": "x"]], "temperature": 3],
                                  status: .badRequest, param: "temperature")
            try await expectError("/v1/chat/completions", .post,
                                  ["model": "tiny", "messages": [["role": "user", "content": "x"]], "max_tokens": 1_000_000],
                                  status: .badRequest, param: "max_tokens", code: "context_length_exceeded")
            try await expectError("/v1/no/such/route", .get, nil, status: .notFound, param: nil, code: "unknown_url")
        }
    }

    @Test func rateLimitAnswers429WithRetryAfter() async throws {
        let f = try ServeFixture { c, _ in
            c.rateLimit = 0.001   // refill negligible even on a loaded machine
            c.rateBurst = 3
        }
        defer { f.cleanUp() }
        try await f.live { client in
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<5 {
                try await client.execute(uri: "/v1/models", method: .get, headers: f.auth) { r in
                    statuses.append(r.status)
                    if r.status == .tooManyRequests {
                        #expect(Int(r.headers[.retryAfter] ?? "") ?? 0 >= 1)
                        let o = try json(r); #expect((o["error"] as? [String: Any])?["code"] as? String == "rate_limit_exceeded")
                    }
                }
            }
            #expect(statuses == [.ok, .ok, .ok, .tooManyRequests, .tooManyRequests])
            // Another key has its own bucket.
            try await client.execute(uri: "/v1/models", method: .get, headers: [.authorization: "Bearer sk-test-2"]) { r in
                #expect(r.status == .ok)
            }
        }
    }

    @Test func metricsTextParses() async throws {
        let f = try ServeFixture()
        defer { f.cleanUp() }
        try await f.live { client in
            _ = try await client.upload(ServeFixture.chatJSONL(3), headers: f.auth)
            try await client.execute(uri: "/v1/models", method: .get, headers: f.auth) { _ in }
            try await client.execute(uri: "/v1/models", method: .get) { _ in }
            try await client.execute(uri: "/metrics", method: .get, headers: f.auth) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: r.body)
                let sample = try Regex(#"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?[0-9.eE+-]+(Inf)?$"#)
                var values: [String: Double] = [:]
                for line in text.split(separator: "\n") {
                    if line.hasPrefix("# HELP ") || line.hasPrefix("# TYPE ") { continue }
                    #expect(line.wholeMatch(of: sample) != nil, "not a sample line: \(line)")
                    let parts = line.split(separator: " ")
                    values[String(parts[0])] = Double(parts[1])
                }
                #expect(values[#"tune_http_requests_total{method="GET",route="/v1/models",status="200"}"#] == 1)
                #expect(values[#"tune_http_requests_total{method="POST",route="/v1/files",status="200"}"#] == 1)
                #expect(values[#"tune_http_request_duration_seconds_bucket{route="/v1/models",le="+Inf"}"#]
                        == values[#"tune_http_request_duration_seconds_count{route="/v1/models"}"#])
                #expect(values["tune_job_queue_depth"] == 0)
                #expect(values[#"tune_fine_tuning_jobs{status="queued"}"#] == 0)
                #expect(values["tune_tokens_trained_total"] == 0)
            }
        }
    }
}
