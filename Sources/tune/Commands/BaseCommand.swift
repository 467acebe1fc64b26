// tune base — base model versions the scheduler follows. This file: the command table and `add`;
// list and show are in BaseListCommand.swift.
import ArgumentParser
import Foundation
import TuneKit

struct BaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base", abstract: "Base model versions: register, list, show (pipelines follow FAMILY@latest).",
        subcommands: [Add.self, BaseListCommand.self, BaseShowCommand.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a base model version (hash-verified, referenced in place, checked against scheduled pipelines).")
        @Argument(help: "Base model family, e.g. smollm2-135m.") var family: String
        @Option(help: "Version within the family (immutable once registered).") var version: String
        @Option(help: "Model file / HF directory, or a file:// URL (no network fetch).") var model: String
        @Option(help: "License identifier, e.g. apache-2.0.") var license: String
        @Option(help: "Free-form notes (release, provenance).") var notes: String?
        @Option(help: "Expected sha256 of the model; registration fails on a mismatch.") var sha256: String?
        @OptionGroup var location: ArtifactsCommand.Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let req = BaseCatalog.Request(family: family, version: version, model: model, license: license, notes: notes, sha256: sha256)
                let added = try BaseCatalog.add(req, to: location.open())
                if global.json { try Output.json(added); return }
                let b = added.base
                var line = "registered base \(b.ref) (\(b.architecture), hidden \(b.hiddenSize), \(b.numLayers) layers) sha256:\(b.sha256.prefix(12))"
                if let p = added.previous {
                    line += "\n  follows \(b.family)@\(p); " + (added.sameShape == true ? "same shape" : "different shape: re-tunes start from scratch")
                }
                if !added.pipelines.isEmpty { line += "\n  scheduled pipelines: \(added.pipelines.joined(separator: ", ")) (enqueued by the next `tune schedule tick`)" }
                Output.text(line)
            }
        }
    }
}
