// OpenAIClient — an OpenAI-compatible REST client over an `HTTPTransport` (libcurl in production, a
// loopback server in tests): bearer auth, JSON and multipart bodies, typed decoding, and retries by
// `RetryPolicy`. The API key lives only in the Authorization header: errors name the operation and
// the redacted URL, and any text a provider echoes back has the key replaced by "[redacted]".
//
//     let client = try OpenAIClient(baseURL: "https://api.openai.com/v1", apiKey: key)
//     let file = try client.uploadFile(jsonl, filename: "train.jsonl")
//     let job = try client.createJob(CreateFineTuningJob(model: "gpt-4o-mini-2024-07-18", trainingFile: file.id, …))
//     let now = try client.job(job.id)                       // poll until now.isTerminal

import Foundation

public struct OpenAIClient: Sendable {
    /// The API root, ending in `/v1` (added when the configured URL has no path).
    public let baseURL: String
    private let apiKey: String
    public var transport: any HTTPTransport
    public var retry: RetryPolicy
    public var clock: any RetryClock
    /// Per-request total and connect timeouts, seconds.
    public var requestTimeout: Double = 120
    public var connectTimeout: Double = 10
    /// Polled while waiting between tries; true aborts the wait with `TuneError(.interrupted)`.
    public var shouldStop: @Sendable () -> Bool = { false }
    /// Told about each retry (operation, attempt, wait, why) — for progress lines; never holds secrets.
    public var onRetry: @Sendable (String) -> Void = { _ in }
    private let jitter: JitterSource

    /// - Parameters:
    ///   - baseURL: `https://host[:port]` or `https://host/v1` (a URL without a path gets `/v1`).
    ///   - apiKey: sent as `Authorization: Bearer …`; never stored or printed.
    public init(baseURL: String, apiKey: String, transport: any HTTPTransport = CurlHTTPTransport(),
                retry: RetryPolicy = RetryPolicy(), clock: any RetryClock = SystemRetryClock(), jitterSeed: UInt64 = 0) throws {
        self.baseURL = try Self.apiRoot(baseURL)
        self.apiKey = apiKey
        self.transport = transport
        self.retry = retry
        self.clock = clock
        self.jitter = JitterSource(seed: jitterSeed)
    }

    /// Normalizes a configured base URL to the API root (`…/v1`); throws on a URL that is not http(s).
    public static func apiRoot(_ url: String) throws -> String {
        var u = url.trimmingCharacters(in: .whitespaces)
        while u.hasSuffix("/") { u.removeLast() }
        guard let c = URLComponents(string: u), let scheme = c.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let host = c.host, !host.isEmpty else {
            throw TuneError(.invalidArgument, "base URL \"\(redactedURL(url))\": expected http(s)://host[:port][/v1]")
        }
        return c.path.isEmpty ? u + "/v1" : u
    }

    // MARK: - Requests

    /// Sends `method path` with retries and decodes a 2xx body as `T`. `operation` names the call in errors.
    func call<T: Decodable>(_ operation: String, _ method: String, _ path: String, body: HTTPRequest.Body = .none,
                            jsonBody: Bool = false, as: T.Type, beforeRetry: (() throws -> T?)? = nil) throws -> T {
        var found: T? = nil
        let data = try send(operation, method, path, body: body, jsonBody: jsonBody, beforeRetry: beforeRetry.map { f in
            { () throws -> Data? in if let t = try f() { found = t; return Data() }; return nil }
        })
        if let found { return found }
        return try decode(T.self, data, operation: operation, method: method, path: path)
    }

    func decode<T: Decodable>(_ type: T.Type, _ data: Data, operation: String, method: String, path: String) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: data) } catch {
            let snippet = scrub(String(decoding: data.prefix(120), as: UTF8.self))
            throw TuneError(.remote, "\(operation) (\(method) \(redactedURL(baseURL + path))): the provider's reply is not the expected JSON "
                            + "(\(Self.describe(error))); it starts with \"\(snippet)\"")
        }
    }

    /// One operation with retries; returns the 2xx body. `beforeRetry`, when given, is asked before each
    /// retry whether the failed call took effect anyway (non-nil: stop retrying and return that).
    func send(_ operation: String, _ method: String, _ path: String, body: HTTPRequest.Body = .none, jsonBody: Bool = false,
              beforeRetry: (() throws -> Data?)? = nil) throws -> Data {
        let url = baseURL + path
        let shown = "\(operation) (\(method) \(redactedURL(url)))"
        var headers = [("Authorization", "Bearer \(apiKey)"), ("Accept", "application/json")]
        if jsonBody { headers.append(("Content-Type", "application/json")) }
        let request = HTTPRequest(method: method, url: url, headers: headers, body: body,
                                  timeout: requestTimeout, connectTimeout: connectTimeout)
        let start = clock.now()
        var attempt = 0
        while true {
            attempt += 1
            var why = ""
            var wait: Double? = nil
            do {
                let r = try transport.send(request)
                if (200..<300).contains(r.status) { return r.body }
                let detail = (try? JSONDecoder().decode(ProviderErrorBody.self, from: r.body))?.error
                let text = detail?.message.map(scrub) ?? scrub(String(decoding: r.body.prefix(200), as: UTF8.self))
                let code = [detail?.type, detail?.code].compactMap { $0 }.joined(separator: "/")
                why = "HTTP \(r.status)\(code.isEmpty ? "" : " \(code)"): \(text)"
                switch RetryPolicy.decide(status: r.status, headers: r.headers, error: detail) {
                case .fail:
                    throw TuneError(.remote, "\(shown): \(why)" + (attempt > 1 ? " (try \(attempt))" : ""))
                case .retry(let after): wait = after
                }
            } catch let e as HTTPTransportError {
                why = scrub(e.message)
            }
            guard attempt < retry.maxAttempts else {
                throw TuneError(.remote, "\(shown): gave up after \(attempt) tries; last: \(why)")
            }
            let delay = wait ?? retry.backoff(attempt: attempt, unit: jitter.next())
            let elapsed = clock.now() - start
            guard elapsed + delay <= retry.deadline else {
                throw TuneError(.remote, "\(shown): retrying in \(Self.seconds(delay)) would pass the \(Self.seconds(retry.deadline)) deadline "
                                + "after \(attempt) tries; last: \(why)")
            }
            onRetry("\(operation): \(why); retry \(attempt + 1)/\(retry.maxAttempts) in \(Self.seconds(delay))")
            try pause(delay)
            if let check = beforeRetry, let data = try check() { return data }
        }
    }

    /// Sleeps `seconds` in slices, checking `shouldStop` between them.
    func pause(_ seconds: Double) throws {
        var left = seconds
        repeat {
            if shouldStop() { throw TuneError(.interrupted, "stopped while waiting for the provider at \(redactedURL(baseURL))") }
            let step = min(left, 0.25)
            clock.sleep(step)
            left -= step
        } while left > 0
    }

    /// Replaces the API key wherever a provider echoed it.
    func scrub(_ s: String) -> String { apiKey.count >= 4 ? s.replacingOccurrences(of: apiKey, with: "[redacted]") : s }

    static func seconds(_ s: Double) -> String { s < 10 ? String(format: "%.2f s", s) : String(format: "%.0f s", s) }

    static func describe(_ e: Error) -> String {
        switch e as? DecodingError {
        case .keyNotFound(let k, let c)?: return "missing field \((c.codingPath + [k]).map(\.stringValue).joined(separator: "."))"
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?:
            return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: ".")): \(c.debugDescription)"
        case .dataCorrupted(let c)?: return "not JSON: \(c.underlyingError.map { "\($0.localizedDescription)" } ?? c.debugDescription)"
        default: return "\(e)"
        }
    }
}
