// Support — run the built `tune` binary and capture what it prints.
import Foundation

/// The package root, derived from this file's path.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The real model fetched by scripts/setup, if present.
let realModelPath = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
let hasRealModel = FileManager.default.fileExists(atPath: realModelPath)

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// The `tune` executable built next to this test binary.
let tuneBinary: URL = {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    return exe.deletingLastPathComponent().appendingPathComponent("tune")
}()

/// Runs `tune args…` and waits for it. Arguments are passed as raw bytes so tests can send invalid UTF-8.
func tune(_ args: [String], rawArgument: [UInt8]? = nil, env: [String: String] = [:]) throws -> RunResult {
    let p = Process()
    p.executableURL = tuneBinary
    p.arguments = args
    p.currentDirectoryURL = packageRoot
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let r = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                     stderr: String(decoding: r, as: UTF8.self))
}

/// A fresh temporary directory.
func makeTempDir() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("tune-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
