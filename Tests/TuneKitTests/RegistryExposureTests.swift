// RegistryExposureTests — exposure reads `artifact_bases` (schema v2), which registration keeps as the
// closure of the lineage walk: on random lineage graphs it equals the recursive walk over the edges,
// and a v1 registry (no such table) is filled by the migration to the same answer.
import Engine
import Foundation
import Testing
import TuneKit

/// The definition: artifacts whose record names `base`, and everything descending from them.
private func walkedExposure(_ r: Registry, _ base: BaseRef) throws -> [String] {
    try r.database.read { db in
        try db.query("""
            WITH RECURSIVE exposed(id) AS (
                SELECT id FROM artifacts WHERE base_family = ? AND base_version = ?
                UNION SELECT l.child_id FROM lineage l JOIN exposed e ON l.parent_id = e.id)
            SELECT a.name, a.version, CASE WHEN a.base_family = ? AND a.base_version = ? THEN 1 ELSE 0 END FROM artifacts a
            WHERE a.id IN (SELECT id FROM exposed) AND a.kind IN ('adapter', 'merged-model') ORDER BY a.name, a.version
            """, [base.family, base.version, base.family, base.version]).map {
            "\(try $0[0] as String)@\(try $0[1] as Int)\((try $0[2] as Bool) ? "" : "~")"
        }
    }
}

private func exposureRefs(_ r: Registry, _ base: BaseRef) throws -> [String] {
    try r.exposure(base: base).artifacts.map { "\($0.name)@\($0.version)\($0.direct ? "" : "~")" }
}

/// A random lineage graph: base models, then adapters and merges of earlier artifacts, some with a base of their own.
private func fillRandomGraph(_ t: TempRegistry, seed: UInt64) throws -> [BaseRef] {
    var rng = SplitMix64(seed: seed)
    func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
    let bases = (1...3).map { BaseRef(family: "fam", version: "\($0)") }
    var made: [Artifact] = []
    for b in bases { made.append(try t.add(.baseModel, "base-\(b.version)", "b\(b.version)", base: b)) }
    for i in 0..<40 {
        var inputs: [ArtifactID: String] = [:]
        for _ in 0..<(1 + pick(3)) { inputs[made[pick(made.count)].id] = "input" }
        let ownBase = pick(4) == 0 ? bases[pick(bases.count)] : nil
        let kind: ArtifactKind = [.adapter, .mergedModel, .dataset, .evalReport][pick(4)]
        made.append(try t.add(kind, "\(kind.rawValue)-\(i % 13)", "x\(i)", base: ownBase, inputs: inputs))
    }
    return bases + [BaseRef(family: "nobody", version: "1")]
}

@Suite struct RegistryExposureTests {
    @Test(arguments: RegistryBackend.allCases, [1, 2, 3, 4] as [UInt64])
    func exposureEqualsTheLineageWalk(_ backend: RegistryBackend, seed: UInt64) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        for b in try fillRandomGraph(t, seed: seed) {
            #expect(try exposureRefs(t.registry, b) == walkedExposure(t.registry, b), "base \(b)")
        }
    }

    @Test(arguments: RegistryBackend.allCases) func migrationFillsExposureOfAVersion1Registry(_ backend: RegistryBackend) throws {
        let t = try TempRegistry(backend)
        defer { try? FileManager.default.removeItem(at: t.dir) }
        let bases = try fillRandomGraph(t, seed: 9)
        let before = try bases.map { try exposureRefs(t.registry, $0) }
        #expect(before.contains { !$0.isEmpty })
        // Turn it back into a v1 registry: no artifact_bases, user_version 1.
        try rewindSchema(t.registry, to: 1, dropping: ["artifact_bases"])
        let reopened = try t.reopen()
        #expect(try bases.map { try exposureRefs(reopened, $0) } == before)
    }
}
