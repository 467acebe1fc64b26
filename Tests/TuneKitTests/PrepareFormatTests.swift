// PrepareFormatTests — every row format parses, auto-detection, and malformed rows give exact
// file:line reasons (the committed bad-rows.jsonl).
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct PrepareFormatTests {
    func parse(_ line: String, _ format: DatasetFormat = .auto) -> Result<DatasetRow, RowIssue> {
        JSONLReader.parse(data: Data(line.utf8), file: "x.jsonl", format: format).lines[0].result
    }

    @Test func everyFormatParses() throws {
        #expect(try parse(#"{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#).get()
            == .chat([.init(role: "system", content: "s"), .init(role: "user", content: "u"), .init(role: "assistant", content: "a")]))
        #expect(try parse(#"{"instruction":"i","input":"x","output":"o"}"#).get() == .alpaca(instruction: "i", input: "x", output: "o"))
        #expect(try parse(#"{"instruction":"i","output":"o"}"#).get() == .alpaca(instruction: "i", input: "", output: "o"))
        #expect(try parse(#"{"prompt":"p","completion":"c"}"#).get() == .completion(prompt: "p", completion: "c"))
        #expect(try parse(#"{"text":"t"}"#).get() == .text("t"))
    }

    @Test func declaredFormatOverridesDetection() throws {
        // A row with both keys: auto picks chat; declared `text` reads "text".
        let line = #"{"text":"plain","messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#
        #expect(try parse(line).get().format == .chat)
        #expect(try parse(line, .text).get() == .text("plain"))
        guard case .failure(let issue) = parse(#"{"text":"t"}"#, .completion) else { Issue.record("expected failure"); return }
        #expect(issue.reason == .missingField)
        #expect(issue.detail == #"no "prompt" key"#)
    }

    @Test func utf8Validator() {
        #expect(JSONLReader.firstInvalidUTF8(ArraySlice(Array("héllo ✓ 日本 🎉".utf8))) == nil)
        #expect(JSONLReader.firstInvalidUTF8(ArraySlice([0x61, 0xFF])) == 1)
        #expect(JSONLReader.firstInvalidUTF8(ArraySlice([0xC0, 0x80])) == 0)          // overlong
        #expect(JSONLReader.firstInvalidUTF8(ArraySlice([0x61, 0xED, 0xA0, 0x80])) == 1) // surrogate
        #expect(JSONLReader.firstInvalidUTF8(ArraySlice([0x61, 0x62, 0xE2, 0x82])) == 2) // truncated
    }

    @Test func badRowsGiveExactReasons() throws {
        let r = try JSONLReader.read(path: PrepareFixtures.badRows, format: .auto)
        let issues = r.lines.compactMap { line -> String? in
            if case .failure(let i) = line.result { return "\(i.source.line) \(i.reason.rawValue)" }
            return nil
        }
        #expect(issues == ["2 invalid_json", "3 missing_field", "4 invalid_role", "5 empty_content", "6 invalid_utf8",
                           "7 invalid_json", "9 not_an_object", "10 unknown_format", "11 wrong_type", "12 invalid_role"])
        #expect(r.blankLines == 1)
        #expect(r.lines.count == 13)
        let details = Dictionary(uniqueKeysWithValues: r.lines.compactMap { l -> (Int, String)? in
            if case .failure(let i) = l.result { return (i.source.line, i.description) } else { return nil }
        })
        #expect(details[3] == "\(PrepareFixtures.badRows):3: missing_field: no \"output\" key")
        #expect(details[4] == "\(PrepareFixtures.badRows):4: invalid_role: messages[1].role \"bot\" is not one of assistant, system, user")
        #expect(details[5] == "\(PrepareFixtures.badRows):5: empty_content: \"completion\" is empty")
        #expect(details[6] == "\(PrepareFixtures.badRows):6: invalid_utf8: invalid UTF-8 byte 0xFF at column 35")
        #expect(details[12] == "\(PrepareFixtures.badRows):12: invalid_role: no assistant message to train on")
    }

    @Test func roleRules() {
        func reason(_ msgs: String) -> DropReason? {
            if case .failure(let i) = parse(#"{"messages":"# + msgs + "}") { return i.reason }
            return nil
        }
        #expect(reason(#"[{"role":"assistant","content":"a"}]"#) == .invalidRole)
        #expect(reason(#"[{"role":"user","content":"u"},{"role":"system","content":"s"},{"role":"assistant","content":"a"}]"#) == .invalidRole)
        #expect(reason(#"[{"role":"user","content":"u"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]"#) == .invalidRole)
        #expect(reason(#"[{"role":"user","content":"u"},{"role":"assistant","content":"  "}]"#) == .emptyContent)
        #expect(reason(#"[]"#) == .emptyContent)
        #expect(reason(#""x""#) == .wrongType)
        #expect(reason(#"[{"role":"user","content":"u"},{"role":"assistant","content":"a"},{"role":"user","content":"u2"},{"role":"assistant","content":"b"}]"#) == nil)
    }

    @Test func crlfAndMissingFinalNewline() {
        let data = Data("{\"text\":\"a\"}\r\n\r\n{\"text\":\"b\"}".utf8)
        let r = JSONLReader.parse(data: data, file: "f", format: .auto)
        #expect(r.lines.map(\.source.line) == [1, 3])
        #expect(r.blankLines == 1)
        #expect(r.lines.allSatisfy { (try? $0.result.get()) != nil })
    }

    @Test func wrongTypesAreNamed() {
        func detail(_ line: String) -> String? {
            if case .failure(let i) = parse(line) { return "\(i.reason.rawValue): \(i.detail)" }
            return nil
        }
        #expect(detail(#"{"text": true}"#) == #"wrong_type: "text" must be a string, got a boolean"#)
        #expect(detail(#"{"text": 1}"#) == #"wrong_type: "text" must be a string, got a number"#)
        #expect(detail(#"{"text": null}"#) == #"wrong_type: "text" must be a string, got null"#)
        #expect(detail(#"{"text": ["a"]}"#) == #"wrong_type: "text" must be a string, got an array"#)
        #expect(detail(#"{"instruction": "i", "input": null, "output": "o"}"#) == nil)   // optional input may be null
    }
}
