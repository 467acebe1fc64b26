// Notifier — tells people what a scheduled job did: `notify.command` runs through /bin/sh with the JSON
// summary on stdin (in the pipeline's directory, at most `commandTimeout` seconds), and
// `notify.webhook` receives the summary as a JSON POST through the HTTPTransport seam, retried on
// transport errors and 5xx/429 with exponential backoff. Outcomes are returned for the job record;
// a failing hook never undoes a promotion. URLs are shown redacted (no credentials or query string).

import Foundation

public struct Notifier: Sendable {
    public var transport: any HTTPTransport
    public var attempts = 3
    /// Delay before retry n is `retryDelay · 2^(n-1)` seconds.
    public var retryDelay: TimeInterval = 0.5
    public var commandTimeout: TimeInterval = 60
    public var webhookTimeout: TimeInterval = 10

    public init(transport: any HTTPTransport = CurlHTTPTransport()) { self.transport = transport }

    /// Runs the hooks of `notify` with `summary`; returns {command: {...}, webhook: {...}} outcomes.
    public func send(_ summary: JSONValue, notify: NotifySection, directory: String) -> JSONValue {
        var out: [String: JSONValue] = [:]
        let body = (try? summary.canonicalJSON()) ?? "{}"
        if let c = notify.command { out["command"] = runCommand(c, input: Data(body.utf8), directory: directory) }
        if let w = notify.webhook { out["webhook"] = post(w, body: Data(body.utf8)) }
        return .object(out)
    }

    func runCommand(_ command: String, input: Data, directory: String) -> JSONValue {
        let r: ProcessRunner.Result
        do {
            r = try ProcessRunner.run("/bin/sh", ["-c", command], input: input, directory: directory, timeout: commandTimeout)
        } catch {
            return .object(["ok": .bool(false), "error": .string("\(error)")])
        }
        if r.timedOut { return .object(["ok": .bool(false), "error": .string("timed out after \(Int(commandTimeout)) s")]) }
        let ok = !r.signaled && r.status == 0
        var out: [String: JSONValue] = ["ok": .bool(ok), "exit_status": .number(Double(r.status))]
        let err = String(r.stderr.prefix(500)).trimmingCharacters(in: .whitespacesAndNewlines)
        if !ok, !err.isEmpty { out["stderr"] = .string(err) }
        return .object(out)
    }

    func post(_ url: String, body: Data) -> JSONValue {
        var last = "not sent"
        for attempt in 1...max(1, attempts) {
            if attempt > 1 { Thread.sleep(forTimeInterval: retryDelay * pow(2, Double(attempt - 2))) }
            let req = HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: .bytes(body),
                                  timeout: webhookTimeout, connectTimeout: min(5, webhookTimeout))
            do {
                let r = try transport.send(req)
                if (200..<300).contains(r.status) {
                    return .object(["ok": .bool(true), "status": .number(Double(r.status)), "attempts": .number(Double(attempt))])
                }
                last = "HTTP \(r.status)"
                if r.status < 500, r.status != 429 { break }   // a client error will not change on retry
            } catch {
                last = "\(error)"
            }
        }
        return .object(["ok": .bool(false), "error": .string("\(redactedURL(url)): \(last)"), "url": .string(redactedURL(url))])
    }
}
