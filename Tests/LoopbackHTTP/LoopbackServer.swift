// LoopbackServer — a tiny HTTP/1.1 server for tests: a POSIX socket bound to 127.0.0.1 on a free
// port, one thread per connection, one request per connection (`Connection: close`). A handler
// decides each answer, which can be a response, a delay, a dropped connection or raw bytes
// (malformed replies). Bounded: it stops itself after `lifetime` seconds or `maxConnections`
// connections, and on `stop()`/deinit. Nothing here knows about OpenAI (see FakeProvider).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct LoopbackRequest: Sendable {
    public var method: String
    /// The path without the query string.
    public var path: String
    public var query: String
    /// Lower-cased names.
    public var headers: [String: String]
    public var body: Data
    /// The request exactly as received (head and body), for "does a secret appear" checks.
    public var raw: Data
}

public indirect enum LoopbackAction: Sendable {
    case respond(status: Int, headers: [String: String], body: Data)
    /// Wait, then do the action (a slow server).
    case delay(Double, LoopbackAction)
    /// Close the connection without a response.
    case drop
    /// Send these bytes and close (a malformed reply).
    case raw(Data)

    public static func json(_ status: Int, _ text: String, headers: [String: String] = [:]) -> LoopbackAction {
        .respond(status: status, headers: headers.merging(["Content-Type": "application/json"]) { a, _ in a }, body: Data(text.utf8))
    }
}

public final class LoopbackServer: @unchecked Sendable {
    public let port: Int
    public var url: String { "http://127.0.0.1:\(port)" }
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    private var log: [LoopbackRequest] = []
    private let handler: @Sendable (LoopbackRequest) -> LoopbackAction

    /// Starts listening at once. - Parameters: lifetime: seconds until it stops by itself.
    public init(lifetime: Double = 120, maxConnections: Int = 2000, handler: @escaping @Sendable (LoopbackRequest) -> LoopbackAction) throws {
        self.handler = handler
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard sock >= 0 else { throw POSIXError(.EIO) }
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(sock, 64) == 0 else { close(sock); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        fd = sock
        let deadline = Date().addingTimeInterval(lifetime)
        Thread.detachNewThread { [self] in
            var served = 0
            while served < maxConnections, Date() < deadline, !isStopped {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 100) > 0 else { continue }
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                served += 1
                Thread.detachNewThread { [self] in serve(c) }
            }
            stop()
        }
    }

    deinit { stop() }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    public func stop() {
        lock.lock(); defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        close(fd)
    }

    /// Every request received so far, in arrival order.
    public var requests: [LoopbackRequest] { lock.lock(); defer { lock.unlock() }; return log }

    public func count(_ method: String, _ path: String) -> Int { requests.filter { $0.method == method && $0.path == path }.count }

    // MARK: - One connection

    private func serve(_ c: Int32) {
        defer { close(c) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard let request = read(c) else { return }
        lock.lock(); log.append(request); lock.unlock()
        perform(handler(request), on: c)
    }

    private func perform(_ action: LoopbackAction, on c: Int32) {
        switch action {
        case .delay(let s, let next):
            Thread.sleep(forTimeInterval: s)
            perform(next, on: c)
        case .drop:
            var l = linger(l_onoff: 1, l_linger: 0)   // RST: the client sees the connection die
            setsockopt(c, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        case .raw(let bytes):
            write(c, bytes)
        case .respond(let status, let headers, let body):
            var head = "HTTP/1.1 \(status) \(status < 300 ? "OK" : "Error")\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
            for (k, v) in headers.sorted(by: { $0.key < $1.key }) { head += "\(k): \(v)\r\n" }
            write(c, Data((head + "\r\n").utf8) + body)
        }
    }

    private func write(_ c: Int32, _ data: Data) {
        data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = send(c, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }

    private func read(_ c: Int32) -> LoopbackRequest? {
        var buf = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        let sep = Data("\r\n\r\n".utf8)
        var headEnd: Range<Data.Index>? = nil
        var need = -1
        while true {
            if headEnd == nil, let r = buf.range(of: sep) {
                headEnd = r
                let head = String(decoding: buf[..<r.lowerBound], as: UTF8.self)
                need = head.split(separator: "\r\n").compactMap { line -> Int? in
                    let p = line.split(separator: ":", maxSplits: 1)
                    return p.count == 2 && p[0].lowercased() == "content-length" ? Int(p[1].trimmingCharacters(in: .whitespaces)) : nil
                }.first ?? 0
            }
            if let h = headEnd, buf.count - h.upperBound >= need { break }
            let n = recv(c, &chunk, chunk.count, 0)
            if n <= 0 { return nil }
            buf.append(contentsOf: chunk[0..<n])
        }
        let h = headEnd!
        let lines = String(decoding: buf[..<h.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ")
        guard first.count >= 2 else { return nil }
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            let p = l.split(separator: ":", maxSplits: 1)
            if p.count == 2 { headers[p[0].lowercased()] = p[1].trimmingCharacters(in: .whitespaces) }
        }
        let target = String(first[1])
        let q = target.firstIndex(of: "?")
        return LoopbackRequest(method: String(first[0]), path: q.map { String(target[..<$0]) } ?? target,
                               query: q.map { String(target[target.index(after: $0)...]) } ?? "", headers: headers,
                               body: Data(buf[h.upperBound..<(h.upperBound + need)]), raw: buf)
    }
}
