// tune base list / show — registered base model versions.
import ArgumentParser
import Foundation
import TuneKit

struct BaseListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List base model versions, oldest first per family.")
    @Argument(help: "Only this family.") var family: String?
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            let bases = try location.open().bases(family: family)
            if global.json { try Output.json(bases); return }
            if bases.isEmpty { Output.text("no base models registered"); return }
            let latest = Dictionary(bases.map { ($0.family, $0.seq) }, uniquingKeysWith: max)
            for b in bases {
                let tag = latest[b.family] == b.seq ? " (latest)" : ""
                Output.text("\(b.ref.description.padding(toLength: max(28, b.ref.description.count + 1), withPad: " ", startingAt: 0))sha256:\(b.sha256.prefix(12))  \(b.license)  \(b.createdAt)\(tag)")
            }
        }
    }
}

struct BaseShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "One base version: file, hash, shape, governance.")
    @Argument(help: "FAMILY, FAMILY@latest or FAMILY@VERSION.") var ref: String
    @OptionGroup var location: ArtifactsCommand.Location
    @OptionGroup var global: GlobalOptions

    func run() throws {
        try reportingErrors {
            let parts = ref.split(separator: "@", maxSplits: 1).map(String.init)
            let b = try location.open().base(family: parts[0], version: parts.count > 1 ? parts[1] : nil)
            if global.json { try Output.json(b); return }
            var lines = ["\(b.ref) (#\(b.seq) in \(b.family))", "  path     \(b.path)", "  sha256   \(b.sha256)",
                         "  shape    \(b.architecture), hidden \(b.hiddenSize), \(b.numLayers) layers, vocab \(b.vocabSize) (\(b.format))",
                         "  license  \(b.license)", "  created  \(b.createdAt) by \(b.createdBy)"]
            if let n = b.notes { lines.append("  notes    \(n)") }
            Output.text(lines.joined(separator: "\n"))
        }
    }
}
