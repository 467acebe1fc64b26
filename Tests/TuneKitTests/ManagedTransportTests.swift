// ManagedTransportTests — CurlHTTPTransport against the loopback server: methods, headers, JSON and
// multipart bodies arrive as sent; streamed bodies reach the callback and can be stopped; transport
// failures have the right kind and a URL without credentials.
import Engine
import Foundation
import LoopbackHTTP
import Testing
import TuneKit

@Suite struct ManagedTransportTests {
    @Test func requestsArriveAsSent() throws {
        let server = try LoopbackServer(lifetime: 30) { r in .json(201, #"{"echo":"\#(r.method) \#(r.path)"}"#, headers: ["X-Reply": "yes"]) }
        let t = CurlHTTPTransport()
        let json = try HTTPRequest.json("POST", server.url + "/v1/x?limit=2", ["a": 1], headers: [("Authorization", "Bearer k")])
        let r = try t.send(json)
        #expect(r.status == 201 && r.headers["x-reply"] == "yes" && r.bodyText == #"{"echo":"POST /v1/x"}"#)
        let multipart = HTTPRequest(method: "POST", url: server.url + "/v1/files", body: .multipart([
            .init(name: "purpose", value: Data("fine-tune".utf8)),
            .init(name: "file", value: Data("{\"messages\":[]}\n".utf8), filename: "train.jsonl", contentType: "application/jsonl")]))
        _ = try t.send(multipart)
        _ = try t.send(HTTPRequest(method: "DELETE", url: server.url + "/v1/files/f1"))
        _ = try t.send(HTTPRequest(method: "POST", url: server.url + "/v1/cancel", body: .bytes(Data())))
        let reqs = server.requests
        #expect(reqs.count == 4)
        #expect(reqs[0].query == "limit=2" && reqs[0].headers["authorization"] == "Bearer k" && reqs[0].headers["content-type"] == "application/json")
        #expect(String(decoding: reqs[0].body, as: UTF8.self) == #"{"a":1}"#)
        let body = String(decoding: reqs[1].body, as: UTF8.self)
        #expect(reqs[1].headers["content-type"]?.hasPrefix("multipart/form-data; boundary=") == true)
        #expect(body.contains("name=\"purpose\"\r\n\r\nfine-tune\r\n") && body.contains("filename=\"train.jsonl\"") && body.contains("{\"messages\":[]}\n"), "\(body)")
        #expect(reqs[2].method == "DELETE" && reqs[3].method == "POST" && reqs[3].headers["content-length"] == "0")
    }

    @Test func streamingBodyReachesTheCallbackAndCanStop() throws {
        let payload = String(repeating: "data: {\"x\":1}\n\n", count: 2000)
        let server = try LoopbackServer(lifetime: 30) { _ in .respond(status: 200, headers: [:], body: Data(payload.utf8)) }
        let box = Box()
        let r = try CurlHTTPTransport().send(HTTPRequest(method: "GET", url: server.url + "/stream")) { chunk in box.add(chunk.count); return true }
        #expect(r.status == 200 && r.body.isEmpty && box.total == payload.utf8.count)
        let stopped = Box()
        _ = try CurlHTTPTransport().send(HTTPRequest(method: "GET", url: server.url + "/stream")) { chunk in stopped.add(chunk.count); return false }
        #expect(stopped.total > 0 && stopped.total < payload.utf8.count)
    }

    @Test func failuresHaveKindsAndRedactedURLs() throws {
        let slow = try LoopbackServer(lifetime: 30) { _ in .delay(2, .json(200, "{}")) }
        do {
            _ = try CurlHTTPTransport().send(HTTPRequest(method: "GET", url: slow.url.replacingOccurrences(of: "http://", with: "http://user:pw@") + "/x?key=s3cret", timeout: 0.3))
            Issue.record("expected a timeout")
        } catch let e as HTTPTransportError {
            #expect(e.kind == .timeout && !e.message.contains("s3cret") && !e.message.contains("pw@"), "\(e.message)")
        }
        let dropper = try LoopbackServer(lifetime: 30) { _ in .drop }
        do {
            _ = try CurlHTTPTransport().send(HTTPRequest(method: "GET", url: dropper.url + "/x"))
            Issue.record("expected a dropped connection")
        } catch let e as HTTPTransportError {
            #expect(e.kind == .dropped, "\(e.message)")
        }
    }
}

final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add(_ k: Int) { lock.lock(); n += k; lock.unlock() }
    var total: Int { lock.lock(); defer { lock.unlock() }; return n }
}
