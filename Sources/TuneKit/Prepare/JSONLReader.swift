// JSONLReader — splits a JSONL file into numbered lines, checks UTF-8, decodes JSON, and parses each
// line as a `DatasetRow`. Every failure becomes a `RowIssue` with file:line; nothing is dropped silently.

import Engine
import Foundation

/// One line of a JSONL file, parsed or not.
public struct JSONLLine: Sendable {
    public var source: RowSource
    public var result: Result<DatasetRow, RowIssue>
}

extension RowIssue: Error {}

/// Reads JSONL files line by line (LF or CRLF; a missing final newline is fine).
public enum JSONLReader {
    /// What reading one file produced: parsed lines in order, plus how many lines were blank.
    public struct FileResult: Sendable {
        public var lines: [JSONLLine]
        public var blankLines: Int
        public var sha256: String
    }

    /// Reads and parses every non-blank line of `path` as `format`.
    public static func read(path: String, format: DatasetFormat) throws -> FileResult {
        var lines: [JSONLLine] = []
        let (blank, sha) = try scan(path: path, format: format) { line, _ in lines.append(line) }
        return FileResult(lines: lines, blankLines: blank, sha256: sha)
    }

    /// Streams `path` line by line without keeping parsed rows: `body` gets each non-blank line and
    /// the number of lines in the file (for progress). Returns (blank lines, file SHA-256).
    public static func scan(path: String, format: DatasetFormat,
                            _ body: (JSONLLine, _ totalLines: Int) throws -> Void) throws -> (blankLines: Int, sha256: String) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
            throw TuneError(.fileAccess, "\(path): no such file")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw TuneError(.fileAccess, "\(path): cannot read file (\(error.localizedDescription))")
        }
        return try data.withUnsafeBytes { raw in
            try scan(raw.bindMemory(to: UInt8.self), file: path, format: format, body)
        }
    }

    /// Parses JSONL bytes; `file` names them in row sources.
    public static func parse(data: Data, file: String, format: DatasetFormat) -> FileResult {
        var lines: [JSONLLine] = []
        let (blank, sha) = data.withUnsafeBytes { raw in
            // The body never throws, so neither does the scan.
            (try? scan(raw.bindMemory(to: UInt8.self), file: file, format: format) { line, _ in lines.append(line) }) ?? (0, "")
        }
        return FileResult(lines: lines, blankLines: blank, sha256: sha)
    }

    private static func scan(_ bytes: UnsafeBufferPointer<UInt8>, file: String, format: DatasetFormat,
                             _ body: (JSONLLine, Int) throws -> Void) throws -> (blankLines: Int, sha256: String) {
        var total = 0
        for b in bytes where b == 0x0A { total += 1 }
        if let last = bytes.last, last != 0x0A { total += 1 }
        var blank = 0, lineNo = 0, start = 0
        while start < bytes.count {
            lineNo += 1
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            var stop = end
            if stop > start, bytes[stop - 1] == 0x0D { stop -= 1 }
            let slice = ArraySlice(bytes[start..<stop])
            if slice.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                blank += 1
            } else {
                let source = RowSource(file: file, line: lineNo)
                try body(JSONLLine(source: source, result: parseLine(slice, source: source, format: format)), total)
            }
            start = end + 1
        }
        return (blank, SHA256.hash(bytes).hex)
    }

    /// One line: UTF-8 check, JSON decode, row parse.
    static func parseLine(_ line: ArraySlice<UInt8>, source: RowSource, format: DatasetFormat) -> Result<DatasetRow, RowIssue> {
        if let bad = firstInvalidUTF8(line) {
            let byte = String(line[line.startIndex + bad], radix: 16, uppercase: true)
            return .failure(RowIssue(source: source, reason: .invalidUTF8,
                                     detail: "invalid UTF-8 byte 0x\(byte) at column \(bad + 1)"))
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])
        } catch {
            return .failure(RowIssue(source: source, reason: .invalidJSON, detail: "not valid JSON (\(jsonMessage(error)))"))
        }
        do throws(RowProblem) {
            return .success(try RowParser.parse(json, format: format))
        } catch {
            return .failure(RowIssue(source: source, reason: error.reason, detail: error.detail))
        }
    }

    /// Foundation's JSON error text, shortened to its debug description when there is one.
    private static func jsonMessage(_ error: Error) -> String {
        let ns = error as NSError
        if let d = ns.userInfo["NSDebugDescription"] as? String { return d.hasSuffix(".") ? String(d.dropLast()) : d }
        return ns.localizedDescription
    }

    // MARK: - UTF-8

    /// The offset (from the slice start) of the first byte that is not part of a valid UTF-8
    /// sequence (overlongs, surrogates and values past U+10FFFF are invalid), or nil.
    public static func firstInvalidUTF8(_ s: ArraySlice<UInt8>) -> Int? {
        var i = s.startIndex
        while i < s.endIndex {
            let b = s[i]
            if b < 0x80 { i += 1; continue }
            let need: Int, lo: UInt8, hi: UInt8
            switch b {
            case 0xC2...0xDF: need = 1; lo = 0x80; hi = 0xBF
            case 0xE0: need = 2; lo = 0xA0; hi = 0xBF
            case 0xE1...0xEC, 0xEE...0xEF: need = 2; lo = 0x80; hi = 0xBF
            case 0xED: need = 2; lo = 0x80; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90; hi = 0xBF
            case 0xF1...0xF3: need = 3; lo = 0x80; hi = 0xBF
            case 0xF4: need = 3; lo = 0x80; hi = 0x8F
            default: return i - s.startIndex
            }
            guard i + need < s.endIndex else { return i - s.startIndex }
            guard s[i + 1] >= lo, s[i + 1] <= hi else { return i - s.startIndex }
            var k = 2
            while k <= need {
                guard s[i + k] & 0xC0 == 0x80 else { return i - s.startIndex }
                k += 1
            }
            i += need + 1
        }
        return nil
    }
}
