// Middleware — what every request passes, outermost first: the access log + metrics (which also turn
// any error into OpenAI's error shape), bearer-token auth (constant-time, 401 bodies say nothing),
// the request-size limit (413) and the per-key token-bucket rate limit (429 + Retry-After).

import Engine
import Foundation
import Hummingbird
import TuneKit

/// Logs one JSON line per request and records its metrics; converts thrown errors into API errors.
struct AccessLogMiddleware: RouterMiddleware {
    typealias Context = ServeContext
    let metrics: ServeMetrics
    let log: AccessLog?

    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response: Response
        do { response = try await next(request, context) } catch {
            response = try Self.apiError(error).response(from: request, context: context)
        }
        let route = context.endpointPath ?? "unmatched"   // route patterns only: bounded label values
        let (method, path, status, keyID) = (request.method.rawValue, request.uri.path, response.status.code, context.info.keyID)
        let (metrics, log) = (self.metrics, self.log)
        @Sendable func record() {
            let d = ContinuousClock.now - start
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
            metrics.observe(method: method, route: route, status: status, seconds: seconds)
            log?.write(method: method, path: path, status: status, seconds: seconds, keyID: keyID)
        }
        guard response.body.contentLength == nil else { record(); return response }
        // A streamed body (server-sent events): the request ends when its last byte is written.
        let inner = response.body
        response.body = ResponseBody { writer in
            defer { record() }
            try await inner.write(writer)
        }
        return response
    }

    /// Any error as an API error: ours pass through, Hummingbird's keep their status with a plain message,
    /// anything else is a 500 whose details stay in the server log.
    static func apiError(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as TuneError:
            switch e.kind {
            case .invalidArgument, .badData: return APIError.invalid(e.message)
            case .notFound: return APIError.notFound(e.message)
            default:
                FileHandle.standardError.write(Data("tune serve: \(e.message)\n".utf8))
                return APIError.server("The server had an error while processing your request.")
            }
        case let e as any HTTPResponseError:
            switch e.status {
            case .notFound: return APIError(.notFound, "Unknown URL or method.", code: "unknown_url")
            case .contentTooLarge: return APIError(.contentTooLarge, "The request body is too large.", code: "request_too_large")
            default: return APIError(e.status, e.status.reasonPhrase)
            }
        default:
            FileHandle.standardError.write(Data("tune serve: \(error)\n".utf8))
            return APIError.server("The server had an error while processing your request.")
        }
    }
}

/// Checks `Authorization: Bearer <key>` against every configured key in constant time.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ServeContext
    /// SHA-256 digests of the keys: comparing digests makes every comparison the same length.
    let digests: [[UInt8]]

    init(keys: [String]) { digests = keys.map { Array(SHA256.hash(Array($0.utf8)).bytes) } }

    /// The id a key is logged under: a hash prefix, never the key.
    static func keyID(_ key: String) -> String { "key-" + String(SHA256.hex(Data(key.utf8)).prefix(10)) }

    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        guard !digests.isEmpty else {
            context.info.keyID = "anonymous"
            return try await next(request, context)
        }
        let header = request.headers[.authorization] ?? ""
        let given = header.hasPrefix("Bearer ") ? String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces) : ""
        let d = Array(SHA256.hash(Array(given.utf8)).bytes)
        var match = false
        for k in digests {                        // no early exit: time does not depend on which key matched
            var diff: UInt8 = 0
            for i in 0..<k.count { diff |= k[i] ^ d[i] }
            match = match || (diff == 0 && !given.isEmpty)
        }
        guard match else { throw APIError.unauthorized }
        context.info.keyID = Self.keyID(given)
        return try await next(request, context)
    }
}

/// 413 before reading a body whose declared length is over the limit (streamed bodies are cut at the limit when read).
struct SizeLimitMiddleware: RouterMiddleware {
    typealias Context = ServeContext
    let maxBytes: Int
    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        if let l = request.headers[.contentLength].flatMap(Int.init), l > maxBytes {
            throw APIError(.contentTooLarge, "The request body is \(l) bytes; this server accepts at most \(maxBytes).", code: "request_too_large")
        }
        return try await next(request, context)
    }
}

/// A token bucket per key id: `rate` requests per second, bursts of `burst`.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = ServeContext
    let buckets: TokenBuckets
    let metrics: ServeMetrics
    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        if let wait = buckets.take(context.info.keyID ?? "anonymous") {
            metrics.addRateLimited()
            var e = APIError(.tooManyRequests, "Rate limit reached for this API key; retry after \(Int(wait.rounded(.up))) s.",
                             type: "requests", code: "rate_limit_exceeded")
            e.headers[.retryAfter] = "\(max(1, Int(wait.rounded(.up))))"
            throw e
        }
        return try await next(request, context)
    }
}

final class TokenBuckets: @unchecked Sendable {
    let rate: Double, burst: Double
    private let lock = NSLock()
    private var buckets: [String: (tokens: Double, at: Double)] = [:]
    init(rate: Double, burst: Double) { self.rate = rate; self.burst = burst }

    /// Takes one token; nil when allowed, else the seconds until a token is available.
    func take(_ key: String, now: Double = ProcessInfo.processInfo.systemUptime) -> Double? {
        guard rate > 0 else { return nil }
        lock.lock(); defer { lock.unlock() }
        var b = buckets[key] ?? (burst, now)
        b.tokens = min(burst, b.tokens + (now - b.at) * rate)
        b.at = now
        defer { buckets[key] = b }
        if b.tokens >= 1 { b.tokens -= 1; return nil }
        return (1 - b.tokens) / rate
    }
}

/// One JSON line per request to stderr or a file: time, method, path (no query), status, duration, key id.
final class AccessLog: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    init(path: String?) throws {
        if let path {
            if !FileManager.default.fileExists(atPath: path) {
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw TuneError(.fileAccess, "\(path): cannot create the access log")
                }
            }
            guard let h = FileHandle(forWritingAtPath: path) else { throw TuneError(.fileAccess, "\(path): cannot open the access log") }
            h.seekToEndOfFile()
            handle = h
        } else {
            handle = FileHandle.standardError
        }
    }

    func write(method: String, path: String, status: Int, seconds: Double, keyID: String?) {
        let line: [String: Any] = [
            "ts": ISO8601DateFormatter().string(from: Date()), "method": method, "path": path, "status": status,
            "duration_ms": (seconds * 1e5).rounded() / 100, "key_id": keyID ?? NSNull(),
        ]
        guard var data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        data.append(0x0A)
        lock.lock(); defer { lock.unlock() }
        handle.write(data)
    }
}
