// RegistryConcurrencyTests — two connections (as two processes would have) registering and promoting at once.
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct RegistryConcurrencyTests {
    @Test(arguments: RegistryBackend.allCases) func twoWritersLoseNothing(_ backend: RegistryBackend) async throws {
        let t = try TempRegistry(backend)
        let blobRoot = t.dir.appendingPathComponent("adapters").path
        let ops = 100
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<2 {
                let reg = try Registry.open(path: t.registry.path, blobRoot: blobRoot)  // its own connection pool
                let files = try (0..<ops).map { try t.file("w\(w) op\($0)") }
                group.addTask {
                    for (i, f) in files.enumerated() {
                        let a = try reg.register(NewArtifact(kind: .adapter, name: "shared", source: f))
                        if i % 2 == 0 { try reg.setAlias(w == 0 ? "production" : "staging", to: a.id) }
                    }
                }
            }
            try await group.waitForAll()
        }
        let all = try t.registry.list(name: "shared")
        #expect(all.map(\.version) == Array(1...(2 * ops)))
        #expect(Set(all.map(\.sha256)).count == 2 * ops)
        #expect(try t.registry.verify().allSatisfy { $0.status == .ok })
        #expect(try t.registry.aliasHistory(name: "shared", alias: "staging").count == ops / 2)
        #expect(try t.registry.gc(dryRun: true).blobs.isEmpty)
    }
}
