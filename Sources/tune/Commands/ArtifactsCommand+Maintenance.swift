// tune artifacts lineage | promote | verify | gc | export | exposure.
import ArgumentParser
import Foundation
import TuneKit

extension ArtifactsCommand {
    // MARK: - lineage

    struct Lineage: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What an artifact was made from, and what was made from it.")
        @Argument(help: "Artifact reference.") var ref: String
        @Option(help: "Maximum edges to follow in each direction.") var depth = 64
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (reg, a) = try location.resolve(ref)
                let l = try reg.lineage(of: a.id, depth: depth)
                if global.json { try Output.json(l); return }
                var byID: [ArtifactID: Artifact] = [l.artifact.id: l.artifact]
                for a in l.ancestors + l.descendants { byID[a.id] = a }
                let name = { (id: ArtifactID) in byID[id].map { "\($0.ref) (\($0.kind.rawValue))" } ?? "#\(id)" }
                Output.text(name(l.artifact.id))
                for e in l.edges { Output.text("  \(name(e.parent)) --\(e.role)--> \(name(e.child))") }
                if l.edges.isEmpty { Output.text("  no recorded inputs or outputs") }
            }
        }
    }

    // MARK: - promote

    struct Promote: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Point an alias at an artifact (history kept; promoting production moves 'previous' to the old one).")
        @Argument(help: "Artifact reference, e.g. NAME@7 or NAME@previous.") var ref: String
        @Option(name: [.customLong("to"), .customLong("alias")], help: "Alias to set, e.g. staging or production (--alias is the same).") var to: String
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (reg, a) = try location.resolve(ref)
                let changes = try reg.setAlias(to, to: a.id)
                if global.json { try Output.json(changes); return }
                if changes.isEmpty { Output.text("\(a.name)@\(to) already points at \(a.ref)") }
                for c in changes {
                    Output.text("\(c.name)@\(c.alias): \(c.fromVersion.map { "v\($0)" } ?? "unset") → v\(c.toVersion)")
                }
            }
        }
    }

    // MARK: - verify

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-hash stored content; exits 65 if any blob is missing or altered.")
        @Argument(help: "Artifacts to check (default: all).") var refs: [String] = []
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let reg = try location.open()
                let results = try reg.verify(refs.isEmpty ? nil : refs.map { try reg.resolve($0).id })
                if global.json { try Output.json(results) } else {
                    for r in results {
                        Output.text("\(r.status.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0))\(r.artifact)"
                            + (r.actual.map { "  sha256 now \($0)" } ?? ""))
                    }
                }
                let bad = results.filter { $0.status != .ok }
                if !bad.isEmpty {
                    throw TuneError(.integrity, "\(bad.count) of \(results.count) artifacts failed verification: \(bad.map(\.artifact).joined(separator: ", "))")
                }
            }
        }
    }

    // MARK: - gc

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "gc", abstract: "Remove blobs no artifact references.")
        @Flag(name: .customLong("dry-run"), help: "Show what would be removed; remove nothing.") var dryRun = false
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let r = try location.open().gc(dryRun: dryRun)
                if global.json { try Output.json(r); return }
                let verb = dryRun ? "would remove" : "removed"
                for b in r.blobs { Output.text("\(verb) sha256:\(b.sha256) (\(b.layout.rawValue), \(b.size) bytes)") }
                for t in r.temporaries { Output.text("\(verb) \(t)") }
                Output.text("\(verb) \(r.blobs.count) blobs, \(r.bytes) bytes, \(r.temporaries.count) temporaries")
            }
        }
    }

    // MARK: - export

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Copy an artifact's content to a new path, verifying its hash.")
        @Argument(help: "Artifact reference.") var ref: String
        @Option(help: "Destination file or directory (must not exist).") var out: String
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (reg, a) = try location.resolve(ref)
                try reg.export(a, to: URL(fileURLWithPath: out))
                if global.json { try Output.json(["artifact": a.ref, "out": out, "sha256": a.sha256]) }
                else { Output.text("exported \(a.ref) to \(out)") }
            }
        }
    }

    // MARK: - exposure

    struct Exposure: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every adapter, merged model and alias derived from a base model version.")
        @Argument(help: "Base model FAMILY@VERSION.") var base: String
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let e = try location.open().exposure(base: BaseRef(parsing: base))
                if global.json { try Output.json(e); return }
                Output.text("\(e.artifacts.count) artifacts and \(e.aliases.count) aliases derive from \(e.base)")
                for a in e.artifacts {
                    Output.text("  \("\(a.name)@\(a.version)".padding(toLength: 28, withPad: " ", startingAt: 0))\(a.kind.rawValue.padding(toLength: 13, withPad: " ", startingAt: 0))\(a.license ?? "-")\(a.direct ? "" : "  (via lineage)")")
                }
                for al in e.aliases { Output.text("  alias \(al.name)@\(al.alias) → v\(al.version)") }
            }
        }
    }
}
