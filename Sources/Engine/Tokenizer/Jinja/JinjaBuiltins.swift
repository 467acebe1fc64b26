// JinjaBuiltins — the globals (range, namespace, dict, raise_exception, strftime_now), Python
// string/dict methods, filters and tests the interpreter supports, each with Jinja's / Python's
// semantics. `supportedFilters` / `supportedTests` are checked at parse time so an unknown name is
// an error naming its line even in a branch that never runs.

import Foundation

enum JinjaBuiltins {
    static let supportedFilters: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "first", "float", "indent", "int", "items",
        "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse",
        "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper",
        "wordcount",
    ]
    static let supportedTests: Set<String> = [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "even", "false", "float", "ge", ">=",
        "greaterthan", "gt", ">", "in", "integer", "iterable", "le", "<=", "lessthan", "lower", "lt", "<", "mapping",
        "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "true", "undefined", "upper",
    ]
}

/// Positional-or-keyword argument `index`/`name`, if given.
private func argument(_ args: [JinjaValue], _ kwargs: [(String, JinjaValue)], _ index: Int, _ name: String) -> JinjaValue? {
    if index < args.count { return args[index] }
    return kwargs.first { $0.0 == name }?.1
}

private func isPySpace(_ c: Unicode.Scalar) -> Bool { JinjaLexer.isSpace(c) }

/// Python `str.strip/lstrip/rstrip(chars)`.
func pyStrip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
    let set = chars.map { Set($0.unicodeScalars) }
    func strip(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPySpace(c) }
    var scalars = Array(s.unicodeScalars)[...]
    if left { while let f = scalars.first, strip(f) { scalars = scalars.dropFirst() } }
    if right { while let l = scalars.last, strip(l) { scalars = scalars.dropLast() } }
    return String(String.UnicodeScalarView(scalars))
}

/// Python `str.split(sep=None, maxsplit=-1)`.
func pySplit(_ s: String, sep: String?, maxsplit: Int) throws -> [String] {
    let scalars = Array(s.unicodeScalars)
    var out: [String] = []
    guard let sep else {
        var i = 0
        while i < scalars.count {
            while i < scalars.count, isPySpace(scalars[i]) { i += 1 }
            guard i < scalars.count else { break }
            if maxsplit >= 0, out.count == maxsplit {
                var rest = Array(scalars[i...])
                while let l = rest.last, isPySpace(l) { rest.removeLast() }
                out.append(String(String.UnicodeScalarView(rest)))
                return out
            }
            let start = i
            while i < scalars.count, !isPySpace(scalars[i]) { i += 1 }
            out.append(String(String.UnicodeScalarView(scalars[start..<i])))
        }
        return out
    }
    let sepScalars = Array(sep.unicodeScalars)
    guard !sepScalars.isEmpty else { throw JinjaFailure.runtime("empty separator") }
    var start = 0, i = 0
    while i + sepScalars.count <= scalars.count {
        if (maxsplit < 0 || out.count < maxsplit), Array(scalars[i..<i + sepScalars.count]) == sepScalars {
            out.append(String(String.UnicodeScalarView(scalars[start..<i])))
            i += sepScalars.count
            start = i
        } else {
            i += 1
        }
    }
    out.append(String(String.UnicodeScalarView(scalars[start...])))
    return out
}

/// Python `str.splitlines()`.
func pySplitLines(_ s: String) -> [String] {
    let breaks: Set<UInt32> = [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029]
    var out: [String] = []
    var cur = String.UnicodeScalarView()
    let scalars = Array(s.unicodeScalars)
    var i = 0
    while i < scalars.count {
        let c = scalars[i]
        if breaks.contains(c.value) {
            out.append(String(cur))
            cur = String.UnicodeScalarView()
            if c == "\r", i + 1 < scalars.count, scalars[i + 1] == "\n" { i += 1 }
        } else {
            cur.append(c)
        }
        i += 1
    }
    if !cur.isEmpty { out.append(String(cur)) }
    return out
}

/// Python `str.capitalize()` (first character upper, rest lower).
func pyCapitalize(_ s: String) -> String {
    guard let first = s.first else { return "" }
    return first.uppercased() + s.dropFirst().lowercased()
}

/// Python `str.title()`.
func pyTitle(_ s: String) -> String {
    var out = ""
    var previousCased = false
    for c in s {
        let isCased = c.isLetter && (c.isUppercase || c.isLowercase || c.uppercased() != c.lowercased())
        if isCased {
            out += previousCased ? c.lowercased() : c.uppercased()
        } else {
            out.append(c)
        }
        previousCased = isCased
    }
    return out
}

extension JinjaInterpreter {
    // MARK: - Globals

    func globals() -> [String: JinjaValue] {
        var g: [String: JinjaValue] = [:]
        g["range"] = .function(JinjaFunction("range") { args, _ in
            let ints = try args.map { v -> Int in
                guard let i = v.asInt else { throw JinjaFailure.runtime("'\(v.typeName)' object cannot be interpreted as an integer") }
                return i
            }
            let (start, stop, step): (Int, Int, Int)
            switch ints.count {
            case 1: (start, stop, step) = (0, ints[0], 1)
            case 2: (start, stop, step) = (ints[0], ints[1], 1)
            case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
            default: throw JinjaFailure.runtime("range expected 1 to 3 arguments, got \(ints.count)")
            }
            guard step != 0 else { throw JinjaFailure.runtime("range() arg 3 must not be zero") }
            let values = Array(stride(from: start, to: stop, by: step))
            guard values.count <= 100_000 else { throw JinjaFailure.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
            return .list(values.map { .int($0) })
        })
        g["namespace"] = .function(JinjaFunction("namespace") { args, kwargs in
            let ns = JinjaNamespace()
            for a in args {
                guard case .dict(let d) = a else { throw JinjaFailure.runtime("namespace() takes a dict or keyword arguments") }
                for (k, v) in d.pairs { ns.attributes[k] = v }
            }
            for (k, v) in kwargs { ns.attributes[.string(k)] = v }
            return .namespace(ns)
        })
        g["dict"] = .function(JinjaFunction("dict") { args, kwargs in
            var d = JinjaDict()
            for a in args {
                guard case .dict(let src) = a else { throw JinjaFailure.unsupported("dict() of a non-dict is not supported") }
                for (k, v) in src.pairs { d[k] = v }
            }
            for (k, v) in kwargs { d[.string(k)] = v }
            return .dict(d)
        })
        g["raise_exception"] = .function(JinjaFunction("raise_exception") { args, _ in
            throw JinjaFailure.raised(args.first?.pyStr ?? "")
        })
        let now = now, timeZone = timeZone
        g["strftime_now"] = .function(JinjaFunction("strftime_now") { args, _ in
            guard case .string(let format)? = args.first else { throw JinjaFailure.runtime("strftime_now() needs a format string") }
            return .string(try strftime(format, now, timeZone))
        })
        return g
    }

    // MARK: - Methods

    /// A bound Python method of `obj` named `name`, or nil when `obj` has none by that name.
    func method(_ obj: JinjaValue, _ name: String) throws -> JinjaValue? {
        func m(_ body: @escaping ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) -> JinjaValue {
            .function(JinjaFunction(name, body))
        }
        switch obj {
        case .string(let s):
            func optionalString(_ v: JinjaValue?) throws -> String? {
                guard let v else { return nil }
                if case .none = v { return nil }
                guard case .string(let x) = v else { throw JinjaFailure.runtime("\(name) arg must be None or str") }
                return x
            }
            switch name {
            case "strip", "lstrip", "rstrip":
                return m { args, kw in
                    .string(pyStrip(s, chars: try optionalString(argument(args, kw, 0, "chars")), left: name != "rstrip", right: name != "lstrip"))
                }
            case "split":
                return m { args, kw in
                    let parts = try pySplit(s, sep: try optionalString(argument(args, kw, 0, "sep")), maxsplit: argument(args, kw, 1, "maxsplit")?.asInt ?? -1)
                    return .list(parts.map { .string($0) })
                }
            case "splitlines": return m { _, _ in .list(pySplitLines(s).map { .string($0) }) }
            case "startswith", "endswith":
                return m { args, kw in
                    guard let p = argument(args, kw, 0, "prefix") else { throw JinjaFailure.runtime("\(name)() takes at least 1 argument") }
                    let candidates: [JinjaValue]
                    if case .list(let l) = p { candidates = l } else { candidates = [p] }
                    for c in candidates {
                        guard case .string(let x) = c else { throw JinjaFailure.runtime("\(name) first arg must be str or a tuple of str") }
                        let hit = name == "startswith" ? s.unicodeScalars.starts(with: x.unicodeScalars)
                            : s.unicodeScalars.reversed().starts(with: x.unicodeScalars.reversed())
                        if hit { return .bool(true) }
                    }
                    return .bool(false)
                }
            case "upper": return m { _, _ in .string(s.uppercased()) }
            case "lower": return m { _, _ in .string(s.lowercased()) }
            case "title": return m { _, _ in .string(pyTitle(s)) }
            case "capitalize": return m { _, _ in .string(pyCapitalize(s)) }
            case "replace":
                return m { args, kw in
                    guard case .string(let old)? = argument(args, kw, 0, "old"), case .string(let new)? = argument(args, kw, 1, "new") else {
                        throw JinjaFailure.runtime("replace() takes two strings")
                    }
                    return .string(try pyReplace(s, old, new, count: argument(args, kw, 2, "count")?.asInt ?? -1))
                }
            case "find", "count":
                return m { args, kw in
                    guard case .string(let x)? = argument(args, kw, 0, "sub") else { throw JinjaFailure.runtime("\(name)() needs a string") }
                    if name == "count" { return .int(x.isEmpty ? s.unicodeScalars.count + 1 : try pySplit(s, sep: x, maxsplit: -1).count - 1) }
                    guard let r = s.range(of: x, options: .literal) else { return .int(-1) }
                    return .int(s.unicodeScalars.distance(from: s.unicodeScalars.startIndex, to: r.lowerBound))
                }
            case "join":
                return m { args, _ in
                    guard let a = args.first else { throw JinjaFailure.runtime("join() takes exactly one argument") }
                    return .string(try self.iterate(a).map { v -> String in
                        guard case .string(let x) = v else { throw JinjaFailure.runtime("sequence item: expected str instance, \(v.typeName) found") }
                        return x
                    }.joined(separator: s))
                }
            case "isdigit", "isalpha", "isspace", "isupper", "islower":
                return m { _, _ in
                    guard !s.isEmpty else { return .bool(false) }
                    switch name {
                    case "isdigit": return .bool(s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal || $0.properties.numericType == .digit })
                    case "isalpha": return .bool(s.allSatisfy(\.isLetter))
                    case "isspace": return .bool(s.unicodeScalars.allSatisfy(isPySpace))
                    case "isupper": return .bool(s.contains(where: \.isUppercase) && s.uppercased() == s)
                    default: return .bool(s.contains(where: \.isLowercase) && s.lowercased() == s)
                    }
                }
            case "format": return m { args, kw in .string(try pyFormat(s, args, kw)) }
            default: return nil
            }
        case .dict(let d):
            switch name {
            case "items": return m { _, _ in .list(d.pairs.map { .list([$0, $1]) }) }
            case "keys": return m { _, _ in .list(d.keys) }
            case "values": return m { _, _ in .list(d.values) }
            case "get":
                return m { args, kw in
                    guard let key = argument(args, kw, 0, "key") else { throw JinjaFailure.runtime("get expected at least 1 argument") }
                    return d[key] ?? argument(args, kw, 1, "default") ?? .none
                }
            case "copy": return m { _, _ in .dict(d) }
            case "pop", "update", "setdefault", "clear", "popitem":
                throw JinjaFailure.runtime("access to attribute '\(name)' of 'dict' object is unsafe.")
            default: return nil
            }
        case .list(let l):
            switch name {
            case "count": return m { args, _ in .int(l.filter { $0.pyEquals(args.first ?? .none) }.count) }
            case "index":
                return m { args, _ in
                    guard let i = l.firstIndex(where: { $0.pyEquals(args.first ?? .none) }) else { throw JinjaFailure.runtime("value is not in list") }
                    return .int(i)
                }
            case "append", "pop", "extend", "insert", "remove", "clear", "sort", "reverse":
                throw JinjaFailure.runtime("access to attribute '\(name)' of 'list' object is unsafe.")
            default: return nil
            }
        default: return nil
        }
    }

    // MARK: - Filters

    func applyFilter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        func arg(_ i: Int, _ n: String) -> JinjaValue? { argument(args, kwargs, i, n) }
        switch name {
        case "trim":
            let chars: String? = { if case .string(let c)? = arg(0, "chars") { c } else { nil } }()
            return .string(pyStrip(value.pyStr, chars: chars, left: true, right: true))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let l): return .int(l.count)
            case .dict(let d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw JinjaFailure.runtime("object of type '\(value.typeName)' has no len()")
            }
        case "upper": return .string(value.pyStr.uppercased())
        case "lower": return .string(value.pyStr.lowercased())
        case "capitalize": return .string(pyCapitalize(value.pyStr))
        case "title":
            // Jinja's own title: split before runs of "-", whitespace and opening brackets.
            var out = ""
            var atStart = true
            for c in value.pyStr {
                let boundary = c == "-" || c == "(" || c == "{" || c == "[" || c == "<" || c.unicodeScalars.allSatisfy(isPySpace)
                if boundary {
                    out.append(c)
                    atStart = true
                } else {
                    out += atStart ? c.uppercased() : c.lowercased()
                    atStart = false
                }
            }
            return .string(out)
        case "string": return .string(value.pyStr)
        case "safe": return value
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .string("")
            let boolean = arg(1, "boolean")?.truthy ?? false
            if value.isUndefined || (boolean && !value.truthy) { return fallback }
            return value
        case "join":
            let sep = arg(0, "d")?.pyStr ?? ""
            var items = try iterate(value)
            if let attr = arg(1, "attribute") { items = try items.map { try attributePath($0, attr) } }
            return .string(items.map(\.pyStr).joined(separator: sep))
        case "first":
            let items = try iterate(value)
            return items.first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            let items = try iterate(value)
            return items.last ?? .undefined(hint: "No last item, sequence was empty.")
        case "list": return .list(try iterate(value))
        case "reverse":
            if case .string(let s) = value { return .string(String(s.unicodeScalars.reversed().map(Character.init))) }
            return .list(try iterate(value).reversed())
        case "unique":
            var seen: [JinjaValue] = []
            for v in try iterate(value) {
                let key: JinjaValue = { if case .string(let s) = v { .string(s.lowercased()) } else { v } }()
                if !seen.contains(where: { (s: JinjaValue) -> Bool in
                    let sk: JinjaValue = { if case .string(let x) = s { .string(x.lowercased()) } else { s } }()
                    return sk.pyEquals(key)
                }) { seen.append(v) }
            }
            return .list(seen)
        case "replace":
            guard case .string(let old)? = arg(0, "old"), case .string(let new)? = arg(1, "new") else {
                throw JinjaFailure.runtime("replace filter takes two strings")
            }
            return .string(try pyReplace(value.pyStr, old, new, count: arg(2, "count")?.asInt ?? -1))
        case "int":
            let fallback = arg(0, "default") ?? .int(0)
            switch value {
            case .int, .bool: return .int(value.asInt!)
            case .double(let d): return d.isFinite ? .int(Int(d)) : fallback
            case .string(let s):
                let t = pyStrip(s, chars: nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                if let i = Int(t) { return .int(i) }
                if let d = Double(t), d.isFinite { return .int(Int(d)) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = arg(0, "default") ?? .double(0)
            if let d = value.asDouble { return .double(d) }
            if case .string(let s) = value, let d = Double(pyStrip(s, chars: nil, left: true, right: true)) { return .double(d) }
            return fallback
        case "abs":
            switch value {
            case .int(let i): return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw JinjaFailure.runtime("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            guard let d = value.asDouble else { throw JinjaFailure.runtime("round filter needs a number") }
            let precision = arg(0, "precision")?.asInt ?? 0
            let method = arg(1, "method")?.pyStr ?? "common"
            let scale = pow(10.0, Double(precision))
            let rule: FloatingPointRoundingRule = method == "floor" ? .down : method == "ceil" ? .up : .toNearestOrAwayFromZero
            return .double((d * scale).rounded(rule) / scale)
        case "sum":
            var total: JinjaValue = arg(1, "start") ?? .int(0)
            for var v in try iterate(value) {
                if let attr = arg(0, "attribute") { v = try attributePath(v, attr) }
                total = try binary("+", total, v)
            }
            return total
        case "min", "max":
            let items = try iterate(value)
            guard var best = items.first else { return .undefined(hint: "No aggregated item, sequence was empty.") }
            for v in items.dropFirst() {
                let c = try order(v, best, "<")
                if name == "min" ? c < 0 : c > 0 { best = v }
            }
            return best
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let caseSensitive = arg(1, "case_sensitive")?.truthy ?? false
            let attr = arg(2, "attribute")
            func key(_ v: JinjaValue) throws -> JinjaValue {
                let k = try attr.map { try attributePath(v, $0) } ?? v
                if !caseSensitive, case .string(let s) = k { return .string(s.lowercased()) }
                return k
            }
            let keyed = try iterate(value).map { (try key($0), $0) }
            var failure: Error? = nil
            let sorted = keyed.enumerated().sorted { x, y in
                do {
                    let c = try order(x.element.0, y.element.0, "<")
                    return c == 0 ? x.offset < y.offset : (reverse ? c > 0 : c < 0)
                } catch { failure = error; return false }
            }
            if let failure { throw failure }
            return .list(sorted.map { $0.element.1 })
        case "dictsort":
            guard case .dict(let d) = value else { throw JinjaFailure.runtime("you can only sort by either \"key\" or \"value\"") }
            let byValue = arg(1, "by")?.pyStr == "value"
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let reverse = arg(2, "reverse")?.truthy ?? false
            func key(_ v: JinjaValue) -> JinjaValue {
                if !caseSensitive, case .string(let s) = v { return .string(s.lowercased()) }
                return v
            }
            var failure: Error? = nil
            let sorted = d.pairs.sorted { x, y in
                do {
                    let c = try order(key(byValue ? x.1 : x.0), key(byValue ? y.1 : y.0), "<")
                    return reverse ? c > 0 : c < 0
                } catch { failure = error; return false }
            }
            if let failure { throw failure }
            return .list(sorted.map { .list([$0.0, $0.1]) })
        case "items":
            switch value {
            case .dict(let d): return .list(d.pairs.map { .list([$0, $1]) })
            case .undefined: return .list([])
            default: throw JinjaFailure.runtime("Can only get item pairs from a mapping.")
            }
        case "attr":
            guard case .string(let n)? = arg(0, "name") else { throw JinjaFailure.runtime("attr filter needs a name") }
            return try attribute(value, n)
        case "tojson":
            // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
            let ensureASCII = arg(0, "ensure_ascii")?.truthy ?? false
            var indent: String? = nil
            switch arg(1, "indent") {
            case .int(let n)?: indent = String(repeating: " ", count: max(0, n))
            case .string(let s)?: indent = s
            case .none?, nil: indent = nil
            case let other?: throw JinjaFailure.runtime("tojson: bad indent \(other.pyRepr)")
            }
            var separators: (String, String)? = nil
            if let sep = arg(2, "separators"), !(sep.pyEquals(.none)) {
                let parts = try iterate(sep)
                guard parts.count == 2 else { throw JinjaFailure.runtime("tojson: separators must be a pair") }
                separators = (parts[0].pyStr, parts[1].pyStr)
            }
            var json = try value.toJSON(indent: indent, separators: separators, sortKeys: arg(3, "sort_keys")?.truthy ?? false)
            if ensureASCII {
                var escaped = ""
                for c in json.unicodeScalars {
                    if c.isASCII { escaped.unicodeScalars.append(c); continue }
                    for unit in String(c).utf16 { escaped += String(format: "\\u%04x", unit) }
                }
                json = escaped
            }
            return .string(json)
        case "indent":
            let width = arg(0, "width") ?? .int(4)
            let indention: String = { if case .string(let s) = width { s } else { String(repeating: " ", count: max(0, width.asInt ?? 4)) } }()
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            var lines = pySplitLines(value.pyStr + "\n")
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + indention)
            } else {
                rv = lines.isEmpty ? "" : lines.removeFirst()
                if !lines.isEmpty {
                    rv += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
                }
            }
            return .string(first ? indention + rv : rv)
        case "wordcount":
            return .int(try pySplit(value.pyStr, sep: nil, maxsplit: -1).count)
        case "map":
            let items = value.truthy ? try iterate(value) : []  // Jinja: `if value:` before iterating
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1 {
                let fallback = kwargs.first { $0.0 == "default" }?.1
                return .list(try items.map { v in
                    let r = try attributePath(v, attr)
                    if r.isUndefined, let fallback { return fallback }
                    return r
                })
            }
            guard case .string(let filterName)? = args.first else { throw JinjaFailure.runtime("map requires a filter argument") }
            guard JinjaBuiltins.supportedFilters.contains(filterName) else { throw JinjaFailure.unsupported("filter '\(filterName)' is not supported") }
            return .list(try items.map { try applyFilter(filterName, $0, Array(args.dropFirst()), kwargs) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = args
            var attr: JinjaValue? = nil
            if byAttribute {
                guard !rest.isEmpty else { throw JinjaFailure.runtime("\(name) needs an attribute name") }
                attr = rest.removeFirst()
            }
            let testName = rest.isEmpty ? nil : rest.removeFirst().pyStr
            if let testName, !JinjaBuiltins.supportedTests.contains(testName) {
                throw JinjaFailure.unsupported("test '\(testName)' is not supported")
            }
            return .list(try (value.truthy ? iterate(value) : []).filter { item in
                let subject = try attr.map { try attributePath(item, $0) } ?? item
                let ok = try testName.map { try applyTest($0, subject, rest) } ?? subject.truthy
                return ok == keep
            })
        default:
            throw JinjaFailure.unsupported("filter '\(name)' is not supported")
        }
    }

    /// Jinja's `make_attrgetter`: "a.b.0" looks up item by item (an int part indexes).
    func attributePath(_ value: JinjaValue, _ path: JinjaValue) throws -> JinjaValue {
        if let i = path.asInt { return try item(value, .int(i)) }
        var v = value
        for part in path.pyStr.split(separator: ".", omittingEmptySubsequences: false) {
            v = try item(v, Int(part).map { .int($0) } ?? .string(String(part)))
        }
        return v
    }

    // MARK: - Tests

    func applyTest(_ name: String, _ value: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        func other() throws -> JinjaValue {
            guard let a = args.first else { throw JinjaFailure.runtime("test '\(name)' needs an argument") }
            return a
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true }; return false
        case "string": if case .string = value { return true }; return false
        case "mapping": if case .dict = value { return true }; return false
        case "boolean": if case .bool = value { return true }; return false
        case "true": if case .bool(true) = value { return true }; return false
        case "false": if case .bool(false) = value { return true }; return false
        case "number": return value.asDouble != nil
        case "integer": if case .int = value { return true }; return false
        case "float": if case .double = value { return true }; return false
        case "callable": if case .function = value { return true }; return false
        case "iterable":
            switch value {
            case .string, .list, .dict, .undefined: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .string, .list, .dict: return true
            default: return false
            }
        case "lower": if case .string(let s) = value { return s.lowercased() == s }; return value.pyStr.lowercased() == value.pyStr
        case "upper": if case .string(let s) = value { return s.uppercased() == s }; return value.pyStr.uppercased() == value.pyStr
        case "odd", "even":
            guard let i = value.asInt else { throw JinjaFailure.runtime("test '\(name)' needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard let i = value.asInt, let n = try other().asInt, n != 0 else { throw JinjaFailure.runtime("divisibleby needs non-zero integers") }
            return i % n == 0
        case "eq", "equalto", "==": return value.pyEquals(try other())
        case "ne", "!=": return !value.pyEquals(try other())
        case "lt", "lessthan", "<": return try compare("<", value, try other())
        case "le", "<=": return try compare("<=", value, try other())
        case "gt", "greaterthan", ">": return try compare(">", value, try other())
        case "ge", ">=": return try compare(">=", value, try other())
        case "in": return try contains(try other(), value)
        case "sameas":
            let o = try other()
            switch (value, o) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            case (.function(let a), .function(let b)): return a === b
            default: return false
            }
        default: throw JinjaFailure.unsupported("test '\(name)' is not supported")
        }
    }
}

/// Python `str.format` for plain `{}`, `{0}` and `{name}` fields and `{{`/`}}` escapes (no format specs).
func pyFormat(_ s: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> String {
    var out = ""
    var auto = 0
    var chars = Array(s)[...]
    while let c = chars.first {
        chars = chars.dropFirst()
        if c == "}" {
            guard chars.first == "}" else { throw JinjaFailure.runtime("Single '}' encountered in format string") }
            chars = chars.dropFirst()
            out.append("}")
            continue
        }
        guard c == "{" else { out.append(c); continue }
        if chars.first == "{" {
            chars = chars.dropFirst()
            out.append("{")
            continue
        }
        guard let close = chars.firstIndex(of: "}") else { throw JinjaFailure.runtime("Single '{' encountered in format string") }
        let field = String(chars[..<close])
        chars = chars[chars.index(after: close)...]
        if field.contains(":") || field.contains("!") || field.contains(".") || field.contains("[") {
            throw JinjaFailure.unsupported("str.format() field '{\(field)}' is not supported")
        }
        let value: JinjaValue?
        if field.isEmpty || Int(field) != nil {
            if (field.isEmpty && auto < 0) || (!field.isEmpty && auto > 0) {
                throw JinjaFailure.runtime("cannot switch between manual field specification and automatic field numbering")
            }
        }
        if field.isEmpty {
            value = auto < args.count ? args[auto] : nil
            auto += 1
        } else if let i = Int(field) {
            auto = -1
            value = i < args.count ? args[i] : nil
        } else {
            value = kwargs.first { $0.0 == field }?.1
        }
        guard let value else { throw JinjaFailure.runtime("str.format(): no argument for field '{\(field)}'") }
        out += value.pyStr
    }
    return out
}

/// Python `str.replace(old, new, count)`.
func pyReplace(_ s: String, _ old: String, _ new: String, count: Int) throws -> String {
    if old.isEmpty {
        var out = ""
        var n = 0
        for c in s.unicodeScalars {
            if count < 0 || n < count { out += new; n += 1 }
            out.unicodeScalars.append(c)
        }
        if count < 0 || n < count { out += new }
        return out
    }
    let parts = try pySplit(s, sep: old, maxsplit: count)
    return parts.joined(separator: new)
}

/// `datetime.strftime` for the directives chat templates use, in the C locale.
func strftime(_ format: String, _ date: Date, _ timeZone: TimeZone) throws -> String {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = timeZone
    let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
    let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
    var out = ""
    var chars = format.makeIterator()
    while let ch = chars.next() {
        guard ch == "%" else { out.append(ch); continue }
        guard let d = chars.next() else { out.append("%"); break }
        switch d {
        case "Y": out += String(c.year!)
        case "y": out += two(c.year! % 100)
        case "m": out += two(c.month!)
        case "d": out += two(c.day!)
        case "-": 
            guard let e = chars.next() else { throw JinjaFailure.unsupported("strftime directive '%-' is not supported") }
            switch e {
            case "d": out += String(c.day!)
            case "m": out += String(c.month!)
            case "H": out += String(c.hour!)
            default: throw JinjaFailure.unsupported("strftime directive '%-\(e)' is not supported")
            }
        case "B": out += months[c.month! - 1]
        case "b", "h": out += String(months[c.month! - 1].prefix(3))
        case "A": out += days[c.weekday! - 1]
        case "a": out += String(days[c.weekday! - 1].prefix(3))
        case "H": out += two(c.hour!)
        case "I": out += two((c.hour! + 11) % 12 + 1)
        case "p": out += c.hour! < 12 ? "AM" : "PM"
        case "M": out += two(c.minute!)
        case "S": out += two(c.second!)
        case "j":
            let doy = calendar.ordinality(of: .day, in: .year, for: date)!
            out += doy < 10 ? "00\(doy)" : doy < 100 ? "0\(doy)" : "\(doy)"
        case "%": out += "%"
        default: throw JinjaFailure.unsupported("strftime directive '%\(d)' is not supported")
        }
    }
    return out
}
