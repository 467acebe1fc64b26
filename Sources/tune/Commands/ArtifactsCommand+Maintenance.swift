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
        static let configuration = CommandConfiguration(
            abstract: "Copy an artifact's content to a new path (verifying its hash), or with --format write the governance view of every artifact.")
        @Argument(help: "Artifact reference (content export).") var ref: String?
        @Option(help: "Destination: a new file or directory for content; for --format a file (default: stdout).") var out: String?
        @Option(help: "Governance view for audits: json | csv (artifact, kind, version, base, license, data terms, created, aliases, deprecated).")
        var format: String?
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                if let format {
                    guard ref == nil else { throw TuneError(.invalidArgument, "--format exports the governance view of every artifact; drop the reference \(ref!)") }
                    guard format == "json" || format == "csv" else { throw TuneError(.invalidArgument, "--format '\(format)': expected json or csv") }
                    let rows = try location.open().governanceView()
                    let text: String
                    if format == "csv" { text = GovernanceRow.csv(rows) } else {
                        let e = JSONEncoder()
                        e.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                        text = String(decoding: try e.encode(rows), as: UTF8.self) + "\n"
                    }
                    if let out {
                        try AtomicFile.write(Data(text.utf8), to: out)
                        if global.json { try Output.json(["out": out, "format": format, "artifacts": "\(rows.count)"]) }
                        else { Output.text("wrote the governance view of \(rows.count) artifacts to \(out)") }
                    } else {
                        FileHandle.standardOutput.write(Data(text.utf8))
                    }
                    return
                }
                guard let ref, let out else { throw TuneError(.invalidArgument, "export needs REF --out PATH, or --format json|csv") }
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
            abstract: "Everything derived from a base, a dataset, a license, a managed model or anything deprecated, with chains and aliases.")
        @Argument(help: "Base model FAMILY@VERSION (the same as --base).") var baseRef: String?
        @Option(help: "Base model: artifact name, family, version, FAMILY@VERSION or sha256 prefix.") var base: String?
        @Option(help: "Dataset: artifact name, NAME@VERSION, sha256 prefix, or a data file it was prepared from.") var dataset: String?
        @Option(help: "License id, on an artifact or in its data terms.") var license: String?
        @Option(name: .customLong("managed-model"), help: "Managed model id (gpt-4o-mini-2024-07-18) or family (gpt-4o-mini).") var managedModel: String?
        @Flag(help: "Everything depending on an artifact marked deprecated.") var deprecated = false
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                var questions: [ExposureQuestion] = []
                if let b = base ?? baseRef { questions.append(.base(b)) }
                if let d = dataset { questions.append(.dataset(d)) }
                if let l = license { questions.append(.license(l)) }
                if let m = managedModel { questions.append(.managedModel(m)) }
                if deprecated { questions.append(.deprecated) }
                guard questions.count == 1, !(base != nil && baseRef != nil) else {
                    throw TuneError(.invalidArgument, "exposure answers one question: give one of FAMILY@VERSION, --base, --dataset, --license, --managed-model, --deprecated")
                }
                let e = try location.open().exposure(questions[0])
                if global.json { try Output.json(e); return }
                let matched = e.artifacts.filter(\.matched).count
                Output.text("\(e.question): \(matched) matching, \(e.artifacts.count - matched) derived artifacts, \(e.aliases.count) aliases")
                for a in e.artifacts {
                    let dep = a.deprecation.map { "  DEPRECATED (\($0.reason), from \($0.effective))" } ?? ""
                    Output.text("  \(a.ref.padding(toLength: max(28, a.ref.count + 1), withPad: " ", startingAt: 0))\(a.kind.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0))\(a.license ?? "-")\(dep)")
                    if a.chain.count > 1 { Output.text("      chain: \(a.chain.joined(separator: " → "))") }
                    if !a.aliases.isEmpty { Output.text("      aliases: \(a.aliases.joined(separator: ", "))") }
                }
                let production = e.aliases.filter { $0.alias == "production" }
                if !production.isEmpty {
                    Output.text("production affected: \(production.map { "\($0.name)@production → v\($0.version)" }.joined(separator: ", "))")
                }
            }
        }
    }

    // MARK: - deprecate

    struct Deprecate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark an artifact deprecated (`exposure --deprecated` lists everything depending on it).")
        @Argument(help: "Artifact reference, e.g. SmolLM2-135M-Instruct@1 or sha256:PREFIX.") var ref: String
        @Option(help: "Why it should no longer be used.") var reason: String
        @Option(help: "When it takes effect, e.g. 2026-12-31 (default: today).") var date: String?
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (reg, a) = try location.resolve(ref)
                let d = try reg.deprecate(a.id, reason: reason, effective: date)
                if global.json { try Output.json(["artifact": a.ref, "reason": d.reason, "effective": d.effective]); return }
                Output.text("deprecated \(a.ref) from \(d.effective): \(d.reason)")
            }
        }
    }
}
