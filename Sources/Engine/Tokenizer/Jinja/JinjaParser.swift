// JinjaParser — statements and expressions of the Jinja subset chat templates use, with Jinja's
// operator precedence (or < and < not < comparison < + - < ~ < * / // % < ** < unary < filters/tests
// < postfix). Anything outside the subset is an `unsupported` failure naming its line.

import Foundation

indirect enum JinjaExpr: Sendable {
    enum Literal: Sendable { case none, bool(Bool), int(Int), double(Double), string(String) }
    case literal(Literal)
    case name(String)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case attribute(JinjaExpr, String)
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, JinjaExpr?, JinjaExpr?, JinjaExpr?)
    case call(JinjaExpr, [JinjaExpr], [(String, JinjaExpr)])
    case filter(JinjaExpr, String, [JinjaExpr], [(String, JinjaExpr)])
    case test(JinjaExpr, String, [JinjaExpr], negated: Bool)
    case not(JinjaExpr)
    case negate(JinjaExpr)
    case plus(JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    case compare(JinjaExpr, [(String, JinjaExpr)])
    case conditional(JinjaExpr, condition: JinjaExpr, otherwise: JinjaExpr?)
}

indirect enum JinjaNode: Sendable {
    enum Target: Sendable {
        case names([String])
        case attribute(String, String)
    }
    case text(String)
    case output(JinjaExpr, line: Int)
    case ifChain([(JinjaExpr, [JinjaNode])], otherwise: [JinjaNode], line: Int)
    case forLoop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode], line: Int)
    case set(Target, JinjaExpr, line: Int)
    case setBlock(String, [JinjaNode], line: Int)
    case macro(name: String, params: [(String, JinjaExpr?)], body: [JinjaNode], line: Int)
    case filterBlock(String, [JinjaExpr], [(String, JinjaExpr)], [JinjaNode], line: Int)
    case breakLoop(line: Int)
    case continueLoop(line: Int)
    case group([JinjaNode])
}

struct JinjaParser {
    let pieces: [JinjaPiece]
    var p = 0
    var line = 1
    // Expression state.
    var toks: [JinjaToken] = []
    var t = 0
    /// Inside an `if` body or condition, Jinja reports an unknown filter or test only when it runs.
    var conditionalDepth = 0
    /// How many unknown filter/test names were let through because of `conditionalDepth`.
    var deferredNames = 0

    static func parse(_ source: String) throws -> [JinjaNode] {
        var parser = JinjaParser(pieces: try JinjaLexer.pieces(source))
        do {
            let (nodes, end) = try parser.block(until: [])
            if let end { throw JinjaFailure.syntax("unexpected '\(end)'") }
            return nodes
        } catch let e as JinjaFailure {
            throw LocatedFailure(line: parser.line, failure: e)
        }
    }

    // MARK: - Statements

    /// Nodes up to one of the `until` tags (returned, with its tokens positioned after the keyword).
    mutating func block(until: Set<String>) throws -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while p < pieces.count {
            let piece = pieces[p]
            p += 1
            switch piece {
            case .text(let s): nodes.append(.text(s))
            case .output(let tokens, let l):
                line = l
                begin(tokens)
                let e = try expression()
                try expectEnd()
                nodes.append(.output(e, line: l))
            case .statement(let tokens, let l):
                line = l
                begin(tokens)
                guard let kw = peek, kw.kind == .name else { throw JinjaFailure.syntax("expected a statement name") }
                if until.contains(kw.text) {
                    t += 1
                    return (nodes, kw.text)
                }
                t += 1
                nodes.append(try statement(kw.text, line: l))
            }
        }
        if !until.isEmpty {
            throw JinjaFailure.syntax("unexpected end of template; expected one of: \(until.sorted().joined(separator: ", "))")
        }
        return (nodes, nil)
    }

    mutating func statement(_ keyword: String, line l: Int) throws -> JinjaNode {
        switch keyword {
        case "if":
            conditionalDepth += 1
            defer { conditionalDepth -= 1 }
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var condition = try expression()
            try expectEnd()
            while true {
                let (body, end) = try block(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                switch end {
                case "elif":
                    condition = try expression()
                    try expectEnd()
                case "else":
                    try expectEnd()
                    let (otherwise, _) = try block(until: ["endif"])
                    try expectEnd()
                    return .ifChain(branches, otherwise: otherwise, line: l)
                default:
                    try expectEnd()
                    return .ifChain(branches, otherwise: [], line: l)
                }
            }
        case "for":
            var targets = [try name()]
            while accept(",") { targets.append(try name()) }
            try expectName("in")
            let iterable = try expression(allowConditional: false)
            var filter: JinjaExpr? = nil
            if acceptName("if") { filter = try expression(allowConditional: false) }
            if acceptName("recursive") { throw JinjaFailure.unsupported("recursive for loops are not supported") }
            try expectEnd()
            let (body, end) = try block(until: ["else", "endfor"])
            var otherwise: [JinjaNode] = []
            try expectEnd()
            if end == "else" {
                (otherwise, _) = try block(until: ["endfor"])
                try expectEnd()
            }
            return .forLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise, line: l)
        case "set":
            let first = try name()
            if accept(".") {
                let attr = try name()
                try expect("=")
                let value = try expression()
                try expectEnd()
                return .set(.attribute(first, attr), value, line: l)
            }
            var names = [first]
            while accept(",") { names.append(try name()) }
            if atEnd {
                guard names.count == 1 else { throw JinjaFailure.syntax("block set takes one name") }
                let (body, _) = try block(until: ["endset"])
                try expectEnd()
                return .setBlock(first, body, line: l)
            }
            try expect("=")
            var value = try expression()
            if peek?.text == ",", peek?.kind == .op {
                var items = [value]
                while accept(",") { items.append(try expression()) }
                value = .list(items)
            }
            try expectEnd()
            return .set(.names(names), value, line: l)
        case "macro":
            let macroName = try name()
            try expect("(")
            var params: [(String, JinjaExpr?)] = []
            while !accept(")") {
                if !params.isEmpty { try expect(",") }
                if accept(")") { break }
                let param = try name()
                params.append((param, accept("=") ? try expression() : nil))
            }
            try expectEnd()
            let (body, _) = try block(until: ["endmacro"])
            if peek?.kind == .name { t += 1 }  // {% endmacro name %}
            try expectEnd()
            return .macro(name: macroName, params: params, body: body, line: l)
        case "break":
            try expectEnd()
            return .breakLoop(line: l)
        case "continue":
            try expectEnd()
            return .continueLoop(line: l)
        case "filter":
            let filterName = try name()
            guard JinjaBuiltins.supportedFilters.contains(filterName) else {
                throw JinjaFailure.unsupported("filter '\(filterName)' is not supported")
            }
            var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
            if accept("(") { (args, kwargs) = try callArguments() }
            try expectEnd()
            let (body, _) = try block(until: ["endfilter"])
            try expectEnd()
            return .filterBlock(filterName, args, kwargs, body, line: l)
        case "generation":
            // transformers' AssistantTracker: renders its body (the assistant mask is not tracked here).
            try expectEnd()
            let (body, _) = try block(until: ["endgeneration"])
            try expectEnd()
            return .group(body)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration", "endfilter":
            throw JinjaFailure.syntax("unexpected '\(keyword)'")
        default:
            throw JinjaFailure.unsupported("the '{% \(keyword) %}' statement is not supported")
        }
    }

    // MARK: - Token helpers

    mutating func begin(_ tokens: [JinjaToken]) {
        toks = tokens
        t = 0
    }
    var peek: JinjaToken? { t < toks.count ? toks[t] : nil }
    var atEnd: Bool { t >= toks.count }
    func peekIs(_ op: String, offset: Int = 0) -> Bool {
        t + offset < toks.count && toks[t + offset].kind == .op && toks[t + offset].text == op
    }
    func peekName(_ n: String, offset: Int = 0) -> Bool {
        t + offset < toks.count && toks[t + offset].kind == .name && toks[t + offset].text == n
    }
    mutating func accept(_ op: String) -> Bool {
        if peekIs(op) { t += 1; return true }
        return false
    }
    mutating func acceptName(_ n: String) -> Bool {
        if peekName(n) { t += 1; return true }
        return false
    }
    mutating func expect(_ op: String) throws {
        guard accept(op) else { throw JinjaFailure.syntax("expected '\(op)', found \(found)") }
    }
    mutating func expectName(_ n: String) throws {
        guard acceptName(n) else { throw JinjaFailure.syntax("expected '\(n)', found \(found)") }
    }
    mutating func expectEnd() throws {
        guard atEnd else { throw JinjaFailure.syntax("expected end of tag, found \(found)") }
    }
    var found: String { peek.map { "'\($0.text)'" } ?? "end of tag" }
    mutating func name() throws -> String {
        guard let tok = peek, tok.kind == .name else { throw JinjaFailure.syntax("expected a name, found \(found)") }
        t += 1
        return tok.text
    }

    // MARK: - Expressions

    mutating func expression(allowConditional: Bool = true) throws -> JinjaExpr {
        guard allowConditional else { return try orExpr() }
        // Jinja reports unknown filters/tests inside an inline if-expression only when they run, so
        // parse the first operand leniently; if no `if` follows, parse it again strictly.
        // (A strict error is also a lenient one, and without unknown names both parses agree.)
        let start = t, deferredBefore = deferredNames
        conditionalDepth += 1
        defer { conditionalDepth -= 1 }
        let lenient = try orExpr()
        guard acceptName("if") else {
            if deferredNames == deferredBefore { return lenient }
            t = start
            conditionalDepth -= 1
            defer { conditionalDepth += 1 }
            return try orExpr()
        }
        let condition = try orExpr()
        let otherwise: JinjaExpr? = acceptName("else") ? try expression() : nil
        return .conditional(lenient, condition: condition, otherwise: otherwise)
    }

    mutating func orExpr() throws -> JinjaExpr {
        var e = try andExpr()
        while acceptName("or") { e = .or(e, try andExpr()) }
        return e
    }

    mutating func andExpr() throws -> JinjaExpr {
        var e = try notExpr()
        while acceptName("and") { e = .and(e, try notExpr()) }
        return e
    }

    mutating func notExpr() throws -> JinjaExpr {
        if acceptName("not") { return .not(try notExpr()) }
        return try compare()
    }

    mutating func compare() throws -> JinjaExpr {
        let first = try math1()
        var ops: [(String, JinjaExpr)] = []
        while true {
            if let tok = peek, tok.kind == .op, ["==", "!=", "<", "<=", ">", ">="].contains(tok.text) {
                t += 1
                ops.append((tok.text, try math1()))
            } else if acceptName("in") {
                ops.append(("in", try math1()))
            } else if peekName("not"), peekName("in", offset: 1) {
                t += 2
                ops.append(("not in", try math1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? first : .compare(first, ops)
    }

    mutating func math1() throws -> JinjaExpr {
        var e = try concat()
        while let tok = peek, tok.kind == .op, tok.text == "+" || tok.text == "-" {
            t += 1
            e = .binary(tok.text, e, try concat())
        }
        return e
    }

    mutating func concat() throws -> JinjaExpr {
        var e = try math2()
        while accept("~") { e = .binary("~", e, try math2()) }
        return e
    }

    mutating func math2() throws -> JinjaExpr {
        var e = try power()
        while let tok = peek, tok.kind == .op, ["*", "/", "//", "%"].contains(tok.text) {
            t += 1
            e = .binary(tok.text, e, try power())
        }
        return e
    }

    mutating func power() throws -> JinjaExpr {
        var e = try unary()
        while accept("**") { e = .binary("**", e, try unary()) }
        return e
    }

    mutating func unary(withFilter: Bool = true) throws -> JinjaExpr {
        var e: JinjaExpr
        if accept("-") {
            e = .negate(try unary(withFilter: false))
        } else if accept("+") {
            e = .plus(try unary(withFilter: false))
        } else {
            e = try primary()
        }
        e = try postfix(e)
        if withFilter { e = try filterTail(e) }
        return e
    }

    mutating func primary() throws -> JinjaExpr {
        guard let tok = peek else { throw JinjaFailure.syntax("expected an expression, found end of tag") }
        t += 1
        switch tok.kind {
        case .name:
            switch tok.text {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(tok.text)
            }
        case .string:
            var s = tok.text
            while let next = peek, next.kind == .string { s += next.text; t += 1 }  // adjacent literals join
            return .literal(.string(s))
        case .int:
            guard let v = Int(tok.text) else { throw JinjaFailure.unsupported("integer literal \(tok.text) is too large") }
            return .literal(.int(v))
        case .float:
            return .literal(.double(Double(tok.text)!))
        case .op:
            switch tok.text {
            case "(":
                if accept(")") { return .list([]) }
                let e = try expression()
                if accept(")") { return e }
                var items = [e]
                while accept(",") {
                    if peekIs(")") { break }
                    items.append(try expression())
                }
                try expect(")")
                return .list(items)
            case "[":
                var items: [JinjaExpr] = []
                while !accept("]") {
                    if !items.isEmpty { try expect(","); if accept("]") { break } }
                    items.append(try expression())
                }
                return .list(items)
            case "{":
                var pairs: [(JinjaExpr, JinjaExpr)] = []
                while !accept("}") {
                    if !pairs.isEmpty { try expect(","); if accept("}") { break } }
                    let k = try expression()
                    try expect(":")
                    pairs.append((k, try expression()))
                }
                return .dict(pairs)
            default:
                throw JinjaFailure.syntax("unexpected '\(tok.text)'")
            }
        }
    }

    mutating func postfix(_ base: JinjaExpr) throws -> JinjaExpr {
        var e = base
        while true {
            if accept(".") {
                guard let tok = peek, tok.kind == .name || tok.kind == .int else {
                    throw JinjaFailure.syntax("expected an attribute name after '.', found \(found)")
                }
                t += 1
                e = tok.kind == .int ? .item(e, .literal(.int(Int(tok.text)!))) : .attribute(e, tok.text)
            } else if accept("[") {
                e = try subscriptTail(e)
            } else if peekIs("(") {
                t += 1
                let (args, kwargs) = try callArguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }

    mutating func subscriptTail(_ base: JinjaExpr) throws -> JinjaExpr {
        var parts: [JinjaExpr?] = [nil]
        var isSlice = false
        while !accept("]") {
            if accept(":") {
                isSlice = true
                parts.append(nil)
                guard parts.count <= 3 else { throw JinjaFailure.syntax("too many ':' in slice") }
                continue
            }
            guard parts[parts.count - 1] == nil else { throw JinjaFailure.syntax("expected ']' or ':', found \(found)") }
            parts[parts.count - 1] = try expression()
            if peekIs(",") { throw JinjaFailure.unsupported("tuple subscripts are not supported") }
        }
        if !isSlice {
            guard let index = parts[0] else { throw JinjaFailure.syntax("empty subscript") }
            return .item(base, index)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(base, parts[0], parts[1], parts[2])
    }

    /// Arguments after "(" through ")".
    mutating func callArguments() throws -> ([JinjaExpr], [(String, JinjaExpr)]) {
        var args: [JinjaExpr] = []
        var kwargs: [(String, JinjaExpr)] = []
        while !accept(")") {
            if !args.isEmpty || !kwargs.isEmpty {
                try expect(",")
                if accept(")") { break }
            }
            if peekIs("*") || peekIs("**") { throw JinjaFailure.unsupported("*args / **kwargs in calls are not supported") }
            if let tok = peek, tok.kind == .name, peekIs("=", offset: 1) {
                t += 2
                kwargs.append((tok.text, try expression()))
            } else {
                guard kwargs.isEmpty else { throw JinjaFailure.syntax("positional argument after keyword argument") }
                args.append(try expression())
            }
        }
        return (args, kwargs)
    }

    /// Filters (`| name(args)`), tests (`is [not] name args`) and calls after them.
    mutating func filterTail(_ base: JinjaExpr) throws -> JinjaExpr {
        var e = base
        while true {
            if accept("|") {
                var filterName = try name()
                while accept(".") { filterName += "." + (try name()) }
                if !JinjaBuiltins.supportedFilters.contains(filterName) {
                    guard conditionalDepth > 0 else { throw JinjaFailure.unsupported("filter '\(filterName)' is not supported") }
                    deferredNames += 1
                }
                var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
                if accept("(") { (args, kwargs) = try callArguments() }
                e = .filter(e, filterName, args, kwargs)
            } else if acceptName("is") {
                let negated = acceptName("not")
                var testName = try name()
                while accept(".") { testName += "." + (try name()) }
                if !JinjaBuiltins.supportedTests.contains(testName) {
                    guard conditionalDepth > 0 else { throw JinjaFailure.unsupported("test '\(testName)' is not supported") }
                    deferredNames += 1
                }
                var args: [JinjaExpr] = []
                if accept("(") {
                    let (a, kw) = try callArguments()
                    guard kw.isEmpty else { throw JinjaFailure.unsupported("keyword arguments to tests are not supported") }
                    args = a
                } else if let tok = peek, (tok.kind != .op && !(tok.kind == .name && ["else", "or", "and", "if", "in", "is", "not"].contains(tok.text)))
                            || (tok.kind == .op && (tok.text == "[" || tok.text == "{" || tok.text == "-")) {
                    args = [try postfix(try primaryForTestArgument())]
                }
                e = .test(e, testName, args, negated: negated)
            } else if peekIs("(") {
                t += 1
                let (args, kwargs) = try callArguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }

    mutating func primaryForTestArgument() throws -> JinjaExpr {
        if accept("-") { return .negate(try primary()) }
        return try primary()
    }
}
