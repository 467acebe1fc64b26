// Formats — the four JSONL row shapes (chat `messages`, alpaca `instruction/input/output`,
// `prompt/completion`, plain `text`), per-row detection, validation, and the reasons a row is dropped.

import Engine
import Foundation

// MARK: - Format

/// How rows of a JSONL file are shaped. `auto` detects per row from its keys.
public enum DatasetFormat: String, Codable, Sendable, Hashable, CaseIterable {
    case auto, chat, alpaca, completion, text
}

/// One parsed input row.
public enum DatasetRow: Sendable, Equatable {
    case chat([ChatMessage])
    case alpaca(instruction: String, input: String, output: String)
    case completion(prompt: String, completion: String)
    case text(String)

    /// The format this row was parsed as.
    public var format: DatasetFormat {
        switch self {
        case .chat: .chat
        case .alpaca: .alpaca
        case .completion: .completion
        case .text: .text
        }
    }
}

// MARK: - Drop reasons

/// Why a row was not kept. Raw values are the manifest's keys.
public enum DropReason: String, Codable, Sendable, Hashable, CaseIterable, Comparable {
    case invalidUTF8 = "invalid_utf8"
    case invalidJSON = "invalid_json"
    case notAnObject = "not_an_object"
    case unknownFormat = "unknown_format"
    case missingField = "missing_field"
    case wrongType = "wrong_type"
    case invalidRole = "invalid_role"
    case emptyContent = "empty_content"
    /// The model's chat template raised for the row (`raise_exception`, e.g. roles out of order).
    case templateError = "template_error"
    case tooShort = "too_short"
    case tooLong = "too_long"
    case duplicate = "duplicate"
    case nearDuplicate = "near_duplicate"
    case evalOverlap = "eval_overlap"

    /// Whether the row itself is malformed (subject to `on_error: fail`), as opposed to filtered.
    public var isMalformed: Bool {
        switch self {
        case .invalidUTF8, .invalidJSON, .notAnObject, .unknownFormat, .missingField, .wrongType, .invalidRole, .emptyContent,
             .templateError: true
        case .tooShort, .tooLong, .duplicate, .nearDuplicate, .evalOverlap: false
        }
    }

    public static func < (a: DropReason, b: DropReason) -> Bool { a.rawValue < b.rawValue }
}

/// Where a row came from: the file as given and its 1-based line number.
public struct RowSource: Sendable, Hashable, Codable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public init(file: String, line: Int) {
        self.file = file
        self.line = line
    }
    public var description: String { "\(file):\(line)" }
}

/// A dropped row: where, why, and a one-line detail (`bad.jsonl:4: missing_field: no "output" key`).
public struct RowIssue: Sendable, Hashable, CustomStringConvertible {
    public var source: RowSource
    public var reason: DropReason
    public var detail: String
    public init(source: RowSource, reason: DropReason, detail: String) {
        self.source = source
        self.reason = reason
        self.detail = detail
    }
    public var description: String { "\(source): \(reason.rawValue): \(detail)" }
}

/// A parse failure before the row has a source attached.
struct RowProblem: Error {
    var reason: DropReason
    var detail: String
    init(_ reason: DropReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }
}

// MARK: - Parsing

public enum RowParser {
    /// Chat roles a row may use.
    public static let roles: Set<String> = ["system", "user", "assistant"]

    /// The format of a JSON object, from its keys: `messages` → chat, `instruction` → alpaca,
    /// `prompt`/`completion` → completion, `text` → text; nil when none is present.
    public static func detect(_ object: [String: Any]) -> DatasetFormat? {
        if object["messages"] != nil { return .chat }
        if object["instruction"] != nil { return .alpaca }
        if object["prompt"] != nil || object["completion"] != nil { return .completion }
        if object["text"] != nil { return .text }
        return nil
    }

    /// Parses one decoded JSON value as `format` (or detects it), validating fields and roles.
    static func parse(_ json: Any, format: DatasetFormat) throws(RowProblem) -> DatasetRow {
        guard let object = json as? [String: Any] else {
            throw RowProblem(.notAnObject, "expected a JSON object, got \(typeName(json))")
        }
        var fmt = format
        if fmt == .auto {
            guard let d = detect(object) else {
                let keys = object.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", ")
                throw RowProblem(.unknownFormat,
                    "no \"messages\", \"instruction\", \"prompt\"/\"completion\" or \"text\" key (found: \(keys.isEmpty ? "none" : keys))")
            }
            fmt = d
        }
        switch fmt {
        case .chat: return try parseChat(object)
        case .alpaca:
            let instruction = try string(object, "instruction")
            let input = try string(object, "input", required: false) ?? ""
            let output = try string(object, "output")
            guard !isBlank(output) else { throw RowProblem(.emptyContent, "\"output\" is empty") }
            return .alpaca(instruction: instruction, input: input, output: output)
        case .completion:
            let prompt = try string(object, "prompt")
            let completion = try string(object, "completion")
            guard !isBlank(completion) else { throw RowProblem(.emptyContent, "\"completion\" is empty") }
            return .completion(prompt: prompt, completion: completion)
        case .text, .auto:
            let text = try string(object, "text")
            guard !isBlank(text) else { throw RowProblem(.emptyContent, "\"text\" is empty") }
            return .text(text)
        }
    }

    /// A chat row: known roles, an optional leading system message, a user turn before the first
    /// assistant turn, at least one non-empty assistant turn.
    private static func parseChat(_ object: [String: Any]) throws(RowProblem) -> DatasetRow {
        guard let raw = object["messages"] else { throw RowProblem(.missingField, "no \"messages\" key") }
        guard let list = raw as? [Any] else {
            throw RowProblem(.wrongType, "\"messages\" must be an array, got \(typeName(raw))")
        }
        guard !list.isEmpty else { throw RowProblem(.emptyContent, "\"messages\" is empty") }
        var messages: [ChatMessage] = []
        for (i, item) in list.enumerated() {
            guard let m = item as? [String: Any] else {
                throw RowProblem(.wrongType, "messages[\(i)] must be an object, got \(typeName(item))")
            }
            let role = try string(m, "role", path: "messages[\(i)].")
            let content = try string(m, "content", path: "messages[\(i)].")
            guard roles.contains(role) else {
                throw RowProblem(.invalidRole, "messages[\(i)].role \"\(role)\" is not one of assistant, system, user")
            }
            if role == "system", i != 0 {
                throw RowProblem(.invalidRole, "messages[\(i)]: a system message may only come first")
            }
            if role == "assistant", !messages.contains(where: { $0.role == "user" }) {
                throw RowProblem(.invalidRole, "messages[\(i)]: assistant turn before any user turn")
            }
            if role == "assistant", isBlank(content) {
                throw RowProblem(.emptyContent, "messages[\(i)]: assistant content is empty")
            }
            if let prev = messages.last, prev.role == role {
                throw RowProblem(.invalidRole, "messages[\(i)]: two \(role) turns in a row")
            }
            messages.append(ChatMessage(role: role, content: content))
        }
        guard messages.contains(where: { $0.role == "assistant" }) else {
            throw RowProblem(.invalidRole, "no assistant message to train on")
        }
        return .chat(messages)
    }

    // MARK: - Field helpers

    private static func string(_ o: [String: Any], _ key: String, path: String = "", required: Bool = true)
        throws(RowProblem) -> String? {
        guard let v = o[key] else {
            if required { throw RowProblem(.missingField, "no \"\(path)\(key)\" key") }
            return nil
        }
        if v is NSNull, !required { return nil }
        guard let s = v as? String else {
            throw RowProblem(.wrongType, "\"\(path)\(key)\" must be a string, got \(typeName(v))")
        }
        return s
    }

    private static func string(_ o: [String: Any], _ key: String, path: String = "") throws(RowProblem) -> String {
        guard let s: String = try string(o, key, path: path, required: true) else {
            throw RowProblem(.missingField, "no \"\(path)\(key)\" key")
        }
        return s
    }

    static func isBlank(_ s: String) -> Bool { s.allSatisfy(\.isWhitespace) }

    static func typeName(_ v: Any) -> String {
        switch v {
        case is String: "a string"
        case is NSNull: "null"
        case let n as NSNumber: String(cString: n.objCType) == "c" ? "a boolean" : "a number"
        case is [Any]: "an array"
        case is [String: Any]: "an object"
        default: "\(type(of: v))"
        }
    }
}
