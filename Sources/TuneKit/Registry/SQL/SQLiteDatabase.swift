// SQLiteDatabase — the SQLite backend of the SQL seam, on GRDB: WAL (a DatabasePool: readers never wait
// for the writer), a busy timeout, foreign keys, and IMMEDIATE write transactions (the write lock is
// taken up front, so writers from several processes queue on the busy timeout instead of failing on
// upgrade). Statements are prepared once per connection (GRDB's statement cache).

import Foundation
import GRDB

public final class SQLiteDatabase: SQLDatabase {
    public let path: String
    public var location: String { path }
    let pool: DatabasePool

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
                    out = try body(Connection(db: db))
                    return .commit
                }
                return out!
            }
        } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do { return try pool.read { db in try body(Connection(db: db)) } } catch { throw SQLiteDatabase.wrap(error, path) }
    }

    /// One SELECT sees one consistent snapshot by itself; saves the BEGIN/COMMIT round trip on hot paths.
    public func readStatement<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        do { return try pool.unsafeRead { db in try body(Connection(db: db)) } } catch { throw SQLiteDatabase.wrap(error, path) }
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

        func execute(_ sql: String, _ args: SQLArguments) throws -> Int {
            let s = try db.cachedStatement(sql: sql)
            try s.execute(arguments: Self.arguments(args))
            return db.changesCount
        }

        func query(_ sql: String, _ args: SQLArguments) throws -> [SQLRow] {
            let s = try db.cachedStatement(sql: sql)
            let columns = SQLColumns(s.columnNames)
            let n = s.columnCount
            let cursor = try Row.fetchCursor(s, arguments: Self.arguments(args))
            var out: [SQLRow] = []
            while let row = try cursor.next() {
                var values: [SQLValue] = []
                values.reserveCapacity(n)
                for i in 0..<n {
                    switch (row[i] as DatabaseValue).storage {
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

        static func arguments(_ args: SQLArguments) -> StatementArguments {
            StatementArguments(args.map { a -> DatabaseValue in
                switch a?.sqlValue ?? .null {
                case .null: .null
                case .int(let v): v.databaseValue
                case .double(let v): v.databaseValue
                case .text(let v): v.databaseValue
                case .blob(let v): v.databaseValue
                }
            })
        }
    }
}
