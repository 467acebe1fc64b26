// JSONValue — an arbitrary JSON value (artifact metadata, run configs) that round-trips through Codable.

import Foundation

/// Any JSON value. Objects encode with the encoder's key order (tune's encoders sort keys).
public enum JSONValue: Codable, Hashable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// A shared decoder (decoding is thread-safe; creating a decoder per row is measurably slow on Linux).
    static let decoder = JSONDecoder()

    /// Parses a JSON object from text; `what` names the input in the error.
    public static func object(parsing text: String, what: String) throws -> [String: JSONValue] {
        guard let v = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw TuneError(.invalidArgument, "\(what): not valid JSON: \(text.prefix(60))")
        }
        guard case .object(let o) = v else {
            throw TuneError(.invalidArgument, "\(what): expected a JSON object, got \(text.prefix(60))")
        }
        return o
    }

    /// Canonical text: sorted keys, no extra whitespace.
    public static func canonicalText<T: Encodable>(_ value: T) throws -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(value), as: UTF8.self)
    }
}

extension JSONValue {
    /// Any Encodable value as a JSONValue tree.
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSONDecoder().decode(JSONValue.self, from: Data(try JSONValue.canonicalText(value).utf8))
    }

    /// Sorted keys, no whitespace: equal values give equal text (cache keys hash this).
    public func canonicalJSON() throws -> String { try JSONValue.canonicalText(self) }
}
