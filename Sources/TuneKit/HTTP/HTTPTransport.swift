// HTTPTransport — the seam between tune's HTTP users (the managed fine-tuning client, webhooks) and
// the wire. `CurlHTTPTransport` is the real one (libcurl); tests use a local server or a fake.
// Requests are synchronous and bounded: every request has a connect timeout and a total timeout.
// Header values are never put into errors or logs (they may carry an API key).

import Foundation

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    /// Header (name, value) pairs, in order. Values are secret as far as logging is concerned.
    public var headers: [(String, String)]
    public var body: Body
    /// Total time allowed for the request, seconds (connect + send + receive).
    public var timeout: Double
    /// Time allowed to establish the connection, seconds.
    public var connectTimeout: Double

    public enum Body: Sendable {
        case none
        case bytes(Data)
        /// multipart/form-data: fields in order.
        case multipart([MultipartField])
    }

    public struct MultipartField: Sendable {
        public var name: String
        public var value: Data
        /// Set for file parts (the `filename` of the part's Content-Disposition).
        public var filename: String?
        public var contentType: String?
        public init(name: String, value: Data, filename: String? = nil, contentType: String? = nil) {
            self.name = name; self.value = value; self.filename = filename; self.contentType = contentType
        }
    }

    public init(
        method: String, url: String, headers: [(String, String)] = [], body: Body = .none,
        timeout: Double = 60, connectTimeout: Double = 10
    ) {
        self.method = method; self.url = url; self.headers = headers; self.body = body
        self.timeout = timeout; self.connectTimeout = connectTimeout
    }

    /// A request whose body is `value` encoded as JSON (`Content-Type: application/json`).
    public static func json<T: Encodable>(
        _ method: String, _ url: String, _ value: T, headers: [(String, String)] = [], timeout: Double = 60
    ) throws -> HTTPRequest {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return HTTPRequest(
            method: method, url: url, headers: headers + [("Content-Type", "application/json")],
            body: .bytes(try encoder.encode(value)), timeout: timeout)
    }
}

/// One HTTP response. Header names are lower-cased; a repeated header keeps its last value.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String] = [:], body: Data = Data()) {
        self.status = status; self.headers = headers; self.body = body
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A request that got no HTTP response: DNS, connect, TLS, timeout or a dropped connection.
public struct HTTPTransportError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case timeout, connect, dropped, other }
    public let kind: Kind
    /// The URL without query string or credentials, the failure, and libcurl's code.
    public let message: String
    public var description: String { message }
}

/// Sends HTTP requests. `onData`, when given, receives the response body as it arrives (server-sent
/// events); return false from it to stop reading. The returned response's body is then empty.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest, onData: ((Data) -> Bool)?) throws -> HTTPResponse
}

extension HTTPTransport {
    public func send(_ request: HTTPRequest) throws -> HTTPResponse { try send(request, onData: nil) }
}

/// Removes credentials and the query string from a URL before it is shown to anyone.
public func redactedURL(_ url: String) -> String {
    guard var parts = URLComponents(string: url) else { return "<unparseable url>" }
    parts.user = nil
    parts.password = nil
    parts.query = nil
    return parts.string ?? "<unparseable url>"
}
