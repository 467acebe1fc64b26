// ServeUnitTests — the pure pieces: multipart parsing, stop strings over streamed text, the JSONL
// validator, the token bucket, the fine-tuned model id.
import Engine
import Foundation
import Testing
@testable import TuneServer

@Suite struct ServeUnitTests {
    @Test func multipartReadsFieldsAndFiles() throws {
        let (body, type) = multipart(file: "a\r\nb\n", filename: "x.jsonl")
        let boundary = try #require(Multipart.boundary(contentType: type))
        let parts = try Multipart.parse(Data(body.readableBytesView), boundary: boundary)
        #expect(parts.map(\.name) == ["purpose", "file"])
        #expect(String(decoding: parts[0].data, as: UTF8.self) == "fine-tune")
        #expect(parts[1].filename == "x.jsonl" && parts[1].contentType == "application/jsonl")
        #expect(String(decoding: parts[1].data, as: UTF8.self) == "a\r\nb\n")
        #expect(Multipart.boundary(contentType: "application/json") == nil)
        #expect(throws: APIError.self) { try Multipart.parse(Data("--b\r\nno end".utf8), boundary: "b") }
    }

    @Test func stopStringsAcrossPieces() {
        var m = StopMatcher(stops: ["END", "\n\n"])
        var out = ""
        for piece in ["Hel", "lo E", "N", "x; a", "b E", "ND more"] { out += m.feed(piece) }
        #expect(out == "Hello ENx; ab ")
        #expect(m.stopped)
        #expect(m.finish() == "")
        var n = StopMatcher(stops: ["zz"])
        #expect(n.feed("abz") == "ab")
        #expect(n.finish() == "z")
        var none = StopMatcher(stops: [])
        #expect(none.feed("abc") == "abc")
    }

    @Test func validatorCountsRowsAndCapsProblems() {
        let good = #"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#
        let v = ChatJSONLValidator.validate(Data((good + "\n" + good + "\r\n").utf8))
        #expect(v.rows == 2 && v.problems.isEmpty)
        let many = ChatJSONLValidator.validate(Data(String(repeating: "x\n", count: 15).utf8))
        #expect(many.problems.count == 10 && many.more == 5)
        #expect(ChatJSONLValidator.validate(Data()).problems.first?.message.contains("empty") == true)
        let blank = ChatJSONLValidator.validate(Data((good + "\n\n" + good + "\n").utf8))
        #expect(blank.problems.map(\.line) == [2])
        let content = ChatJSONLValidator.validate(Data(#"{"messages": [{"role": "user", "content": null}]}"#.utf8))
        #expect(content.problems.first?.description == "line 1: messages[0].content: expected a string, got null")
    }

    @Test func tokenBucketRefills() {
        let b = TokenBuckets(rate: 2, burst: 2)
        #expect(b.take("k", now: 0) == nil)
        #expect(b.take("k", now: 0) == nil)
        #expect(b.take("k", now: 0) == 0.5)
        #expect(b.take("other", now: 0) == nil)
        #expect(b.take("k", now: 0.5) == nil)
        #expect(TokenBuckets(rate: 0, burst: 1).take("k") == nil)
    }

    @Test func keysFileAndEnvironment() throws {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("keys-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: p) }
        try "# team keys\nsk-a\n\n  sk-b  \n".write(toFile: p, atomically: true, encoding: .utf8)
        #expect(try ServeConfig.loadKeys(file: p, environment: "sk-c, ,sk-d") == ["sk-a", "sk-b", "sk-c", "sk-d"])
        try "sk a\n".write(toFile: p, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try ServeConfig.loadKeys(file: p, environment: nil) }
        var c = ServeConfig(modelPath: "m/SmolLM2.Q4_1.gguf", stateDirectory: "s")
        #expect(c.modelID == "SmolLM2.Q4_1")
        c.host = "0.0.0.0"
        #expect(throws: (any Error).self) { try c.validate() }
        c.allowNoAuth = true
        try c.validate()
        #expect(ModelHost.fineTunedID(base: "b", suffix: nil, job: "ftjob-1") == "ft:b::ftjob-1")
    }
}
