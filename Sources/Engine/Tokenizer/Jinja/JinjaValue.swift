// JinjaValue — the runtime values of the Jinja interpreter, with Python's semantics for truthiness,
// equality, str() and repr(), plus an order-preserving JSON reader and transformers' `tojson` writer.

import Foundation

/// A value inside a Jinja template: what Python objects the chat-template conventions pass in
/// (dicts, lists, strings, numbers, booleans, None) plus Jinja's own (undefined, namespace, callables).
public enum JinjaValue {
    /// An undefined name or missing attribute; `hint` names it for error messages.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    case dict(JinjaDict)
    case namespace(JinjaNamespace)
    case function(JinjaFunction)

    /// A dictionary from string keys, in insertion order.
    public static func object(_ pairs: KeyValuePairs<String, JinjaValue>) -> JinjaValue {
        var d = JinjaDict()
        for (k, v) in pairs { d[.string(k)] = v }
        return .dict(d)
    }
}

/// An insertion-ordered Python dict (keys compared with Python equality).
public struct JinjaDict {
    public private(set) var keys: [JinjaValue] = []
    public private(set) var values: [JinjaValue] = []
    public init() {}
    public var count: Int { keys.count }
    func index(of key: JinjaValue) -> Int? { keys.firstIndex { $0.pyEquals(key) } }
    public subscript(key: JinjaValue) -> JinjaValue? {
        get { index(of: key).map { values[$0] } }
        set {
            if let i = index(of: key) {
                if let newValue { values[i] = newValue } else { keys.remove(at: i); values.remove(at: i) }
            } else if let newValue {
                keys.append(key)
                values.append(newValue)
            }
        }
    }
    public subscript(key: String) -> JinjaValue? {
        get { self[.string(key)] }
        set { self[.string(key)] = newValue }
    }
    var pairs: [(JinjaValue, JinjaValue)] { Array(zip(keys, values)) }
}

/// `namespace(...)`: the one mutable object templates may write to (`{% set ns.x = … %}`).
public final class JinjaNamespace {
    var attributes = JinjaDict()
    init() {}
}

/// A callable: a global (`range`, `raise_exception`, …), a bound method (`'a b'.split`) or a macro.
public final class JinjaFunction {
    let name: String
    let body: (_ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue
    init(_ name: String, _ body: @escaping (_ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue) {
        self.name = name
        self.body = body
    }
}

// MARK: - Python semantics

extension JinjaValue {
    var isUndefined: Bool { if case .undefined = self { true } else { false } }

    /// Python truthiness (undefined is false).
    var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s): !s.isEmpty
        case .list(let l): !l.isEmpty
        case .dict(let d): d.count > 0
        case .namespace, .function: true
        }
    }

    /// The Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .dict: "dict"
        case .namespace: "Namespace"
        case .function: "function"
        }
    }

    /// A number as Double (bools count as 0/1, like Python).
    var asDouble: Double? {
        switch self {
        case .bool(let b): b ? 1 : 0
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }
    /// An int or bool as Int.
    var asInt: Int? {
        switch self {
        case .bool(let b): b ? 1 : 0
        case .int(let i): i
        default: nil
        }
    }

    /// Python `==`.
    func pyEquals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pyEquals($1) }
        case (.dict(let a), .dict(let b)):
            guard a.count == b.count else { return false }
            for (k, v) in a.pairs {
                guard let w = b[k], v.pyEquals(w) else { return false }
            }
            return true
        case (.namespace(let a), .namespace(let b)): return a === b
        case (.function(let a), .function(let b)): return a === b
        default:
            if let x = asInt, let y = other.asInt { return x == y }
            if let x = asDouble, let y = other.asDouble { return x == y }
            return false
        }
    }

    /// Python `str()`; undefined renders as "".
    var pyStr: String {
        switch self {
        case .undefined: ""
        case .string(let s): s
        default: pyRepr
        }
    }

    /// Python `repr()`.
    var pyRepr: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): Self.pyFloatRepr(d)
        case .string(let s): Self.pyStringRepr(s)
        case .list(let l): "[" + l.map(\.pyRepr).joined(separator: ", ") + "]"
        case .dict(let d): "{" + d.pairs.map { "\($0.pyRepr): \($1.pyRepr)" }.joined(separator: ", ") + "}"
        case .namespace(let n): "<Namespace " + JinjaValue.dict(n.attributes).pyRepr + ">"
        case .function(let f): "<function \(f.name)>"
        }
    }

    /// Python's `repr(float)`: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
    static func pyFloatRepr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description is also the shortest round-trip form; take its digits and exponent.
        var s = "\(abs(d))"
        var exp = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp = Int(s[s.index(after: e)...])!
            s = String(s[..<e])
        }
        var digits = s.replacingOccurrences(of: ".", with: "")
        let pointPos = (s.firstIndex(of: ".").map { s.distance(from: s.startIndex, to: $0) } ?? s.count)
        // Value = 0.digits * 10^(pointPos + exp) after stripping leading zeros.
        var decExp = pointPos + exp
        while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); decExp -= 1 }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        let sci = decExp - 1  // exponent in d.ddd form
        var out: String
        if sci >= -4 && sci < 16 {
            if decExp <= 0 {
                out = "0." + String(repeating: "0", count: -decExp) + digits
            } else if decExp >= digits.count {
                out = digits + String(repeating: "0", count: decExp - digits.count) + ".0"
            } else {
                let i = digits.index(digits.startIndex, offsetBy: decExp)
                out = digits[..<i] + "." + digits[i...]
            }
        } else {
            let mant = digits.count > 1 ? String(digits.first!) + "." + digits.dropFirst() : digits
            out = mant + "e" + (sci < 0 ? "-" : "+") + (abs(sci) < 10 ? "0" : "") + String(abs(sci))
        }
        return d < 0 ? "-" + out : out
    }

    /// Python's `repr(str)`.
    static func pyStringRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(c) == quote { out += "\\" + String(quote); continue }
                if isPyPrintable(c) { out.unicodeScalars.append(c); continue }
                let v = c.value
                if v < 0x100 { out += String(format: "\\x%02x", v) } else if v < 0x10000 { out += String(format: "\\u%04x", v) } else { out += String(format: "\\U%08x", v) }
            }
        }
        out.append(quote)
        return out
    }

    static func isPyPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator: return false
        default: return true
        }
    }
}

// MARK: - JSON

extension JinjaValue {
    /// Parses JSON keeping object key order (as Python's `json.loads` does).
    public static func parseJSON(_ text: String) throws -> JinjaValue {
        var p = JSONReader(scalars: Array(text.unicodeScalars))
        p.skipSpace()
        let v = try p.value()
        p.skipSpace()
        guard p.i == p.scalars.count else { throw p.fail("trailing characters") }
        return v
    }

    /// Python's `json.dumps(x, ensure_ascii=False, indent=…, separators=…, sort_keys=…)`, as
    /// transformers' `tojson` filter calls it.
    func toJSON(indent: String?, separators: (String, String)?, sortKeys: Bool) throws -> String {
        let (itemSep, keySep) = separators ?? (indent == nil ? (", ", ": ") : (",", ": "))
        var out = ""
        func write(_ v: JinjaValue, _ level: Int) throws {
            switch v {
            case .none: out += "null"
            case .bool(let b): out += b ? "true" : "false"
            case .int(let i): out += String(i)
            case .double(let d):
                out += d.isNaN ? "NaN" : d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : Self.pyFloatRepr(d)
            case .string(let s): out += Self.jsonString(s)
            case .list(let l):
                if l.isEmpty { out += "[]"; return }
                out += "["
                for (n, e) in l.enumerated() {
                    if n > 0 { out += itemSep }
                    if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                    try write(e, level + 1)
                }
                if let indent { out += "\n" + String(repeating: indent, count: level) }
                out += "]"
            case .dict(let d):
                if d.count == 0 { out += "{}"; return }
                var pairs = d.pairs
                if sortKeys {
                    guard pairs.allSatisfy({ if case .string = $0.0 { true } else { false } }) else {
                        throw JinjaFailure.runtime("tojson: sort_keys needs string keys")
                    }
                    pairs.sort { $0.0.pyStr.unicodeScalars.lexicographicallyPrecedes($1.0.pyStr.unicodeScalars) }
                }
                out += "{"
                for (n, (k, e)) in pairs.enumerated() {
                    if n > 0 { out += itemSep }
                    if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                    switch k {
                    case .string(let s): out += Self.jsonString(s)
                    case .int, .double, .bool, .none: out += Self.jsonString(try JinjaValue.list([k]).toJSON(indent: nil, separators: nil, sortKeys: false).dropFirst().dropLast().description)
                    default: throw JinjaFailure.runtime("keys must be str, int, float, bool or None, not \(k.typeName)")
                    }
                    out += keySep
                    try write(e, level + 1)
                }
                if let indent { out += "\n" + String(repeating: indent, count: level) }
                out += "}"
            case .undefined, .namespace, .function:
                throw JinjaFailure.runtime("Object of type \(v.typeName) is not JSON serializable")
            }
        }
        try write(self, 0)
        return out
    }

    /// A JSON string literal with `ensure_ascii=False`: only `"`, `\` and control characters escaped.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}

/// A small JSON reader that keeps object order and tells ints from floats (as Python's json does).
private struct JSONReader {
    let scalars: [Unicode.Scalar]
    var i = 0

    func fail(_ what: String) -> EngineError { EngineError(.format, "JSON at offset \(i): \(what)") }

    mutating func skipSpace() {
        while i < scalars.count, [" ", "\n", "\r", "\t"].contains(scalars[i]) { i += 1 }
    }

    mutating func literal(_ word: String, _ v: JinjaValue) throws -> JinjaValue {
        let w = Array(word.unicodeScalars)
        guard i + w.count <= scalars.count, Array(scalars[i..<i + w.count]) == w else { throw fail("unexpected character") }
        i += w.count
        return v
    }

    mutating func value() throws -> JinjaValue {
        guard i < scalars.count else { throw fail("unexpected end") }
        switch scalars[i] {
        case "{":
            i += 1
            var d = JinjaDict()
            skipSpace()
            if i < scalars.count, scalars[i] == "}" { i += 1; return .dict(d) }
            while true {
                skipSpace()
                guard i < scalars.count, scalars[i] == "\"" else { throw fail("expected a string key") }
                let k = try string()
                skipSpace()
                guard i < scalars.count, scalars[i] == ":" else { throw fail("expected ':'") }
                i += 1
                skipSpace()
                d[.string(k)] = try value()
                skipSpace()
                guard i < scalars.count else { throw fail("unexpected end") }
                if scalars[i] == "," { i += 1; continue }
                if scalars[i] == "}" { i += 1; return .dict(d) }
                throw fail("expected ',' or '}'")
            }
        case "[":
            i += 1
            var l: [JinjaValue] = []
            skipSpace()
            if i < scalars.count, scalars[i] == "]" { i += 1; return .list(l) }
            while true {
                skipSpace()
                l.append(try value())
                skipSpace()
                guard i < scalars.count else { throw fail("unexpected end") }
                if scalars[i] == "," { i += 1; continue }
                if scalars[i] == "]" { i += 1; return .list(l) }
                throw fail("expected ',' or ']'")
            }
        case "\"": return .string(try string())
        case "t": return try literal("true", .bool(true))
        case "f": return try literal("false", .bool(false))
        case "n": return try literal("null", .none)
        default:
            let start = i
            var isFloat = false
            while i < scalars.count, "+-0123456789.eE".unicodeScalars.contains(scalars[i]) {
                if ".eE".unicodeScalars.contains(scalars[i]) { isFloat = true }
                i += 1
            }
            let text = String(String.UnicodeScalarView(scalars[start..<i]))
            if !isFloat, let n = Int(text) { return .int(n) }
            guard let d = Double(text), !text.isEmpty else { throw fail("bad number '\(text)'") }
            return .double(d)
        }
    }

    mutating func string() throws -> String {
        i += 1
        var out = String.UnicodeScalarView()
        while i < scalars.count {
            let c = scalars[i]
            i += 1
            if c == "\"" { return String(out) }
            guard c == "\\" else { out.append(c); continue }
            guard i < scalars.count else { break }
            let e = scalars[i]
            i += 1
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "/": out.append("/")
            case "\\": out.append("\\")
            case "\"": out.append("\"")
            case "u":
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 1 < scalars.count, scalars[i] == "\\", scalars[i + 1] == "u" {
                    i += 2
                    let lo = try hex4()
                    v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
                }
                guard let s = Unicode.Scalar(v) else { throw fail("bad \\u escape") }
                out.append(s)
            default: throw fail("bad escape")
            }
        }
        throw fail("unterminated string")
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= scalars.count, let v = UInt32(String(String.UnicodeScalarView(scalars[i..<i + 4])), radix: 16) else { throw fail("bad \\u escape") }
        i += 4
        return v
    }
}
