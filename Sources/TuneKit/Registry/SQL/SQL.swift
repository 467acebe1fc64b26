// SQL — the seam between the registry (and the schedule tables) and a database engine. The registry's
// SQL is written once, in the dialect SQLite and PostgreSQL share: `?` placeholders (translated to `$n`
// for PostgreSQL), `INSERT … RETURNING id`, `ON CONFLICT … DO NOTHING / DO UPDATE`, `WITH RECURSIVE`.
// What differs (schema DDL, how the schema version is stored, how writers are serialized) lives in
// the backends: SQLiteDatabase (GRDB) and PostgresDatabase (libpq, loaded at run time).
//
// ```swift
// let n = try db.write { c in try c.execute("UPDATE jobs SET state = ? WHERE id = ?", ["failed", id]) }
// let rows = try db.read { c in try c.query("SELECT name, version FROM artifacts WHERE name = ?", [name]) }
// let name: String = try rows[0]["name"]
// ```

import Foundation

/// One SQL value as it crosses the seam.
public enum SQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob(Data)
}

/// A Swift value that can be bound to a `?` placeholder.
public protocol SQLBindable {
    var sqlValue: SQLValue { get }
}

/// A Swift value that can be read from a result column.
public protocol SQLDecodable {
    /// Decodes `value`; throws on NULL or a value of another type.
    static func decode(_ value: SQLValue) throws -> Self
}

/// Placeholder arguments, in order.
public typealias SQLArguments = [(any SQLBindable)?]

/// A connection inside a transaction (or, for `readStatement`, a single-statement read).
public protocol SQLConnection {
    /// Runs one statement; returns the number of rows it changed.
    @discardableResult func execute(_ sql: String, _ args: SQLArguments) throws -> Int
    /// Runs one query and returns every row.
    func query(_ sql: String, _ args: SQLArguments) throws -> [SQLRow]
}

/// A registry database: serialized write transactions and consistent reads.
public protocol SQLDatabase: Sendable {
    /// Where it is, safe to print (passwords redacted).
    var location: String { get }
    /// Runs `body` in one write transaction; writers are serialized (across processes too), so a read
    /// followed by a write inside `body` cannot race another writer. Commits when `body` returns.
    func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Runs `body` in one read transaction (one consistent snapshot).
    func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// A read outside an explicit transaction, for bodies that are one SELECT on the success path.
    func readStatement<T>(_ body: (any SQLConnection) throws -> T) throws -> T
    /// Refreshes planner statistics (and, for SQLite, checkpoints the WAL): after a bulk load.
    func optimize() throws
}

// MARK: - Rows

/// Column names of one result, shared by its rows.
public final class SQLColumns: Sendable {
    public let names: [String]
    let index: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var index: [String: Int] = [:]
        for (i, n) in names.enumerated() where index[n.lowercased()] == nil { index[n.lowercased()] = i }
        self.index = index
    }
}

/// One result row: values by position or by column name.
public struct SQLRow: Sendable {
    public let columns: SQLColumns
    public let values: [SQLValue]

    public init(columns: SQLColumns, values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    public subscript<T: SQLDecodable>(_ i: Int) -> T {
        get throws {
            guard i >= 0, i < values.count else {
                throw TuneError(.database, "result has \(values.count) columns; column \(i) was asked for")
            }
            do { return try T.decode(values[i]) } catch let e as TuneError {
                throw TuneError(.database, "column \(columns.names[i]): \(e.message)")
            }
        }
    }

    public subscript<T: SQLDecodable>(_ name: String) -> T {
        get throws {
            guard let i = columns.index[name] ?? columns.index[name.lowercased()] else {
                throw TuneError(.database, "result has no column '\(name)' (columns: \(columns.names.joined(separator: ", ")))")
            }
            return try self[i]
        }
    }
}

extension SQLConnection {
    /// The first row, or nil.
    public func queryOne(_ sql: String, _ args: SQLArguments = []) throws -> SQLRow? {
        try query(sql, args).first
    }

    /// The first column of the first row; nil when there is no row or it is NULL.
    public func scalar<T: SQLDecodable>(_ type: T.Type, _ sql: String, _ args: SQLArguments = []) throws -> T? {
        guard let r = try query(sql, args).first, let v = r.values.first, v != .null else { return nil }
        return try r[0] as T
    }

    /// The first column of every row.
    public func column<T: SQLDecodable>(_ type: T.Type, _ sql: String, _ args: SQLArguments = []) throws -> [T] {
        try query(sql, args).map { try $0[0] as T }
    }

    /// Runs an `INSERT … RETURNING id` and returns the id; nil when nothing was inserted (`ON CONFLICT DO NOTHING`).
    public func insertReturningID(_ sql: String, _ args: SQLArguments) throws -> Int64? {
        try scalar(Int64.self, sql, args)
    }
}

/// `?, ?, …` for an `IN (…)` list of `count` values.
func sqlPlaceholders(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }

// MARK: - Conversions

extension SQLValue: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { self }
    public static func decode(_ value: SQLValue) throws -> SQLValue { value }

    var typeName: String {
        switch self {
        case .null: "NULL"
        case .int: "integer"
        case .double: "real"
        case .text: "text"
        case .blob: "blob"
        }
    }
}

extension String: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .text(self) }
    public static func decode(_ value: SQLValue) throws -> String {
        switch value {
        case .text(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        default: throw TuneError(.database, "expected text, found \(value.typeName)")
        }
    }
}

extension Int64: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .int(self) }
    public static func decode(_ value: SQLValue) throws -> Int64 {
        switch value {
        case .int(let i): return i
        case .text(let s):  // PostgreSQL's text protocol
            if let i = Int64(s) { return i }
            throw TuneError(.database, "expected an integer, found \"\(s)\"")
        case .double(let d) where d == d.rounded() && abs(d) < 9e18: return Int64(d)
        default: throw TuneError(.database, "expected an integer, found \(value.typeName)")
        }
    }
}

extension Int: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .int(Int64(self)) }
    public static func decode(_ value: SQLValue) throws -> Int { Int(try Int64.decode(value)) }
}

extension Double: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .double(self) }
    public static func decode(_ value: SQLValue) throws -> Double {
        switch value {
        case .double(let d): return d
        case .int(let i): return Double(i)
        case .text(let s):
            if let d = Double(s) { return d }
            throw TuneError(.database, "expected a number, found \"\(s)\"")
        default: throw TuneError(.database, "expected a number, found \(value.typeName)")
        }
    }
}

/// Stored as integer 0/1 in both backends.
extension Bool: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .int(self ? 1 : 0) }
    public static func decode(_ value: SQLValue) throws -> Bool {
        switch value {
        case .text("t"), .text("true"): return true
        case .text("f"), .text("false"): return false
        default: return try Int64.decode(value) != 0
        }
    }
}

extension Data: SQLBindable, SQLDecodable {
    public var sqlValue: SQLValue { .blob(self) }
    public static func decode(_ value: SQLValue) throws -> Data {
        switch value {
        case .blob(let d): return d
        case .text(let s) where s.hasPrefix("\\x"):  // PostgreSQL bytea, hex output
            var out = Data(capacity: (s.utf8.count - 2) / 2)
            var hi: UInt8?
            for c in s.utf8.dropFirst(2) {
                guard let v = hexNibble(c) else { throw TuneError(.database, "expected hex bytea, found \"\(s.prefix(40))\"") }
                if let h = hi { out.append(h << 4 | v); hi = nil } else { hi = v }
            }
            return out
        default: throw TuneError(.database, "expected a blob, found \(value.typeName)")
        }
    }

    private static func hexNibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
}

extension Optional: SQLBindable where Wrapped: SQLBindable {
    public var sqlValue: SQLValue { self?.sqlValue ?? .null }
}

extension Optional: SQLDecodable where Wrapped: SQLDecodable {
    public static func decode(_ value: SQLValue) throws -> Wrapped? {
        value == .null ? nil : try Wrapped.decode(value)
    }
}

extension SQLArguments {
    /// The values to bind (nil → NULL).
    var sqlValues: [SQLValue] { map { $0?.sqlValue ?? .null } }
}
