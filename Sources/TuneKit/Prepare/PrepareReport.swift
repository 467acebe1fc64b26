// PrepareReport — the human-readable text of prepare events and of a manifest summary (the CLI
// prints these; the library itself never prints).

import Foundation

public enum PrepareReport {
    /// How many dropped rows of one reason are shown as they happen; the rest are counted.
    public static let shownPerReason = 20

    /// One stderr line for an event, or nil when it is not worth a line. Malformed rows are shown
    /// as `skipped FILE:LINE: reason: detail`; duplicates and length filters only in the summary.
    public static func line(for event: PrepareEvent) -> String? {
        switch event {
        case .reading(let file, let role): "… reading \(file) (\(role))"
        case .progress(let file, let rows, let total) where total >= 5000 && rows < total && rows % progressStep(total) == 0:
            "… \(file): \(rows)/\(total) rows"
        case .progress: nil
        case .dropped(let issue) where issue.reason.isMalformed: "skipped \(issue)"
        case .dropped: nil
        case .wrote: nil
        }
    }

    /// Rows between progress lines: about a tenth of the file, in whole thousands (events come every 1000).
    static func progressStep(_ total: Int) -> Int { max(1000, total / 10 / 1000 * 1000) }

    /// The end-of-run summary: kept/dropped by reason, splits, template and tokenizer.
    public static func summary(_ m: DatasetManifest, out: String) -> String {
        var lines: [String] = []
        let c = m.counts
        lines.append("prepared \(out): kept \(c.kept) of \(c.inputRows) rows, dropped \(c.droppedTotal)"
                     + (c.blankLines > 0 ? " (\(c.blankLines) blank lines ignored)" : ""))
        for (reason, d) in c.dropped.sorted(by: { $0.key < $1.key }) {
            let first = d.examples.first.map { "  e.g. " + $0 } ?? ""
            lines.append("  \(reason.padding(toLength: 15, withPad: " ", startingAt: 0)) \(String(format: "%5d", d.count))\(first)")
        }
        for name in ["train", "eval"] {
            guard let s = m.splits[name] else { continue }
            let packed = s.sequences != s.rows ? " packed into \(s.sequences) sequences," : ""
            lines.append("\(name): \(s.rows) rows,\(packed) \(s.tokens) tokens (\(s.trainableTokens) trainable), \(s.shards.count) shard\(s.shards.count == 1 ? "" : "s")")
        }
        lines.append("template \(m.template.name) (\(m.template.source)), tokenizer sha256 \(m.tokenizer.sha256.prefix(16))…")
        return lines.joined(separator: "\n")
    }
}
