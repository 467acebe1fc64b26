// FileBlobStore — blobs on disk under a root (default `adapters/`): `sha256/ab/<digest>` is a
// read-only file or a directory tree. Writes go to `tmp/` in the same root, are fsynced, then
// renamed into place, so a crash leaves a whole blob or a stray temporary (which gc removes).

import Engine
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A content-addressed blob store in a directory.
public struct FileBlobStore: BlobStore {
    public let root: String

    /// A store rooted at `root` (created on first write).
    public init(root: String) {
        self.root = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
    }

    private var tmpDir: String { root + "/tmp" }

    public func path(of blob: Blob) -> String? { root + "/" + blob.uri }

    // MARK: - Writing

    public func ingest(_ source: URL) throws -> Blob {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir) else {
            throw TuneError(.notFound, "\(source.path): no such file or directory")
        }
        try AtomicFile.makeDirectory(tmpDir)
        let tmp = tmpDir + "/" + UUID().uuidString
        do {
            let blob: Blob
            if isDir.boolValue {
                try AtomicFile.makeDirectory(tmp)
                var entries: [DirectoryManifest.Entry] = []
                for rel in try Self.regularFiles(in: source) {
                    let dst = tmp + "/" + rel
                    try AtomicFile.makeDirectory(URL(fileURLWithPath: dst).deletingLastPathComponent().path)
                    let (sha, size) = try Self.copyHashing(from: source.appendingPathComponent(rel).path, to: dst)
                    entries.append(.init(path: rel, sha256: sha, size: size))
                }
                let m = DirectoryManifest.digest(entries)
                blob = Blob(sha256: m.sha256, size: m.size, layout: .directory)
            } else {
                let (sha, size) = try Self.copyHashing(from: source.path, to: tmp)
                blob = Blob(sha256: sha, size: size, layout: .file)
            }
            try place(tmp, blob)
            return blob
        } catch {
            try? FileManager.default.removeItem(atPath: tmp)
            throw AtomicFile.ioError(error, source.path)
        }
    }

    /// Renames a finished temporary into its address. A file replaces any previous copy (same bytes, and a
    /// damaged copy is healed); an existing directory is kept and the temporary dropped.
    private func place(_ tmp: String, _ blob: Blob) throws {
        let final = path(of: blob)!
        let parent = URL(fileURLWithPath: final).deletingLastPathComponent().path
        try AtomicFile.makeDirectory(parent)
        FaultPoint.hit("blob.before-rename")
        if blob.layout == .directory, FileManager.default.fileExists(atPath: final) {
            try? FileManager.default.removeItem(atPath: tmp)
            return
        }
        if Glibc.rename(tmp, final) != 0 {
            let err = errno
            if blob.layout == .directory, err == ENOTEMPTY || err == EEXIST {
                try? FileManager.default.removeItem(atPath: tmp)  // another writer placed it first
                return
            }
            throw TuneError(.io, "\(final): cannot move blob into place: \(String(cString: strerror(err)))")
        }
        AtomicFile.syncDirectory(parent)
    }

    /// Streams `src` into a new file `dst`, hashing as it goes; fsyncs and makes `dst` read-only.
    static func copyHashing(from src: String, to dst: String) throws -> (String, Int64) {
        guard let input = FileHandle(forReadingAtPath: src) else { throw TuneError(.io, "\(src): cannot open for reading") }
        defer { try? input.close() }
        guard FileManager.default.createFile(atPath: dst, contents: nil),
              let output = FileHandle(forWritingAtPath: dst) else { throw TuneError(.io, "\(dst): cannot create file") }
        defer { try? output.close() }
        var h = SHA256()
        var size: Int64 = 0
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
            h.update(chunk)
            try output.write(contentsOf: chunk)
            size += Int64(chunk.count)
        }
        try output.synchronize()
        chmod(dst, 0o444)
        return (h.finalize().hex, size)
    }

    /// Regular files under `dir`, as relative paths sorted by bytes. Symlinks and special files are refused,
    /// so a directory's address always covers everything a reader would see.
    static func regularFiles(in dir: URL) throws -> [String] {
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: dir.path) else { throw TuneError(.io, "\(dir.path): cannot list directory") }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            let full = dir.path + "/" + rel
            let attrs = try fm.attributesOfItem(atPath: full)
            let type = attrs[.type] as? FileAttributeType
            if type == .typeDirectory { continue }
            guard type == .typeRegular else {
                throw TuneError(.invalidArgument, "\(full): only regular files and directories can be stored (found \(type?.rawValue ?? "unknown"))")
            }
            guard !rel.contains("\t"), !rel.contains("\n") else {
                throw TuneError(.invalidArgument, "\(full): file names with tabs or newlines cannot be stored")
            }
            out.append(rel)
        }
        return out.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    // MARK: - Reading and checking

    public func contains(_ blob: Blob) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path(of: blob)!, isDirectory: &isDir)
            && isDir.boolValue == (blob.layout == .directory)
    }

    public func check(_ blob: Blob) throws -> BlobCheck {
        let p = path(of: blob)!
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else { return .missing }
        if isDir.boolValue != (blob.layout == .directory) {
            return .mismatch(actual: isDir.boolValue ? "a directory" : "a file")
        }
        let actual = try Self.address(of: p, directory: isDir.boolValue).sha256
        return actual == blob.sha256 ? .ok : .mismatch(actual: actual)
    }

    /// Hashes a file, or a directory through its manifest, without copying.
    static func address(of path: String, directory: Bool) throws -> (sha256: String, size: Int64) {
        if !directory { return try hashFile(path) }
        let entries = try regularFiles(in: URL(fileURLWithPath: path)).map { rel in
            let (sha, size) = try hashFile(path + "/" + rel)
            return DirectoryManifest.Entry(path: rel, sha256: sha, size: size)
        }
        return DirectoryManifest.digest(entries)
    }

    static func hashFile(_ path: String) throws -> (String, Int64) {
        guard let input = FileHandle(forReadingAtPath: path) else { throw TuneError(.io, "\(path): cannot open for reading") }
        defer { try? input.close() }
        var h = SHA256()
        var size: Int64 = 0
        while let chunk = try input.read(upToCount: 1 << 20), !chunk.isEmpty {
            h.update(chunk)
            size += Int64(chunk.count)
        }
        return (h.finalize().hex, size)
    }

    public func storedBlobs() throws -> [Blob] {
        let fm = FileManager.default
        let base = root + "/sha256"
        guard fm.fileExists(atPath: base) else { return [] }
        var out: [Blob] = []
        for shard in try fm.contentsOfDirectory(atPath: base).sorted() {
            for name in try fm.contentsOfDirectory(atPath: base + "/" + shard).sorted()
            where name.count == 64 && isLowerHex(Substring(name)) {
                let p = base + "/" + shard + "/" + name
                var isDir: ObjCBool = false
                _ = fm.fileExists(atPath: p, isDirectory: &isDir)
                let size = isDir.boolValue ? try diskSize(p) : (try fm.attributesOfItem(atPath: p)[.size] as? Int64 ?? 0)
                out.append(Blob(sha256: name, size: size, layout: isDir.boolValue ? .directory : .file))
            }
        }
        return out
    }

    private func diskSize(_ dir: String) throws -> Int64 {
        try Self.regularFiles(in: URL(fileURLWithPath: dir)).reduce(0) {
            $0 + ((try FileManager.default.attributesOfItem(atPath: dir + "/" + $1)[.size] as? Int64) ?? 0)
        }
    }

    // MARK: - Removing

    public func remove(_ digest: String) throws {
        let p = root + "/" + Blob.uri(digest)
        guard FileManager.default.fileExists(atPath: p) else { return }
        do { try FileManager.default.removeItem(atPath: p) } catch { throw AtomicFile.ioError(error, p) }
    }

    public func staleTemporaries(olderThan age: TimeInterval) throws -> [String] {
        let fm = FileManager.default
        guard fm.fileExists(atPath: tmpDir) else { return [] }
        let cutoff = Date().addingTimeInterval(-age)
        return try fm.contentsOfDirectory(atPath: tmpDir).sorted().filter { name in
            let m = try fm.attributesOfItem(atPath: tmpDir + "/" + name)[.modificationDate] as? Date
            return (m ?? .distantPast) < cutoff
        }.map { "tmp/" + $0 }
    }

    public func removeTemporary(_ name: String) throws {
        guard name.hasPrefix("tmp/"), !name.dropFirst(4).contains("/") else {
            throw TuneError(.invalidArgument, "\(name): not a temporary of this store")
        }
        let p = root + "/" + name
        do { try FileManager.default.removeItem(atPath: p) } catch { throw AtomicFile.ioError(error, p) }
    }

    // MARK: - Export

    public func export(_ blob: Blob, to destination: URL) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: destination.path) else {
            throw TuneError(.conflict, "\(destination.path): already exists; choose a new path")
        }
        let src = path(of: blob)!
        let parent = destination.deletingLastPathComponent().path
        try AtomicFile.makeDirectory(parent)
        let tmp = parent + "/.\(destination.lastPathComponent).tmp-\(UUID().uuidString)"
        do {
            let actual: String
            if blob.layout == .directory {
                try AtomicFile.makeDirectory(tmp)
                var entries: [DirectoryManifest.Entry] = []
                for rel in try Self.regularFiles(in: URL(fileURLWithPath: src)) {
                    try AtomicFile.makeDirectory(URL(fileURLWithPath: tmp + "/" + rel).deletingLastPathComponent().path)
                    let (sha, size) = try Self.copyHashing(from: src + "/" + rel, to: tmp + "/" + rel)
                    chmod(tmp + "/" + rel, 0o644)
                    entries.append(.init(path: rel, sha256: sha, size: size))
                }
                actual = DirectoryManifest.digest(entries).sha256
            } else {
                guard fm.fileExists(atPath: src) else { throw TuneError(.integrity, "\(src): blob is missing") }
                actual = try Self.copyHashing(from: src, to: tmp).0
                chmod(tmp, 0o644)
            }
            guard actual == blob.sha256 else {
                throw TuneError(.integrity, "\(src): content hashes to \(actual), expected \(blob.sha256)")
            }
            try AtomicFile.rename(tmp, to: destination.path)
            AtomicFile.syncDirectory(parent)
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw AtomicFile.ioError(error, src)
        }
    }
}
