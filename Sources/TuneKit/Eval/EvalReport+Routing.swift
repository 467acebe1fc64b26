// EvalReport+Routing — the routing section of report.md and report.html: the τ table (accuracy with its
// Wilson interval, escalation rate, $ per 1k requests, $ per correct answer, Pareto front), the picked τ
// on the choosing half and on the reporting half, and an inline SVG chart of accuracy and cost against
// the escalation rate (no script).

import Foundation

extension EvalReport {
    static func tau(_ p: RoutingPoint) -> String {
        switch p.policy {
        case .alwaysLocal: "always local"
        case .alwaysReference: "always reference"
        case .threshold: String(format: "%.4f", p.tau ?? .nan)
        }
    }

    /// τ of a threshold policy, "–" for the end points (their policy column names them).
    static func tauOnly(_ p: RoutingPoint) -> String { p.tau.map { String(format: "%.4f", $0) } ?? "–" }

    static func percent(_ v: Double) -> String { String(format: "%.1f%%", 100 * v) }

    func routingMarkdown(_ r: RoutingReport) -> [String] {
        var out = ["", "## Routing: \(r.local.rawValue) → \(r.reference) (confidence: \(r.confidence), correct: \(r.accuracyMetric))", "",
                   "| set | policy | τ | escalated | accuracy | 95% CI | $ per 1k requests | $ per correct (95% CI) |",
                   "|---|---|---:|---:|---:|---|---:|---:|"]
        for (set, p) in [("chosen on (even)", r.chosenOn), ("reported on (odd)", r.reportedOn)] {
            out.append("| \(set) | \(p.policy.rawValue) | \(Self.tauOnly(p)) | \(p.escalated)/\(p.examples) | \(Self.percent(p.accuracy)) | "
                       + "\(p.accuracyCI95?.percent ?? "–") | \(Self.price(p.costPer1k)) | \(Self.price(p.costPerCorrect, p.costPerCorrectCI95)) |")
        }
        out += ["", "Rule: \(r.rule)\(r.met ? "" : " (not met)"). \(r.note).", "",
                "### τ sweep (all \(r.curve.first?.examples ?? 0) examples; local when confidence ≥ τ)", "",
                "| τ | escalation | accuracy | 95% CI | $ per 1k requests | $ per correct | Pareto |",
                "|---:|---:|---:|---|---:|---:|:---:|"]
        for p in r.curve {
            out.append("| \(Self.tau(p)) | \(Self.percent(p.escalationRate)) | \(Self.percent(p.accuracy)) | \(p.accuracyCI95?.percent ?? "–") | "
                       + "\(Self.price(p.costPer1k)) | \(Self.price(p.costPerCorrect)) | \(p.pareto ? "★" : "") |")
        }
        return out
    }

    func routingSection(_ r: RoutingReport) -> String {
        var out = "<section class=\"card routing\"><h2>Routing: \(r.local.rawValue) → \(Self.esc(r.reference))</h2>"
        out += "<p class=\"sub\">confidence: \(Self.esc(r.confidence)) · correct: \(Self.esc(r.accuracyMetric)) · rule: \(Self.esc(r.rule))\(r.met ? "" : " (not met)")</p>"
        out += routingChart(r)
        out += "<table class=\"routing-picked\"><tr><th>set</th><th>policy</th><th>τ</th><th>escalated</th><th>accuracy</th><th>95% CI</th><th>$ per 1k</th><th>$ per correct</th></tr>"
        for (set, p) in [("chosen on (even)", r.chosenOn), ("reported on (odd)", r.reportedOn)] {
            out += "<tr><td>\(set)</td><td>\(p.policy.rawValue)</td><td>\(Self.tauOnly(p))</td><td>\(p.escalated)/\(p.examples)</td><td>\(Self.percent(p.accuracy))</td>"
                + "<td>\(p.accuracyCI95?.percent ?? "–")</td><td>\(Self.esc(Self.price(p.costPer1k)))</td><td>\(Self.esc(Self.price(p.costPerCorrect, p.costPerCorrectCI95)))</td></tr>"
        }
        out += "</table><p class=\"sub\">\(Self.esc(r.note))</p>"
        out += "<table class=\"routing-curve\"><tr><th>τ</th><th>escalation</th><th>accuracy</th><th>95% CI</th><th>$ per 1k</th><th>$ per correct</th><th>Pareto</th></tr>"
        for p in r.curve {
            out += "<tr><td>\(Self.tau(p))</td><td>\(Self.percent(p.escalationRate))</td><td>\(Self.percent(p.accuracy))</td><td>\(p.accuracyCI95?.percent ?? "–")</td>"
                + "<td>\(Self.esc(Self.price(p.costPer1k)))</td><td>\(Self.esc(Self.price(p.costPerCorrect)))</td><td>\(p.pareto ? "★" : "")</td></tr>"
        }
        return out + "</table></section>"
    }

    /// Accuracy (with Wilson whiskers; Pareto points filled) and $ per 1k requests (right axis, dashed)
    /// against the escalation rate; the picked τ's escalation rate is marked.
    private func routingChart(_ r: RoutingReport) -> String {
        let w = 640.0, h = 240.0, left = 48.0, right = 64.0, top = 12.0, bottom = 34.0
        let pts = r.curve
        let priced = pts.allSatisfy { $0.costPer1k != nil }
        let cmax = max(pts.compactMap(\.costPer1k).max() ?? 0, 1e-12)
        func x(_ e: Double) -> Double { left + e * (w - left - right) }
        func y(_ a: Double) -> Double { top + (1 - a) * (h - top - bottom) }
        var svg = "<div class=\"legend\"><span><i style=\"background:#2563eb\"></i>accuracy (95% CI)</span>"
            + (priced ? "<span><i style=\"background:#f97316\"></i>$ per 1k requests</span>" : "") + "<span>● Pareto front</span></div>"
        svg += "<svg class=\"chart routing\" role=\"img\" aria-label=\"routing curve\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\">"
        for k in 0...4 {
            let a = Double(k) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(w - right)\" y1=\"\(Self.num(y(a)))\" y2=\"\(Self.num(y(a)))\" stroke=\"#e2e8f0\"/>"
                + "<text x=\"\(left - 6)\" y=\"\(Self.num(y(a) + 4))\" font-size=\"10\" text-anchor=\"end\" fill=\"#64748b\">\(k * 25)%</text>"
            if priced {
                svg += "<text x=\"\(Self.num(w - right + 6))\" y=\"\(Self.num(y(a) + 4))\" font-size=\"10\" fill=\"#f97316\">\(k == 0 ? "$0" : Self.esc(Self.price(cmax * a)))</text>"
            }
            svg += "<text x=\"\(Self.num(x(a)))\" y=\"\(Self.num(h - bottom + 14))\" font-size=\"10\" text-anchor=\"middle\" fill=\"#64748b\">\(k * 25)%</text>"
        }
        svg += "<text x=\"\(Self.num((w + left - right) / 2))\" y=\"\(Int(h - 4))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#64748b\">escalated to \(Self.esc(r.reference))</text>"
        let picked = r.curve.first { $0.policy == r.chosenOn.policy && $0.tau == r.chosenOn.tau }
        if let p = picked {
            svg += "<line class=\"picked\" x1=\"\(Self.num(x(p.escalationRate)))\" x2=\"\(Self.num(x(p.escalationRate)))\" y1=\"\(top)\" y2=\"\(h - bottom)\" stroke=\"#64748b\" stroke-dasharray=\"4 3\"/>"
                + "<text x=\"\(Self.num(x(p.escalationRate) + (p.escalationRate > 0.6 ? -4 : 4)))\" y=\"\(top + 12)\" font-size=\"11\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\" "
                + "text-anchor=\"\(p.escalationRate > 0.6 ? "end" : "start")\">picked: \(Self.esc(p.label))</text>"
        }
        func path(_ v: (RoutingPoint) -> Double) -> String {
            pts.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(Self.num(x($0.element.escalationRate))),\(Self.num(y(v($0.element))))" }.joined(separator: " ")
        }
        if priced {
            svg += "<path class=\"cost\" d=\"\(path { $0.costPer1k! / cmax })\" fill=\"none\" stroke=\"#f97316\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>"
        }
        svg += "<path class=\"accuracy\" d=\"\(path(\.accuracy))\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\"/>"
        for p in pts {
            let cx = Self.num(x(p.escalationRate))
            if let ci = p.accuracyCI95 {
                svg += "<line class=\"ci\" x1=\"\(cx)\" x2=\"\(cx)\" y1=\"\(Self.num(y(ci.lower)))\" y2=\"\(Self.num(y(ci.upper)))\" stroke=\"#93c5fd\" stroke-width=\"3\"/>"
            }
            let title = "\(p.label): accuracy \(Self.percent(p.accuracy)) \(p.accuracyCI95?.percent ?? ""), escalation \(Self.percent(p.escalationRate)), "
                + "\(Self.price(p.costPer1k)) per 1k, \(Self.price(p.costPerCorrect)) per correct"
            svg += "<circle class=\"point\(p.pareto ? " pareto" : "")\" cx=\"\(cx)\" cy=\"\(Self.num(y(p.accuracy)))\" r=\"4\" "
                + "fill=\"\(p.pareto ? "#2563eb" : "#fff")\" stroke=\"#2563eb\" stroke-width=\"1.5\"><title>\(Self.esc(title))</title></circle>"
        }
        return svg + "</svg>"
    }
}
