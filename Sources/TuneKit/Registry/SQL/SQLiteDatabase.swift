// SQLiteDatabase — the SQLite backend of the SQL seam, on GRDB: WAL (a DatabasePool: readers never wait
// for the writer), a busy timeout, foreign keys, and IMMEDIATE write transactions (the write lock is
// taken up front, so writers from several processes queue on the busy timeout instead of failing on
// upgrade). Statements are prepared once per connection (GRDB's statement cache), and so is each
// statement's column-name index (`columnCache`); rows are read straight off the statement by position.

import Foundation
import GRDB

public final class SQLiteDatabase: SQLDatabase {
    public let path: String
    public var location: String { path }
    let pool: DatabasePool
    let columnCache = ColumnCache()

    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    /// - Parameter busyTimeout: how long a write waits for another process's write to finish.
    public init(path: String, busyTimeout: TimeInterval = 30) throws {
        self.path = path
        try AtomicFile.makeDirectory(URL(fileURLWithPath: path).deletingLastPathComponent().path)
        var config = Configuration()
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try pool.writeWithoutTransaction { db in try Schema.migrateSQLite(db, path: path) }
        } catch {
            throw SQLiteDatabase.wrap(error, path)
        }
    }

    public func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do {
            return try pool.writeWithoutTransaction { db in
                var out: T?
                try db.inTransaction(.immediate) {
                    out = try body(Connection(db: db, columnCache: columnCache))
                    return .commit
                }
                return out!
            }
        } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do { return try pool.read { db in try body(Connection(db: db, columnCache: columnCache)) } } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    /// One SELECT sees one consistent snapshot by itself; saves the BEGIN/COMMIT round trip on hot paths.
    public func readStatement<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do { return try pool.unsafeRead { db in try body(Connection(db: db, columnCache: columnCache)) } } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    public func optimize() throws {
        do {
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "ANALYZE")
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            }
        } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    /// Runs raw SQL outside the seam (tests rewind migrations with it).
    public func withGRDB<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.writeWithoutTransaction(body) } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    static func wrap(_ error: any Error, _ path: String) -> any Error {
        guard let e = error as? DatabaseError else { return error }
        if e.resultCode == .SQLITE_BUSY || e.resultCode == .SQLITE_LOCKED {
            return TuneError(.database, "\(path): registry is locked by another process; try again")
        }
        return TuneError(.database, "\(path): \(e.message ?? "\(e.resultCode)")")
    }

    // MARK: - Connection

    struct Connection: SQLConnection {
        let db: Database
        let columnCache: ColumnCache

        func execute(_ sql: String, _ args: SQLArguments) throws -> Int {
            let s = try db.cachedStatement(sql: sql)
            try s.execute(arguments: Self.arguments(args))
            return db.changesCount
        }

        /// Values are read by position from the stepped statement (no GRDB `Row` decoding, which goes
        /// through generic metadata per value); the column names come from `columnCache`.
        func query(_ sql: String, _ args: SQLArguments) throws -> [SQLRow] {
            let s = try db.cachedStatement(sql: sql)
            let columns = columnCache.columns(for: s)
            let n = CInt(s.columnCount)
            let stmt = s.sqliteStatement
            let cursor = try Row.fetchCursor(s, arguments: Self.arguments(args))
            var out: [SQLRow] = []
            while try cursor.next() != nil {
                var values: [SQLValue] = []
                values.reserveCapacity(Int(n))
                for i in 0..<n {
                    switch DatabaseValue(sqliteStatement: stmt, index: i).storage {
                    case .null: values.append(.null)
                    case .int64(let v): values.append(.int(v))
                    case .double(let v): values.append(.double(v))
                    case .string(let v): values.append(.text(v))
                    case .blob(let v): values.append(.blob(v))
                    }
                }
                out.append(SQLRow(columns: columns, values: values))
            }
            return out
        }

        /// Built from existentials: GRDB's `some Sequence<some DatabaseValueConvertible>` initializer
        /// instantiates a key path on every call.
        static func arguments(_ args: SQLArguments) -> StatementArguments {
            StatementArguments(args.map { a -> (any DatabaseValueConvertible)? in
                switch a?.sqlValue ?? .null {
                case .null: nil
                case .int(let v): v
                case .double(let v): v
                case .text(let v): v
                case .blob(let v): v
                }
            })
        }
    }

    // MARK: - Column cache

    /// One `SQLColumns` (names and the name → index map) per prepared statement, so a query does not
    /// rebuild the map on every call. Keyed by the statement's identity and checked against its column
    /// names, so a statement freed and another allocated at the same address cannot get stale names.
    final class ColumnCache: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [ObjectIdentifier: SQLColumns] = [:]
        /// Statements with interpolated SQL (`IN (?, ?, …)`, `LIMIT n`) are many; start over past this.
        private let capacity = 1024

        func columns(for s: Statement) -> SQLColumns {
            let names = s.columnNames  // computed once per statement by GRDB
            let key = ObjectIdentifier(s)
            lock.lock()
            defer { lock.unlock() }
            if let c = entries[key], c.names == names { return c }
            let c = SQLColumns(names)
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = c
            return c
        }
    }
}
