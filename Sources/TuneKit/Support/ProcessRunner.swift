// ProcessRunner — the one way TuneKit runs a child program to completion: both pipes drained
// concurrently (a chatty program can never block on a full pipe), optional stdin bytes, working
// directory and deadline.
//
//     let r = try ProcessRunner.run("sbatch", ["--parsable", script])          // PATH lookup
//     let py = try ProcessRunner.run("/opt/venv/bin/python", ["-c", code], timeout: 60)
//     guard r.status == 0 else { … r.stderr … }

import Foundation

enum ProcessRunner {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// It ended on a signal (`status` is then the signal number).
        var signaled = false
        /// The deadline passed and the program was sent SIGTERM; its output is not collected (a
        /// grandchild may still hold the pipes open).
        var timedOut = false
    }

    /// The first executable `tool` on PATH, or nil.
    static func which(_ tool: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = "\(dir)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Runs `tool` (a path, or a name looked up on PATH) with `arguments` and waits for it.
    /// - Parameters:
    ///   - input: bytes written to its stdin (then closed); nil gives it /dev/null.
    ///   - directory: its working directory (default: ours).
    ///   - timeout: seconds before it is sent SIGTERM, and SIGKILL 2 s later (then reported with `timedOut`).
    /// - Throws: `.invalidArgument` when `tool` is not found or cannot be started.
    static func run(_ tool: String, _ arguments: [String], input: Data? = nil, directory: String? = nil,
                    timeout: TimeInterval? = nil) throws -> Result {
        guard let path = tool.contains("/") ? tool : which(tool) else {
            throw TuneError(.invalidArgument, "`\(tool)` is not on PATH")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe(), err = Pipe(), inp = input.map { _ in Pipe() }
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp ?? FileHandle.nullDevice
        do { try p.run() } catch {
            throw TuneError(.invalidArgument, "cannot start \(path): \(error.localizedDescription)")
        }
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box(), errBox = Box()
        let group = DispatchGroup()
        for (pipe, box) in [(out, outBox), (err, errBox)] {
            group.enter()
            DispatchQueue.global().async {
                box.data = pipe.fileHandleForReading.readDataToEndOfFile()
                group.leave()
            }
        }
        if let inp, let input {
            // A program that exits without reading its stdin must not kill us with SIGPIPE, and one that
            // never reads it must not block us past the deadline: write from another thread.
            signal(SIGPIPE, SIG_IGN)
            let writer = inp.fileHandleForWriting
            DispatchQueue.global().async {
                try? writer.write(contentsOf: input)
                try? writer.close()
            }
        }
        if let timeout {
            let deadline = Date().addingTimeInterval(timeout)
            while p.isRunning, Date() < deadline { usleep(10_000) }
            if p.isRunning {
                // SIGTERM, then SIGKILL: a child inherits ignored signals, and tune ignores SIGTERM
                // while its own handler (a dispatch source) is installed.
                p.terminate()
                let grace = Date().addingTimeInterval(2)
                while p.isRunning, Date() < grace { usleep(10_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                p.waitUntilExit()
                return Result(status: p.terminationStatus, stdout: "", stderr: "", signaled: true, timedOut: true)
            }
        }
        group.wait()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outBox.data, as: UTF8.self),
                      stderr: String(decoding: errBox.data, as: UTF8.self),
                      signaled: p.terminationReason == .uncaughtSignal)
    }
}
