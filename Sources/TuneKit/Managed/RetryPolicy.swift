// RetryPolicy — when a failed HTTP call to a managed provider is tried again, and after how long:
//   • 429 with `insufficient_quota`         → fail at once (waiting does not add credit);
//   • 429 otherwise                         → wait `Retry-After` (seconds or an HTTP date; `retry-after-ms`
//                                             too), else the backoff;
//   • 5xx, 408, and transport errors        → jittered exponential backoff;
//   • any other 4xx                         → fail at once with the provider's `error.message`.
// Every operation also has a total deadline: a wait that would end past it is not started.
// Time comes from an injected `RetryClock`, and jitter from a seeded SplitMix64, so tests neither
// wait for real nor depend on chance.

import Engine
import Foundation

/// Time for retries and polling: a monotonic `now` and a `sleep`. Tests inject a fake one.
public protocol RetryClock: Sendable {
    /// Seconds on a monotonic clock.
    func now() -> Double
    func sleep(_ seconds: Double)
}

/// The real clock.
public struct SystemRetryClock: RetryClock {
    public init() {}
    public func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    public func sleep(_ seconds: Double) { if seconds > 0 { usleep(useconds_t(min(seconds, 3600) * 1e6)) } }
}

/// How often and how long to retry one operation.
public struct RetryPolicy: Sendable, Hashable {
    /// Tries in all, the first included.
    public var maxAttempts: Int = 6
    /// Backoff before the second try, seconds; doubles each try up to `maxDelay`.
    public var baseDelay: Double = 1
    public var maxDelay: Double = 30
    /// Total time one operation may take, waits included, seconds.
    public var deadline: Double = 600
    /// The backoff is multiplied by a uniform factor in [1 − jitter, 1].
    public var jitter: Double = 0.5

    public init(maxAttempts: Int = 6, baseDelay: Double = 1, maxDelay: Double = 30, deadline: Double = 600, jitter: Double = 0.5) {
        self.maxAttempts = maxAttempts; self.baseDelay = baseDelay; self.maxDelay = maxDelay
        self.deadline = deadline; self.jitter = jitter
    }

    /// The backoff after failed try number `attempt` (1-based): `min(maxDelay, baseDelay·2^(attempt−1))·(1 − jitter·u)`.
    public func backoff(attempt: Int, unit u: Double) -> Double {
        let raw = min(maxDelay, baseDelay * pow(2, Double(max(0, attempt - 1))))
        return raw * (1 - jitter * min(max(u, 0), 1))
    }

    /// What to do about one HTTP response that is not 2xx.
    public enum Decision: Equatable, Sendable {
        /// Try again after this many seconds (nil: the backoff).
        case retry(after: Double?)
        /// Do not retry.
        case fail
    }

    /// Classifies a non-2xx response (see the file header). `now` resolves HTTP-date `Retry-After` values.
    public static func decide(status: Int, headers: [String: String], error: ProviderErrorBody.Detail?, now: Date = Date()) -> Decision {
        if status == 429 {
            if error?.code == "insufficient_quota" || error?.type == "insufficient_quota" { return .fail }
            return .retry(after: retryAfter(headers, now: now))
        }
        if status >= 500 || status == 408 { return .retry(after: retryAfter(headers, now: now)) }
        return .fail
    }

    /// `retry-after-ms` (milliseconds), else `Retry-After` as delta-seconds or an HTTP date; nil when absent or unreadable.
    public static func retryAfter(_ headers: [String: String], now: Date = Date()) -> Double? {
        if let ms = headers["retry-after-ms"].flatMap(Double.init), ms.isFinite, ms >= 0 { return ms / 1000 }
        guard let v = headers["retry-after"]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
        if let s = Double(v), s.isFinite, s >= 0 { return s }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            f.dateFormat = format
            if let d = f.date(from: v) { return max(0, d.timeIntervalSince(now)) }
        }
        return nil
    }
}

/// A seeded jitter source shared by the threads of one client.
final class JitterSource: @unchecked Sendable {
    private var rng: SplitMix64
    private let lock = NSLock()
    init(seed: UInt64) { rng = SplitMix64(seed: seed) }
    func next() -> Double { lock.lock(); defer { lock.unlock() }; return rng.nextUnitDouble() }
}
