// ChatJSONLValidator — checks an uploaded fine-tuning file the way OpenAI does before a job is queued:
// every line a JSON object whose `messages` is a list of {role, content} with at least one assistant
// turn. Problems carry 1-based line numbers and land in the job's `error`.

import Foundation

enum ChatJSONLValidator {
    struct Problem: Equatable, CustomStringConvertible {
        var line: Int
        var message: String
        var description: String { "line \(line): \(message)" }
    }

    static let roles: Set<String> = ["system", "user", "assistant"]

    /// The number of valid example rows and up to `maxProblems` problems (empty when the file is valid).
    static func validate(_ data: Data, maxProblems: Int = 10) -> (rows: Int, problems: [Problem], more: Int) {
        guard let text = String(data: data, encoding: .utf8) else {
            return (0, [Problem(line: 1, message: "the file is not valid UTF-8")], 0)
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }           // the final newline
        var rows = 0, problems: [Problem] = [], more = 0
        func report(_ line: Int, _ message: String) {
            if problems.count < maxProblems { problems.append(Problem(line: line, message: message)) } else { more += 1 }
        }
        for (i, raw) in lines.enumerated() {
            let n = i + 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            if line.allSatisfy(\.isWhitespace) { report(n, "empty line; expected a JSON object"); continue }
            guard let any = try? JSONSerialization.jsonObject(with: Data(line.utf8)) else { report(n, "not valid JSON"); continue }
            guard let object = any as? [String: Any] else { report(n, "expected a JSON object, got \(kind(any))"); continue }
            guard let messagesAny = object["messages"] else { report(n, "missing \"messages\""); continue }
            guard let messages = messagesAny as? [Any], !messages.isEmpty else {
                report(n, "\"messages\" must be a non-empty list, got \(kind(messagesAny))"); continue
            }
            var ok = true, assistant = false
            for (j, m) in messages.enumerated() {
                guard let msg = m as? [String: Any] else { report(n, "messages[\(j)]: expected an object, got \(kind(m))"); ok = false; break }
                guard let role = msg["role"] as? String else { report(n, "messages[\(j)]: missing or non-string \"role\""); ok = false; break }
                guard roles.contains(role) else {
                    report(n, "messages[\(j)].role: expected one of system, user, assistant, got \"\(role)\""); ok = false; break
                }
                guard msg["content"] is String else {
                    report(n, "messages[\(j)].content: expected a string, got \(kind(msg["content"] as Any))"); ok = false; break
                }
                if role == "assistant" { assistant = true }
            }
            guard ok else { continue }
            guard assistant else { report(n, "no assistant message to train on"); continue }
            rows += 1
        }
        if lines.isEmpty { report(1, "the file is empty; expected one JSON object per line") }
        return (rows, problems, more)
    }

    private static func kind(_ v: Any) -> String {
        switch v {
        case is String: "a string"
        case is NSNull: "null"
        case let n as NSNumber: String(cString: n.objCType) == "c" ? "a boolean" : "a number"
        case is [Any]: "a list"
        case is [String: Any]: "an object"
        default: "nothing"
        }
    }
}
