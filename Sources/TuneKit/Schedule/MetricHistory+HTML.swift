// MetricHistory+HTML — a model's metrics over time as one self-contained page (inline CSS and SVG, no
// script, no external URL): one line chart per metric (production's, then each reference's), pipeline
// evals as filled points, rechecks hollow, drifted rechecks red, the last accepted value as a dashed
// baseline; then the table. Written beside every recheck report (`history.html`) and by
// `tune artifacts history REF --html FILE`.

import Foundation

extension MetricHistory {
    public func html(title: String? = nil) -> String {
        let esc = EvalReport.esc
        var body = ["<header><h1>\(esc(title ?? "Metric history · \(artifact)"))</h1><p class=\"sub\">\(points.count) eval report\(points.count == 1 ? "" : "s") · sha256 \(sha256.prefix(12)) · ● pipeline eval ○ recheck <span style=\"color:#dc2626\">●</span> drift · dashed: last accepted eval</p></header>"]
        for c in columns { body.append("<section class=\"card\"><h2>\(esc(c))</h2>\(chart(c))</section>") }
        let head = (["created", "report", "kind"] + columns).map { "<th>\(esc($0))</th>" }.joined()
        let rows = points.map { p in
            let kind = p.kind + (p.drifted == true ? " · drift" : "") + (p.gatePassed == false ? " · gate failed" : "")
            let cells = [String(p.createdAt.prefix(19)), p.report, kind].map { "<td>\(esc($0))</td>" }
                + columns.map { c in "<td>\(Self.value(p, c).map { String(format: "%.4f", $0) } ?? "–")</td>" }
            return "<tr\(p.drifted == true ? " class=\"bad\"" : "")>\(cells.joined())</tr>"
        }.joined()
        body.append("<section class=\"card\"><h2>Reports</h2><table><tr>\(head)</tr>\(rows)</table></section>")
        return """
            <!doctype html><html><head><meta charset="utf-8"><title>\(esc(title ?? artifact))</title><style>
            body{font:14px system-ui,sans-serif;margin:24px;color:#0f172a;background:#f8fafc}h1{font-size:20px;margin:0}
            .sub{color:#64748b}.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;margin:12px 0}
            h2{font-size:15px;margin:4px 0 8px}table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #e2e8f0;text-align:left}
            tr.bad td{color:#dc2626}svg text{font:11px system-ui,sans-serif;fill:#475569}
            </style></head><body>\(body.joined(separator: "\n"))</body></html>
            """
    }

    /// One metric over the reports, in report order (x) against value (y).
    func chart(_ column: String) -> String {
        let pts = points.enumerated().compactMap { i, p in Self.value(p, column).map { (i, p, $0) } }
        guard !pts.isEmpty else { return "<p class=\"sub\">no values</p>" }
        let w = 640.0, h = 200.0, left = 56.0, right = 16.0, top = 12.0, bottom = 28.0
        let baseline = accepted.flatMap { Self.value($0, column) }
        let values = pts.map(\.2) + (baseline.map { [$0] } ?? [])
        var lo = values.min()!, hi = values.max()!
        if hi - lo < 1e-9 { lo -= 0.5 * max(abs(lo), 0.01); hi += 0.5 * max(abs(hi), 0.01) }
        let n = max(1, points.count - 1)
        func x(_ i: Int) -> Double { points.count == 1 ? (left + w - right) / 2 : left + Double(i) / Double(n) * (w - left - right) }
        func y(_ v: Double) -> Double { top + (1 - (v - lo) / (hi - lo)) * (h - top - bottom) }
        var s = "<svg viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\" role=\"img\">"
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"#cbd5e1\"/>"
        for v in [lo, (lo + hi) / 2, hi] {
            s += "<text x=\"\(left - 6)\" y=\"\(EvalReport.num(y(v) + 4))\" text-anchor=\"end\">\(String(format: "%.3f", v))</text>"
        }
        if let b = baseline {
            s += "<line x1=\"\(left)\" y1=\"\(EvalReport.num(y(b)))\" x2=\"\(w - right)\" y2=\"\(EvalReport.num(y(b)))\" stroke=\"#94a3b8\" stroke-dasharray=\"4 3\"/>"
        }
        s += "<polyline fill=\"none\" stroke=\"#2563eb\" stroke-width=\"1.5\" points=\"" + pts.map { "\(EvalReport.num(x($0.0))),\(EvalReport.num(y($0.2)))" }.joined(separator: " ") + "\"/>"
        for (i, p, v) in pts {
            let color = p.drifted == true ? "#dc2626" : "#2563eb"
            let fill = p.kind == "recheck" ? "#fff" : color
            s += "<circle cx=\"\(EvalReport.num(x(i)))\" cy=\"\(EvalReport.num(y(v)))\" r=\"4\" fill=\"\(fill)\" stroke=\"\(color)\" stroke-width=\"2\"><title>\(EvalReport.esc(p.report)) \(EvalReport.esc(p.createdAt)): \(String(format: "%.4f", v))</title></circle>"
        }
        if let first = points.first, let last = points.last {
            s += "<text x=\"\(left)\" y=\"\(h - 8)\">\(EvalReport.esc(String(first.createdAt.prefix(10))))</text>"
            s += "<text x=\"\(w - right)\" y=\"\(h - 8)\" text-anchor=\"end\">\(EvalReport.esc(String(last.createdAt.prefix(10))))</text>"
        }
        return s + "</svg>"
    }
}
