// Diagnostics — config problems with file:line:column positions, collected so all are reported at once.

import Yams

/// One problem in a config file: where, which field, what was wrong, and how to fix it when known.
public struct Diagnostic: Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// Dotted field path, e.g. `train.lora.rank` (empty for the document itself).
    public var path: String
    public var message: String
    public var hint: String?

    /// `pipeline.yaml:14:9: train.lora.rank: expected a positive integer, got "sixteen"` (+ `hint:` line).
    /// A problem from the command line (line 0) names its argument instead: `--set train.max_steps=x: …`.
    public var description: String {
        let field = path.isEmpty ? "" : "\(path): "
        let at = line > 0 ? "\(file):\(line):\(column)" : file
        return "\(at): \(field)\(message)" + (hint.map { "\n  hint: \($0)" } ?? "")
    }
}

extension Diagnostic {
    /// A YAML syntax error (Yams) at its position.
    init(yaml e: YamlError, file: String) {
        switch e {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            self.init(file: file, line: mark.line, column: mark.column, path: "", message: "YAML syntax: \(problem)", hint: nil)
        default:
            self.init(file: file, line: 1, column: 1, path: "", message: "YAML: \(e)", hint: nil)
        }
    }
}

/// Thrown when a config has one or more problems; `description` lists them all, in file order.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics while a config is read.
final class DiagnosticSink {
    private(set) var items: [Diagnostic] = []
    /// Problems worth saying that do not make the config invalid (e.g. a managed model id not pinned to a snapshot).
    private(set) var warnings: [Diagnostic] = []
    let file: String
    /// Lines past the file's end that hold `--set` values, and the argument each came from.
    private var sources: [(lines: ClosedRange<Int>, name: String)] = []

    init(file: String) { self.file = file }

    func add(_ d: Diagnostic) { items.append(located(d)) }

    func warn(_ d: Diagnostic) { warnings.append(located(d)) }

    /// `d`, naming its `--set` argument instead when it sits on one of their lines.
    private func located(_ d: Diagnostic) -> Diagnostic {
        var d = d
        if d.file == file, let s = sources.first(where: { $0.lines.contains(d.line) }) {
            d.file = s.name
            d.line = 0
            d.column = 0
        }
        return d
    }

    /// Diagnostics on `lines` are reported as coming from `name` (a `--set` argument).
    func addSource(_ name: String, lines: ClosedRange<Int>) { sources.append((lines, name)) }

    /// Throws `ConfigError` with everything collected, sorted by position, if anything was.
    func throwIfAny() throws {
        guard !items.isEmpty else { return }
        throw ConfigError(diagnostics: items.sorted { ($0.line, $0.column, $0.path) < ($1.line, $1.column, $1.path) })
    }
}

// MARK: - Did you mean

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo.
func didYouMean(_ word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(1, min(3, best.0.count / 3)) ? best.0 : nil
}

/// Levenshtein distance.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var prev = Array(0...b.count), cur = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        cur[0] = i
        for j in 1...b.count {
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&prev, &cur)
    }
    return prev[b.count]
}
