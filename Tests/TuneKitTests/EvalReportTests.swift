// EvalReportTests — report.json keeps its schema, report.md its table, and report.html is one
// well-formed, self-contained page with its SVG charts; then a real headless Chromium loads it
// (skipped, with a message, where chromium is not installed).
import Engine
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import TuneKit

func sampleReport(gateMin: Double = 0.9) throws -> EvalReport {
    var cfg = EvalConfig()
    cfg.metrics = ["loss", "exact_match", "choice", "contains"]
    cfg.choices = ["invoice", "receipt"]
    cfg.gate = [GateRule(metric: "accuracy", min: gateMin, minDeltaVsBase: 0.05), GateRule(metric: "perplexity", maxRatioVsBase: 1.1)]
    cfg.costs = CostConfig(hardwarePerHour: 0.5, monthlyFixed: 20, managedInputPerMillion: 1.5, managedOutputPerMillion: 6)
    func eval(_ role: ModelRole, _ acc: Double, _ loss: Double) -> ModelEvaluation {
        var c = Confusion(labels: cfg.choices)
        for k in 0..<10 { c.add(actual: cfg.choices[k % 2], predicted: Double(k) / 10 < acc ? cfg.choices[k % 2] : "<b>odd</b>") }
        return ModelEvaluation(role: role, model: "\(role.rawValue) <model> & co", examples: 10, targetTokens: 40, promptTokens: 1200,
                               generatedTokens: 60, metrics: ["loss": loss, "perplexity": exp(loss), "exact_match": acc - 0.1,
                                                              "token_accuracy": 0.8, "choice": acc, "contains": acc],
                               confusion: c, samples: [.init(reference: "invoice", generated: "<script>alert(1)</script>", choice: "invoice")],
                               seconds: 4, examplesPerSecond: 2.5, tokensPerSecond: 315)
    }
    let curve = TrainingCurve(train: (1...30).map { .init(step: $0, loss: 2.5 / Double($0).squareRoot()) },
                              eval: [.init(step: 15, loss: 0.9), .init(step: 30, loss: 0.6)])
    return try EvalReport(models: [eval(.base, 0.3, 2.4), eval(.adapter, 0.95, 0.5), eval(.merged, 0.95, 0.5)], config: cfg,
                          subjects: ["base": "b.gguf", "adapter": "a@1"], dataset: "shipping-docs", training: curve,
                          trainSeconds: 480, now: Date(timeIntervalSince1970: 0))
}

@Suite struct EvalReportTests {
    @Test func jsonSchema() throws {
        let r = try sampleReport()
        let obj = try JSONSerialization.jsonObject(with: r.jsonData()) as! [String: Any]
        #expect(Set(obj.keys) == ["schema_version", "created_at", "subjects", "dataset", "config", "models", "gate", "costs", "training"])
        #expect(obj["schema_version"] as? Int == 1 && obj["created_at"] as? String == "1970-01-01T00:00:00Z")
        let m = (obj["models"] as! [[String: Any]])[1]
        #expect(Set(m.keys) == ["role", "model", "examples", "target_tokens", "prompt_tokens", "generated_tokens", "metrics", "confusion",
                                "samples", "seconds", "examples_per_second", "tokens_per_second", "accuracy_ci95"])
        let gate = obj["gate"] as! [String: Any]
        #expect(gate["passed"] as? Bool == true)
        let costs = obj["costs"] as! [String: Any]
        #expect(costs["role"] as? String == "merged" && costs["training_cost"] as? Double != nil && costs["break_even_monthly_requests"] != nil)
        let decoded = try JSONDecoder().decode(EvalReport.self, from: r.jsonData())
        #expect(decoded.models == r.models && decoded.gate == r.gate && decoded.costs == r.costs)
        let failed = try sampleReport(gateMin: 0.99)
        #expect(failed.gate?.passed == false && failed.gate!.failures.count == 2)
        #expect(failed.markdown().contains("## Gate: FAILED") && failed.markdown().contains("FAIL by 0.0400"))
    }

    @Test func htmlIsWellFormedSelfContainedWithCharts() throws {
        let html = try sampleReport().html()
        let parser = XMLParser(data: Data(html.utf8))
        let ok = parser.parse()
        #expect(ok, "not well-formed: \(parser.parserError.map { "\($0)" } ?? "") at line \(parser.lineNumber)")
        for chart in ["chart metrics", "chart loss", "chart confusion", "chart cost"] {
            #expect(html.contains("<svg class=\"\(chart)\""), "missing \(chart)")
        }
        #expect(html.components(separatedBy: "<svg").count - 1 == 6)   // metrics, loss, 3 confusions, cost
        for external in ["http://", "https://", "src=", "href=", "<script", "url(", "@import"] {
            #expect(!html.contains(external), "not self-contained: \(external)")
        }
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
    }

    @Test func loadsInHeadlessChromium() throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else {
            print("EvalReportTests.loadsInHeadlessChromium: skipped — chromium is not installed (apt-get install chromium)")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-evalhtml-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let files = try sampleReport().write(to: dir.path)
        let html = files.first { $0.hasSuffix(".html") }!
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium)
        p.arguments = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--user-data-dir=\(dir.path)/profile",
                       "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000", "--dump-dom", "file://" + html]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let dom = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let log = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(log)")
        #expect(dom.contains("</html>") && dom.contains("Evaluation · shipping-docs"), "\(dom.prefix(500))")
        #expect(dom.components(separatedBy: "<svg").count - 1 == 6, "charts in the loaded DOM")
        #expect(dom.contains("<rect class=\"bar\""), "metric bars")
        let consoleErrors = log.split(separator: "\n").filter { $0.contains("CONSOLE") || $0.contains("Uncaught") || $0.contains("ERR_FILE") }
        #expect(consoleErrors.isEmpty, "\(consoleErrors)")
    }
}
