// AtomicFile — durable writes: temp file beside the target, fsync, rename, fsync the directory.
// A crash leaves either the old content or the new, never a torn file.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum AtomicFile {
    /// Writes `data` to `path` atomically and durably.
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        try makeDirectory(dir)
        let tmp = dir + "/.\(url.lastPathComponent).tmp-\(UUID().uuidString)"
        do {
            guard FileManager.default.createFile(atPath: tmp, contents: nil) else {
                throw TuneError(.io, "\(tmp): cannot create file")
            }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: tmp))
            try h.write(contentsOf: data)
            try h.synchronize()
            try h.close()
            try rename(tmp, to: path)
            syncDirectory(dir)
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw ioError(error, path)
        }
    }

    /// Renames `from` to `to` (same file system), replacing a file at `to`.
    static func rename(_ from: String, to: String) throws {
        if Glibc.rename(from, to) != 0 {
            throw TuneError(.io, "\(to): cannot rename from \(from): \(String(cString: strerror(errno)))")
        }
    }

    /// Flushes a directory entry table so a rename inside it survives power loss (best effort).
    static func syncDirectory(_ dir: String) {
        let fd = open(dir, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Creates `dir` and its parents if missing.
    static func makeDirectory(_ dir: String) throws {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        catch { throw TuneError(.io, "\(dir): cannot create directory: \(error.localizedDescription)") }
    }

    /// Wraps a Foundation error as a one-line `TuneError(.io)` naming `path`; passes TuneErrors through.
    static func ioError(_ error: any Error, _ path: String) -> TuneError {
        if let e = error as? TuneError { return e }
        return TuneError(.io, "\(path): \((error as NSError).localizedDescription)")
    }
}

// MARK: - Fault injection

/// Named crash points for crash-consistency tests: when the environment variable `TUNE_FAULT`
/// equals a point's name, the process kills itself there with SIGKILL (no cleanup, like a power cut
/// for the process). `TUNE_FAULT_PAUSE=NAME:SECONDS` sleeps there instead (concurrency tests: a stage
/// held long enough that other processes must wait for it). Unset in normal use; costs one or two
/// environment lookups per point.
enum FaultPoint {
    static func hit(_ name: String) {
        let env = ProcessInfo.processInfo.environment
        if let p = env["TUNE_FAULT_PAUSE"], let colon = p.lastIndex(of: ":"), p[..<colon] == name,
           let seconds = Double(p[p.index(after: colon)...]), seconds > 0 {
            Thread.sleep(forTimeInterval: seconds)
        }
        guard let v = env["TUNE_FAULT"], v == name else { return }
        kill(getpid(), SIGKILL)
    }
}
