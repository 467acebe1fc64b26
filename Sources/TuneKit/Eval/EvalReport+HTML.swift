// EvalReport+HTML — one self-contained page (inline CSS, inline SVG, no script, no external URL):
// metric bars base vs adapter vs merged, training/eval loss curves, confusion heatmaps, gate, cost,
// routing (EvalReport+Routing).

import Foundation

extension EvalReport {
    static let colors: [ModelRole: String] = [.base: "#94a3b8", .adapter: "#2563eb", .merged: "#16a34a", .reference: "#a855f7"]

    static func esc(_ s: String) -> String {
        var o = ""
        for ch in s {
            switch ch {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.append(ch)
            }
        }
        return o
    }

    static func num(_ v: Double) -> String { String(format: "%.1f", v) }

    public func html() -> String {
        var body: [String] = []
        let gateBadge = gate.map { $0.passed ? #"<span class="badge pass">gate passed</span>"# : #"<span class="badge fail">gate failed</span>"# } ?? ""
        body.append("<header><h1>Evaluation · \(Self.esc(dataset))</h1>\(gateBadge)<p class=\"sub\">\(models.count) model\(models.count == 1 ? "" : "s") · \(models.first?.examples ?? 0) held-out examples · \(Self.esc(createdAt))</p></header>")
        body.append(#"<section class="card"><h2>Metrics</h2>"# + metricBars() + table() + "</section>")
        if let ds = differences {
            let rows = ds.map { d in
                String(format: "<tr><td>%@ − %@</td><td>%+.1f</td><td>[%+.1f, %+.1f]</td><td>%d / %d</td><td>%@</td></tr>",
                       d.model.rawValue, Self.esc(d.versus), 100 * d.delta, 100 * d.ci95.lower, 100 * d.ci95.upper, d.onlyModel, d.onlyVersus,
                       d.significant ? "significant" : "not significant")
            }.joined()
            body.append("<section class=\"card\"><h2>Differences</h2><p class=\"sub\">\(Self.esc(ds[0].metric)), points; paired bootstrap, \(Bootstrap.resamples) resamples, 95%</p>"
                        + "<table><tr><th>models</th><th>Δ</th><th>95% interval</th><th>right only for each</th><th></th></tr>\(rows)</table></section>")
        }
        if let g = gate {
            let rows = g.checks.map { c in
                "<tr class=\"\(c.passed ? "ok" : "bad")\"><td>\(c.passed ? "✔" : "✘")</td><td>\(Self.esc(c.metric))</td><td>\(c.role.rawValue)</td><td>\(Self.esc(c.bound))</td><td>\(String(format: "%.4f", c.limit))</td><td>\(String(format: "%.4f", c.actual))</td><td>\(String(format: "%+.4f", c.margin))</td></tr>"
            }.joined()
            body.append("<section class=\"card\"><h2>Gate</h2><table><tr><th></th><th>metric</th><th>model</th><th>bound</th><th>limit</th><th>actual</th><th>margin</th></tr>\(rows)</table></section>")
        }
        if let t = training, !t.train.isEmpty { body.append(#"<section class="card"><h2>Training</h2>"# + lossCurve(t) + "</section>") }
        let confusions = models.compactMap { m in m.confusion.map { (m.role, $0) } }
        if !confusions.isEmpty {
            body.append(#"<section class="card"><h2>Confusion</h2><p class="sub">rows: reference label · columns: generated label</p><div class="grid">"#
                        + confusions.map { confusionSVG($0.0, $0.1) }.joined() + "</div></section>")
        }
        if let c = costs { body.append(#"<section class="card"><h2>Cost</h2>"# + costSection(c) + "</section>") }
        if let r = routing { body.append(routingSection(r)) }
        let samples = models.filter { !$0.samples.isEmpty }
        if !samples.isEmpty {
            var rows = ""
            for m in samples {
                for s in m.samples {
                    rows += "<tr><td>\(m.role.rawValue)</td><td><code>\(Self.esc(s.reference))</code></td><td><code>\(Self.esc(s.generated ?? "–"))</code></td><td><code>\(Self.esc(s.choice ?? "–"))</code></td></tr>"
                }
            }
            body.append("<section class=\"card\"><h2>Samples</h2><table><tr><th>model</th><th>reference</th><th>generated</th><th>choice</th></tr>\(rows)</table></section>")
        }
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title>tune eval · \(Self.esc(dataset))</title>
        <style>
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f1f5f9;color:#0f172a}
        main{max-width:1040px;margin:0 auto;padding:24px}
        header h1{font-size:22px;margin:0 8px 4px 0;display:inline-block}
        .sub{color:#64748b;margin:4px 0 12px}
        .badge{padding:3px 10px;border-radius:999px;font-weight:600;font-size:12px;vertical-align:4px}
        .pass{background:#dcfce7;color:#166534}.fail{background:#fee2e2;color:#991b1b}
        .card{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0f172a1a;padding:16px 20px;margin:16px 0}
        h2{font-size:16px;margin:0 0 10px}
        table{border-collapse:collapse;width:100%;margin-top:8px}
        th,td{padding:5px 8px;border-bottom:1px solid #e2e8f0;text-align:right}
        th:first-child,td:first-child,td:nth-child(2){text-align:left}
        tr.bad td{background:#fef2f2}tr.ok td:first-child{color:#16a34a}tr.bad td:first-child{color:#dc2626}
        code{font-size:12px;white-space:pre-wrap}
        .grid{display:flex;flex-wrap:wrap;gap:16px}
        svg text{font-family:inherit}
        .legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
        </style></head>
        <body><main>
        \(body.joined(separator: "\n"))
        <p class="sub">schema_version \(schemaVersion) · generated by tune eval</p>
        </main></body></html>

        """
    }

    private func legend() -> String {
        "<div class=\"legend\">" + models.map { "<span><i style=\"background:\(Self.colors[$0.role]!)\"></i>\($0.role.rawValue): \(Self.esc($0.model))</span>" }.joined() + "</div>"
    }

    /// Grouped bars of the fraction metrics (0–100 %), one bar per model.
    private func metricBars() -> String {
        let ms = config.reportedMetrics.filter { $0 != "loss" && $0 != "perplexity" }
        var svg = ""
        if !ms.isEmpty {
            let groupW = 40.0 + 34.0 * Double(models.count), h = 220.0, top = 16.0, left = 40.0
            let w = left + groupW * Double(ms.count) + 10
            svg += "<svg class=\"chart metrics\" role=\"img\" aria-label=\"metrics by model\" viewBox=\"0 0 \(Self.num(w)) \(Self.num(h + 40))\" width=\"\(Self.num(w))\" height=\"\(Self.num(h + 40))\">"
            for t in stride(from: 0.0, through: 1.0, by: 0.25) {
                let y = top + h - t * h
                svg += "<line x1=\"\(left)\" x2=\"\(Self.num(w))\" y1=\"\(Self.num(y))\" y2=\"\(Self.num(y))\" stroke=\"#e2e8f0\"/><text x=\"\(left - 6)\" y=\"\(Self.num(y + 4))\" font-size=\"10\" text-anchor=\"end\" fill=\"#64748b\">\(Int(t * 100))%</text>"
            }
            for (gi, m) in ms.enumerated() {
                let gx = left + Double(gi) * groupW + 20
                for (mi, e) in models.enumerated() {
                    let v = min(1, max(0, e.metrics[m] ?? 0)), bh = v * h
                    let x = gx + Double(mi) * 34
                    svg += "<rect class=\"bar\" x=\"\(Self.num(x))\" y=\"\(Self.num(top + h - bh))\" width=\"28\" height=\"\(Self.num(bh))\" rx=\"3\" fill=\"\(Self.colors[e.role]!)\"><title>\(e.role.rawValue) \(m): \(Self.fmt(m, e.metrics[m]))</title></rect>"
                    svg += "<text x=\"\(Self.num(x + 14))\" y=\"\(Self.num(top + h - bh - 4))\" font-size=\"10\" text-anchor=\"middle\">\(Int((100 * v).rounded()))</text>"
                }
                svg += "<text x=\"\(Self.num(gx + 17 * Double(models.count)))\" y=\"\(Self.num(top + h + 18))\" font-size=\"12\" text-anchor=\"middle\">\(Self.esc(m))</text>"
            }
            svg += "</svg>"
        }
        return legend() + svg
    }

    private func table() -> String {
        let ms = config.reportedMetrics
        let latency = models.contains { $0.latencyP50 != nil }, ci = models.contains { $0.accuracyCI95 != nil }
        var t = "<table><tr><th>model</th>" + ms.map { "<th>\(Self.esc($0))</th>" }.joined() + (ci ? "<th>accuracy 95% CI</th>" : "")
            + "<th>examples/s</th><th>tokens/s</th>" + (latency ? "<th>latency p50 / p95</th>" : "") + "</tr>"
        for m in models {
            let name = m.role == .reference ? "reference: \(Self.esc(m.model))" : m.role.rawValue
            t += "<tr><td>\(name)</td>" + ms.map { "<td>\(Self.fmt($0, m.metrics[$0]))</td>" }.joined()
                + (ci ? "<td>\(m.accuracyCI95?.percent ?? "–")</td>" : "")
                + "<td>\(String(format: "%.2f", m.examplesPerSecond))</td><td>\(String(format: "%.0f", m.tokensPerSecond))</td>"
                + (latency ? "<td>\(Self.esc(Self.latency(m)))</td>" : "") + "</tr>"
        }
        return t + "</table>"
    }

    /// Training loss (every step) and eval loss (every eval) against the step.
    private func lossCurve(_ t: TrainingCurve) -> String {
        let w = 640.0, h = 220.0, left = 48.0, top = 12.0, right = 12.0, bottom = 30.0
        let all = t.train + t.eval
        let maxStep = Double(max(1, all.map(\.step).max() ?? 1))
        let lo = all.map(\.loss).min() ?? 0, hi = all.map(\.loss).max() ?? 1
        let span = max(hi - lo, 1e-6)
        func x(_ s: Int) -> Double { left + Double(s) / maxStep * (w - left - right) }
        func y(_ l: Double) -> Double { top + (1 - (l - lo) / span) * (h - top - bottom) }
        func path(_ pts: [TrainingCurve.Point]) -> String {
            pts.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(Self.num(x($0.element.step))),\(Self.num(y($0.element.loss)))" }.joined(separator: " ")
        }
        var svg = "<svg class=\"chart loss\" role=\"img\" aria-label=\"loss curves\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\">"
        for k in 0...4 {
            let l = lo + span * Double(k) / 4
            svg += "<line x1=\"\(left)\" x2=\"\(w - right)\" y1=\"\(Self.num(y(l)))\" y2=\"\(Self.num(y(l)))\" stroke=\"#e2e8f0\"/><text x=\"\(left - 6)\" y=\"\(Self.num(y(l) + 4))\" font-size=\"10\" text-anchor=\"end\" fill=\"#64748b\">\(String(format: "%.2f", l))</text>"
        }
        svg += "<text x=\"\(Self.num((w + left) / 2))\" y=\"\(Int(h - 6))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#64748b\">step (max \(Int(maxStep)))</text>"
        svg += "<path class=\"train\" d=\"\(path(t.train))\" fill=\"none\" stroke=\"#2563eb\" stroke-width=\"2\"/>"
        if !t.eval.isEmpty {
            svg += "<path class=\"eval\" d=\"\(path(t.eval))\" fill=\"none\" stroke=\"#f97316\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>"
            svg += t.eval.map { "<circle cx=\"\(Self.num(x($0.step)))\" cy=\"\(Self.num(y($0.loss)))\" r=\"3\" fill=\"#f97316\"><title>step \($0.step) eval loss \(String(format: "%.4f", $0.loss))</title></circle>" }.joined()
        }
        svg += "</svg>"
        return "<div class=\"legend\"><span><i style=\"background:#2563eb\"></i>train loss</span><span><i style=\"background:#f97316\"></i>eval loss</span></div>" + svg
    }

    private func confusionSVG(_ role: ModelRole, _ c: Confusion) -> String {
        let n = c.labels.count, cell = 34.0, left = 150.0, top = 120.0
        let w = left + cell * Double(n) + 10, h = top + cell * Double(n) + 10
        let peak = Double(max(1, c.counts.flatMap { $0 }.max() ?? 1))
        var svg = "<figure><figcaption>\(role.rawValue)</figcaption><svg class=\"chart confusion\" role=\"img\" aria-label=\"confusion \(role.rawValue)\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\">"
        for (i, l) in c.labels.enumerated() {
            svg += "<text x=\"\(Self.num(left - 6))\" y=\"\(Self.num(top + cell * Double(i) + cell / 2 + 4))\" font-size=\"11\" text-anchor=\"end\">\(Self.esc(l))</text>"
            let cx = left + cell * Double(i) + cell / 2
            svg += "<text transform=\"translate(\(Self.num(cx + 4)),\(Self.num(top - 6))) rotate(-55)\" font-size=\"11\">\(Self.esc(l))</text>"
            for j in 0..<n {
                let v = c.counts[i][j], a = Double(v) / peak
                let color = i == j ? "37,99,235" : "220,38,38"
                svg += "<rect x=\"\(Self.num(left + cell * Double(j)))\" y=\"\(Self.num(top + cell * Double(i)))\" width=\"\(Int(cell - 2))\" height=\"\(Int(cell - 2))\" fill=\"rgba(\(color),\(String(format: "%.2f", v == 0 ? 0.04 : 0.15 + 0.85 * a)))\"><title>\(Self.esc(c.labels[i])) → \(Self.esc(c.labels[j])): \(v)</title></rect>"
                if v > 0 {
                    svg += "<text x=\"\(Self.num(left + cell * Double(j) + cell / 2 - 1))\" y=\"\(Self.num(top + cell * Double(i) + cell / 2 + 3))\" font-size=\"11\" text-anchor=\"middle\" fill=\"\(a > 0.5 ? "#fff" : "#0f172a")\">\(v)</text>"
                }
            }
        }
        return svg + "</svg></figure>"
    }

    private func costSection(_ c: CostReport) -> String {
        var rows: [(String, String)] = [("training", Self.money(c.trainingCost)),
                                        ("avg tokens per request", String(format: "%.0f prompt + %.1f output", c.avgPromptTokens, c.avgOutputTokens)),
                                        ("measured throughput (\(c.role.rawValue))", String(format: "%.0f tokens/s", c.tokensPerSecond)),
                                        ("serving per 1k requests", Self.money(c.servingPer1k)),
                                        ("managed API per 1k requests", Self.money(c.managedPer1k)),
                                        ("cost per correct answer", Self.price(c.costPerCorrect))]
        rows.append(("break-even volume", c.breakEvenMonthlyRequests.map { String(format: "%.0f requests/month", $0) } ?? "–"))
        var out = "<table>" + rows.map { "<tr><td>\(Self.esc($0.0))</td><td>\(Self.esc($0.1))</td></tr>" }.joined() + "</table><p class=\"sub\">\(Self.esc(c.breakEvenNote))</p>"
        if c.models.contains(where: { $0.role == .reference }) {
            out += "<h3>Cost per correct answer</h3><table class=\"per-correct\"><tr><th>model</th><th>basis</th><th>$ per request</th><th>accuracy</th><th>$ per correct</th></tr>"
            for m in c.models {
                out += "<tr><td>\(m.role.rawValue): \(Self.esc(m.model))</td><td>\(m.basis)</td><td>\(Self.esc(Self.price(m.perRequest)))</td>"
                    + "<td>\(Self.fmt("accuracy", m.accuracy))</td><td>\(Self.esc(Self.price(m.costPerCorrect, m.costPerCorrectCI95)))</td></tr>"
            }
            out += "</table><h3>Break-even vs references (\(c.role.rawValue), per correct answer)</h3><table class=\"break-even\"><tr><th>reference</th><th>break-even</th><th>payback</th><th>note</th></tr>"
            for b in c.references {
                out += "<tr><td>\(Self.esc(b.reference))</td><td>\(b.breakEvenMonthlyRequests.map { String(format: "%.0f requests/month", $0) } ?? "–")</td>"
                    + "<td>\(b.paybackMonths.map { String(format: "%.2f months", $0) } ?? "–")</td><td>\(Self.esc(b.note))</td></tr>"
            }
            out += "</table>"
        }
        // Monthly cost against volume, open vs managed, up to twice the break-even (or 1M requests).
        if let s = c.servingPer1k, let g = c.managedPer1k {
            let fixed = (c.inputs.monthlyFixed ?? 0) + (c.trainingCost ?? 0) / c.inputs.amortizeMonths
            let vmax = max(1000, (c.breakEvenMonthlyRequests ?? 500_000) * 2)
            let open = fixed + vmax / 1000 * s, managed = vmax / 1000 * g
            let ymax = max(open, managed, 1e-9)
            let w = 640.0, h = 220.0, left = 60.0, top = 12.0, bottom = 30.0, right = 12.0
            func x(_ v: Double) -> Double { left + v / vmax * (w - left - right) }
            func y(_ d: Double) -> Double { top + (1 - d / ymax) * (h - top - bottom) }
            out += "<div class=\"legend\"><span><i style=\"background:#2563eb\"></i>open model (\(c.role.rawValue))</span><span><i style=\"background:#a855f7\"></i>managed API</span></div>"
            out += "<svg class=\"chart cost\" role=\"img\" aria-label=\"monthly cost by volume\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" width=\"\(Int(w))\" height=\"\(Int(h))\">"
            for k in 0...4 {
                let d = ymax * Double(k) / 4
                out += "<line x1=\"\(left)\" x2=\"\(w - right)\" y1=\"\(Self.num(y(d)))\" y2=\"\(Self.num(y(d)))\" stroke=\"#e2e8f0\"/><text x=\"\(left - 6)\" y=\"\(Self.num(y(d) + 4))\" font-size=\"10\" text-anchor=\"end\" fill=\"#64748b\">\(Self.esc(Self.money(d)))</text>"
            }
            out += "<line x1=\"\(Self.num(x(0)))\" y1=\"\(Self.num(y(fixed)))\" x2=\"\(Self.num(x(vmax)))\" y2=\"\(Self.num(y(open)))\" stroke=\"#2563eb\" stroke-width=\"2\"/>"
            out += "<line x1=\"\(Self.num(x(0)))\" y1=\"\(Self.num(y(0)))\" x2=\"\(Self.num(x(vmax)))\" y2=\"\(Self.num(y(managed)))\" stroke=\"#a855f7\" stroke-width=\"2\"/>"
            if let b = c.breakEvenMonthlyRequests {
                out += "<line x1=\"\(Self.num(x(b)))\" x2=\"\(Self.num(x(b)))\" y1=\"\(top)\" y2=\"\(h - bottom)\" stroke=\"#64748b\" stroke-dasharray=\"4 3\"/><text x=\"\(Self.num(x(b) + 4))\" y=\"\(top + 12)\" font-size=\"11\">break-even \(String(format: "%.0f", b))/month</text>"
            }
            out += "<text x=\"\(Self.num((w + left) / 2))\" y=\"\(Int(h - 6))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#64748b\">requests per month (0 – \(String(format: "%.0f", vmax)))</text></svg>"
        }
        return out
    }
}
