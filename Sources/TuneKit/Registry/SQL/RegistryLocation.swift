// RegistryLocation — where a registry lives: a file path (SQLite) or a `postgres://` / `postgresql://`
// URL (PostgreSQL). The one place that tells them apart, opens the matching backend, and redacts a
// URL's password for anything shown (output, errors, --json).

import Foundation

public enum RegistryLocation {
    /// True for `postgres://…` and `postgresql://…` (any case).
    public static func isPostgres(_ location: String) -> Bool {
        let l = location.lowercased()
        return l.hasPrefix("postgres://") || l.hasPrefix("postgresql://")
    }

    /// Opens the backend `location` names: a path opens (creating) an SQLite file, a URL a PostgreSQL database.
    public static func open(_ location: String, busyTimeout: TimeInterval = 30) throws -> any SQLDatabase {
        if isPostgres(location) { return try PostgresDatabase(url: location) }
        if let scheme = location.range(of: "://").map({ String(location[..<$0.lowerBound]) }), !scheme.contains("/") {
            throw TuneError(.invalidArgument, "registry \(redact(location)): unsupported scheme \(scheme)://; expected a file path or a postgres:// URL")
        }
        return try SQLiteDatabase(path: location, busyTimeout: busyTimeout)
    }

    /// `location` safe to print: a URL's password (in the authority or a `password=` parameter) becomes `***`.
    public static func redact(_ location: String) -> String {
        guard location.contains("://"), var parts = URLComponents(string: location) else {
            return location.contains("://") ? "<unparseable registry url>" : location
        }
        let secretQuery = parts.queryItems?.contains { $0.name.lowercased() == "password" } ?? false
        guard parts.password != nil || secretQuery else { return location }
        if parts.password != nil { parts.password = "***" }
        if secretQuery, let items = parts.queryItems {
            parts.queryItems = items.map { $0.name.lowercased() == "password" ? URLQueryItem(name: $0.name, value: "***") : $0 }
        }
        return (parts.string ?? "<unparseable registry url>").replacingOccurrences(of: "%2A%2A%2A", with: "***")
    }

    /// A URL without its password (for command lines and scripts; libpq then reads PGPASSWORD or ~/.pgpass).
    public static func withoutPassword(_ location: String) -> String {
        guard isPostgres(location), var parts = URLComponents(string: location) else { return location }
        parts.password = nil
        if let items = parts.queryItems { parts.queryItems = items.filter { $0.name.lowercased() != "password" } }
        return parts.string ?? location
    }

    /// The directory beside the registry for run state (training work dirs, Slurm scripts): the SQLite
    /// file's directory, or `.tune` (relative to the current directory) for a database server.
    public static func stateDirectory(_ location: String) -> String {
        isPostgres(location) ? ".tune" : (location as NSString).deletingLastPathComponent
    }

    // MARK: - Scratch databases (tests, benchmarks)

    /// Creates an empty database named `<prefix>_<random>` on the server `url` points at and returns its URL.
    public static func createScratchDatabase(server url: String, prefix: String = "tune_scratch") throws -> String {
        let name = "\(prefix)_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased())"
        try admin(url) { c in try c.simple("CREATE DATABASE \(name) TEMPLATE template0 ENCODING 'UTF8'") }
        return try withDatabase(url, name)
    }

    /// Drops the database `url` names (closing any sessions still on it).
    public static func dropDatabase(_ url: String) throws {
        guard let name = URLComponents(string: url)?.path.dropFirst(), !name.isEmpty,
              name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw TuneError(.invalidArgument, "\(redact(url)): no plain database name to drop")
        }
        try admin(url) { c in try c.simple("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
    }

    private static func withDatabase(_ url: String, _ name: String) throws -> String {
        guard var parts = URLComponents(string: url) else { throw TuneError(.invalidArgument, "\(redact(url)): not a URL") }
        parts.path = "/" + name
        guard let s = parts.string else { throw TuneError(.invalidArgument, "\(redact(url)): cannot set database name") }
        return s
    }

    /// A connection to the server's `postgres` database, outside the registry schema.
    private static func admin(_ url: String, _ body: (PostgresDatabase.Connection) throws -> Void) throws {
        let db = try PostgresDatabase(unmigrated: withDatabase(url, "postgres"))
        try db.withConnection(body)
    }
}
