// RegistryPostgresTests — what is particular to the PostgreSQL backend: URLs select it and are never
// shown with their password, placeholders are numbered outside literals, and two processes opening a
// fresh database at once migrate it once. (Every other registry suite runs on both backends.)
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct RegistryPostgresTests {
    @Test func urlsSelectPostgresAndPasswordsAreRedacted() throws {
        #expect(RegistryLocation.isPostgres("postgres://h/db") && RegistryLocation.isPostgres("POSTGRESQL://h/db"))
        #expect(!RegistryLocation.isPostgres(".tune/registry.sqlite") && !RegistryLocation.isPostgres("/x/postgres://y"))
        let url = "postgresql://tune:s3cr3t-pw@db.example:5432/registry?sslmode=require&password=other-pw"
        let shown = RegistryLocation.redact(url)
        #expect(!shown.contains("s3cr3t-pw") && !shown.contains("other-pw"), "\(shown)")
        #expect(shown.contains("tune:***@db.example:5432/registry") && shown.contains("sslmode=require"), "\(shown)")
        #expect(RegistryLocation.redact("/data/registry.sqlite") == "/data/registry.sqlite")
        let bare = RegistryLocation.withoutPassword(url)
        #expect(!bare.contains("s3cr3t-pw") && !bare.contains("other-pw") && bare.contains("tune@db.example"), "\(bare)")
        #expect(RegistryLocation.stateDirectory(url) == ".tune" && RegistryLocation.stateDirectory("/a/b/r.sqlite") == "/a/b")
    }

    @Test func connectionErrorsNeverShowThePassword() throws {
        // Port 1 on loopback: refused at once (or libpq is missing: that error names no URL secret either).
        let e = tuneError {
            _ = try Registry.open(path: "postgresql://tune:pw-do-not-print@127.0.0.1:1/registry?connect_timeout=2",
                                  blobRoot: FileManager.default.temporaryDirectory.appendingPathComponent("tune-pg-\(UUID())").path)
        }
        let message = try #require(e?.message)
        #expect(e?.kind == .database)
        #expect(!message.contains("pw-do-not-print"), "\(message)")
        #expect(message.contains("libpq") || message.contains("tune:***@127.0.0.1:1/registry"), "\(message)")
    }

    @Test func unknownSchemesAreRefused() {
        let e = tuneError { _ = try Registry.open(path: "mysql://u:pw@h/db", blobRoot: "/tmp/unused") }
        #expect(e?.kind == .invalidArgument && e?.message.contains("postgres://") == true && e?.message.contains("pw@") == false)
    }

    @Test func placeholdersAreNumberedOutsideLiterals() {
        #expect(PostgresDatabase.numberPlaceholders("SELECT ? , '?', \"a?\" FROM t WHERE a = ? -- x?\nAND b IN (?, ?)")
                == "SELECT $1 , '?', \"a?\" FROM t WHERE a = $2 -- x?\nAND b IN ($3, $4)")
    }

    @Test func twoProcessesOpeningAFreshDatabaseMigrateItOnce() async throws {
        guard let server = RegistryBackend.postgresServer else {
            try Test.cancel("PostgreSQL case skipped: TUNE_TEST_POSTGRES is unset (scripts/test starts a server with scripts/pg-local and sets it)")
        }
        let url = try RegistryLocation.createScratchDatabase(server: server, prefix: "tune_test")
        let scratch = ScratchDatabase(url: url)
        let blobs = FileManager.default.temporaryDirectory.appendingPathComponent("tune-pg-\(UUID())").path
        let opened = try await withThrowingTaskGroup(of: Registry.self) { group in
            for _ in 0..<4 { group.addTask { try Registry.open(path: url, blobRoot: blobs) } }
            return try await group.reduce(into: [Registry]()) { $0.append($1) }
        }
        #expect(opened.count == 4)
        #expect(try schemaVersion(opened[0]) == 7)
        #expect(try opened[0].database.read { try $0.scalar(Int.self, "SELECT count(*) FROM tune_schema") } == 1)
        #expect(opened[0].location == url, "no password: shown as given")
        _ = scratch
    }

    @Test func writesFromManyConnectionsKeepVersionsDense() async throws {
        let t = try TempRegistry(.postgres)
        let writers = try (0..<4).map { _ in try t.reopen() }
        let files = try (0..<4).map { w in try (0..<25).map { try t.file("w\(w) \($0)") } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<4 {
                let reg = writers[w], mine = files[w]
                group.addTask { for f in mine { _ = try reg.register(NewArtifact(kind: .dataset, name: "many", source: f)) } }
            }
            try await group.waitForAll()
        }
        let all = try t.registry.list(name: "many")
        #expect(all.map(\.version) == Array(1...100))
        #expect(Set(all.map(\.sha256)).count == 100)
        _ = t.scratch
    }
}
