// LiveClient — route tests run against a real `tune serve` listening on 127.0.0.1 (port 0), driven
// over HTTP by libcurl (TuneKit's CurlHTTPTransport, see CurlSend.swift). Same call shape as
// HummingbirdTesting's router client, without its dependencies (AsyncHTTPClient, NIOSSL/BoringSSL
// would add many minutes to every clean build).
import Engine
import Foundation
import Hummingbird
@testable import TuneServer

struct TestResponse {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: ByteBuffer
}

protocol TestClientProtocol: Sendable {
    func execute<R>(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?,
                    _ check: (TestResponse) async throws -> R) async throws -> R
}

extension TestClientProtocol {
    func execute<R>(uri: String, method: HTTPRequest.Method, headers: HTTPFields = [:],
                    _ check: (TestResponse) async throws -> R) async throws -> R {
        try await execute(uri: uri, method: method, headers: headers, body: nil, check)
    }
}

struct LiveClient: TestClientProtocol {
    let port: Int

    func execute<R>(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?,
                    _ check: (TestResponse) async throws -> R) async throws -> R {
        let pairs = headers.map { ($0.name.rawName, $0.value) }
        let data = body.map { Data($0.readableBytesView) }
        let url = "http://127.0.0.1:\(port)\(uri)"
        // libcurl blocks: run it on a Dispatch thread, never on the (2-thread) cooperative pool the
        // in-process server's handlers need.
        let r = try await withCheckedThrowingContinuation { (k: CheckedContinuation<(status: Int, headers: [String: String], body: Data), any Error>) in
            DispatchQueue.global().async {
                k.resume(with: Result { try curlSend(method: method.rawValue, url: url, headers: pairs, body: data) })
            }
        }
        var fields = HTTPFields()
        for (name, value) in r.headers { if let n = HTTPFields.Element.Name(name) { fields[n] = value } }
        return try await check(TestResponse(status: .init(code: r.status), headers: fields, body: ByteBuffer(bytes: r.body)))
    }
}

extension ServeFixture {
    /// Runs `body` against this fixture's server, started on a free loopback port and stopped
    /// gracefully afterwards (SIGTERM's path: finish requests, checkpoint and requeue training).
    func live<R>(_ body: (LiveClient) async throws -> R) async throws -> R {
        var c = config
        c.host = "127.0.0.1"
        c.port = 0
        let server = try await RunningServer.start(config: c)
        do {
            let result = try await body(LiveClient(port: server.port))
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }
}
