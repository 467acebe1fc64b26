// ReferenceEvalTests — eval.reference: parsing (a literal api_key refused, gate bounds against a declared
// reference only), cost per correct answer and the quality-adjusted break-even / payback computed by
// hand, gate bounds vs a reference (references themselves are never gated), and a reference evaluated
// through the OpenAI client against a scripted loopback provider (usage, latency, accuracy, 5xx naming it).
import Engine
import Foundation
import LoopbackHTTP
import Testing
@testable import TuneKit

private func problems(_ yaml: String) -> String {
    do { _ = try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml"); return "ok" } catch let e as ConfigError {
        return e.description
    } catch { return "unexpected: \(error)" }
}

private func evalYAML(_ body: String) -> String {
    "name: p\nbase: model.gguf\nprepare:\n  train: data.jsonl\neval:\n" + body
}

private func evaluation(_ role: ModelRole, _ name: String, _ metrics: [String: Double], examples: Int = 10, prompt: Int, generated: Int,
                        seconds: Double = 2, api: String? = nil) -> ModelEvaluation {
    var e = ModelEvaluation(role: role, model: name, examples: examples, targetTokens: api == nil ? 40 : 0, promptTokens: prompt,
                            generatedTokens: generated, metrics: metrics, confusion: nil, samples: [], seconds: seconds,
                            examplesPerSecond: Double(examples) / seconds, tokensPerSecond: Double(prompt + generated) / seconds)
    e.apiModel = api
    return e
}

private func close(_ a: Double?, _ b: Double, _ rel: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= rel * max(1, abs(b))
}

@Suite struct ReferenceEvalTests {
    @Test func parsesReferencesAndRefusesALiteralKey() throws {
        let ok = evalYAML("""
              metrics: [exact_match, contains]
              reference:
                - name: gpt-4o-mini
                  model: gpt-4o-mini
                  base_url: http://127.0.0.1:9/v1
                  api_key_env: REF_KEY
                  input_per_million: 0.15
                  output_per_million: 0.6
                  concurrency: 2
                  max_attempts: 3
                - {name: ft, model: "ft:gpt-4o-mini:org:x:1", base_url_env: MY_URL}
              gate:
                accuracy: {min_delta_vs_gpt-4o-mini: -0.02, max_ratio_vs_ft: 2}
              costs: {hardware_per_hour: 1.2, monthly_requests: 100000}
            """)
        let spec = try PipelineSpec.parse(yaml: ok, file: "pipeline.yaml")
        let c = try #require(spec.eval?.config)
        #expect(c.references.map(\.name) == ["gpt-4o-mini", "ft"])
        let r = c.references[0]
        #expect(r.apiKeyEnv == "REF_KEY" && r.inputPerMillion == 0.15 && r.outputPerMillion == 0.6 && r.concurrency == 2 && r.maxAttempts == 3)
        #expect(c.references[1].baseURLEnv == "MY_URL" && c.references[1].shownURL(environment: ["MY_URL": "http://h:1"]) == "http://h:1/v1")
        #expect(c.gate.first?.versus == ["min_delta_vs_gpt-4o-mini": -0.02, "max_ratio_vs_ft": 2])
        #expect(c.costs?.monthlyRequests == 100_000)

        let secret = "sk-literal-SECRET-1234"
        let bad = problems(evalYAML("""
              reference:
                - {name: g, model: gpt-4o, api_key: \(secret)}
                - {name: g, model: gpt-4o, base_url: "ftp://x"}
                - {model: gpt-4o}
              gate:
                accuracy: {min_delta_vs_nope: 0}
            """))
        #expect(bad.contains("the API key is never written in a pipeline file"), "\(bad)")
        #expect(bad.contains("eval reference \"g\" is declared twice"), "\(bad)")
        #expect(bad.contains("expected an http(s) URL"), "\(bad)")
        #expect(bad.contains("no eval reference named \"nope\""), "\(bad)")
        #expect(bad.contains("name"), "\(bad)")
        #expect(!bad.contains(secret), "the literal key is not echoed: \(bad)")
        let ll = problems(evalYAML("""
              metrics: [loss, exact_match]
              reference: [{name: g, model: gpt-4o}]
              gate: {loss: {max_delta_vs_g: 0}}
            """))
        #expect(ll.contains("a reference is evaluated through a chat API, which gives no loss"), "\(ll)")
        #expect(try GateRule.parse("accuracy:min_delta_vs_gpt=0.1").versus == ["min_delta_vs_gpt": 0.1])
    }

    /// All figures by hand (docs/eval.md, worked example uses the same shape).
    @Test func costPerCorrectBreakEvenAndPaybackByHand() throws {
        var config = EvalConfig()
        config.metrics = ["exact_match"]
        var ref = ReferenceModel(name: "gpt", model: "gpt-x")
        ref.inputPerMillion = 2.5
        ref.outputPerMillion = 10
        config.references = [ref]
        config.costs = CostConfig(hardwarePerHour: 3.6, trainHardwarePerHour: 2, monthlyFixed: 100, amortizeMonths: 2, monthlyRequests: 1_000_000)
        config.gate = [GateRule(metric: "accuracy", min: 0.6), try GateRule.parse("accuracy:min_delta_vs_gpt=0.2,max_ratio_vs_gpt=1.5")]
        // Open adapter: p = 1000/10 = 100, o = 50/10 = 5 tokens, r = 1050/2 = 525 tokens/s
        //   → (100 + 5) / 525 = 0.2 s per request × $3.6/h / 3600 = $0.0002 per request; a = 0.8 → $0.00025 per correct.
        let base = evaluation(.base, "base", ["exact_match": 0.1, "token_accuracy": 0.3], prompt: 1000, generated: 50, seconds: 4)
        let adapter = evaluation(.adapter, "adapter", ["exact_match": 0.8, "token_accuracy": 0.9], prompt: 1000, generated: 50)
        // Reference: usage p = 1200/10 = 120, o = 100/10 = 10 → (120 × 2.5 + 10 × 10) / 1e6 = $0.0004; a = 0.5 → $0.0008 per correct.
        let gpt = evaluation(.reference, "gpt", ["exact_match": 0.5], prompt: 1200, generated: 100, api: "gpt-x")
        let report = try EvalReport(models: [base, adapter, gpt], config: config, subjects: [:], dataset: "d", trainSeconds: 3600)
        let costs = try #require(report.costs)
        #expect(costs.role == .adapter)
        let byRole = Dictionary(uniqueKeysWithValues: costs.models.map { ($0.model, $0) })
        #expect(close(byRole["adapter"]?.perRequest, 0.0002) && close(byRole["adapter"]?.costPerCorrect, 0.00025))
        #expect(byRole["adapter"]?.basis == "hardware" && byRole["gpt"]?.basis == "usage")
        #expect(close(byRole["gpt"]?.perRequest, 0.0004) && close(byRole["gpt"]?.costPerCorrect, 0.0008))
        // Base: r = 1050/4 → 0.4 s → $0.0004 per request, a = 0.1 → $0.004 per correct.
        #expect(close(byRole["base"]?.perRequest, 0.0004) && close(byRole["base"]?.costPerCorrect, 0.004))
        // Training T = 3600 s / 3600 × $2/h = $2; fixed = 100 + 2 / 2 = $101/month.
        // q = 0.0004 × 0.8 / 0.5 = 0.00064; saving = 0.00064 − 0.0002 = 0.00044 per request; V* = 101 / 0.00044.
        // Payback at 1M requests/month: 2 / (1e6 × 0.00044 − 100) = 2 / 340 months.
        let b = try #require(costs.references.first)
        #expect(b.reference == "gpt" && b.open == .adapter)
        #expect(close(b.referenceEquivalentPerRequest, 0.00064) && close(b.fixedMonthly, 101))
        #expect(close(b.breakEvenMonthlyRequests, 101 / 0.00044), "\(b)")
        #expect(close(b.paybackMonths, 2.0 / 340), "\(b)")
        #expect(b.note.contains("229545 requests/month"), "\(b.note)")
        // Gate: adapter − gpt = 0.3 ≥ 0.2, 0.8/0.5 = 1.6 > 1.5 fails; the reference (0.5 < min 0.6) is not gated.
        let g = try #require(report.gate)
        #expect(g.checks.allSatisfy { $0.role == .adapter })
        let delta = try #require(g.checks.first { $0.bound == "min_delta_vs_gpt" })
        #expect(delta.passed && close(delta.actual, 0.3))
        let ratio = try #require(g.checks.first { $0.bound == "max_ratio_vs_gpt" })
        #expect(!ratio.passed && close(ratio.actual, 1.6) && ratio.message.contains("adapter/gpt"))
        // Report: the reference beside the others, its per-correct cost and the break-even in Markdown and HTML; JSON round-trips.
        let md = report.markdown()
        #expect(md.contains("| reference: gpt |") && md.contains("| reference: gpt | usage | $0.000400 | 50.0% | $0.000800 |"), "\(md)")
        #expect(md.contains("| gpt | 229545 requests/month | 0.01 months |"), "\(md)")
        #expect(report.html().contains("reference: gpt") && report.html().contains("break-even"))
        let decoded = try JSONDecoder().decode(EvalReport.self, from: report.jsonData())
        #expect(decoded.costs == report.costs && decoded.config == report.config)
    }

    @Test func breakEvenEdgeCases() {
        let c = CostConfig(monthlyFixed: 10)
        func cost(_ per: Double?, _ acc: Double?) -> ModelCost {
            ModelCost(role: .adapter, model: "m", basis: "hardware", avgPromptTokens: 0, avgOutputTokens: 0, perRequest: per, accuracy: acc, costPerCorrect: nil)
        }
        // The reference is cheaper per correct answer: 0.001/0.9 < 0.002/0.8 → never.
        let never = ReferenceBreakEven.compute(open: cost(0.002, 0.8), reference: cost(0.001, 0.9), costs: c, trainingCost: nil)
        #expect(never.breakEvenMonthlyRequests == nil && never.note.hasPrefix("never"))
        // Quality decides: the open model is cheaper per request (0.001 < 0.0012) but worse per correct answer.
        let quality = ReferenceBreakEven.compute(open: cost(0.001, 0.4), reference: cost(0.0012, 0.9), costs: c, trainingCost: nil)
        #expect(quality.breakEvenMonthlyRequests == nil, "\(quality)")
        let zero = ReferenceBreakEven.compute(open: cost(0.001, 0), reference: cost(0.01, 0.9), costs: c, trainingCost: nil)
        #expect(zero.breakEvenMonthlyRequests == nil && zero.note.contains("answers nothing correctly"))
        let unpriced = ReferenceBreakEven.compute(open: cost(0.001, 0.5), reference: cost(nil, 0.9), costs: c, trainingCost: nil)
        #expect(unpriced.breakEvenMonthlyRequests == nil && unpriced.note.contains("input_per_million"))
        // No monthly volume configured: no payback; with one too small to cover the fixed cost: never pays back.
        let small = ReferenceBreakEven.compute(open: cost(0.001, 0.5), reference: cost(0.004, 0.5),
                                               costs: CostConfig(monthlyFixed: 10, monthlyRequests: 1000), trainingCost: 5)
        #expect(close(small.breakEvenMonthlyRequests, 15 / 0.003) && small.paybackMonths == nil && small.note.contains("never pays back"))
    }

    @Test func percentilesAreNearestRank() {
        let xs = (1...20).map(Double.init)
        #expect(ManagedEvaluator.percentile(xs, 0.5) == 10 && ManagedEvaluator.percentile(xs, 0.95) == 19)
        #expect(ManagedEvaluator.percentile([3], 0.95) == 3 && ManagedEvaluator.percentile([], 0.5) == nil)
    }

    /// Through the real client over libcurl against a scripted loopback provider.
    @Test func referenceEvaluatesThroughTheAPIWithUsageLatencyAndAClearFailure() throws {
        let key = "sk-ref-unit-SECRET-77aa"
        let p = try FakeProvider()
        p.requiredKey = key
        // Right on "q0" and "q2", wrong on "q1" and "q3"; usage 100 + i prompt tokens, 4 completion tokens.
        p.chat = { model, messages in
            let i = Int((messages.last?["content"] ?? "").filter(\.isNumber)) ?? 0
            return (i % 2 == 0 ? "a\(i)" : "wrong", 100 + i, 4)
        }
        let conversations = (0..<4).map { i in
            [ChatMessageBody(role: "user", content: "q\(i)"), ChatMessageBody(role: "assistant", content: "a\(i)")]
        }
        var config = EvalConfig()
        config.metrics = ["exact_match", "contains", "loss"]
        var ref = ReferenceModel(name: "mini", model: "gpt-4o-mini", baseURL: p.url)
        ref.apiKeyEnv = "UNIT_REF_KEY"
        ref.concurrency = 2
        ref.inputPerMillion = 1
        ref.outputPerMillion = 4
        let e = try ref.evaluate(conversations: conversations, config: config, environment: ["UNIT_REF_KEY": key])
        #expect(e.role == .reference && e.model == "mini" && e.apiModel == "gpt-4o-mini")
        #expect(e.metrics == ["exact_match": 0.5, "contains": 0.5], "loss and token_accuracy are left out: \(e.metrics)")
        #expect(e.promptTokens == 406 && e.generatedTokens == 16)
        let p50 = try #require(e.latencyP50), p95 = try #require(e.latencyP95)
        #expect(p50 > 0 && p95 >= p50)
        #expect(p.chatModels == Array(repeating: "gpt-4o-mini", count: 4))
        // $ per request = (101.5 × 1 + 4 × 4) / 1e6; per correct = that / 0.5.
        let cost = ModelCost.of(e, costs: CostConfig(), references: [ref], accuracyMetric: "exact_match")
        #expect(close(cost.perRequest, 117.5e-6) && close(cost.costPerCorrect, 235e-6))

        let missing = #expect(throws: TuneError.self) {
            try ref.evaluate(conversations: conversations, config: config, environment: [:])
        }
        #expect(missing?.message.contains("eval reference \"mini\": the API key is not set: export UNIT_REF_KEY") == true)

        ref.maxAttempts = 2
        ref.concurrency = 1
        p.inject("POST /v1/chat/completions", [.json(503, #"{"error":{"message":"overloaded \#(key)","type":"server_error"}}"#),
                                               .json(503, #"{"error":{"message":"overloaded","type":"server_error"}}"#)])
        let failed = #expect(throws: TuneError.self) {
            try ref.evaluate(conversations: conversations, config: config, environment: ["UNIT_REF_KEY": key])
        }
        let msg = failed?.message ?? ""
        #expect(msg.hasPrefix("eval reference \"mini\" (gpt-4o-mini at \(p.url)/v1) failed: ") && msg.contains("gave up after 2 tries")
                && msg.contains("HTTP 503"), "\(msg)")
        #expect(!msg.contains(key), "the echoed key is scrubbed: \(msg)")
    }
}
