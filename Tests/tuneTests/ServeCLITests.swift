// ServeCLITests — the built `tune serve` on 127.0.0.1 with port 0: it prints where it listens, answers
// with and without a key, stops cleanly on SIGTERM, and refuses a public address without keys.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct ServeCLITests {
    @Test func servesOnLoopbackAndStopsOnSIGTERM() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 1, weightType: .q8_0)
        // First line: {"event":"listening","port":N,...}
        let serve = try StartedServe(["serve", "--model", model, "--state-dir", dir.appendingPathComponent("state").path, "--port", "0", "--json",
                                      "--access-log", dir.appendingPathComponent("access.log").path],
                                     env: ["TUNE_SERVE_API_KEYS": "sk-cli-1,sk-cli-2"])
        let p = serve.process
        defer { if p.isRunning { p.terminate() } }
        let port = try #require(serve.port)
        #expect(port > 0 && serve.info["model"] as? String == "tiny")

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
