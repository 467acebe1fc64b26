// Clock — the time source of the scheduler and the queue (a seam: tests inject a manual clock and
// never sleep), and the UTC text form times are stored in (ISO 8601 with milliseconds; sorts as text).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

public protocol ScheduleClock: Sendable {
    func now() -> Date
}

/// The system's wall clock.
public struct SystemClock: ScheduleClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that moves only when told to; for tests.
public final class ManualClock: ScheduleClock, @unchecked Sendable {
    private let lock = NSLock()
    private var t: Date
    public init(_ start: Date) { t = start }
    public func now() -> Date { lock.withLock { t } }
    public func set(_ d: Date) { lock.withLock { t = d } }
    public func advance(_ seconds: TimeInterval) { lock.withLock { t = t.addingTimeInterval(seconds) } }
}

/// UTC ISO 8601 text with milliseconds, `2026-11-23T03:00:00.000Z`.
public enum Stamp {
    public static func string(_ d: Date) -> String {
        let ms = Int64((d.timeIntervalSince1970 * 1000).rounded(.down))
        var t = time_t(Civil.floorDiv(ms, 1000))
        var tm = tm()
        gmtime_r(&t, &tm)
        func pad(_ v: Int, _ n: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, n - s.count)) + s
        }
        return "\(pad(Int(tm.tm_year) + 1900, 4))-\(pad(Int(tm.tm_mon) + 1, 2))-\(pad(Int(tm.tm_mday), 2))T"
            + "\(pad(Int(tm.tm_hour), 2)):\(pad(Int(tm.tm_min), 2)):\(pad(Int(tm.tm_sec), 2)).\(pad(Int(ms - Civil.floorDiv(ms, 1000) * 1000), 3))Z"
    }

    /// Parses `2026-11-23T03:00:00Z`, with or without fractional seconds, or with an offset.
    public static func date(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }
}
