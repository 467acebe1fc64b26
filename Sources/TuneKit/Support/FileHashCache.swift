// FileHashCache — sha256 of input files (base models, datasets) without re-reading unchanged files:
// memoized per process and persisted beside the registry, keyed by path + size + mtime + inode (as
// DVC and make decide "unchanged"). A stale or unreadable cache file only costs a re-hash.

import Engine
import Foundation

public final class FileHashCache: @unchecked Sendable {
    private struct Entry: Codable { var stamp: String; var sha256: String }
    private let file: String?
    private let lock = NSLock()
    private var entries: [String: Entry]
    private var dirty = false

    /// `file`: where the cache persists (nil: memory only).
    public init(file: String?) {
        self.file = file
        if let file, let data = FileManager.default.contents(atPath: file),
           let decoded = try? JSONDecoder().decode([String: Entry].self, from: data) {
            entries = decoded
        } else {
            entries = [:]
        }
    }

    /// The sha256 (hex) of the file at `path`.
    public func sha256(_ path: String) throws -> String {
        let key = URL(fileURLWithPath: path).standardized.path
        var st = stat()
        guard stat(key, &st) == 0 else { return try SHA256.hashFile(path) } // the hasher names the error
        let stamp = "\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ino)"
        lock.lock()
        if let e = entries[key], e.stamp == stamp { lock.unlock(); return e.sha256 }
        lock.unlock()
        let hex = st.st_size >= Self.progressThreshold ? try Self.hashShowingProgress(path, size: Int64(st.st_size)) : try SHA256.hashFile(path)
        lock.lock()
        entries[key] = Entry(stamp: stamp, sha256: hex)
        dirty = true
        lock.unlock()
        return hex
    }

    /// Files at least this large report their hashing to `ProgressSink` (a 100 MB base takes a while on a slow disk).
    public static let progressThreshold: Int64 = 16 << 20

    /// sha256 of a large file in 1 MiB chunks, reporting `hash` progress (bytes) to `ProgressSink`.
    static func hashShowingProgress(_ path: String, size: Int64) throws -> String {
        guard let input = FileHandle(forReadingAtPath: path) else { throw TuneError(.io, "\(path): cannot open for reading") }
        defer { try? input.close() }
        let meter = ProgressMeter(task: "hash", subject: (path as NSString).lastPathComponent, total: Double(size), unit: "bytes")
        func tick(_ n: Int64) { if let u = meter.tick(Double(n)) { ProgressSink.report(nil, u) } }
        tick(0)
        var h = SHA256()
        var done: Int64 = 0
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
            h.update(chunk)
            done += Int64(chunk.count)
            tick(min(done, size))
        }
        if done < size { tick(size) } // the file shrank while it was read: still close the line
        return h.finalize().hex
    }

    /// Writes the cache file (atomically) if anything was added.
    public func save() {
        lock.lock()
        defer { lock.unlock() }
        guard dirty, let file, let data = try? JSONEncoder().encode(entries) else { return }
        try? FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if (try? data.write(to: URL(fileURLWithPath: file), options: .atomic)) != nil { dirty = false }
    }
}
