// LibPQ — PostgreSQL's client library, loaded at run time with dlopen (no link-time dependency, no
// Swift package): the registry works without libpq installed until a postgres:// location is used.
// Only the calls PostgresDatabase needs are resolved, each as a `@convention(c)` function type.

import Foundation

struct LibPQ: @unchecked Sendable {
    typealias Conn = OpaquePointer
    typealias Result = OpaquePointer

    let connectdb: @convention(c) (UnsafePointer<CChar>?) -> Conn?
    let status: @convention(c) (Conn?) -> Int32
    let errorMessage: @convention(c) (Conn?) -> UnsafeMutablePointer<CChar>?
    let finish: @convention(c) (Conn?) -> Void
    let exec: @convention(c) (Conn?, UnsafePointer<CChar>?) -> Result?
    let execParams: @convention(c) (Conn?, UnsafePointer<CChar>?, Int32, UnsafePointer<UInt32>?,
                                     UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?, Int32) -> Result?
    let resultStatus: @convention(c) (Result?) -> Int32
    let resultErrorMessage: @convention(c) (Result?) -> UnsafeMutablePointer<CChar>?
    let resultErrorField: @convention(c) (Result?, Int32) -> UnsafeMutablePointer<CChar>?
    let ntuples: @convention(c) (Result?) -> Int32
    let nfields: @convention(c) (Result?) -> Int32
    let fname: @convention(c) (Result?, Int32) -> UnsafeMutablePointer<CChar>?
    let ftype: @convention(c) (Result?, Int32) -> UInt32
    let getvalue: @convention(c) (Result?, Int32, Int32) -> UnsafeMutablePointer<CChar>?
    let getisnull: @convention(c) (Result?, Int32, Int32) -> Int32
    let getlength: @convention(c) (Result?, Int32, Int32) -> Int32
    let cmdTuples: @convention(c) (Result?) -> UnsafeMutablePointer<CChar>?
    let clear: @convention(c) (Result?) -> Void
    let setNoticeProcessor: @convention(c) (Conn?, (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?) -> Void)?,
                                            UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?

    // libpq-fe.h constants
    static let connectionOK: Int32 = 0
    static let commandOK: Int32 = 1, tuplesOK: Int32 = 2, fatalError: Int32 = 7
    static let diagSQLState = Int32(UInt8(ascii: "C"))

    /// The library, or why it could not be loaded (the message says how to install it).
    static let shared: Swift.Result<LibPQ, TuneError> = load()

    static func get() throws -> LibPQ { try shared.get() }

    private static func load() -> Swift.Result<LibPQ, TuneError> {
        let env = ProcessInfo.processInfo.environment["TUNE_LIBPQ"]
        let names = (env.map { [$0] } ?? []) + ["libpq.so.5", "libpq.so", "libpq.5.dylib", "/opt/homebrew/opt/libpq/lib/libpq.5.dylib"]
        var tried: [String] = []
        for name in names {
            guard let h = dlopen(name, RTLD_NOW | RTLD_LOCAL) else {
                tried.append("\(name): \(dlerror().map { String(cString: $0) } ?? "not found")")
                continue
            }
            do { return .success(try LibPQ(handle: h)) } catch let e as TuneError { return .failure(e) } catch {
                return .failure(TuneError(.internal, "\(error)"))
            }
        }
        return .failure(TuneError(.database, "PostgreSQL registry needs libpq (Debian: apt-get install libpq5; or set TUNE_LIBPQ to its path); tried \(tried.joined(separator: "; "))"))
    }

    private init(handle h: UnsafeMutableRawPointer) throws {
        func sym<T>(_ name: String, _: T.Type = T.self) throws -> T {
            guard let p = dlsym(h, name) else {
                throw TuneError(.database, "libpq has no symbol \(name) (too old? PostgreSQL registry needs libpq 10 or newer)")
            }
            return unsafeBitCast(p, to: T.self)
        }
        connectdb = try sym("PQconnectdb"); status = try sym("PQstatus"); errorMessage = try sym("PQerrorMessage")
        finish = try sym("PQfinish"); exec = try sym("PQexec"); execParams = try sym("PQexecParams")
        resultStatus = try sym("PQresultStatus"); resultErrorMessage = try sym("PQresultErrorMessage")
        resultErrorField = try sym("PQresultErrorField"); ntuples = try sym("PQntuples"); nfields = try sym("PQnfields")
        fname = try sym("PQfname"); ftype = try sym("PQftype"); getvalue = try sym("PQgetvalue"); getisnull = try sym("PQgetisnull")
        getlength = try sym("PQgetlength"); cmdTuples = try sym("PQcmdTuples"); clear = try sym("PQclear")
        setNoticeProcessor = try sym("PQsetNoticeProcessor")
    }
}
