// RoutingReportTests — `eval.routing` in the report: per-example outcomes of the adapter and the
// reference paired into the worked example (prices giving $0.001 / $0.01 per request), end points equal
// to costs.models' own figures, Markdown/HTML/JSON carry the table and the chart; the YAML section's
// errors name the key.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import TuneKit

private func close(_ a: Double?, _ b: Double, _ tol: Double = 1e-12) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tol * max(1, abs(b))
}

private func problems(_ evalBody: String) -> String {
    let yaml = "name: p\nbase: model.gguf\nprepare:\n  train: data.jsonl\neval:\n" + evalBody
    do { _ = try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml"); return "ok" } catch let e as ConfigError {
        return e.description
    } catch { return "unexpected: \(error)" }
}

/// The worked example as evaluations: adapter 8 examples, 800 prompt + 80 target tokens in 8 s on a $3.60/hour
/// machine → (100 + 10) / 110 tokens/s / 3600 × 3.6 = $0.001 per request; the reference 100 prompt + 10
/// completion tokens per request at $50 / $500 per 1M → (5000 + 5000) / 10⁶ = $0.01.
func workedReport(_ routing: RoutingConfig, gate: [GateRule] = []) throws -> EvalReport {
    var config = EvalConfig()
    config.metrics = ["exact_match"]
    var ref = ReferenceModel(name: "big", model: "big-model", baseURL: "http://127.0.0.1:9/v1")
    ref.inputPerMillion = 50
    ref.outputPerMillion = 500
    config.references = [ref]
    config.costs = CostConfig(hardwarePerHour: 3.6)
    config.routing = routing
    config.gate = gate
    try config.validate()
    let local = workedExample.map { ExampleOutcome(correct: $0.localCorrect, confidence: $0.confidence, promptTokens: 100, outputTokens: 10) }
    let remote = workedExample.map { ExampleOutcome(correct: $0.referenceCorrect, promptTokens: 100, outputTokens: 10) }
    var adapter = ModelEvaluation(role: .adapter, model: "tuned", examples: 8, targetTokens: 80, promptTokens: 800, generatedTokens: 0,
                                  metrics: ["exact_match": 5.0 / 8, "token_accuracy": 0.9], confusion: nil, samples: [], seconds: 8,
                                  examplesPerSecond: 1, tokensPerSecond: 110)
    adapter.outcomes = local
    var big = ModelEvaluation(role: .reference, model: "big", examples: 8, targetTokens: 0, promptTokens: 800, generatedTokens: 80,
                              metrics: ["exact_match": 6.0 / 8], confusion: nil, samples: [], seconds: 1, examplesPerSecond: 8,
                              tokensPerSecond: 880, apiModel: "big-model")
    big.outcomes = remote
    return try EvalReport(models: [adapter, big], config: config, subjects: [:], dataset: "docs", now: Date(timeIntervalSince1970: 0))
}

@Suite struct RoutingReportTests {
    @Test func reportPairsOutcomesAndItsEndPointsAreTheModelsOwnFigures() throws {
        let report = try workedReport(RoutingConfig(reference: "big", targetAccuracy: 0.97))
        let r = try #require(report.routing)
        #expect(r.local == .adapter && r.reference == "big" && r.confidence == "mean_token_logprob" && r.accuracyMetric == "exact_match")
        #expect(r.met && r.tau == 0.7 && r.chosenOn.correct == 4 && r.reportedOn.correct == 3 && close(r.reportedOn.costPer1k, 8.5))
        #expect(r.curve.count == 9 && r.curve.map(\.correct) == [5, 6, 7, 8, 8, 7, 6, 6, 6])
        let costs = try #require(report.costs)
        let own = Dictionary(uniqueKeysWithValues: costs.models.map { ($0.model, $0) })
        #expect(close(own["tuned"]?.perRequest, 0.001) && close(own["big"]?.perRequest, 0.01))
        let first = r.curve.first!, last = r.curve.last!
        #expect(first.policy == .alwaysLocal && first.accuracy == own["tuned"]?.accuracy && close(first.costPerCorrect, own["tuned"]!.costPerCorrect!))
        #expect(last.policy == .alwaysReference && last.accuracy == own["big"]?.accuracy && close(last.costPerCorrect, own["big"]!.costPerCorrect!))
        // Wilson intervals on every model's accuracy: 5/8 and 6/8.
        #expect(report.models[0].accuracyCI95 == Interval.wilson(successes: 5, of: 8))
        #expect(report.models[1].accuracyCI95 == Interval.wilson(successes: 6, of: 8))

        let md = report.markdown()
        #expect(md.contains("## Routing: adapter → big"), "\(md)")
        #expect(md.contains("| reported on (odd) | threshold | 0.7000 | 3/4 | 75.0% | [30.1%, 95.4%] | $8.50 | $0.0113 |"), "\(md)")
        #expect(md.contains("| 0.4000 | 37.5% | 100.0% | [67.6%, 100.0%] | $4.75 | $0.004750 | ★ |"), "\(md)")
        #expect(md.contains("| always reference | 100.0% | 75.0% |"), "\(md)")
        #expect(md.contains("accuracy 95% CI") && md.contains("[30.6%, 86.3%]"), "5/8 in the model table: \(md)")

        let html = report.html()
        let parser = XMLParser(data: Data(html.utf8))
        #expect(parser.parse(), "not well-formed: \(parser.parserError.map { "\($0)" } ?? "")")
        #expect(html.contains("<svg class=\"chart routing\""))
        #expect(html.components(separatedBy: "<circle class=\"point").count - 1 == 9)
        #expect(html.components(separatedBy: "<circle class=\"point pareto\"").count - 1 == 4)
        #expect(html.contains("picked: τ = 0.7") && !html.contains("<script"))

        let obj = try JSONSerialization.jsonObject(with: report.jsonData()) as! [String: Any]
        let routing = try #require(obj["routing"] as? [String: Any])
        #expect(Set(routing.keys) == ["reference", "local", "local_model", "confidence", "accuracy_metric", "curve", "rule", "met",
                                      "chosen_on", "reported_on", "note"])
        let models = try #require(obj["models"] as? [[String: Any]])
        #expect((models[0]["per_example"] as? [[String: Any]])?.count == 8 && models[0]["accuracy_ci95"] != nil)
        let decoded = try JSONDecoder().decode(EvalReport.self, from: report.jsonData())
        #expect(decoded.routing == report.routing && decoded.models == report.models && decoded.config == report.config)
    }

    @Test func otherRulesAndMismatches() throws {
        let e = try #require(try workedReport(RoutingConfig(reference: "big", maxEscalation: 0.25)).routing)
        #expect(e.tau == 0.3 && e.reportedOn.correct == 4 && e.rule == "max_escalation 0.25")
        let c = try #require(try workedReport(RoutingConfig(reference: "big", maxCostPer1k: 3.49)).routing)
        #expect(c.chosenOn.policy == .alwaysLocal && c.tau == nil && c.met)
        // The reference answered a different number of examples: refused, naming both counts.
        var config = EvalConfig()
        config.metrics = ["exact_match"]
        config.references = [ReferenceModel(name: "big", model: "m")]
        config.routing = RoutingConfig(reference: "big", targetAccuracy: 0.9)
        var a = ModelEvaluation(role: .adapter, model: "t", examples: 3, targetTokens: 3, promptTokens: 3, generatedTokens: 0, metrics: [:],
                                confusion: nil, samples: [], seconds: 1, examplesPerSecond: 1, tokensPerSecond: 1)
        a.outcomes = (0..<3).map { ExampleOutcome(correct: true, confidence: Double($0)) }
        var b = a
        b.role = .reference
        b.model = "big"
        b.outcomes = [ExampleOutcome(correct: true), ExampleOutcome(correct: false)]
        let err = #expect(throws: TuneError.self) { try EvalReport(models: [a, b], config: config, subjects: [:], dataset: "d") }
        #expect(err?.message.contains("adapter answered 3 examples, reference big 2") == true, "\(String(describing: err))")
        // A local model without confidences (evaluated through a chat API) cannot be routed.
        b.outcomes = a.outcomes
        a.outcomes = a.outcomes!.map { var o = $0; o.confidence = nil; return o }
        let noConf = #expect(throws: TuneError.self) { try EvalReport(models: [a, b], config: config, subjects: [:], dataset: "d") }
        #expect(noConf?.message.contains("has no confidence") == true)
    }

    @Test func yamlErrorsNameTheKey() throws {
        let ok = try PipelineSpec.parse(yaml: """
            name: p
            base: model.gguf
            prepare: {train: data.jsonl}
            eval:
              metrics: [choice]
              choices: [invoice, receipt]
              reference: [{name: big, model: m, input_per_million: 1}]
              costs: {hardware_per_hour: 1}
              routing: {reference: big, max_cost_per_1k: 2.5}
            """, file: "p.yaml")
        #expect(ok.eval?.config.routing == RoutingConfig(reference: "big", maxCostPer1k: 2.5))
        #expect(ok.eval?.config.generates == true, "choices are given: generation runs for the confusion matrix anyway")

        let unknownRef = problems("  metrics: [exact_match]\n  reference: [{name: big, model: m}]\n  routing: {reference: small, target_accuracy: 0.9}\n")
        #expect(unknownRef.contains("eval.routing.reference") && unknownRef.contains("no eval reference named \"small\" (declared: big)"), "\(unknownRef)")
        let two = problems("  metrics: [exact_match]\n  reference: [{name: big, model: m}]\n  routing: {reference: big, target_accuracy: 0.9, max_escalation: 0.2}\n")
        #expect(two.contains("eval.routing") && two.contains("give exactly one of target_accuracy, max_escalation, max_cost_per_1k"), "\(two)")
        let none = problems("  metrics: [exact_match]\n  reference: [{name: big, model: m}]\n  routing: {reference: big}\n")
        #expect(none.contains("give exactly one of"), "\(none)")
        let range = problems("  metrics: [exact_match]\n  reference: [{name: big, model: m}]\n  routing: {reference: big, target_accuracy: 97}\n")
        #expect(range.contains("eval.routing.target_accuracy"), "\(range)")
        let typo = problems("  metrics: [exact_match]\n  reference: [{name: big, model: m}]\n  routing: {reference: big, target_acuracy: 0.9}\n")
        #expect(typo.contains("eval.routing.target_acuracy") && typo.contains("unknown field") && typo.contains("target_accuracy"), "\(typo)")
        let unpriced = problems("  metrics: [exact_match]\n  reference: [{name: big, model: m}]\n  routing: {reference: big, max_cost_per_1k: 2}\n")
        #expect(unpriced.contains("eval.routing.max_cost_per_1k") && unpriced.contains("hardware_per_hour")
                && unpriced.contains("input_per_million / output_per_million on reference \"big\""), "\(unpriced)")
        let noAccuracy = problems("  metrics: [contains]\n  reference: [{name: big, model: m}]\n  routing: {reference: big, max_escalation: 0.2}\n")
        #expect(noAccuracy.contains("routing needs an accuracy metric"), "\(noAccuracy)")
        // Flags-assembled configs get the same checks.
        var c = EvalConfig()
        c.routing = RoutingConfig(reference: "nope", targetAccuracy: 0.9)
        let err = #expect(throws: TuneError.self) { try c.validate() }
        #expect(err?.message.contains("eval.routing.reference: no eval reference named \"nope\"") == true, "\(String(describing: err))")
        // Routing without choice makes the evaluator generate (the confidence is the greedy answer's).
        c.references = [ReferenceModel(name: "nope", model: "m")]
        #expect(c.generates)
    }

    /// The routing chart in a real headless Chromium (skipped, with a message, where chromium is not installed).
    @Test func routingChartLoadsInHeadlessChromium() throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else {
            print("RoutingReportTests.routingChartLoadsInHeadlessChromium: skipped — chromium is not installed (apt-get install chromium)")
            return
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-routinghtml-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let html = try #require(try workedReport(RoutingConfig(reference: "big", targetAccuracy: 0.97)).write(to: dir.path).first { $0.hasSuffix(".html") })
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
        #expect(dom.contains("<svg class=\"chart routing\"") && dom.components(separatedBy: "<circle class=\"point").count - 1 == 9)
        #expect(dom.contains("class=\"picked\"") && dom.contains("<path class=\"accuracy\"") && dom.contains("<path class=\"cost\""))
        let consoleErrors = log.split(separator: "\n").filter { $0.contains("CONSOLE") || $0.contains("Uncaught") || $0.contains("ERR_FILE") }
        #expect(consoleErrors.isEmpty, "\(consoleErrors)")
    }
}
