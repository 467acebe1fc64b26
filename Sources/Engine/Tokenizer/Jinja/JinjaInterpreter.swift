// JinjaInterpreter — executes parsed Jinja nodes: scopes (for loops and macros get their own frame,
// `if` does not), the `loop` object, namespaces, macros, break/continue, and expression evaluation
// with Python's semantics and Jinja's default (lenient) Undefined.

import Foundation

final class JinjaInterpreter {
    var frames: [[String: JinjaValue]]
    var out = ""
    var line = 1
    let now: Date
    let timeZone: TimeZone

    enum Flow { case normal, breakLoop, continueLoop }

    init(context: [String: JinjaValue], now: Date, timeZone: TimeZone) {
        self.now = now
        self.timeZone = timeZone
        frames = [[:], context, [:]]
        frames[0] = globals()
    }

    func render(_ nodes: [JinjaNode]) throws -> String {
        do {
            _ = try exec(nodes)
        } catch let e as JinjaFailure {
            throw LocatedFailure(line: line, failure: e)
        }
        return out
    }

    // MARK: - Statements

    func exec(_ nodes: [JinjaNode]) throws -> Flow {
        for node in nodes {
            switch node {
            case .text(let s): out += s
            case .output(let e, let l):
                line = l
                out += try eval(e).pyStr
            case .group(let body):
                let flow = try exec(body)
                if flow != .normal { return flow }
            case .ifChain(let branches, let otherwise, let l):
                line = l
                var taken: [JinjaNode]? = nil
                for (condition, body) in branches where try eval(condition).truthy {
                    taken = body
                    break
                }
                let flow = try exec(taken ?? otherwise)
                if flow != .normal { return flow }
            case .forLoop(let targets, let iterable, let filter, let body, let otherwise, let l):
                line = l
                try forLoop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
            case .set(let target, let e, let l):
                line = l
                let value = try eval(e)
                try assign(target, value)
            case .setBlock(let name, let body, let l):
                line = l
                let saved = out
                out = ""
                _ = try exec(body)
                let captured = out
                out = saved
                frames[frames.count - 1][name] = .string(captured)
            case .macro(let name, let params, let body, let l):
                line = l
                frames[frames.count - 1][name] = .function(makeMacro(name: name, params: params, body: body))
            case .filterBlock(let name, let args, let kwargs, let body, let l):
                line = l
                let saved = out
                out = ""
                let flow = try exec(body)
                let captured = out
                out = saved
                line = l
                out += try applyFilter(name, .string(captured), try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) }).pyStr
                if flow != .normal { return flow }
            case .breakLoop(let l):
                line = l
                return .breakLoop
            case .continueLoop(let l):
                line = l
                return .continueLoop
            }
        }
        return .normal
    }

    func assign(_ target: JinjaNode.Target, _ value: JinjaValue) throws {
        switch target {
        case .names(let names):
            if names.count == 1 {
                frames[frames.count - 1][names[0]] = value
                return
            }
            let items = try iterate(value)
            guard items.count == names.count else {
                throw JinjaFailure.runtime("cannot unpack \(items.count) values into \(names.count) names")
            }
            for (n, v) in zip(names, items) { frames[frames.count - 1][n] = v }
        case .attribute(let name, let attr):
            guard case .namespace(let ns) = lookup(name) else {
                throw JinjaFailure.runtime("cannot assign attribute on non-namespace object '\(name)'")
            }
            ns.attributes[.string(attr)] = value
        }
    }

    func forLoop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode]) throws {
        var items = try iterate(try eval(iterable))
        func bind(_ item: JinjaValue, into frame: inout [String: JinjaValue]) throws {
            if targets.count == 1 {
                frame[targets[0]] = item
            } else {
                let parts = try iterate(item)
                guard parts.count == targets.count else {
                    throw JinjaFailure.runtime("cannot unpack \(parts.count) values into \(targets.count) loop variables")
                }
                for (n, v) in zip(targets, parts) { frame[n] = v }
            }
        }
        if let filter {
            var kept: [JinjaValue] = []
            for item in items {
                var frame: [String: JinjaValue] = [:]
                try bind(item, into: &frame)
                frames.append(frame)
                defer { frames.removeLast() }
                if try eval(filter).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try exec(otherwise)
            return
        }
        let n = items.count
        for (i, item) in items.enumerated() {
            var frame: [String: JinjaValue] = [:]
            var loop = JinjaDict()
            loop["index0"] = .int(i)
            loop["index"] = .int(i + 1)
            loop["revindex0"] = .int(n - i - 1)
            loop["revindex"] = .int(n - i)
            loop["first"] = .bool(i == 0)
            loop["last"] = .bool(i == n - 1)
            loop["length"] = .int(n)
            loop["depth"] = .int(1)
            loop["depth0"] = .int(0)
            loop["previtem"] = i > 0 ? items[i - 1] : .undefined(hint: "there is no previous item")
            loop["nextitem"] = i < n - 1 ? items[i + 1] : .undefined(hint: "there is no next item")
            loop["cycle"] = .function(JinjaFunction("loop.cycle") { args, _ in
                guard !args.isEmpty else { throw JinjaFailure.runtime("no items for cycling given") }
                return args[i % args.count]
            })
            frame["loop"] = .dict(loop)
            try bind(item, into: &frame)
            frames.append(frame)
            let flow: Flow
            do { flow = try exec(body) } catch { frames.removeLast(); throw error }
            frames.removeLast()
            if flow == .breakLoop { break }
        }
    }

    func makeMacro(name: String, params: [(String, JinjaExpr?)], body: [JinjaNode]) -> JinjaFunction {
        let depth = frames.count
        return JinjaFunction(name) { [unowned self] args, kwargs in
            guard args.count <= params.count else {
                throw JinjaFailure.runtime("macro '\(name)' takes not more than \(params.count) argument(s)")
            }
            var frame: [String: JinjaValue] = [:]
            for (k, (param, defaultValue)) in params.enumerated() {
                if k < args.count {
                    frame[param] = args[k]
                } else if let kw = kwargs.first(where: { $0.0 == param }) {
                    frame[param] = kw.1
                } else if let defaultValue {
                    frame[param] = try eval(defaultValue)
                } else {
                    frame[param] = .undefined(hint: "parameter '\(param)' was not provided")
                }
            }
            for (k, _) in kwargs where !params.contains(where: { $0.0 == k }) {
                throw JinjaFailure.runtime("macro '\(name)' takes no keyword argument '\(k)'")
            }
            let savedFrames = frames, savedOut = out, savedLine = line
            frames = Array(frames.prefix(depth)) + [frame]
            out = ""
            defer { frames = savedFrames; out = savedOut; line = savedLine }
            _ = try exec(body)
            return .string(out)
        }
    }

    func lookup(_ name: String) -> JinjaValue {
        for frame in frames.reversed() {
            if let v = frame[name] { return v }
        }
        return .undefined(hint: "'\(name)' is undefined")
    }

    // MARK: - Expressions

    func eval(_ e: JinjaExpr) throws -> JinjaValue {
        switch e {
        case .literal(let l):
            switch l {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try items.map(eval))
        case .dict(let pairs):
            var d = JinjaDict()
            for (k, v) in pairs { d[try eval(k)] = try eval(v) }
            return .dict(d)
        case .attribute(let base, let name): return try attribute(try eval(base), name)
        case .item(let base, let index): return try item(try eval(base), try eval(index))
        case .slice(let base, let a, let b, let c):
            return try slice(try eval(base), try a.map(eval), try b.map(eval), try c.map(eval))
        case .call(let callee, let args, let kwargs):
            let f = try eval(callee)
            let a = try args.map(eval)
            let kw = try kwargs.map { ($0.0, try eval($0.1)) }
            guard case .function(let fn) = f else {
                if case .undefined(let hint) = f { throw JinjaFailure.runtime(hint) }
                throw JinjaFailure.runtime("'\(f.typeName)' object is not callable")
            }
            return try fn.body(a, kw)
        case .filter(let base, let name, let args, let kwargs):
            return try applyFilter(name, try eval(base), try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) })
        case .test(let base, let name, let args, let negated):
            let r = try applyTest(name, try eval(base), try args.map(eval))
            return .bool(negated ? !r : r)
        case .not(let x): return .bool(!(try eval(x).truthy))
        case .negate(let x):
            let v = try eval(x)
            switch v {
            case .int(let i): return .int(-i)
            case .bool(let b): return .int(b ? -1 : 0)
            case .double(let d): return .double(-d)
            case .undefined(let hint): throw JinjaFailure.runtime(hint)
            default: throw JinjaFailure.runtime("bad operand type for unary -: '\(v.typeName)'")
            }
        case .plus(let x):
            let v = try eval(x)
            guard v.asDouble != nil else { throw JinjaFailure.runtime("bad operand type for unary +: '\(v.typeName)'") }
            if case .bool(let b) = v { return .int(b ? 1 : 0) }
            return v
        case .and(let a, let b):
            let l = try eval(a)
            return l.truthy ? try eval(b) : l
        case .or(let a, let b):
            let l = try eval(a)
            return l.truthy ? l : try eval(b)
        case .binary(let op, let a, let b): return try binary(op, try eval(a), try eval(b))
        case .compare(let first, let ops):
            var left = try eval(first)
            for (op, rightExpr) in ops {
                let right = try eval(rightExpr)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let value, let condition, let otherwise):
            if try eval(condition).truthy { return try eval(value) }
            return try otherwise.map(eval) ?? .undefined(hint: "the inline if-expression evaluated to false and no else section was defined")
        }
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        if op == "~" { return .string(a.pyStr + b.pyStr) }
        if case .undefined(let hint) = a { throw JinjaFailure.runtime(hint) }
        if case .undefined(let hint) = b { throw JinjaFailure.runtime(hint) }
        func typeError() -> JinjaFailure {
            .runtime("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        switch op {
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.list(let x), .list(let y)): return .list(x + y)
            default: break
            }
        case "*":
            switch (a, b) {
            case (.string(let s), _) where b.asInt != nil: return .string(String(repeating: s, count: max(0, b.asInt!)))
            case (_, .string(let s)) where a.asInt != nil: return .string(String(repeating: s, count: max(0, a.asInt!)))
            case (.list(let l), _) where b.asInt != nil: return .list(Array(repeating: l, count: max(0, b.asInt!)).flatMap { $0 })
            default: break
            }
        case "%":
            if case .string = a { throw JinjaFailure.unsupported("printf-style string formatting ('%') is not supported") }
        default: break
        }
        if let x = a.asInt, let y = b.asInt {
            switch op {
            case "+": return .int(x &+ y)
            case "-": return .int(x &- y)
            case "*": return .int(x &* y)
            case "/":
                guard y != 0 else { throw JinjaFailure.runtime("division by zero") }
                return .double(Double(x) / Double(y))
            case "//":
                guard y != 0 else { throw JinjaFailure.runtime("integer division or modulo by zero") }
                let q = x / y
                return .int((x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q)
            case "%":
                guard y != 0 else { throw JinjaFailure.runtime("integer division or modulo by zero") }
                let r = x % y
                return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            case "**":
                if y >= 0 {
                    var r = 1
                    for _ in 0..<y { r = r &* x }
                    return .int(r)
                }
                return .double(pow(Double(x), Double(y)))
            default: break
            }
        }
        if let x = a.asDouble, let y = b.asDouble {
            switch op {
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/":
                guard y != 0 else { throw JinjaFailure.runtime("float division by zero") }
                return .double(x / y)
            case "//":
                guard y != 0 else { throw JinjaFailure.runtime("float floor division by zero") }
                return .double((x / y).rounded(.down))
            case "%":
                guard y != 0 else { throw JinjaFailure.runtime("float modulo") }
                let r = x.truncatingRemainder(dividingBy: y)
                return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            case "**": return .double(pow(x, y))
            default: break
            }
        }
        throw typeError()
    }

    func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> Bool {
        switch op {
        case "==": return a.pyEquals(b)
        case "!=": return !a.pyEquals(b)
        case "in": return try contains(b, a)
        case "not in": return !(try contains(b, a))
        default:
            let c = try order(a, b, op)
            switch op {
            case "<": return c < 0
            case "<=": return c <= 0
            case ">": return c > 0
            default: return c >= 0
            }
        }
    }

    /// Python ordering of numbers, strings (by code point) and lists.
    func order(_ a: JinjaValue, _ b: JinjaValue, _ op: String) throws -> Int {
        if case .undefined(let hint) = a { throw JinjaFailure.runtime(hint) }
        if case .undefined(let hint) = b { throw JinjaFailure.runtime(hint) }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            if x.unicodeScalars.elementsEqual(y.unicodeScalars) { return 0 }
            return x.unicodeScalars.lexicographicallyPrecedes(y.unicodeScalars, by: { $0.value < $1.value }) ? -1 : 1
        case (.list(let x), .list(let y)):
            for (p, q) in zip(x, y) where !p.pyEquals(q) { return try order(p, q, op) }
            return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
        default:
            if let x = a.asInt, let y = b.asInt { return x == y ? 0 : (x < y ? -1 : 1) }
            if let x = a.asDouble, let y = b.asDouble { return x == y ? 0 : (x < y ? -1 : 1) }
            throw JinjaFailure.runtime("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    /// Python `needle in haystack`.
    func contains(_ haystack: JinjaValue, _ needle: JinjaValue) throws -> Bool {
        switch haystack {
        case .string(let s):
            guard case .string(let n) = needle else {
                throw JinjaFailure.runtime("'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return n.isEmpty || s.range(of: n, options: .literal) != nil
        case .list(let l): return l.contains { $0.pyEquals(needle) }
        case .dict(let d): return d[needle] != nil
        case .undefined: return false
        default: throw JinjaFailure.runtime("argument of type '\(haystack.typeName)' is not iterable")
        }
    }

    /// The items of a for loop / filter over `v`: list items, dict keys, string characters.
    func iterate(_ v: JinjaValue) throws -> [JinjaValue] {
        switch v {
        case .list(let l): return l
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw JinjaFailure.runtime("'\(v.typeName)' object is not iterable")
        }
    }

    // MARK: - Attributes, items, slices

    /// `obj.name`: Jinja tries the Python attribute (methods) first, then the item.
    func attribute(_ obj: JinjaValue, _ name: String) throws -> JinjaValue {
        if case .undefined(let hint) = obj { throw JinjaFailure.runtime(hint) }
        if let m = try method(obj, name) { return m }
        switch obj {
        case .dict(let d): return d[.string(name)] ?? .undefined(hint: "'dict object' has no attribute '\(name)'")
        case .namespace(let ns): return ns.attributes[.string(name)] ?? .undefined(hint: "'Namespace' object has no attribute '\(name)'")
        default: return .undefined(hint: "'\(obj.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `obj[key]`: the item first, then (for string keys) the attribute.
    func item(_ obj: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        if case .undefined(let hint) = obj { throw JinjaFailure.runtime(hint) }
        switch (obj, key) {
        case (.list(let l), _) where key.asInt != nil:
            let i = key.asInt!
            let j = i < 0 ? i + l.count : i
            return (0..<l.count).contains(j) ? l[j] : .undefined(hint: "list object has no element \(i)")
        case (.string(let s), _) where key.asInt != nil:
            let scalars = Array(s.unicodeScalars)
            let i = key.asInt!
            let j = i < 0 ? i + scalars.count : i
            return (0..<scalars.count).contains(j) ? .string(String(scalars[j])) : .undefined(hint: "str object has no element \(i)")
        case (.dict(let d), _):
            if let v = d[key] { return v }
        case (.namespace(let ns), .string(let k)):
            if let v = ns.attributes[.string(k)] { return v }
        default: break
        }
        if case .string(let name) = key, let m = try method(obj, name) { return m }
        return .undefined(hint: "'\(obj.typeName) object' has no attribute \(key.pyRepr)")
    }

    func slice(_ obj: JinjaValue, _ a: JinjaValue?, _ b: JinjaValue?, _ c: JinjaValue?) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v else { return nil }
            switch v {
            case .none, .undefined: return nil
            default: break
            }
            guard let i = v.asInt else { throw JinjaFailure.runtime("slice indices must be integers or None") }
            return i
        }
        let step = try bound(c) ?? 1
        guard step != 0 else { throw JinjaFailure.runtime("slice step cannot be zero") }
        func indices(_ n: Int) throws -> [Int] {
            func clamp(_ i: Int?, _ defaultValue: Int) -> Int {
                guard var i else { return defaultValue }
                if i < 0 { i += n }
                return step > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
            }
            let start = clamp(try bound(a), step > 0 ? 0 : n - 1)
            let stop = clamp(try bound(b), step > 0 ? n : -1)
            var out: [Int] = []
            var i = start
            while step > 0 ? i < stop : i > stop {
                out.append(i)
                i += step
            }
            return out
        }
        switch obj {
        case .list(let l): return .list(try indices(l.count).map { l[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var view = String.UnicodeScalarView()
            for i in try indices(scalars.count) { view.append(scalars[i]) }
            return .string(String(view))
        case .undefined(let hint): throw JinjaFailure.runtime(hint)
        default: throw JinjaFailure.runtime("'\(obj.typeName)' object is not subscriptable")
        }
    }
}
