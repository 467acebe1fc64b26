// ScheduleWebhookServer — a tiny HTTP/1.1 server on a POSIX socket bound to 127.0.0.1 (ephemeral port)
// for the webhook tests: it answers each request with the next status of a script (then 200) and keeps
// the bodies. Bounded: it serves at most `maxRequests` connections and stops after `lifetime` seconds.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class ScheduleWebhookServer: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var bodies: [String] = []
    private var statuses: [Int]
    private var stopped = false

    var url: String { "http://127.0.0.1:\(port)/hook" }
    var received: [String] { lock.withLock { bodies } }

    init(statuses: [Int] = [], maxRequests: Int = 20, lifetime: TimeInterval = 120) throws {
        self.statuses = statuses
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(sock, 8) == 0 else { close(sock); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
        let deadline = Date().addingTimeInterval(lifetime)
        Thread { [self] in
            var served = 0
            while served < maxRequests, Date() < deadline, !lock.withLock({ stopped }) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 100) > 0 else { continue }
                let c = accept(fd, nil, nil)
                guard c >= 0 else { continue }
                served += 1
                handle(c)
                close(c)
            }
        }.start()
    }

    private func handle(_ c: Int32) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var data = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            if let end = data.range(of: Data("\r\n\r\n".utf8)) {
                let head = String(decoding: data[..<end.lowerBound], as: UTF8.self).lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if data.count - end.upperBound >= length {
                    let body = String(decoding: data[end.upperBound..<(end.upperBound + length)], as: UTF8.self)
                    let status = lock.withLock { () -> Int in
                        bodies.append(body)
                        return statuses.isEmpty ? 200 : statuses.removeFirst()
                    }
                    let reply = "HTTP/1.1 \(status) X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    _ = reply.withCString { send(c, $0, strlen($0), 0) }
                    return
                }
            }
            let n = recv(c, &buf, buf.count, 0)
            guard n > 0 else { return }
            data.append(contentsOf: buf[0..<n])
        }
    }

    func stop() {
        lock.withLock { stopped = true }
        close(fd)
    }
}
