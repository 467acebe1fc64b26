// YAMLReader — typed reads from a Yams node tree that record every problem with its position
// instead of stopping at the first, and flag unknown keys with did-you-mean.

import Yams

/// A view of one YAML mapping at a dotted `path`. Reads return a default (and record a diagnostic)
/// when a value is missing or has the wrong type, so reading always completes; call `finish()`
/// after the last read to report keys nobody asked for.
public final class YAMLReader {
    let sink: DiagnosticSink
    let path: String
    let node: Node?
    private var used: Set<String> = []

    init(sink: DiagnosticSink, path: String, node: Node?) {
        self.sink = sink
        self.path = path
        self.node = node
        if let node, node.mapping == nil {
            report(node, nil, "expected a mapping of keys to values, got \(Self.describe(node))")
        }
    }

    // MARK: - Diagnostics

    func report(_ at: Node?, _ field: String? = nil, _ message: String, hint: String? = nil) {
        let mark = at?.mark ?? node?.mark
        sink.add(Diagnostic(file: sink.file, line: mark?.line ?? 1, column: mark?.column ?? 1,
                            path: field.map(fieldPath) ?? path, message: message, hint: hint))
    }

    /// A warning: said by `tune validate` / `tune run`, never fails the config.
    func warn(_ at: Node?, _ field: String? = nil, _ message: String, hint: String? = nil) {
        let mark = at?.mark ?? node?.mark
        sink.warn(Diagnostic(file: sink.file, line: mark?.line ?? 1, column: mark?.column ?? 1,
                             path: field.map(fieldPath) ?? path, message: message, hint: hint))
    }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    static func describe(_ n: Node) -> String {
        switch n {
        case .scalar(let s): s.string.isEmpty ? "an empty value" : "\"\(s.string)\""
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }

    // MARK: - Access

    /// The value node of `key`, marking the key as known.
    func value(_ key: String) -> Node? {
        used.insert(key)
        guard let m = node?.mapping else { return nil }
        for (k, v) in m where k.string == key { return v }
        return nil
    }

    func has(_ key: String) -> Bool { value(key) != nil }

    /// A nested mapping reader (nil node when absent).
    func object(_ key: String) -> YAMLReader? {
        guard let v = value(key) else { return nil }
        return YAMLReader(sink: sink, path: fieldPath(key), node: v)
    }

    func string(_ key: String, required: Bool = false, default def: String? = nil) -> String? {
        guard let v = value(key) else {
            if required { report(node, key, "required field is missing") }
            return def
        }
        guard let s = v.scalar else { report(v, key, "expected a string, got \(Self.describe(v))"); return def }
        return s.string
    }

    func int(_ key: String, default def: Int, min lo: Int? = nil, max hi: Int? = nil) -> Int {
        guard let v = value(key) else { return def }
        let what = lo == 1 ? "a positive integer" : lo == 0 ? "a non-negative integer" : "an integer"
        guard let s = v.scalar, let i = Int(s.string.replacingOccurrences(of: "_", with: "")) else {
            report(v, key, "expected \(what), got \(Self.describe(v))")
            return def
        }
        if let lo, i < lo { report(v, key, "expected \(what), got \(i)"); return def }
        if let hi, i > hi { report(v, key, "expected at most \(hi), got \(i)"); return def }
        return i
    }

    func double(_ key: String, default def: Double, range: ClosedRange<Double>? = nil, exclusiveLower: Bool = false) -> Double {
        guard let v = value(key) else { return def }
        guard let s = v.scalar, let d = Double(s.string), d.isFinite else {
            report(v, key, "expected a number, got \(Self.describe(v))")
            return def
        }
        if let range, !range.contains(d) || (exclusiveLower && d == range.lowerBound) {
            let lower = exclusiveLower ? "(\(range.lowerBound)" : "[\(range.lowerBound)"
            report(v, key, "expected a number in \(lower), \(range.upperBound)], got \(s.string)")
            return def
        }
        return d
    }

    func bool(_ key: String, default def: Bool) -> Bool {
        guard let v = value(key) else { return def }
        switch v.scalar?.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            report(v, key, "expected true or false, got \(Self.describe(v))")
            return def
        }
    }

    /// One of `options` (case-sensitive), with did-you-mean on a near miss.
    func choice(_ key: String, _ options: [String], default def: String) -> String {
        guard let v = value(key) else { return def }
        guard let s = v.scalar?.string else {
            report(v, key, "expected one of \(options.joined(separator: ", ")), got \(Self.describe(v))")
            return def
        }
        guard options.contains(s) else {
            let hint = didYouMean(s, among: options).map { "did you mean \"\($0)\"?" }
            report(v, key, "expected one of \(options.joined(separator: ", ")), got \"\(s)\"", hint: hint)
            return def
        }
        return s
    }

    /// A list of strings (a single string is accepted as a one-element list).
    func strings(_ key: String, default def: [String] = []) -> [String] {
        guard let v = value(key) else { return def }
        if let s = v.scalar { return [s.string] }
        guard let seq = v.sequence else { report(v, key, "expected a list of strings, got \(Self.describe(v))"); return def }
        var out: [String] = []
        for item in seq {
            if let s = item.scalar { out.append(s.string) } else {
                report(item, key, "expected a string, got \(Self.describe(item))")
            }
        }
        return out
    }

    /// Readers for each mapping in a list.
    func objects(_ key: String) -> [YAMLReader] {
        guard let v = value(key) else { return [] }
        guard let seq = v.sequence else { report(v, key, "expected a list, got \(Self.describe(v))"); return [] }
        return seq.enumerated().map { YAMLReader(sink: sink, path: "\(fieldPath(key))[\($0.offset)]", node: $0.element) }
    }

    /// Reports every key that no read asked for, with did-you-mean against the known ones.
    func finish() {
        guard let m = node?.mapping else { return }
        let known = Array(used).sorted()
        for (k, _) in m {
            let name = k.string ?? Self.describe(k)
            guard !used.contains(name) else { continue }
            if let m = ForeignKeys.message(for: name, at: path) { report(k, name, "unknown field: \(m)"); continue }
            let guess = didYouMean(name, among: known)
            report(k, name, "unknown field",
                   hint: guess.map { "did you mean \"\($0)\"?" } ?? "known fields here: \(known.joined(separator: ", "))")
        }
    }
}
