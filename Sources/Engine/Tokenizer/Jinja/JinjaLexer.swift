// JinjaLexer — splits a template into text, `{{ … }}` and `{% … %}` pieces and tokenizes the inside
// of tags, applying Jinja's whitespace rules as transformers configures them: trim_blocks (drop
// the first newline after a block or comment tag), lstrip_blocks (drop spaces and tabs before a
// block or comment tag that starts its line), `-` / `+` markers, and keep_trailing_newline=False.

import Foundation

/// Internal error of the interpreter; `JinjaTemplate` turns it into an `EngineError` naming the line.
enum JinjaFailure: Error {
    case syntax(String)
    case unsupported(String)
    /// `raise_exception(message)` in the template.
    case raised(String)
    case runtime(String)
}

struct JinjaToken: Equatable {
    enum Kind: Equatable { case name, string, int, float, op }
    let kind: Kind
    let text: String
    let line: Int
}

enum JinjaPiece: Equatable {
    case text(String)
    case output([JinjaToken], line: Int)
    case statement([JinjaToken], line: Int)
}

struct JinjaLexer {
    let s: [Unicode.Scalar]
    var i = 0
    var line = 1

    /// The pieces of `source`; errors carry the line they happened on.
    static func pieces(_ source: String) throws -> [JinjaPiece] {
        // Jinja normalizes newlines and, without keep_trailing_newline, drops one trailing newline.
        var src = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if src.hasSuffix("\n") { src.removeLast() }
        var lexer = JinjaLexer(s: Array(src.unicodeScalars))
        do { return try lexer.run() } catch let e as JinjaFailure { throw LocatedFailure(line: lexer.line, failure: e) }
    }

    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    func at(_ k: Int, _ text: String) -> Bool {
        var j = k
        for c in text.unicodeScalars {
            guard j < s.count, s[j] == c else { return false }
            j += 1
        }
        return true
    }

    mutating func run() throws -> [JinjaPiece] {
        var out: [JinjaPiece] = []
        var lineStarting = true
        while i < s.count {
            // Next tag opener.
            var j = i
            var kind: Unicode.Scalar = " "
            while j + 1 < s.count {
                if s[j] == "{", s[j + 1] == "{" || s[j + 1] == "%" || s[j + 1] == "#" { kind = s[j + 1]; break }
                j += 1
            }
            if kind == " " { j = s.count }
            var data = Array(s[i..<j])
            if kind == " " {
                if !data.isEmpty { out.append(.text(String(String.UnicodeScalarView(data)))) }
                break
            }
            let sign: Unicode.Scalar? = j + 2 < s.count && (s[j + 2] == "-" || s[j + 2] == "+") ? s[j + 2] : nil
            if sign == "-" {
                while let last = data.last, Self.isSpace(last) { data.removeLast() }
            } else if sign != "+", kind != "{" {
                let lpos = (data.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if lpos > 0 || lineStarting, lpos < data.count, data[lpos...].allSatisfy(Self.isSpace) {
                    data.removeSubrange(lpos...)
                }
            }
            if !data.isEmpty { out.append(.text(String(String.UnicodeScalarView(data)))) }
            line += s[i..<j].filter { $0 == "\n" }.count
            i = j + 2 + (sign == nil ? 0 : 1)
            let tagLine = line
            switch kind {
            case "#":
                // Comment: up to "#}"; "-#}" strips following whitespace, "#}" drops one newline.
                var k = i
                while k + 1 < s.count, !(s[k] == "#" && s[k + 1] == "}") { k += 1 }
                guard k + 1 < s.count else { throw JinjaFailure.syntax("missing end of comment tag") }
                line += s[i..<k].filter { $0 == "\n" }.count
                let strip = k > i && s[k - 1] == "-"
                i = k + 2
                lineStarting = skipAfterTag(strip: strip, trim: true)
            default:
                let isBlock = kind == "%"
                let (tokens, strip, plus) = try tagTokens(block: isBlock)
                if isBlock {
                    // Raw blocks are not tokenized by Jinja; say so rather than mis-render.
                    if tokens.first?.text == "raw", tokens.first?.kind == .name {
                        throw JinjaFailure.unsupported("{% raw %} blocks are not supported")
                    }
                    out.append(.statement(tokens, line: tagLine))
                } else {
                    out.append(.output(tokens, line: tagLine))
                }
                lineStarting = skipAfterTag(strip: strip, trim: isBlock && !plus)
            }
        }
        return out
    }

    /// Consumes whitespace after a tag end: all of it for "-", one newline for trim_blocks. Returns
    /// whether the consumed text ended with a newline (Jinja's `line_starting`).
    mutating func skipAfterTag(strip: Bool, trim: Bool) -> Bool {
        if strip {
            var ended = false
            while i < s.count, Self.isSpace(s[i]) {
                if s[i] == "\n" { line += 1 }
                ended = s[i] == "\n"
                i += 1
            }
            return ended
        }
        if trim, i < s.count, s[i] == "\n" {
            i += 1
            line += 1
            return true
        }
        return false
    }

    /// Tokens up to the tag end ("%}" or "}}") at bracket depth zero; returns them with whether the
    /// end carried "-" (strip) or "+".
    mutating func tagTokens(block: Bool) throws -> ([JinjaToken], Bool, Bool) {
        var tokens: [JinjaToken] = []
        var depth = 0
        let close: Unicode.Scalar = block ? "%" : "}"
        while true {
            while i < s.count, Self.isSpace(s[i]) {
                if s[i] == "\n" { line += 1 }
                i += 1
            }
            guard i < s.count else { throw JinjaFailure.syntax("unexpected end of template, expected '\(block ? "%}" : "}}")'") }
            if depth == 0 {
                if at(i, String(close) + "}") { i += 2; return (tokens, false, false) }
                if (s[i] == "-" || s[i] == "+"), at(i + 1, String(close) + "}") {
                    let sign = s[i]
                    i += 3
                    return (tokens, sign == "-", sign == "+")
                }
            }
            let c = s[i]
            if c == "'" || c == "\"" {
                tokens.append(JinjaToken(kind: .string, text: try stringLiteral(quote: c), line: line))
                continue
            }
            if c.properties.numericType == .decimal, c.isASCII {
                tokens.append(number())
                continue
            }
            if c == "_" || c.properties.isAlphabetic {
                let start = i
                while i < s.count, s[i] == "_" || s[i].properties.isAlphabetic || (s[i].isASCII && s[i].properties.numericType == .decimal) { i += 1 }
                tokens.append(JinjaToken(kind: .name, text: String(String.UnicodeScalarView(s[start..<i])), line: line))
                continue
            }
            var op: String? = nil
            for two in ["//", "**", "==", "!=", "<=", ">="] where at(i, two) { op = two; break }
            if op == nil, "+-*/%~<>=()[]{},.:|;".unicodeScalars.contains(c) { op = String(c) }
            guard let op else { throw JinjaFailure.syntax("unexpected character '\(c)'") }
            if op == "(" || op == "[" || op == "{" { depth += 1 }
            if op == ")" || op == "]" || op == "}" {
                guard depth > 0 else { throw JinjaFailure.syntax("unexpected '\(op)'") }
                depth -= 1
            }
            i += op.unicodeScalars.count
            tokens.append(JinjaToken(kind: .op, text: op, line: line))
        }
    }

    mutating func number() -> JinjaToken {
        let start = i
        func digits() { while i < s.count, (s[i].isASCII && s[i].properties.numericType == .decimal) || (s[i] == "_" && i + 1 < s.count && s[i + 1].isASCII && s[i + 1].properties.numericType == .decimal) { i += 1 } }
        digits()
        var isFloat = false
        if i + 1 < s.count, s[i] == ".", s[i + 1].isASCII, s[i + 1].properties.numericType == .decimal {
            isFloat = true
            i += 1
            digits()
        }
        if i < s.count, s[i] == "e" || s[i] == "E" {
            var k = i + 1
            if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
            if k < s.count, s[k].isASCII, s[k].properties.numericType == .decimal {
                isFloat = true
                i = k
                digits()
            }
        }
        let text = String(String.UnicodeScalarView(s[start..<i])).replacingOccurrences(of: "_", with: "")
        return JinjaToken(kind: isFloat ? .float : .int, text: text, line: line)
    }

    /// A quoted string with Python's unicode-escape decoding (unknown escapes keep their backslash).
    mutating func stringLiteral(quote: Unicode.Scalar) throws -> String {
        i += 1
        var out = String.UnicodeScalarView()
        while i < s.count {
            let c = s[i]
            i += 1
            if c == quote { return String(out) }
            if c == "\n" { line += 1 }
            guard c == "\\" else { out.append(c); continue }
            guard i < s.count else { break }
            let e = s[i]
            i += 1
            switch e {
            case "\n": line += 1  // line continuation
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "x", "u", "U":
                let n = e == "x" ? 2 : e == "u" ? 4 : 8
                guard i + n <= s.count, let v = UInt32(String(String.UnicodeScalarView(s[i..<i + n])), radix: 16),
                      let scalar = Unicode.Scalar(v) else { throw JinjaFailure.syntax("bad \\\(e) escape in string") }
                out.append(scalar)
                i += n
            case "0"..."7":
                var v = e.value - 48
                var n = 1
                while n < 3, i < s.count, ("0"..."7").contains(s[i]) { v = v * 8 + s[i].value - 48; i += 1; n += 1 }
                out.append(Unicode.Scalar(v)!)
            case "N": throw JinjaFailure.unsupported("\\N{…} escapes are not supported")
            default:
                out.append("\\")
                out.append(e)
            }
        }
        throw JinjaFailure.syntax("unterminated string")
    }
}

/// A failure and the template line it happened on.
struct LocatedFailure: Error {
    let line: Int
    let failure: JinjaFailure
}
