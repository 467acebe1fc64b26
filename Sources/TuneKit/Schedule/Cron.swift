// Cron — standard 5-field cron expressions (minute hour day-of-month month day-of-week) with an
// optional time zone, and the next fire time after an instant. Written here (no dependency) so the
// DST rules are ours and tested:
//   • `*`, `a-b`, `*/n`, `a-b/n`, `a/n`, lists `a,b-c`, names JAN…DEC and SUN…SAT, 7 = Sunday,
//     macros @yearly @annually @monthly @weekly @daily @midnight @hourly;
//   • day-of-month and day-of-week: when both are restricted (neither starts with `*`) a day
//     matches if EITHER matches (the Vixie/POSIX rule); otherwise both must;
//   • `CRON_TZ=Area/City ` prefix or an explicit zone; default UTC;
//   • a wall time skipped by a spring-forward transition fires once, at the transition instant
//     (the next valid instant); a wall time repeated by fall-back fires once, at its first occurrence.
//
//     let c = try CronExpression(parsing: "0 3 * * MON", timeZone: "Europe/Berlin")
//     let next = c.next(after: Date())   // Monday 03:00 Berlin time, as an instant

import Foundation

public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    public let source: String
    public let timeZone: TimeZone
    let minutes: [Int], hours: [Int], days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let domRestricted: Bool, dowRestricted: Bool

    public var description: String { source }

    static let monthNames = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    static let dayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    static let macros = ["@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                         "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"]

    /// Parses `text`; `timeZone` (an IANA name) applies unless the text starts with `CRON_TZ=NAME`.
    /// Errors name the field, the offending part and the allowed range.
    public init(parsing text: String, timeZone zone: String? = nil) throws {
        var body = text.trimmingCharacters(in: .whitespaces)
        var zoneName = zone
        if body.hasPrefix("CRON_TZ=") || body.hasPrefix("TZ=") {
            let parts = body.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            zoneName = String(parts[0].split(separator: "=", maxSplits: 1).last ?? "")
            body = parts.count > 1 ? String(parts[1]) : ""
        }
        let tz: TimeZone
        if let zoneName {
            guard let z = TimeZone(identifier: zoneName) else {
                throw TuneError(.invalidArgument, "cron \"\(text)\": unknown time zone \"\(zoneName)\" (expected an IANA name like Europe/Berlin or UTC)")
            }
            tz = z
        } else { tz = TimeZone(identifier: "UTC")! }
        let expanded = Self.macros[body.lowercased()] ?? body
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw TuneError(.invalidArgument, "cron \"\(text)\": expected 5 fields (minute hour day-of-month month day-of-week), got \(fields.count)")
        }
        func field(_ i: Int, _ name: String, _ range: ClosedRange<Int>, _ names: [String], _ nameBase: Int) throws -> Set<Int> {
            try Self.parseField(fields[i], name: name, range: range, names: names, nameBase: nameBase, text: text)
        }
        minutes = try field(0, "minute", 0...59, [], 0).sorted()
        hours = try field(1, "hour", 0...23, [], 0).sorted()
        days = try field(2, "day-of-month", 1...31, [], 0)
        months = try field(3, "month", 1...12, Self.monthNames, 1)
        weekdays = Set(try field(4, "day-of-week", 0...7, Self.dayNames, 0).map { $0 % 7 })
        domRestricted = !fields[2].hasPrefix("*")
        dowRestricted = !fields[4].hasPrefix("*")
        source = text
        timeZone = tz
    }

    static func parseField(_ f: String, name: String, range: ClosedRange<Int>, names: [String], nameBase: Int, text: String) throws -> Set<Int> {
        func bad(_ what: String) -> TuneError {
            TuneError(.invalidArgument, "cron \"\(text)\": \(name) field \"\(f)\": \(what) (allowed \(range.lowerBound)-\(range.upperBound)\(names.isEmpty ? "" : " or \(names.first!)-\(names.last!)"))")
        }
        func value(_ s: Substring) throws -> Int {
            if let i = names.firstIndex(of: s.uppercased()) { return i + nameBase }
            guard let v = Int(s), range.contains(v) else { throw bad("\"\(s)\" is out of range or not a number") }
            return v
        }
        var out = Set<Int>()
        for part in f.split(separator: ",", omittingEmptySubsequences: false) {
            guard !part.isEmpty else { throw bad("empty list element") }
            let stepParts = part.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s >= 1 else { throw bad("step \"\(stepParts[1])\" is not a positive integer") }
                step = s
            }
            let r = stepParts[0]
            let lo: Int, hi: Int
            if r == "*" {
                (lo, hi) = (range.lowerBound, range.upperBound)
            } else if let dash = r.firstIndex(of: "-") {
                lo = try value(r[..<dash]); hi = try value(r[r.index(after: dash)...])
                guard lo <= hi else { throw bad("range \(r) runs backwards") }
            } else {
                lo = try value(r)
                hi = stepParts.count == 2 ? range.upperBound : lo
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    /// Whether the civil date (y, m, d) with weekday `wd` (0 = Sunday) is a firing day.
    func matchesDay(month: Int, day: Int, weekday wd: Int) -> Bool {
        guard months.contains(month) else { return false }
        let dom = days.contains(day), dow = weekdays.contains(wd)
        if domRestricted && dowRestricted { return dom || dow }
        return dom && dow
    }

    /// The first fire instant strictly after `after`, or nil when none exists within 8 years (e.g. `0 0 30 2 *`).
    public func next(after: Date) -> Date? {
        let afterSec = Int64(floor(after.timeIntervalSince1970))
        let localStart = afterSec + Int64(timeZone.secondsFromGMT(for: after))
        var day = Civil.floorDiv(localStart, 86_400) - 1   // a day early: a gap/overlap may shift instants
        for _ in 0..<(366 * 8 + 2) {
            let (_, m, d) = Civil.date(fromDays: day)
            if matchesDay(month: m, day: d, weekday: Civil.weekday(days: day)) {
                for h in hours where day * 86_400 + Int64(h * 3600 + 3599) > afterSec - 14 * 3600 {
                    for mi in minutes {
                        let wall = day * 86_400 + Int64(h * 3600 + mi * 60)
                        // Offsets lie within ±14 h: a wall time this far before `after` cannot be later than it.
                        if wall <= afterSec - 14 * 3600 { continue }
                        if let t = instant(wall: wall), t > afterSec { return Date(timeIntervalSince1970: TimeInterval(t)) }
                    }
                }
            }
            day += 1
        }
        return nil
    }

    /// The instant at which the local wall time `wall` (seconds since the epoch, as if UTC) happens:
    /// its first occurrence when repeated, the transition instant when skipped.
    func instant(wall: Int64) -> Int64? {
        let probe = { (t: Int64) in Int64(self.timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(t)))) }
        let offsets = Set([probe(wall - 86_400), probe(wall), probe(wall + 86_400)])
        let valid = offsets.map { wall - $0 }.filter { probe($0) == wall - $0 }
        if let first = valid.min() { return first }
        // Skipped (a gap): the first instant with the later offset is the next valid one. Before the gap
        // the offset is the smaller one, after it the larger: bisect between the two candidate instants.
        guard let lo0 = offsets.min(), let hi0 = offsets.max(), lo0 != hi0 else { return nil }
        var lo = wall - hi0, hi = wall - lo0          // probe(lo) = small offset, probe(hi) = large offset
        guard probe(lo) != hi0, probe(hi) == hi0 else { return nil }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if probe(mid) == hi0 { hi = mid } else { lo = mid }
        }
        return hi
    }

    /// The last fire instant ≤ `now` that is also after `since`, if any: the one catch-up run after downtime.
    /// Looks back through growing windows (an hour, a day, a month, a year, 8 years) so a minutely cron
    /// after a year of downtime costs a few dozen steps, not half a million.
    public func lastFire(after since: Date, upTo now: Date) -> Date? {
        guard let first = next(after: since), first <= now else { return nil }
        for window: TimeInterval in [3600, 86_400, 32 * 86_400, 367 * 86_400, 8 * 366 * 86_400] {
            var t = max(since, now.addingTimeInterval(-window))
            guard var last = next(after: t), last <= now else { continue }
            t = last
            while let n = next(after: t), n <= now { last = n; t = n }
            return last
        }
        return first
    }
}

/// Proleptic Gregorian civil-date arithmetic on day numbers (days since 1970-01-01), after H. Hinnant.
enum Civil {
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 { a >= 0 ? a / b : -((-a + b - 1) / b) }

    static func date(fromDays z0: Int64) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (Int(yoe + era * 400 + (m <= 2 ? 1 : 0)), Int(m), Int(d))
    }

    /// 0 = Sunday (1970-01-01 was a Thursday).
    static func weekday(days: Int64) -> Int { Int(((days % 7) + 11) % 7) }
}
