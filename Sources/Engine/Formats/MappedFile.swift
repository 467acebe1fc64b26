// MappedFile — a read-only, private memory mapping of a whole file (mmap PROT_READ,
// MAP_PRIVATE), unmapped in deinit. Open errors are one-line EngineErrors naming the path.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A whole file mapped read-only. `bytes` stays valid while the object lives.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    /// The mapped bytes (empty for an empty file, which is not mapped).
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    /// Maps `path`. Throws `.io` if it cannot be opened, is not a regular file, or mmap fails.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let why = String(cString: strerror(errno))
            throw EngineError(.io, "\(path): cannot open (\(why))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw EngineError(.io, "\(path): cannot stat (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw EngineError(.io, "\(path): not a regular file")
        }
        let size = Int(st.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw EngineError(.io, "\(path): mmap of \(size) bytes failed (\(String(cString: strerror(errno))))")
        }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base { munmap(base, bytes.count) }
    }
}
