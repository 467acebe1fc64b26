// PipelineOverride — `tune run --set KEY=VALUE`: a dotted path into the pipeline and a YAML value,
// applied to the composed YAML tree before anything reads it, so an override is validated, cached
// and recorded exactly as if it had been written in the file.
//
//     tune run pipelines/sample.yaml --set train.max_steps=4 --set eval.gate.accuracy.min_delta_vs_base=-1
//
// Nodes that come from an override carry marks on "virtual" lines after the file's last line; the
// diagnostic sink maps those lines back to the `--set` argument, so a bad value or an unknown key
// reports `--set train.max_stepz=4: train.max_stepz: unknown field` with the usual did-you-mean.

import Foundation
import Yams

/// One `--set KEY=VALUE` override of a pipeline field.
public struct PipelineOverride: Codable, Hashable, Sendable {
    /// Dotted path: `train.max_steps`, `merge.adapters.0.weight` (list items by index).
    public var key: String
    /// The value as given, parsed as YAML (`4`, `[a, b]`, `{min_delta: 0.1}`, `"quoted"`).
    public var value: String
    /// What the file had at `key` before (YAML text), nil when the key was not in the file.
    public var previous: String?

    /// Parses `KEY=VALUE` (the value may contain `=`; it may be empty).
    public init(argument: String) throws {
        let source = "--set \(argument)"
        guard let eq = argument.firstIndex(of: "=") else {
            throw ConfigError(diagnostics: [Diagnostic(file: source, line: 0, column: 0, path: "",
                                                       message: "expected KEY=VALUE", hint: "e.g. --set train.max_steps=4")])
        }
        key = String(argument[..<eq]).trimmingCharacters(in: .whitespaces)
        value = String(argument[argument.index(after: eq)...])
        if key.isEmpty || key.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) {
            throw ConfigError(diagnostics: [Diagnostic(file: source, line: 0, column: 0, path: key,
                                                       message: "expected a dotted field path like train.lora.rank, got \"\(key)\"", hint: nil)])
        }
    }

    /// `KEY=VALUE`, as the argument of `--set` (what a Slurm stage job is given again).
    public var argument: String { "\(key)=\(value)" }

    var source: String { "--set \(argument)" }
    var segments: [String] { key.split(separator: ".").map(String.init) }
}

extension PipelineOverride {
    /// Applies `overrides` in order to the document `root` of a file with `fileLines` lines. Problems
    /// that make an override impossible (a path through a scalar, a value that is not YAML) go to
    /// `sink`; the rest (types, unknown keys) are found by the normal reads of the returned tree.
    static func apply(_ overrides: inout [PipelineOverride], to root: Node, fileLines: Int, sink: DiagnosticSink) -> Node {
        guard root.mapping != nil else { return root }
        var node = root
        var line = fileLines + 1
        for i in overrides.indices {
            let o = overrides[i]
            let valueLines = o.value.split(separator: "\n", omittingEmptySubsequences: false).count
            sink.addSource(o.source, lines: line...(line + valueLines - 1))
            defer { line += valueLines }
            let value: Node
            do {
                let padded = String(repeating: "\n", count: line - 1)
                value = try Yams.compose(yaml: padded + o.value) ?? marked("", line: line)
            } catch let e as YamlError {
                let d = Diagnostic(yaml: e, file: o.source)
                sink.add(Diagnostic(file: o.source, line: 0, column: 0, path: o.key, message: "the value is not YAML: \(d.message)", hint: nil))
                continue
            } catch {
                sink.add(Diagnostic(file: o.source, line: 0, column: 0, path: o.key, message: "the value is not YAML: \(error)", hint: nil))
                continue
            }
            var previous: Node?
            do {
                node = try set(o.segments[...], in: node, to: value, line: line, walked: [], previous: &previous)
                overrides[i].previous = previous.map(text)
            } catch let p as Problem {
                sink.add(Diagnostic(file: o.source, line: 0, column: 0, path: p.path, message: p.message, hint: nil))
            } catch {
                sink.add(Diagnostic(file: o.source, line: 0, column: 0, path: o.key, message: "\(error)", hint: nil))
            }
        }
        return node
    }

    /// `node` with the value at `path` replaced (or added, creating mappings on the way).
    private static func set(_ path: ArraySlice<String>, in node: Node, to value: Node, line: Int, walked: [String],
                            previous: inout Node?) throws -> Node {
        guard let key = path.first else { previous = node; return value }
        let here = walked + [key]
        let rest = path.dropFirst()
        switch node {
        case .mapping(var m):
            if let i = m.indices.first(where: { m[$0].key.string == key }) {
                m[i] = (key: m[i].key, value: try set(rest, in: m[i].value, to: value, line: line, walked: here, previous: &previous))
            } else {
                let child = rest.isEmpty ? value : try set(rest, in: emptyMapping(line: line), to: value, line: line, walked: here,
                                                           previous: &previous)
                m[marked(key, line: line)] = child
            }
            return .mapping(m)
        case .sequence(var s):
            guard let i = Int(key), s.indices.contains(i) else {
                throw Problem(path: here.joined(separator: "."),
                              message: "\(walked.joined(separator: ".")) is a list of \(s.count); expected an index 0…\(max(0, s.count - 1))")
            }
            s[i] = try set(rest, in: s[i], to: value, line: line, walked: here, previous: &previous)
            return .sequence(s)
        case .scalar(let sc) where sc.string.isEmpty || sc.string == "~" || sc.string == "null":
            // `eval:` with nothing after it is an empty section: fill it.
            return try set(path, in: emptyMapping(line: line), to: value, line: line, walked: walked, previous: &previous)
        default:
            throw Problem(path: here.joined(separator: "."),
                          message: "\(walked.joined(separator: ".")) is \(YAMLReader.describe(node)), not a mapping; cannot set \(key) in it")
        }
    }

    /// A plain scalar whose mark is on `line`.
    private static func marked(_ s: String, line: Int) -> Node {
        let quoted = "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
        return (try? Yams.compose(yaml: String(repeating: "\n", count: line - 1) + quoted)) ?? Node(s)
    }

    private static func emptyMapping(line: Int) -> Node {
        .mapping(Node.Mapping([], .implicit, .any, marked("", line: line).mark))
    }

    /// A node as one line of YAML in flow style (what `--dry-run` shows as the file's value).
    private static func text(_ n: Node) -> String {
        switch n {
        case .scalar(let s): s.string
        case .sequence(let seq): "[" + seq.map(text).joined(separator: ", ") + "]"
        case .mapping(let m): "{" + m.map { "\(text($0.key)): \(text($0.value))" }.joined(separator: ", ") + "}"
        default: YAMLReader.describe(n)
        }
    }
}

/// Why an override cannot be applied (a path through a scalar or past a list's end).
private struct Problem: Error {
    var path: String
    var message: String
}
