// RegistrySupport — temp registries and files for the registry tests.
import Foundation
import TuneKit

/// A fresh registry in a temp dir, with file blobs under `<dir>/adapters`.
struct TempRegistry {
    let dir: URL
    let registry: Registry

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-reg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        registry = try Registry.open(path: dir.appendingPathComponent(".tune/registry.sqlite").path,
                                     blobRoot: dir.appendingPathComponent("adapters").path)
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
