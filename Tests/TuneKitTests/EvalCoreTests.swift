// EvalCoreTests — the evaluation's pure parts and its engine call: prompt-cache scoring and batched
// greedy generation against the naive paths (score from scratch, generate one at a time), text
// metrics, confusion, gate margins, the cost formulas, and `eval:` config parsing with positions.
import Foundation
import Testing
import Engine
@testable import TuneKit

private func tinyModel(seed: UInt64 = 7) throws -> (LlamaModel, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-evalcore-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: p, config: .tiny, seed: seed, weightType: .f32)
    return (try LlamaModel.load(path: p), dir)
}

@Suite struct EvalPromptCacheTests {
    @Test func scoresAndGenerationMatchTheNaivePaths() throws {
        let (m, dir) = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let V = Int32(m.config.vocabSize)
        let prompts: [[Int32]] = [[1, 5, 9, 12], [3, 4], [7, 8, 2, 30, 31, 40, 11]].map { $0.map { $0 % V } }
        let conts: [[Int32]] = [[6, 7, 8], [10], [20, 21, 22, 23]].map { $0.map { $0 % V } }
        let tasks = prompts.indices.map { i in
            PromptTask(prompt: prompts[i], continuations: [(conts[i], Array(conts[i].indices)), (conts[(i + 1) % 3], [0])], maxNewTokens: 5)
        }
        let got = try m.evaluate(prompts: tasks)
        #expect(got.count == 3)
        for i in prompts.indices {
            // Oracle 1: score(ids:) of prompt + continuation from an empty cache.
            let full = try m.score(ids: prompts[i] + conts[i])
            let want = Array(full.tokenLogprobs[(prompts[i].count - 1)...])
            #expect(got[i].scores[0].logprobs.count == conts[i].count)
            for (a, b) in zip(got[i].scores[0].logprobs, want) { #expect(abs(a - b) < 1e-4, "prompt \(i): \(a) vs \(b)") }
            let other = conts[(i + 1) % 3]
            let first = try m.score(ids: prompts[i] + [other[0]]).tokenLogprobs.last!
            #expect(abs(got[i].scores[1].logprobs[0] - first) < 1e-4)
            // Oracle 2: one-at-a-time greedy generation with the KV cache.
            let g = try m.generate(promptIDs: prompts[i], options: GenerationOptions(maxTokens: 5))
            #expect(got[i].generated == g.ids, "prompt \(i)")
            #expect(got[i].finishReason == g.finishReason)
        }
        // Greedy hits: a continuation made of the greedy tokens is hit everywhere.
        let greedy = got[0].generated
        if !greedy.isEmpty {
            let again = try m.evaluate(prompts: [PromptTask(prompt: prompts[0], continuations: [(greedy, Array(greedy.indices))], maxNewTokens: 0)])
            #expect(again[0].scores[0].greedyHits.allSatisfy { $0 })
            #expect(again[0].generated.isEmpty)
        }
    }

    /// Prompts sharing a head (an eval's system turn) compute it once and copy its KV rows: the scores and
    /// greedy tokens are still the naive paths', and each prompt's numbers match evaluating it alone. Fast
    /// generation leaves every score as it was (the prefill and scoring stay exact).
    @Test func aSharedHeadIsComputedOnceWithTheSameNumbers() throws {
        let (m, dir) = try tinyModel(seed: 11)
        defer { try? FileManager.default.removeItem(at: dir) }
        let V = Int32(m.config.vocabSize)
        let head: [Int32] = (0..<24).map { Int32(($0 * 5 + 2) % Int(V)) }
        let prompts: [[Int32]] = [[9, 12], [4], [30, 31, 40, 11, 3]].map { head + $0.map { $0 % V } }
        let conts: [[Int32]] = [[6, 7, 8], [10, 2], [20, 21, 22, 23]].map { $0.map { $0 % V } }
        let tasks = prompts.indices.map { PromptTask(prompt: prompts[$0], continuations: [(conts[$0], Array(conts[$0].indices))], maxNewTokens: 4) }
        #expect(LlamaModel.sharedHead(prompts) == head.count)
        #expect(LlamaModel.sharedHead([prompts[0]]) == 0 && LlamaModel.sharedHead([Array(head.prefix(10)) + [1], Array(head.prefix(10)) + [2]]) == 0)
        let got = try m.evaluate(prompts: tasks)
        for i in prompts.indices {
            let want = Array(try m.score(ids: prompts[i] + conts[i]).tokenLogprobs[(prompts[i].count - 1)...])
            for (a, b) in zip(got[i].scores[0].logprobs, want) { #expect(abs(a - b) < 1e-4, "prompt \(i): \(a) vs \(b)") }
            let alone = try m.evaluate(prompts: [tasks[i]])[0]
            for (a, b) in zip(got[i].scores[0].logprobs, alone.scores[0].logprobs) { #expect(abs(a - b) < 1e-5, "prompt \(i) alone: \(a) vs \(b)") }
            #expect(got[i].generated == (try m.generate(promptIDs: prompts[i], options: GenerationOptions(maxTokens: 4))).ids, "prompt \(i)")
        }
        let fast = try m.evaluate(prompts: tasks, fastGeneration: true)
        #expect(fast.map(\.scores) == got.map(\.scores), "fast generation must not move a score")
    }

    @Test func evaluatorLossMatchesTeacherForcedScoring() throws {
        let (m, dir) = try tinyModel(seed: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = (0..<5).map { k -> DatasetExample in
            let ids: [Int32] = (0..<(8 + k)).map { Int32(($0 * 7 + k * 3) % m.config.vocabSize) }
            return DatasetExample(ids: ids, mask: ids.indices.map { $0 >= ids.count - 3 ? 1 : 0 })
        }
        var cfg = EvalConfig()
        cfg.batch = 2
        let e = try Evaluator.evaluate(model: m, role: .base, name: "tiny", examples: ex, config: cfg)
        let items = Evaluator.items(ex)
        let s = try m.scoreTargets(items)
        let nll = -s.flatMap(\.logprobs).reduce(0, +), n = Double(s.flatMap(\.logprobs).count)
        #expect(abs(e.metrics["loss"]! - nll / n) < 1e-5)
        #expect(abs(e.metrics["perplexity"]! - exp(nll / n)) < 1e-3)
        let exact = Double(s.filter { $0.greedyHits.allSatisfy { $0 } }.count) / 5
        #expect(e.metrics["exact_match"] == exact)
        #expect(e.examples == 5 && e.targetTokens == 15 && e.examplesPerSecond > 0)
    }
}

@Suite struct EvalMetricTests {
    @Test func textMetrics() throws {
        #expect(TextMetrics.contains(generated: " It is a Bill_of_Lading.\n", reference: "bill_of_lading"))
        #expect(!TextMetrics.contains(generated: "packing list", reference: "packing_list"))
        #expect(!TextMetrics.contains(generated: "anything", reference: "  "))
        let re = try NSRegularExpression(pattern: "^[a-z_]+$")
        #expect(TextMetrics.regex(generated: "damage_claim", pattern: re))
        #expect(!TextMetrics.regex(generated: "damage claim", pattern: re))
        #expect(TextMetrics.jsonValid(#" {"label": "x", "n": 2} "#) && TextMetrics.jsonValid("[1,2]") && TextMetrics.jsonValid("3"))
        #expect(!TextMetrics.jsonValid(#"{"label": "x""#) && !TextMetrics.jsonValid(""))
        #expect(TextMetrics.jsonFieldsMatch(generated: #"{"label":"a","n":2.0,"x":1}"#, reference: #"{"n":2,"label":"a"}"#, fields: ["label", "n"]))
        #expect(!TextMetrics.jsonFieldsMatch(generated: #"{"label":"b"}"#, reference: #"{"label":"a"}"#, fields: ["label"]))
        #expect(!TextMetrics.jsonFieldsMatch(generated: #"{"n":1}"#, reference: #"{"n":1,"label":"a"}"#, fields: ["label"]))
        #expect(TextMetrics.label(" Packing_List\n", among: ["bill", "packing_list"]) == "packing_list")
        #expect(TextMetrics.label("packing", among: ["bill", "packing_list"]) == nil)
    }

    @Test func confusionCountsAndRates() {
        var c = Confusion(labels: ["a", "b"])
        c.add(actual: "a", predicted: "a")
        c.add(actual: "a", predicted: "b")
        c.add(actual: "b", predicted: nil)
        c.add(actual: nil, predicted: "b")
        #expect(c.labels == ["a", "b", "(other)"])
        #expect(c.counts == [[1, 1, 0], [0, 0, 1], [0, 1, 0]])
        #expect(c.recall(0) == 0.5 && c.precision(1) == 0 && c.recall(1) == 0)
    }
}

private func evaluation(_ role: ModelRole, _ metrics: [String: Double], examples: Int = 10, prompt: Int = 1000, generated: Int = 50,
                        target: Int = 40, seconds: Double = 2) -> ModelEvaluation {
    ModelEvaluation(role: role, model: role.rawValue, examples: examples, targetTokens: target, promptTokens: prompt, generatedTokens: generated,
                    metrics: metrics, confusion: nil, samples: [], seconds: seconds, examplesPerSecond: Double(examples) / seconds,
                    tokensPerSecond: Double(prompt + generated) / seconds)
}

@Suite struct EvalGateTests {
    var config: EvalConfig {
        var c = EvalConfig()
        c.metrics = ["loss", "exact_match", "choice"]
        c.choices = ["a", "b"]
        return c
    }

    @Test func rulesPassAndFailWithMargins() throws {
        let base = evaluation(.base, ["choice": 0.5, "exact_match": 0.4, "perplexity": 10, "loss": 2.3])
        let tuned = evaluation(.adapter, ["choice": 0.92, "exact_match": 0.9, "perplexity": 10.5, "loss": 2.35])
        let merged = evaluation(.merged, ["choice": 0.88, "exact_match": 0.9, "perplexity": 12, "loss": 2.5])
        let rules = [GateRule(metric: "accuracy", min: 0.9, minDeltaVsBase: 0.05), GateRule(metric: "perplexity", maxRatioVsBase: 1.1)]
        let r = try Gate.check(rules, config: config, models: [base, tuned, merged])
        #expect(!r.passed)
        #expect(r.checks.count == 6)
        let fails = r.failures
        #expect(fails.map { "\($0.role.rawValue) \($0.bound)" } == ["merged min", "merged max_ratio_vs_base"])
        #expect(abs(fails[0].margin - -0.02) < 1e-12 && fails[0].resolved == "choice")
        #expect(abs(fails[1].actual - 1.2) < 1e-12 && abs(fails[1].margin - -0.1) < 1e-12)
        #expect(fails[0].message == "accuracy (choice): merged = 0.8800, min ≥ 0.9000 → FAIL by 0.0200", "\(fails[0].message)")
        let ok = try Gate.check(rules, config: config, models: [base, tuned])
        #expect(ok.passed && ok.summary == "gate passed (3 checks)")
    }

    @Test func legacyFormAndErrors() throws {
        let base = evaluation(.base, ["loss": 2.0, "exact_match": 0.1])
        let tuned = evaluation(.adapter, ["loss": 1.5, "exact_match": 0.3])
        #expect(try Gate.check([.legacy(metric: "loss", minDelta: 0.4)], config: config, models: [base, tuned]).passed)
        #expect(try !Gate.check([.legacy(metric: "loss", minDelta: 0.6)], config: config, models: [base, tuned]).passed)
        #expect(try Gate.check([.legacy(metric: "exact_match", minDelta: 0.2)], config: config, models: [base, tuned]).passed)
        #expect(throws: TuneError.self) { try Gate.check([GateRule(metric: "loss", maxDeltaVsBase: 0)], config: config, models: [tuned]) }
        #expect(throws: TuneError.self) { try Gate.check([GateRule(metric: "json_valid", min: 0)], config: config, models: [base, tuned]) }
        #expect(try GateRule.parse("accuracy:min=0.9,min_delta_vs_base=0.05") == GateRule(metric: "accuracy", min: 0.9, minDeltaVsBase: 0.05))
        #expect(throws: TuneError.self) { try GateRule.parse("accuracy:minimum=0.9") }
    }
}

@Suite struct EvalCostTests {
    @Test func formulas() {
        // 10 requests of 100 prompt + 5 output tokens in 2 s → 525 tokens/s.
        let m = evaluation(.adapter, ["choice": 0.8], prompt: 1000, generated: 50, seconds: 2)
        let c = CostConfig(hardwarePerHour: 3.6, monthlyFixed: 100, managedInputPerMillion: 1, managedOutputPerMillion: 4, amortizeMonths: 2)
        let r = CostReport.compute(c, model: m, trainSeconds: 1800, accuracyMetric: "choice")
        #expect(abs(r.tokensPerSecond - 525) < 1e-9)
        #expect(abs(r.trainingCost! - 1.8) < 1e-12)                          // 0.5 h × $3.6
        #expect(abs(r.servingPer1k! - 0.2) < 1e-12)                          // 105/525 s × $0.001/s × 1000
        #expect(abs(r.managedPer1k! - 0.12) < 1e-12)                         // (100·1 + 5·4)/1e6 × 1000
        #expect(abs(r.costPerCorrect! - 0.00025) < 1e-15)                    // $0.0002 / 0.8
        #expect(r.breakEvenMonthlyRequests == nil && r.breakEvenNote.hasPrefix("never"))
        let cheap = CostConfig(hardwarePerHour: 0.36, monthlyFixed: 100, managedInputPerMillion: 1, managedOutputPerMillion: 4, amortizeMonths: 2)
        let r2 = CostReport.compute(cheap, model: m, trainSeconds: 1800, accuracyMetric: "choice")
        // fixed = 100 + 0.18/2 = 100.09 $/month; saving = (0.12 − 0.02)/1000 $/request.
        #expect(abs(r2.breakEvenMonthlyRequests! - 100.09 / 0.0001) < 1e-3)
        let none = CostReport.compute(CostConfig(), model: m, trainSeconds: nil, accuracyMetric: nil)
        #expect(none.trainingCost == nil && none.servingPer1k == nil && none.managedPer1k == nil && none.breakEvenMonthlyRequests == nil)
    }
}

@Suite struct EvalConfigTests {
    private func parse(_ yaml: String) throws -> EvalConfig {
        let p = FileManager.default.temporaryDirectory.appendingPathComponent("tune-evalcfg-\(UUID().uuidString).yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: p) }
        return try EvalConfig.load(file: p)
    }

    @Test func newGateFormAndCosts() throws {
        let c = try parse("""
            eval:
              metrics: [loss, exact_match, choice, contains]
              choices: [a, b]
              gate:
                accuracy: {min: 0.9, min_delta_vs_base: 0.05}
                perplexity: {max_ratio_vs_base: 1.1}
              costs: {hardware_per_hour: 1.5, managed_output_per_million: 0.6}
            """)
        #expect(c.gate == [GateRule(metric: "accuracy", min: 0.9, minDeltaVsBase: 0.05), GateRule(metric: "perplexity", maxRatioVsBase: 1.1)])
        #expect(c.costs == CostConfig(hardwarePerHour: 1.5, managedOutputPerMillion: 0.6))
        #expect(c.generates && c.reportedMetrics == ["loss", "perplexity", "exact_match", "token_accuracy", "choice", "contains"])
        #expect(c.resolve(gateMetric: "accuracy") == "choice")
    }

    @Test func exactGenerationIsOptInAndKeepsOldHashes() throws {
        let plain = try parse("eval: {metrics: [loss, contains]}")
        #expect(plain.exactGeneration == nil && plain.fastGeneration)
        let exact = try parse("eval: {metrics: [loss, contains], exact_generation: true}")
        #expect(exact.exactGeneration == true && !exact.fastGeneration)
        #expect(try parse("eval: {metrics: [loss], exact_generation: false}").fastGeneration)
        // Not set: the encoded config (what cache keys hash) has no new key.
        #expect(!String(decoding: try JSONEncoder().encode(plain), as: UTF8.self).contains("exactGeneration"))
        do {
            _ = try parse("eval: {metrics: [loss], exact_generation: sometimes}")
            Issue.record("exact_generation: sometimes was accepted")
        } catch let e as ConfigError {
            #expect(e.diagnostics.contains { $0.path == "eval.exact_generation" }, "\(e)")
        }
    }

    @Test func limitKeepsTheFirstExamples() throws {
        let c = try parse("eval: {metrics: [loss], limit: 3}")
        #expect(c.limit == 3)
        #expect(c.limited(Array(0..<10)) == [0, 1, 2])
        #expect(c.limited([7, 8]) == [7, 8])
        #expect(try parse("eval: {metrics: [loss]}").limited(Array(0..<10)).count == 10)
        do {
            _ = try parse("eval: {metrics: [loss], limit: 0}")
            Issue.record("limit: 0 was accepted")
        } catch let e as ConfigError {
            #expect(e.diagnostics.contains { $0.path == "eval.limit" }, "\(e)")
        }
    }

    @Test func problemsArePositionedAndAllReported() throws {
        do {
            _ = try parse("""
                metrics: [loss, choice, regex]
                gate:
                  json_valid: {min: 1}
                  loss: {}
                costs: {hardware_per_hour: -1}
                """)
            Issue.record("expected a ConfigError")
        } catch let e as ConfigError {
            let text = e.description
            #expect(text.contains(#":1:10: metrics: metric "choice" needs the answer options"#), "\(text)")
            #expect(text.contains(#":1:10: metrics: metric "regex" needs a pattern"#), "\(text)")
            #expect(text.contains(#":3:15: gate.json_valid: gate metric "json_valid" is not computed by eval.metrics"#), "\(text)")
            #expect(text.contains(":4:9: gate.loss: a gate rule needs at least one bound"), "\(text)")
            #expect(text.contains(":5:28: costs.hardware_per_hour: expected a number in"), "\(text)")
        }
    }
}
