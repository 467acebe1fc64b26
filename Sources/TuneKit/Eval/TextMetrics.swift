// TextMetrics — pure checks of one generated answer against its reference, and the confusion matrix
// of a classification set. No model, no files: each function is a definition from docs/eval.md.

import Foundation

public enum TextMetrics {
    /// Whitespace-trimmed, lowercased: the form `contains` and label matching compare.
    public static func normalize(_ s: String) -> String { s.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }

    /// The generated answer contains the reference (both normalized); an empty reference never counts.
    public static func contains(generated: String, reference: String) -> Bool {
        let r = normalize(reference)
        return !r.isEmpty && normalize(generated).contains(r)
    }

    /// The generated answer contains a match of `pattern`.
    public static func regex(generated: String, pattern: NSRegularExpression) -> Bool {
        pattern.firstMatch(in: generated, range: NSRange(generated.startIndex..., in: generated)) != nil
    }

    /// The trimmed answer parses as one JSON value (object, array, string, number, bool or null).
    public static func json(_ s: String) -> Any? {
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(t.utf8), options: [.fragmentsAllowed])
    }

    public static func jsonValid(_ s: String) -> Bool { json(s) != nil }

    /// Both parse as JSON objects and every field in `fields` is present in both with equal values.
    public static func jsonFieldsMatch(generated: String, reference: String, fields: [String]) -> Bool {
        guard let g = json(generated) as? [String: Any], let r = json(reference) as? [String: Any] else { return false }
        return fields.allSatisfy { f in
            guard let a = g[f], let b = r[f] else { return false }
            return canonical(a) == canonical(b)
        }
    }

    private static func canonical(_ v: Any) -> String {
        guard let d = try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys, .fragmentsAllowed]) else { return "\(v)" }
        return String(decoding: d, as: UTF8.self)
    }

    /// The option a text names (normalized equality), or nil.
    public static func label(_ text: String, among options: [String]) -> String? {
        let t = normalize(text)
        return options.first { normalize($0) == t }
    }
}

/// Counts of (actual class, predicted class); `other` stands for an answer that is none of the classes.
public struct Confusion: Codable, Sendable, Equatable {
    public static let other = "(other)"
    public var labels: [String]
    /// `counts[actual][predicted]`, indices into `labels`.
    public var counts: [[Int]]

    public init(labels: [String]) {
        self.labels = labels + [Self.other]
        counts = Array(repeating: Array(repeating: 0, count: labels.count + 1), count: labels.count + 1)
    }

    public mutating func add(actual: String?, predicted: String?) {
        let a = actual.flatMap { labels.firstIndex(of: $0) } ?? labels.count - 1
        let p = predicted.flatMap { labels.firstIndex(of: $0) } ?? labels.count - 1
        counts[a][p] += 1
    }

    /// Per class: recall = correct / actual count, precision = correct / predicted count (nil when undefined).
    public func recall(_ i: Int) -> Double? {
        let n = counts[i].reduce(0, +)
        return n == 0 ? nil : Double(counts[i][i]) / Double(n)
    }

    public func precision(_ i: Int) -> Double? {
        let n = counts.reduce(0) { $0 + $1[i] }
        return n == 0 ? nil : Double(counts[i][i]) / Double(n)
    }
}
