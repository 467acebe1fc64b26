// NotifierTests — `notify.command`: the summary arrives on stdin in the pipeline's directory, a failing
// command is reported with its exit status and stderr, a hung one is stopped at the deadline, and one
// that never reads its stdin cannot take the process down (SIGPIPE).
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct NotifierTests {
    private func notify(_ command: String) throws -> NotifySection {
        try JSONDecoder().decode(NotifySection.self, from: try JSONEncoder().encode(["command": command]))
    }

    private func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("notifier-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    @Test func commandReadsTheSummaryOnStdin() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let summary = JSONValue.object(["pipeline": .string("p"), "promoted": .bool(true)])
        let out = Notifier().send(summary, notify: try notify("cat > got.json"), directory: dir.path)
        #expect(out == .object(["command": .object(["ok": .bool(true), "exit_status": .number(0)])]))
        let got = try String(contentsOf: dir.appendingPathComponent("got.json"), encoding: .utf8)
        #expect(got == (try summary.canonicalJSON()))
    }

    @Test func failingCommandReportsStatusAndStderr() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = Notifier().send(.object([:]), notify: try notify("echo 'no route to pager' >&2; exit 3"), directory: dir.path)
        #expect(out == .object(["command": .object(["ok": .bool(false), "exit_status": .number(3),
                                                    "stderr": .string("no route to pager")])]))
    }

    @Test func hungCommandIsStoppedAtTheDeadline() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        var n = Notifier()
        n.commandTimeout = 1
        let t0 = Date()
        let out = n.send(.object([:]), notify: try notify("exec sleep 30"), directory: dir.path)
        #expect(Date().timeIntervalSince(t0) < 20)
        #expect(out == .object(["command": .object(["ok": .bool(false), "error": .string("timed out after 1 s")])]))
    }

    @Test func commandThatIgnoresStdinIsFine() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Far more than a pipe holds, to a command that exits at once without reading it.
        let big = JSONValue.object(["log": .string(String(repeating: "x", count: 4 << 20))])
        let out = Notifier().send(big, notify: try notify("exit 0"), directory: dir.path)
        #expect(out == .object(["command": .object(["ok": .bool(true), "exit_status": .number(0)])]))
    }
}
