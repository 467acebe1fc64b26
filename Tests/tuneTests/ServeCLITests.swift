// ServeCLITests — the built `tune serve` on 127.0.0.1 with port 0: it prints where it listens, answers
// with and without a key, stops cleanly on SIGTERM, and refuses a public address without keys.
import Foundation
import Testing
import TuneKit

@Suite struct ServeCLITests {
    @Test func servesOnLoopbackAndStopsOnSIGTERM() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 1, weightType: .q8_0)
        let p = Process()
        p.executableURL = tuneBinary
        p.arguments = ["serve", "--model", model, "--state-dir", dir.appendingPathComponent("state").path, "--port", "0", "--json",
                       "--access-log", dir.appendingPathComponent("access.log").path]
        var env = ProcessInfo.processInfo.environment
        env["TUNE_SERVE_API_KEYS"] = "sk-cli-1,sk-cli-2"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        defer { if p.isRunning { p.terminate() } }
        // First line: {"event":"listening","port":N,...}
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let info = try JSONSerialization.jsonObject(with: line.split(separator: 0x0A).first ?? Data()) as? [String: Any]
        let port = try #require(info?["port"] as? Int)
        #expect(port > 0 && info?["model"] as? String == "tiny")

        let http = CurlHTTPTransport()
        let url = "http://127.0.0.1:\(port)/v1/models"
        #expect(try http.send(HTTPRequest(method: "GET", url: url)).status == 401)
        let ok = try http.send(HTTPRequest(method: "GET", url: url, headers: [("Authorization", "Bearer sk-cli-2")]))
        #expect(ok.status == 200 && ok.bodyText.contains(#""id":"tiny""#))

        p.terminate()   // SIGTERM
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!p.isRunning, "tune serve stops on SIGTERM")
        #expect(p.terminationStatus == 0)
        let log = try String(contentsOf: dir.appendingPathComponent("access.log"), encoding: .utf8)
        #expect(log.split(separator: "\n").count == 2 && !log.contains("sk-cli"))
    }

    @Test func refusesAPublicAddressWithoutKeys() throws {
        let r = try tune(["serve", "--model", "nonexistent.gguf", "--host", "0.0.0.0", "--port", "0"], env: ["TUNE_SERVE_API_KEYS": ""])
        #expect(r.status == 65)
        #expect(r.stderr.contains("refusing to serve on 0.0.0.0 without API keys"), "\(r.stderr)")
    }
}
