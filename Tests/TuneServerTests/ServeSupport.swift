// ServeSupport — a tiny model, chat data and an in-process `tune serve` app for the route tests.
import Foundation
import Hummingbird
import Testing
@testable import TuneServer
import Engine

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct ServeFixture {
    let dir: URL
    var config: ServeConfig

    /// A temp dir with a tiny Q8_0 model; the server's state lives in `dir/state`.
    init(keys: [String] = ["sk-test-1", "sk-test-2"], configure: (inout ServeConfig, URL) throws -> Void = { _, _ in }) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 1, weightType: .q8_0)
        config = ServeConfig(modelPath: model, stateDirectory: dir.appendingPathComponent("state").path)
        config.apiKeys = keys
        config.accessLogPath = dir.appendingPathComponent("access.log").path
        config.checkpointEvery = 2
        config.rateLimit = 0
        try configure(&config, dir)
    }


    var auth: HTTPFields { config.apiKeys.isEmpty ? [:] : [.authorization: "Bearer \(config.apiKeys[0])"] }

    func cleanUp() { try? FileManager.default.removeItem(at: dir) }

    /// `n` valid chat rows.
    static func chatJSONL(_ n: Int = 12) -> String {
        (0..<n).map { i in
            #"{"messages": [{"role": "user", "content": "item \#(i) please"}, {"role": "assistant", "content": "label \#(i % 3)"}]}"#
        }.joined(separator: "\n") + "\n"
    }
}

/// A multipart/form-data upload body and its Content-Type.
func multipart(file: String, filename: String = "train.jsonl", purpose: String = "fine-tune") -> (ByteBuffer, String) {
    let b = "tuneboundary\(UUID().uuidString.prefix(8))"
    var s = "--\(b)\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n\(purpose)\r\n"
    s += "--\(b)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(filename)\"\r\nContent-Type: application/jsonl\r\n\r\n"
    s += file + "\r\n--\(b)--\r\n"
    return (ByteBuffer(string: s), "multipart/form-data; boundary=\(b)")
}

func json(_ r: TestResponse) throws -> [String: Any] {
    let any = try JSONSerialization.jsonObject(with: Data(r.body.readableBytesView))
    guard let o = any as? [String: Any] else { throw NotAnObject(body: String(buffer: r.body)) }
    return o
}

struct NotAnObject: Error { var body: String }

func jsonBody(_ o: [String: Any]) throws -> ByteBuffer { ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: o)) }

extension TestClientProtocol {
    /// Uploads `file` and returns its id.
    func upload(_ file: String, headers: HTTPFields) async throws -> String {
        let (body, type) = multipart(file: file)
        var h = headers
        h[.contentType] = type
        return try await execute(uri: "/v1/files", method: .post, headers: h, body: body) { r in
            #expect(r.status == .ok, "\(String(buffer: r.body))")
            return try json(r)["id"] as? String ?? ""
        }
    }

    func createJob(_ params: [String: Any], headers: HTTPFields) async throws -> [String: Any] {
        var h = headers
        h[.contentType] = "application/json"
        return try await execute(uri: "/v1/fine_tuning/jobs", method: .post, headers: h, body: try jsonBody(params)) { r in
            #expect(r.status == .ok, "\(String(buffer: r.body))")
            return try json(r)
        }
    }

    func job(_ id: String, headers: HTTPFields) async throws -> [String: Any] {
        try await execute(uri: "/v1/fine_tuning/jobs/\(id)", method: .get, headers: headers) { try json($0) }
    }

    /// Polls the job until `done(status)` or `seconds` of polling pass; returns the last job object.
    func waitForJob(_ id: String, headers: HTTPFields, seconds: Double = 120, until done: (String) -> Bool) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        _ = try await pollUntil(seconds: seconds, every: .milliseconds(50)) {
            last = try await job(id, headers: headers)
            return done(last["status"] as? String ?? "")
        }
        return last
    }
}

/// Calls `body` every `every` until it returns true (→ true) or the polls add up to `seconds` (→ false).
/// The budget counts polls, not wall time: in the full test run, synchronous tests (CLI subprocesses,
/// the Slurm sample pipeline) can hold every cooperative thread for minutes, and the server's job worker
/// runs on that pool too. A wall-clock deadline then expired while neither side could run (a job seen
/// "queued" after 235 s); counted polls only advance while the test — and so the server — gets to run.
func pollUntil(seconds: Double, every: Duration, _ body: () async throws -> Bool) async throws -> Bool {
    let ms = Double(every.components.seconds) * 1000 + Double(every.components.attoseconds) / 1e15
    for _ in 0..<max(1, Int(seconds * 1000 / max(ms, 1))) {
        if try await body() { return true }
        try await Task.sleep(for: every)
    }
    return false
}
