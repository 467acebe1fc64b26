// RegistrySupport — temp registries (on each backend) and files for the registry tests.
//
// Registry suites run every case on both backends: `@Test(arguments: RegistryBackend.allCases)`. The
// PostgreSQL case needs a server: TUNE_TEST_POSTGRES, a connection URL (scripts/test starts one with
// scripts/pg-local and sets it). Each case gets a fresh database, dropped when the test is done; when
// TUNE_TEST_POSTGRES is unset the PostgreSQL case is cancelled with a message saying so.
import Engine
import Foundation
import Testing
import TuneKit

enum RegistryBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres
    var testDescription: String { rawValue }

    /// The PostgreSQL server the tests use, if any.
    static var postgresServer: String? {
        ProcessInfo.processInfo.environment["TUNE_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A fresh, empty registry location: an SQLite path under `dir`, or a new PostgreSQL database.
    func freshLocation(in dir: URL, file: String) throws -> (String, ScratchDatabase?) {
        switch self {
        case .sqlite:
            return (dir.appendingPathComponent(file).path, nil)
        case .postgres:
            guard let server = Self.postgresServer else {
                try Test.cancel("PostgreSQL case skipped: TUNE_TEST_POSTGRES is unset (scripts/test starts a server with scripts/pg-local and sets it)")
            }
            let url = try RegistryLocation.createScratchDatabase(server: server, prefix: "tune_test")
            return (url, ScratchDatabase(url: url))
        }
    }
}

/// Drops its PostgreSQL database when the last copy of the fixture holding it goes away.
final class ScratchDatabase: Sendable {
    let url: String
    init(url: String) { self.url = url }
    deinit { try? RegistryLocation.dropDatabase(url) }
}

/// A fresh registry in a temp dir (SQLite) or a fresh PostgreSQL database, with file blobs under `<dir>/adapters`.
struct TempRegistry {
    let dir: URL
    let registry: Registry
    let backend: RegistryBackend
    let scratch: ScratchDatabase?

    init(_ backend: RegistryBackend = .sqlite) throws {
        self.backend = backend
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-reg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let (location, scratch) = try backend.freshLocation(in: dir, file: ".tune/registry.sqlite")
        self.scratch = scratch
        registry = try Registry.open(path: location, blobRoot: dir.appendingPathComponent("adapters").path)
    }

    /// Another handle on the same registry (its own connections, as another process would have).
    func reopen() throws -> Registry {
        try Registry.open(path: registry.path, blobRoot: dir.appendingPathComponent("adapters").path)
    }

    /// Writes `text` to a new file in the temp dir.
    func file(_ text: String, name: String = UUID().uuidString) throws -> URL {
        let url = dir.appendingPathComponent("src-\(name)")
        try Data(text.utf8).write(to: url)
        return url
    }

    /// Writes a directory of files (relative path → text).
    func directory(_ files: [String: String]) throws -> URL {
        let url = dir.appendingPathComponent("srcdir-\(UUID().uuidString)")
        for (rel, text) in files {
            let f = url.appendingPathComponent(rel)
            try FileManager.default.createDirectory(at: f.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: f)
        }
        return url
    }

    @discardableResult
    func add(_ kind: ArtifactKind, _ name: String, _ text: String, base: BaseRef? = nil, license: String? = nil,
             inputs: [ArtifactID: String] = [:]) throws -> Artifact {
        try registry.register(NewArtifact(kind: kind, name: name, source: try file(text),
                                          governance: Governance(baseFamily: base?.family, baseVersion: base?.version,
                                                                 license: license)),
                              inputs: inputs)
    }
}

/// The error a throwing call raised, as a TuneError (nil if it did not throw one).
func tuneError(_ body: () throws -> Void) -> TuneError? {
    do { try body(); return nil } catch { return error as? TuneError }
}

/// Winds a registry's schema version back to `version` after dropping `tables` (to replay later migrations
/// on reopen), through the seam: `PRAGMA user_version` on SQLite, the `tune_schema` row on PostgreSQL.
func rewindSchema(_ r: Registry, to version: Int, dropping tables: [String]) throws {
    try r.database.write { c in
        for t in tables { try c.execute("DROP TABLE \(t)", []) }
        if RegistryLocation.isPostgres(r.path) {
            try c.execute("UPDATE tune_schema SET version = ?", [version])
        } else {
            try c.execute("PRAGMA user_version = \(version)", [])
        }
    }
}

/// The stored schema version.
func schemaVersion(_ r: Registry) throws -> Int? {
    try r.database.read { c in
        RegistryLocation.isPostgres(r.path) ? try c.scalar(Int.self, "SELECT version FROM tune_schema")
                                            : try c.scalar(Int.self, "PRAGMA user_version")
    }
}
