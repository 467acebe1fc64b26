// BlobStore — the seam between the registry and where content lives: content-addressed blobs
// (single files or directories), written atomically and verified by hash. FileBlobStore is the
// real one; InMemoryBlobStore serves tests and the registry benchmark.

import Engine
import Foundation

// MARK: - Blob

/// Content stored under its sha256.
public struct Blob: Hashable, Sendable {
    public var sha256: String
    /// Bytes of content (sum of file sizes for a directory).
    public var size: Int64
    public var layout: BlobLayout

    public init(sha256: String, size: Int64, layout: BlobLayout) {
        self.sha256 = sha256
        self.size = size
        self.layout = layout
    }

    /// Location relative to a store root: `sha256/ab/abcdef…`.
    public var uri: String { Blob.uri(sha256) }

    static func uri(_ digest: String) -> String { "sha256/\(digest.prefix(2))/\(digest)" }
}

/// The result of re-hashing a stored blob.
public enum BlobCheck: Hashable, Sendable {
    case ok
    case missing
    /// The content now hashes to `actual` (or the layout changed: `actual` says what was found).
    case mismatch(actual: String)
}

// MARK: - Protocol

/// Where artifact content lives. Implementations are safe to use from several threads and processes.
public protocol BlobStore: Sendable {
    /// Human-readable location, for messages (`adapters`, `memory`).
    var root: String { get }
    /// Copies a file or directory into the store (atomically: a crash leaves nothing or a whole blob)
    /// and returns its address. Storing content already present is a no-op that returns the same address.
    func ingest(_ source: URL) throws -> Blob
    /// True when the blob is present (without re-hashing it).
    func contains(_ blob: Blob) -> Bool
    /// Re-hashes the stored content and compares it with `blob.sha256`.
    func check(_ blob: Blob) throws -> BlobCheck
    /// Every blob in the store, with its layout and size.
    func storedBlobs() throws -> [Blob]
    /// Deletes a blob (no error when already absent).
    func remove(_ digest: String) throws
    /// Leftovers of interrupted writes older than `age` seconds, as paths or names.
    func staleTemporaries(olderThan age: TimeInterval) throws -> [String]
    /// Deletes leftovers returned by `staleTemporaries`.
    func removeTemporary(_ name: String) throws
    /// Copies a blob's content to `destination` (which must not exist), verifying its hash on the way.
    func export(_ blob: Blob, to destination: URL) throws
    /// A filesystem path to the content, when the store has one.
    func path(of blob: Blob) -> String?
}

// MARK: - Directory manifests

/// A directory's content address: sha256 over a canonical manifest of (relative path, file sha256,
/// size), one line each, sorted by path bytes, after a version line. Only regular files count.
enum DirectoryManifest {
    struct Entry {
        var path: String
        var sha256: String
        var size: Int64
    }

    static func digest(_ entries: [Entry]) -> (sha256: String, size: Int64) {
        var text = "tune-directory-manifest 1\n"
        for e in entries.sorted(by: { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }) {
            text += "\(e.path)\t\(e.sha256)\t\(e.size)\n"
        }
        return (SHA256.hex(Data(text.utf8)), entries.reduce(0) { $0 + $1.size })
    }
}

// MARK: - In memory

/// A blob store held in memory; for tests and benchmarks. Directories are kept as path → bytes maps.
public final class InMemoryBlobStore: BlobStore, @unchecked Sendable {
    private let lock = NSLock()
    private var blobs: [String: (layout: BlobLayout, files: [String: Data])] = [:]

    public init() {}

    public var root: String { "memory" }

    public func ingest(_ source: URL) throws -> Blob {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir) else {
            throw TuneError(.notFound, "\(source.path): no such file or directory")
        }
        if !isDir.boolValue {
            let data = try read(source)
            return put(files: ["": data], layout: .file)
        }
        var files: [String: Data] = [:]
        for rel in try FileBlobStore.regularFiles(in: source) {
            files[rel] = try read(source.appendingPathComponent(rel))
        }
        return put(files: files, layout: .directory)
    }

    /// Stores bytes as a single-file blob.
    @discardableResult
    public func put(_ data: Data) -> Blob { put(files: ["": data], layout: .file) }

    /// Replaces a stored blob's bytes without changing its address (to test verification).
    public func tamper(_ digest: String, with data: Data) {
        lock.withLock { blobs[digest] = (.file, ["": data]) }
    }

    private func put(files: [String: Data], layout: BlobLayout) -> Blob {
        let blob = Self.address(files, layout)
        lock.withLock { if blobs[blob.sha256] == nil { blobs[blob.sha256] = (layout, files) } }
        return blob
    }

    private static func address(_ files: [String: Data], _ layout: BlobLayout) -> Blob {
        if layout == .file, let d = files[""] { return Blob(sha256: SHA256.hex(d), size: Int64(d.count), layout: .file) }
        let m = DirectoryManifest.digest(files.map { .init(path: $0.key, sha256: SHA256.hex($0.value), size: Int64($0.value.count)) })
        return Blob(sha256: m.sha256, size: m.size, layout: .directory)
    }

    private func read(_ url: URL) throws -> Data {
        do { return try Data(contentsOf: url) } catch { throw AtomicFile.ioError(error, url.path) }
    }

    public func contains(_ blob: Blob) -> Bool { lock.withLock { blobs[blob.sha256] != nil } }

    public func check(_ blob: Blob) throws -> BlobCheck {
        guard let stored = lock.withLock({ blobs[blob.sha256] }) else { return .missing }
        let actual = Self.address(stored.files, stored.layout).sha256
        return actual == blob.sha256 ? .ok : .mismatch(actual: actual)
    }

    public func storedBlobs() throws -> [Blob] {
        lock.withLock { blobs.map { k, v in
            Blob(sha256: k, size: v.files.values.reduce(0) { $0 + Int64($1.count) }, layout: v.layout) } }
    }

    public func remove(_ digest: String) throws { _ = lock.withLock { blobs.removeValue(forKey: digest) } }
    public func staleTemporaries(olderThan age: TimeInterval) throws -> [String] { [] }
    public func removeTemporary(_ name: String) throws {}

    public func export(_ blob: Blob, to destination: URL) throws {
        guard try check(blob) == .ok, let stored = lock.withLock({ blobs[blob.sha256] }) else {
            throw TuneError(.integrity, "memory blob sha256:\(blob.sha256) is missing or damaged")
        }
        for (rel, data) in stored.files {
            let url = rel.isEmpty ? destination : destination.appendingPathComponent(rel)
            try AtomicFile.write(data, to: url.path)
        }
    }

    public func path(of blob: Blob) -> String? { nil }
}
