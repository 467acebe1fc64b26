// ManagedClientTests — fault injection against a local misbehaving server: 429 + Retry-After, 5xx,
// dropped connections, slow responses, malformed JSON, insufficient_quota, 400 validation errors and
// the total deadline, each as the retry policy specifies. Waits go through a fake clock, so the
// tests measure the waits the client chose without waiting for them.
import Engine
import Foundation
import LoopbackHTTP
import Testing
import TuneKit

/// A clock whose sleeps only add to `now`; records every sleep.
final class FakeClock: RetryClock, @unchecked Sendable {
    private let lock = NSLock()
    private var sleeps: [Double] = []
    private let start = SystemRetryClock().now()
    func now() -> Double { lock.lock(); defer { lock.unlock() }; return SystemRetryClock().now() - start + sleeps.reduce(0, +) }
    func sleep(_ seconds: Double) { lock.lock(); sleeps.append(seconds); lock.unlock() }
    var slept: Double { lock.lock(); defer { lock.unlock() }; return sleeps.reduce(0, +) }
}

let fakeKey = "sk-tune-test-SECRET-0123456789abcdef"

func makeClient(_ url: String, clock: FakeClock, retry: RetryPolicy = RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 8, deadline: 60),
                timeout: Double = 10) throws -> OpenAIClient {
    var c = try OpenAIClient(baseURL: url, apiKey: fakeKey, retry: retry, clock: clock, jitterSeed: 42)
    c.requestTimeout = timeout
    c.connectTimeout = 2
    return c
}

private let fileReply = LoopbackAction.json(200, #"{"id":"file-1","object":"file","bytes":3,"purpose":"fine-tune"}"#)

private func remoteError(_ body: () throws -> Void) -> TuneError? {
    do { try body(); return nil } catch let e as TuneError { return e } catch { return TuneError(.internal, "\(error)") }
}

@Suite(.serialized) struct ManagedClientTests {
    @Test func tooManyRequestsWaitsRetryAfter() throws {
        let script = Script([.json(429, #"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#, headers: ["Retry-After": "2"]),
                             .json(429, #"{"error":{"message":"slow down"}}"#, headers: ["retry-after-ms": "1500"]), fileReply])
        let server = try LoopbackServer(lifetime: 30, handler: script.next)
        let clock = FakeClock()
        let file = try makeClient(server.url, clock: clock).uploadFile(Data("{}\n".utf8), filename: "t.jsonl")
        #expect(file.id == "file-1")
        #expect(server.requests.count == 3)
        #expect(abs(clock.slept - 3.5) < 1e-9, "slept \(clock.slept)")
    }

    @Test func retryAfterAsHTTPDate() {
        let now = Date(timeIntervalSince1970: 1_700_000_000)   // Tue, 14 Nov 2023 22:13:20 GMT
        #expect(RetryPolicy.retryAfter(["retry-after": "Tue, 14 Nov 2023 22:13:27 GMT"], now: now) == 7)
        #expect(RetryPolicy.retryAfter(["retry-after": "Tue, 14 Nov 2023 22:13:00 GMT"], now: now) == 0)
        #expect(RetryPolicy.retryAfter(["retry-after": "soon"], now: now) == nil)
        #expect(RetryPolicy.decide(status: 503, headers: [:], error: nil) == .retry(after: nil))
        #expect(RetryPolicy.decide(status: 404, headers: [:], error: nil) == .fail)
    }

    @Test func serverErrorsBackOffWithSeededJitterThenSucceed() throws {
        let script = Script([.json(500, #"{"error":{"message":"boom"}}"#), .json(502, "bad gateway"), fileReply])
        let server = try LoopbackServer(lifetime: 30, handler: script.next)
        let clock = FakeClock()
        let policy = RetryPolicy(maxAttempts: 5, baseDelay: 1, maxDelay: 8, deadline: 60, jitter: 0.5)
        _ = try makeClient(server.url, clock: clock, retry: policy).uploadFile(Data("{}\n".utf8), filename: "t.jsonl")
        var rng = SplitMix64(seed: 42)
        let expected = policy.backoff(attempt: 1, unit: rng.nextUnitDouble()) + policy.backoff(attempt: 2, unit: rng.nextUnitDouble())
        #expect(server.requests.count == 3)
        #expect(abs(clock.slept - expected) < 1e-9 && expected >= 1.5 && expected <= 3, "slept \(clock.slept), expected \(expected)")
    }

    @Test func droppedConnectionIsRetried() throws {
        let script = Script([.drop, .raw(Data("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"id\"".utf8)), fileReply])
        let server = try LoopbackServer(lifetime: 30, handler: script.next)
        let clock = FakeClock()
        #expect(try makeClient(server.url, clock: clock).uploadFile(Data("x".utf8), filename: "t.jsonl").id == "file-1")
        #expect(server.requests.count == 3)
    }

    @Test func slowResponseTimesOut() throws {
        let server = try LoopbackServer(lifetime: 30) { _ in .delay(3, fileReply) }
        let clock = FakeClock()
        let t0 = Date()
        let e = remoteError { _ = try makeClient(server.url, clock: clock, retry: RetryPolicy(maxAttempts: 2, baseDelay: 0.1, deadline: 60), timeout: 0.4).job("ftjob-1") }
        #expect(e?.kind == .remote)
        #expect(e?.message.contains("gave up after 2 tries") == true && e?.message.lowercased().contains("timeout") == true, "\(e?.message ?? "")")
        #expect(Date().timeIntervalSince(t0) < 2.5)
    }

    @Test func malformedJSONIsAClearError() throws {
        let server = try LoopbackServer(lifetime: 30) { _ in .json(200, #"{"id": "ftjob-1", "status": 7"#) }
        let e = remoteError { _ = try makeClient(server.url, clock: FakeClock()).job("ftjob-1") }
        #expect(e?.kind == .remote)
        #expect(e?.message.hasPrefix("get fine-tuning job ftjob-1 (GET \(server.url)/v1/fine_tuning/jobs/ftjob-1): the provider's reply is not the expected JSON") == true,
                "\(e?.message ?? "")")
        #expect(server.requests.count == 1)   // a 2xx with a bad body is not retried
    }

    @Test func insufficientQuotaFailsAtOnce() throws {
        let server = try LoopbackServer(lifetime: 30) { _ in
            .json(429, #"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                  headers: ["Retry-After": "1"])
        }
        let clock = FakeClock()
        let e = remoteError { _ = try makeClient(server.url, clock: clock).uploadFile(Data("x".utf8), filename: "t.jsonl") }
        #expect(e?.message.contains("HTTP 429 insufficient_quota/insufficient_quota: You exceeded your current quota") == true, "\(e?.message ?? "")")
        #expect(server.requests.count == 1 && clock.slept == 0)
    }

    @Test func validationErrorFailsAtOnceWithTheProvidersMessage() throws {
        let server = try LoopbackServer(lifetime: 30) { _ in
            .json(400, #"{"error":{"message":"invalid training_file: file-9 has 3 lines, at least 10 are required","type":"invalid_request_error","param":"training_file"}}"#)
        }
        let clock = FakeClock()
        let body = CreateFineTuningJob(model: "m", trainingFile: "file-9")
        let e = remoteError { _ = try makeClient(server.url, clock: clock).createJob(body) }
        #expect(e?.message == "create fine-tuning job (POST \(server.url)/v1/fine_tuning/jobs): HTTP 400 invalid_request_error: invalid training_file: file-9 has 3 lines, at least 10 are required")
        #expect(server.requests.count == 1 && clock.slept == 0)
    }

    @Test func totalDeadlineIsRespected() throws {
        let server = try LoopbackServer(lifetime: 30) { _ in .json(503, #"{"error":{"message":"overloaded"}}"#) }
        let clock = FakeClock()
        let policy = RetryPolicy(maxAttempts: 20, baseDelay: 1, maxDelay: 4, deadline: 6, jitter: 0)
        let e = remoteError { _ = try makeClient(server.url, clock: clock, retry: policy).job("j") }
        // Waits 1 + 2 = 3 s; the next 4 s would end past 6 s, so it stops after the third try.
        #expect(e?.message.contains("would pass the 6.00 s deadline after 3 tries; last: HTTP 503: overloaded") == true, "\(e?.message ?? "")")
        #expect(server.requests.count == 3 && clock.slept == 3)
        // A Retry-After beyond the deadline is not waited for at all.
        let later = try LoopbackServer(lifetime: 30) { _ in .json(429, "{}", headers: ["Retry-After": "120"]) }
        let clock2 = FakeClock()
        let e2 = remoteError { _ = try makeClient(later.url, clock: clock2, retry: policy).job("j") }
        #expect(e2?.message.contains("retrying in 120 s would pass") == true && clock2.slept == 0, "\(e2?.message ?? "")")
    }

    @Test func theKeyIsSentButNeverShown() throws {
        let server = try LoopbackServer(lifetime: 30) { r in
            .json(401, #"{"error":{"message":"Incorrect API key provided: \#(r.headers["authorization"] ?? "")","code":"invalid_api_key"}}"#)
        }
        let e = remoteError { _ = try makeClient(server.url, clock: FakeClock()).listJobs() }
        #expect(server.requests.first?.headers["authorization"] == "Bearer \(fakeKey)")
        #expect(e != nil && !e!.message.contains(fakeKey) && e!.message.contains("[redacted]"), "\(e?.message ?? "")")
    }

    @Test func connectionRefusedIsATransportErrorRetried() throws {
        let server = try LoopbackServer(lifetime: 1) { _ in fileReply }
        let url = server.url
        server.stop()
        let clock = FakeClock()
        let e = remoteError { _ = try makeClient(url, clock: clock, retry: RetryPolicy(maxAttempts: 3, baseDelay: 0.5, deadline: 60, jitter: 0)).job("j") }
        #expect(e?.message.contains("gave up after 3 tries") == true && clock.slept == 1.5, "\(e?.message ?? "")")
    }
}

/// Replays actions in order; after the last, repeats it.
final class Script: @unchecked Sendable {
    private let lock = NSLock()
    private var actions: [LoopbackAction]
    init(_ actions: [LoopbackAction]) { self.actions = actions }
    var next: @Sendable (LoopbackRequest) -> LoopbackAction {
        { [self] _ in
            lock.lock(); defer { lock.unlock() }
            return actions.count > 1 ? actions.removeFirst() : actions[0]
        }
    }
}
