// tune artifacts — the artifact registry from the command line. This file: the command table, the
// shared registry location options, and add / list / show / path. Other subcommands live in
// ArtifactsCommand+*.swift.
import ArgumentParser
import Foundation
import TuneKit

struct ArtifactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "artifacts", abstract: "Registered artifacts: versions, aliases, lineage, content.",
        subcommands: [Add.self, List.self, Show.self, Lineage.self, Promote.self, Path.self, Verify.self, GC.self,
                      Export.self, Exposure.self, Deprecate.self, History.self])

    // MARK: - Shared options

    /// Where the registry and its blobs live.
    struct Location: ParsableArguments {
        @Option(name: .long, help: "Registry database: a path (SQLite) or a postgres:// URL (default: TUNE_REGISTRY or .tune/registry.sqlite).")
        var registry: String?
        @Option(name: .long, help: "Blob store root (default: TUNE_BLOBS or adapters).")
        var blobs: String?

        func open() throws -> Registry {
            let env = ProcessInfo.processInfo.environment
            return try Registry.open(path: registry ?? env["TUNE_REGISTRY"] ?? Registry.defaultPath,
                                     blobRoot: blobs ?? env["TUNE_BLOBS"] ?? Registry.defaultBlobRoot)
        }

        /// Opens the registry and resolves `ref` in it (how every one-artifact subcommand starts).
        func resolve(_ ref: String) throws -> (registry: Registry, artifact: Artifact) {
            let reg = try open()
            return (reg, try reg.resolve(ref))
        }
    }

    // MARK: - add

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Register a file or directory as a new version of NAME.")
        @Argument(help: "File or directory to store.") var source: String
        @Option(help: "Artifact name.") var name: String
        @Option(help: "dataset | adapter | merged-model | eval-report | base-model | managed-model | router") var kind: String
        @Option(help: "Metadata as a JSON object.") var metadata: String?
        @Option(help: "License identifier.") var license: String?
        @Option(help: "Base model FAMILY@VERSION (inherited from parents when omitted).") var base: String?
        @Option(name: .customLong("dataset-source"), help: "Where the data came from.") var datasetSource: String?
        @Option(name: .customLong("data-terms"), help: "Terms the data was obtained under.") var dataTerms: String?
        @Option(name: .customLong("created-by"), help: "Who created it (default: $USER).") var createdBy: String?
        @Option(help: "Input artifact, as REF or ROLE=REF (repeatable).") var parent: [String] = []
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                guard let k = ArtifactKind(rawValue: kind) else {
                    throw TuneError(.invalidArgument, "--kind '\(kind)': expected one of \(ArtifactKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let meta = try metadata.map { try JSONValue.object(parsing: $0, what: "--metadata") } ?? [:]
                let baseRef = try base.map(BaseRef.init(parsing:))
                let reg = try location.open()
                var inputs: [ArtifactID: String] = [:]
                for p in parent {
                    let (role, ref) = p.contains("=") ? (String(p.split(separator: "=", maxSplits: 1)[0]), String(p.split(separator: "=", maxSplits: 1)[1])) : ("input", p)
                    inputs[try reg.resolve(ref).id] = role
                }
                let gov = Governance(baseFamily: baseRef?.family, baseVersion: baseRef?.version, license: license,
                                     datasetSource: datasetSource, dataTerms: dataTerms,
                                     createdBy: createdBy ?? Governance.currentUser,
                                     createdWith: "tune \(TuneKitInfo.version) artifacts add")
                let a = try reg.register(NewArtifact(kind: k, name: name, source: URL(fileURLWithPath: source), metadata: meta,
                                                     governance: gov), inputs: inputs)
                if global.json { try Output.json(a) } else { Output.text("registered \(a.ref) sha256:\(a.sha256.prefix(12)) \(a.size) bytes") }
            }
        }
    }

    // MARK: - list

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List artifacts by name and version.")
        @Option(help: "Only this name.") var name: String?
        @Option(help: "Only this kind.") var kind: String?
        @Flag(help: "Only the latest version of each name.") var latest = false
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let k = try kind.map { v in
                    guard let k = ArtifactKind(rawValue: v) else { throw TuneError(.invalidArgument, "--kind '\(v)': unknown kind") }
                    return k
                }
                let items = try location.open().list(name: name, kind: k, latestOnly: latest)
                if global.json { try Output.json(items); return }
                for a in items {
                    Output.text("\(a.ref.padding(toLength: max(24, a.ref.count + 1), withPad: " ", startingAt: 0))\(a.kind.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0))sha256:\(a.sha256.prefix(12))  \(a.size)  \(a.createdAt)")
                }
            }
        }
    }

    // MARK: - show

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One artifact: record, governance, aliases, inputs.")
        @Argument(help: "NAME, NAME@7, NAME@latest, NAME@alias or sha256:PREFIX.") var ref: String
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        struct Shown: Encodable {
            var artifact: Artifact
            var aliases: [String]
            var inputs: [Input]
            var deprecation: Deprecation?
            struct Input: Encodable { var ref: String; var role: String; var id: ArtifactID }
        }

        func run() throws {
            try reportingErrors {
                let (reg, a) = try location.resolve(ref)
                let shown = Shown(artifact: a, aliases: try reg.aliases(pointingAt: a.id).map(\.alias),
                                  inputs: try reg.inputs(of: a.id).map { .init(ref: $0.artifact.ref, role: $0.role, id: $0.artifact.id) },
                                  deprecation: try reg.deprecation(of: a.id))
                if global.json { try Output.json(shown); return }
                let g = a.governance
                var lines = ["\(a.ref) (\(a.kind.rawValue))", "  sha256   \(a.sha256)", "  size     \(a.size) bytes (\(a.layout.rawValue))",
                             "  uri      \(a.uri)", "  created  \(a.createdAt) by \(g.createdBy) with \(g.createdWith)"]
                if let f = g.baseFamily { lines.append("  base     \(f)@\(g.baseVersion ?? "?")") }
                if let l = g.license { lines.append("  license  \(l)") }
                if let s = g.datasetSource { lines.append("  data     \(s)") }
                if let t = g.dataTerms { lines.append("  terms    \(t)") }
                if let d = shown.deprecation { lines.append("  DEPRECATED from \(d.effective): \(d.reason) (by \(d.deprecatedBy))") }
                if let r = a.runID { lines.append("  run      \(r)") }
                if !shown.aliases.isEmpty { lines.append("  aliases  \(shown.aliases.joined(separator: ", "))") }
                for i in shown.inputs { lines.append("  input    \(i.ref) as \(i.role)") }
                if !a.metadata.isEmpty { lines.append("  metadata \(try JSONValue.canonicalText(a.metadata))") }
                Output.text(lines.joined(separator: "\n"))
            }
        }
    }

    // MARK: - path

    struct Path: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the stored content's path.")
        @Argument(help: "Artifact reference.") var ref: String
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (reg, a) = try location.resolve(ref)
                guard let p = reg.path(of: a) else { throw TuneError(.notFound, "\(a.ref): blob store has no paths") }
                if global.json { try Output.json(["artifact": a.ref, "path": p]) } else { Output.text(p) }
            }
        }
    }
}
