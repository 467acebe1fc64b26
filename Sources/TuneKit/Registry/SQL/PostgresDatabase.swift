// PostgresDatabase — the PostgreSQL backend of the SQL seam, over libpq (LibPQ, loaded at run time).
// • Values travel in the text protocol as parameters (`?` → `$n`; never SQL built from values).
// • Writers serialize like SQLite's IMMEDIATE transactions: every write transaction starts with
//   `pg_advisory_xact_lock(writeLockKey)` (per database; released at COMMIT/ROLLBACK), then runs at
//   READ COMMITTED, so each statement sees everything committed before the lock was granted. A
//   read-then-write inside one `write` (next version number, leasing a job) cannot race another writer.
// • Reads run in REPEATABLE READ READ ONLY transactions (one snapshot); `readStatement` in autocommit.
// • Connections are pooled (libpq connections are not thread-safe: one per thread at a time).

import Foundation

public final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    /// The connection URL as given (may hold a password: never printed; see `location`).
    let url: String
    public let location: String
    let pq: LibPQ
    private let lock = NSLock()
    private var idle: [LibPQ.Conn] = []
    private let maxIdle = 8

    /// Every writer takes this transaction-scoped advisory lock first ("tune" in ASCII).
    static let writeLockKey: Int64 = 0x74756E65

    /// Connects to `url` (`postgres://…` or `postgresql://…`) and brings the schema up to date.
    public init(url: String) throws {
        self.url = url
        location = RegistryLocation.redact(url)
        pq = try LibPQ.get()
        let c = try connect()
        defer { release(c) }
        try Schema.migratePostgres(Connection(db: self, conn: c), location: location)
    }

    /// Connects without touching the schema (administrative connections).
    init(unmigrated url: String) throws {
        self.url = url
        location = RegistryLocation.redact(url)
        pq = try LibPQ.get()
    }

    func withConnection<T>(_ body: (Connection) throws -> T) throws -> T {
        let c = try connect()
        defer { release(c) }
        return try body(Connection(db: self, conn: c))
    }

    deinit {
        for c in idle { pq.finish(c) }
    }

    // MARK: - Transactions

    public func write<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try transaction(begin: "BEGIN", lock: true, body)
    }

    public func read<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try transaction(begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", lock: false, body)
    }

    public func readStatement<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        let c = try connect()
        defer { release(c) }
        return try body(Connection(db: self, conn: c))
    }

    public func optimize() throws {
        _ = try readStatement { c in try c.execute("ANALYZE", []) }
    }

    func transaction<T>(begin: String, lock: Bool, _ body: (any SQLConnection) throws -> T) throws -> T {
        let c = try connect()
        defer { release(c) }
        let conn = Connection(db: self, conn: c)
        try conn.simple(begin)
        do {
            if lock { _ = try conn.query("SELECT pg_advisory_xact_lock(?)", [Self.writeLockKey]) }
            let out = try body(conn)
            try conn.simple("COMMIT")
            return out
        } catch {
            try? conn.simple("ROLLBACK")
            throw error
        }
    }

    // MARK: - Connections

    private func connect() throws -> LibPQ.Conn {
        lock.lock()
        let reuse = idle.popLast()
        lock.unlock()
        if let reuse {
            if pq.status(reuse) == LibPQ.connectionOK { return reuse }
            pq.finish(reuse)
        }
        guard let c = pq.connectdb(url) else { throw TuneError(.database, "\(location): out of memory connecting") }
        guard pq.status(c) == LibPQ.connectionOK else {
            let why = pq.errorMessage(c).map { String(cString: $0) } ?? "unknown error"
            pq.finish(c)
            throw TuneError(.database, "\(location): cannot connect: \(redactMessage(why))")
        }
        _ = pq.setNoticeProcessor(c, { _, _ in }, nil)  // NOTICEs ("already exists, skipping") stay off stderr
        return c
    }

    private func release(_ c: LibPQ.Conn) {
        lock.lock()
        if idle.count < maxIdle, pq.status(c) == LibPQ.connectionOK {
            idle.append(c)
            lock.unlock()
        } else {
            lock.unlock()
            pq.finish(c)
        }
    }

    /// Server messages can quote the connection string; keep the password out of them.
    func redactMessage(_ s: String) -> String {
        var out = s.trimmingCharacters(in: .whitespacesAndNewlines)
        if let p = URLComponents(string: url)?.password, !p.isEmpty { out = out.replacingOccurrences(of: p, with: "***") }
        return out
    }

    // MARK: - Connection

    struct Connection: SQLConnection {
        let db: PostgresDatabase
        let conn: LibPQ.Conn
        var pq: LibPQ { db.pq }

        /// A statement without parameters (may hold several; DDL, BEGIN/COMMIT).
        func simple(_ sql: String) throws {
            let r = pq.exec(conn, sql)
            defer { pq.clear(r) }
            try check(r, sql)
        }

        @discardableResult func execute(_ sql: String, _ args: SQLArguments) throws -> Int {
            let r = try run(sql, args)
            defer { pq.clear(r) }
            return pq.cmdTuples(r).flatMap { Int(String(cString: $0)) } ?? 0
        }

        func query(_ sql: String, _ args: SQLArguments) throws -> [SQLRow] {
            let r = try run(sql, args)
            defer { pq.clear(r) }
            let rows = pq.ntuples(r), cols = pq.nfields(r)
            let columns = SQLColumns((0..<cols).map { String(cString: pq.fname(r, $0)!) })
            let types = (0..<cols).map { pq.ftype(r, $0) }
            var out: [SQLRow] = []
            out.reserveCapacity(Int(rows))
            for i in 0..<rows {
                var values: [SQLValue] = []
                values.reserveCapacity(Int(cols))
                for j in 0..<cols {
                    if pq.getisnull(r, i, j) != 0 { values.append(.null); continue }
                    let text = String(cString: pq.getvalue(r, i, j)!)
                    switch types[Int(j)] {
                    case 20, 21, 23: values.append(Int64(text).map(SQLValue.int) ?? .text(text))   // int8, int2, int4
                    case 700, 701: values.append(Double(text).map(SQLValue.double) ?? .text(text))  // float4, float8
                    case 16: values.append(.int(text == "t" ? 1 : 0))                               // bool
                    case 17: values.append(.blob(try Data.decode(.text(text))))                     // bytea (hex)
                    default: values.append(.text(text))
                    }
                }
                out.append(SQLRow(columns: columns, values: values))
            }
            return out
        }

        /// PQexecParams with `?` rewritten to `$n`; ints as int8, reals as float8, text as text, blobs as
        /// binary bytea, NULL untyped (inferred from context).
        private func run(_ sql: String, _ args: SQLArguments) throws -> LibPQ.Result {
            let values = args.sqlValues
            let text = PostgresDatabase.numberPlaceholders(sql)
            var types: [UInt32] = [], formats: [Int32] = [], lengths: [Int32] = []
            var buffers: [UnsafeMutablePointer<CChar>?] = []
            defer { for b in buffers { free(b) } }
            for v in values {
                switch v {
                case .null: types.append(0); formats.append(0); lengths.append(0); buffers.append(nil)
                case .int(let i): types.append(20); formats.append(0); lengths.append(0); buffers.append(strdup(String(i)))
                case .double(let d): types.append(701); formats.append(0); lengths.append(0); buffers.append(strdup("\(d)"))
                case .text(let s): types.append(25); formats.append(0); lengths.append(0); buffers.append(strdup(s))
                case .blob(let d):
                    let m = malloc(max(1, d.count))!.assumingMemoryBound(to: CChar.self)
                    d.withUnsafeBytes { raw in if d.count > 0 { memcpy(m, raw.baseAddress!, d.count) } }
                    types.append(17); formats.append(1); lengths.append(Int32(d.count)); buffers.append(m)
                }
            }
            let r: LibPQ.Result? = buffers.map { UnsafePointer($0) }.withUnsafeBufferPointer { vals in
                pq.execParams(conn, text, Int32(values.count), types, vals.baseAddress, lengths, formats, 0)
            }
            do { try check(r, sql) } catch { pq.clear(r); throw error }
            return r!
        }

        private func check(_ r: LibPQ.Result?, _ sql: String) throws {
            guard let r else {
                let why = pq.errorMessage(conn).map { String(cString: $0) } ?? "no result"
                throw TuneError(.database, "\(db.location): \(db.redactMessage(why))")
            }
            let s = pq.resultStatus(r)
            guard s != LibPQ.commandOK, s != LibPQ.tuplesOK else { return }
            let msg = pq.resultErrorMessage(r).map { String(cString: $0) } ?? "status \(s)"
            let state = pq.resultErrorField(r, LibPQ.diagSQLState).map { String(cString: $0) } ?? ""
            let first = sql.split(separator: "\n").first.map { String($0.trimmingCharacters(in: .whitespaces).prefix(80)) } ?? ""
            throw TuneError(.database, "\(db.location): \(db.redactMessage(msg)) (SQLSTATE \(state); in: \(first))")
        }
    }

    /// `?` → `$1, $2, …`, outside quoted strings, quoted identifiers and `--` comments.
    public static func numberPlaceholders(_ sql: String) -> String {
        guard sql.contains("?") else { return sql }
        var out = "", n = 0
        var quote: Character?, comment = false
        var prev: Character = " "
        for ch in sql {
            if comment {
                if ch == "\n" { comment = false }
            } else if let q = quote {
                if ch == q { quote = nil }
            } else if ch == "'" || ch == "\"" {
                quote = ch
            } else if ch == "-" && prev == "-" {
                comment = true
            } else if ch == "?" {
                n += 1
                out += "$\(n)"
                prev = ch
                continue
            }
            out.append(ch)
            prev = ch
        }
        return out
    }
}
