// tune artifacts history REF — a model's metrics over time: every eval report of it (pipeline evals and
// drift rechecks), oldest first, as a table or --json (MetricHistory, docs/governance.md "Drift").
import ArgumentParser
import Foundation
import TuneKit

extension ArtifactsCommand {
    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A model's metrics over time, from its eval reports (incl. drift rechecks): NAME@production, NAME@N or NAME.")
        @Argument(help: "The model: NAME@production, NAME@N, NAME (latest) or sha256:PREFIX.") var ref: String
        @Option(help: "Only these metrics (comma-separated; reference columns are `reference:NAME METRIC`).") var metric: String?
        @Option(help: "Also write the history as a self-contained HTML page (one chart per metric) to this file.") var html: String?
        @OptionGroup var location: Location
        @OptionGroup var global: GlobalOptions

        func run() throws {
            try reportingErrors {
                let (reg, model) = try location.resolve(ref)
                let h = try reg.evalHistory(of: model)
                if let html {
                    do { try Data(h.html().utf8).write(to: URL(fileURLWithPath: html), options: .atomic) } catch {
                        throw TuneError(.io, "\(html): cannot write (\(error.localizedDescription))")
                    }
                }
                if global.json { try Output.json(h); return }
                let wanted = metric.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) }
                // `--metric exact_match` keeps production's and every reference's exact_match column.
                let columns = h.columns.filter { c in wanted.map { $0.contains(c) || $0.contains(String(c.split(separator: " ").last ?? "")) } ?? true }
                Output.text("\(h.artifact) (sha256 \(h.sha256.prefix(12))): \(h.points.count) eval reports")
                guard !h.points.isEmpty else { return }
                let header = ["created", "report", "kind"] + columns
                var rows = [header]
                for p in h.points {
                    let kind = p.kind + (p.drifted == true ? " DRIFT" : "") + (p.gatePassed == false ? " (gate failed)" : "")
                    rows.append([String(p.createdAt.prefix(19)), p.report, kind] + columns.map { c in
                        MetricHistory.value(p, c).map { String(format: "%.4f", $0) } ?? "-"
                    })
                }
                let widths = header.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
                for r in rows {
                    Output.text(r.indices.map { r[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                        .trimmingCharacters(in: .whitespaces))
                }
            }
        }
    }
}
