// CronTests — the cron parser and next-fire calculator against known schedules (expected instants
// computed independently by a brute-force minute walk with Python's zoneinfo), the day-of-month /
// day-of-week OR rule, names, ranges, steps and lists, DST gaps and overlaps, and catch-up.
import Engine
import Foundation
import Testing
import TuneKit

private func t(_ s: String) -> Date { Stamp.date(s)! }
private func fires(_ expr: String, tz: String? = nil, after: String, count: Int = 3) throws -> [String] {
    let c = try CronExpression(parsing: expr, timeZone: tz)
    var out: [String] = [], at = t(after)
    for _ in 0..<count {
        guard let n = c.next(after: at) else { break }
        out.append(String(Stamp.string(n).prefix(19)) + "Z")
        at = n
    }
    return out
}

@Suite struct CronTests {
    @Test func knownSchedulesInUTC() throws {
        let start = "2026-11-23T03:00:00Z"   // a Monday, exactly on "0 3 * * 1": strictly after, so next week
        #expect(try fires("0 3 * * 1", after: start) == ["2026-11-30T03:00:00Z", "2026-12-07T03:00:00Z", "2026-12-14T03:00:00Z"])
        #expect(try fires("*/15 9-17 * * MON-FRI", after: "2026-11-27T17:40:00Z") == ["2026-11-27T17:45:00Z", "2026-11-30T09:00:00Z", "2026-11-30T09:15:00Z"])
        #expect(try fires("0 0 1,15 * *", after: start) == ["2026-12-01T00:00:00Z", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z"])
        #expect(try fires("0 12 * JAN,jul *", after: start) == ["2027-01-01T12:00:00Z", "2027-01-02T12:00:00Z", "2027-01-03T12:00:00Z"])
        #expect(try fires("0 0 * * 7", after: start) == ["2026-11-29T00:00:00Z", "2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"])
        #expect(try fires("5-10/2 * * * *", after: start, count: 4) == ["2026-11-23T03:05:00Z", "2026-11-23T03:07:00Z", "2026-11-23T03:09:00Z", "2026-11-23T04:05:00Z"])
        #expect(try fires("0 0 29 2 *", after: start, count: 1) == ["2028-02-29T00:00:00Z"])
        #expect(try fires("@monthly", after: start, count: 2) == ["2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"])
    }

    @Test func dayOfMonthOrDayOfWeekWhenBothRestricted() throws {
        // Friday OR the 13th (Vixie/POSIX), not "Friday the 13th".
        #expect(try fires("0 0 13 * FRI", after: "2026-11-23T03:00:00Z", count: 4)
                == ["2026-11-27T00:00:00Z", "2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z"])
        // A star day-of-week leaves day-of-month alone.
        #expect(try fires("0 0 13 * *", after: "2026-11-23T03:00:00Z", count: 1) == ["2026-12-13T00:00:00Z"])
    }

    @Test func timeZones() throws {
        #expect(try fires("0 9 * * 1", tz: "America/New_York", after: "2026-11-23T03:00:00Z") == ["2026-11-23T14:00:00Z", "2026-11-30T14:00:00Z", "2026-12-07T14:00:00Z"])
        #expect(try fires("CRON_TZ=Asia/Tokyo 0 9 1 * *", after: "2026-11-23T03:00:00Z") == ["2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"])
    }

    @Test func springForwardGapFiresOnceAtTheTransition() throws {
        // Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z); 02:30 does not exist that day.
        #expect(try fires("30 2 * * *", tz: "Europe/Berlin", after: "2026-03-28T12:00:00Z", count: 2) == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"])
        // 02:00 and 02:30 are both skipped: one fire at the transition, then 03:30 CEST.
        #expect(try fires("*/30 * * * *", tz: "Europe/Berlin", after: "2026-03-29T00:45:00Z", count: 2) == ["2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"])
        // New York 2026-03-08: 02:00 EST → 03:00 EDT (07:00Z).
        #expect(try fires("0 2 * * *", tz: "America/New_York", after: "2026-03-07T12:00:00Z", count: 2) == ["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"])
    }

    @Test func fallBackRepeatFiresOnce() throws {
        // Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:30 happens at 00:30Z and 01:30Z.
        #expect(try fires("30 2 * * *", tz: "Europe/Berlin", after: "2026-10-24T12:00:00Z", count: 2) == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
        #expect(try fires("0 * * * *", tz: "Europe/Berlin", after: "2026-10-24T23:30:00Z", count: 4)
                == ["2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z", "2026-10-25T04:00:00Z"])
    }

    @Test func neverFiringExpressionHasNoNext() throws {
        #expect(try CronExpression(parsing: "0 0 30 2 *").next(after: t("2026-01-01T00:00:00Z")) == nil)
    }

    @Test func catchUpIsTheLastMissedTimeOnly() throws {
        let c = try CronExpression(parsing: "0 3 * * *")
        #expect(c.lastFire(after: t("2026-11-01T00:00:00Z"), upTo: t("2026-11-23T12:00:00Z")) == t("2026-11-23T03:00:00Z"))
        #expect(c.lastFire(after: t("2026-11-23T03:00:00Z"), upTo: t("2026-11-23T12:00:00Z")) == nil)
        let minutely = try CronExpression(parsing: "* * * * *")
        #expect(minutely.lastFire(after: t("2025-11-01T00:00:00Z"), upTo: t("2026-11-23T12:00:30Z")) == t("2026-11-23T12:00:00Z"))
    }

    @Test func errorsNameTheFieldAndRange() throws {
        for (expr, needle) in [("60 * * * *", "minute field \"60\""), ("* * *", "expected 5 fields"), ("0 0 * * FOO", "day-of-week"),
                               ("*/0 * * * *", "step"), ("0 0 32 * *", "day-of-month"), ("5-1 * * * *", "backwards"), ("0 0 * 13 *", "month")] {
            let e = tuneError { _ = try CronExpression(parsing: expr) }
            #expect(e?.message.contains(needle) == true, "\(expr): \(e?.message ?? "no error")")
        }
        #expect(tuneError { _ = try CronExpression(parsing: "0 3 * * *", timeZone: "Mars/Olympus") }?.message.contains("unknown time zone") == true)
    }
}
