// RegisterSection — the pipeline's `register:` section.

/// `register:` — record the outputs in the registry under a name, optionally moving aliases.
public struct RegisterSection: Codable, Hashable, Sendable {
    public var name: String?
    public var aliases: [String]
    public var license: String?
    public var notes: String?

    init(_ r: YAMLReader) {
        name = r.string("name")
        aliases = r.strings("aliases")
        license = r.string("license")
        notes = r.string("notes")
        r.finish()
    }
}
