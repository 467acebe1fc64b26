// GateIntervalTests — the gate on interval bounds and on the routed system, and the paired bootstrap
// of accuracy differences: `min_lower_bound` reads the Wilson interval (5/8 → 0.306), `routed_accuracy`
// and `cost_per_correct` read the picked policy on the held-out half of the worked example
// (RoutingReportTests: 3/4 right at $8.50 per 1k → $0.01133 per correct), bounds that do not fit their
// metric are refused, and the bootstrap interval of a paired difference agrees with the normal
// approximation where that is good (80 examples, 20 discordant pairs).
import Foundation
import Testing
@testable import TuneKit

@Suite struct GateIntervalTests {
    private func rule(_ s: String) throws -> GateRule { try GateRule.parse(s) }

    @Test func minLowerBoundReadsTheWilsonInterval() throws {
        let lower = try #require(Interval.wilson(successes: 5, of: 8)?.lower)
        #expect(abs(lower - 0.30574) < 1e-4, "Wilson 5/8 lower end: \(lower)")
        var report = try workedReport(RoutingConfig(reference: "big", targetAccuracy: 0.97), gate: [try rule("accuracy:min_lower_bound=0.3")])
        var check = try #require(report.gate?.checks.first)
        #expect(report.gate?.passed == true && check.bound == "min_lower_bound" && check.actual == lower)
        #expect(check.message.contains("95% lower bound (5/8)"), "\(check.message)")
        report = try workedReport(RoutingConfig(reference: "big", targetAccuracy: 0.97), gate: [try rule("accuracy:min=0.6,min_lower_bound=0.5")])
        let checks = report.gate?.checks ?? []
        #expect(checks.count == 2 && checks[0].passed && !checks[1].passed)
        check = checks[1]
        #expect(abs(check.margin - (lower - 0.5)) < 1e-12 && check.message.contains("FAIL by 0.1943"), "\(check.message)")
    }

    @Test func routedSystemIsGatedOnItsHeldOutHalf() throws {
        let routing = RoutingConfig(reference: "big", targetAccuracy: 0.97)
        var report = try workedReport(routing, gate: [try rule("routed_accuracy:min=0.75,min_lower_bound=0.3"),
                                                       try rule("cost_per_correct:max=0.0114")])
        let g = try #require(report.gate)
        #expect(g.passed, "\(g.summary)")
        #expect(g.checks.map(\.bound) == ["min", "min_lower_bound", "max"])
        #expect(g.checks[0].actual == 0.75 && g.checks[0].role == .adapter)
        #expect(g.checks[1].actual == Interval.wilson(successes: 3, of: 4)!.lower)
        #expect(abs(g.checks[2].actual - 0.0085 / 0.75) < 1e-12)
        #expect(g.checks[0].message.contains("routed (adapter ⇄ big, τ = 0.7, held-out half)"), "\(g.checks[0].message)")
        report = try workedReport(routing, gate: [try rule("routed_accuracy:min=0.8"), try rule("cost_per_correct:max=0.01")])
        #expect(report.gate?.passed == false && report.gate?.failures.count == 2)
        #expect(report.gate?.failures.first?.message.contains("FAIL by 0.0500") == true, "\(report.gate?.summary ?? "")")
    }

    @Test func boundsThatDoNotFitTheirMetricAreRefused() throws {
        var config = EvalConfig()
        config.metrics = ["exact_match", "loss"]
        config.gate = [try rule("routed_accuracy:min=0.9")]
        #expect(throws: TuneError.self) { try config.validate() }
        do { try config.validate() } catch let e as TuneError { #expect(e.message.contains("needs eval.routing"), "\(e.message)") }
        config.gate = [try rule("loss:min_lower_bound=0.1")]
        do { try config.validate(); Issue.record("min_lower_bound on loss was accepted") } catch let e as TuneError {
            #expect(e.message.contains("min_lower_bound needs a proportion of examples"), "\(e.message)")
        }
        config.references = [ReferenceModel(name: "big", model: "m", baseURL: "http://127.0.0.1:9/v1")]
        config.routing = RoutingConfig(reference: "big", targetAccuracy: 0.9)
        config.gate = [try rule("routed_accuracy:min_delta_vs_base=0.1")]
        do { try config.validate(); Issue.record("a routed bound against the base was accepted") } catch let e as TuneError {
            #expect(e.message.contains("the routed system takes min, max, min_lower_bound"), "\(e.message)")
        }
        // The YAML form names the key and says what to add.
        let yaml = "name: p\nbase: model.gguf\nprepare:\n  train: data.jsonl\neval:\n  metrics: [exact_match]\n  gate:\n    routed_accuracy: {min: 0.9}\n"
        do { _ = try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml"); Issue.record("accepted") } catch let e as ConfigError {
            #expect(e.description.contains("routed_accuracy") && e.description.contains("eval.routing"), "\(e.description)")
        }
    }

    @Test func pairedBootstrapAgreesWithTheNormalApproximation() throws {
        // 50 both right, 20 only the tuned model right, 10 both wrong: Δ = 0.25, sd(d) = √(0.25·0.75), se = sd/√80.
        let a = (0..<80).map { $0 < 70 }, b = (0..<80).map { $0 < 50 }
        let (delta, ci) = try #require(Bootstrap.pairedDifference(a, b, seed: 1))
        let se = (0.25 * 0.75 / 80).squareRoot()
        #expect(delta == 0.25)
        #expect(abs(ci.lower - (0.25 - 1.96 * se)) < 0.02 && abs(ci.upper - (0.25 + 1.96 * se)) < 0.02, "\(ci) vs ±\(1.96 * se)")
        #expect(Bootstrap.pairedDifference(a, b, seed: 1)?.ci95 == ci, "seeded: the same interval again")
        // No discordant pair: the interval is the point; the same answers are no difference at all.
        #expect(Bootstrap.pairedDifference(a, a, seed: 1)?.ci95 == Interval(lower: 0, upper: 0))
        #expect(Bootstrap.pairedDifference(a, Array(b.prefix(79)), seed: 1) == nil)
    }

    @Test func costPerCorrectBootstrapAgreesWithTheDeltaMethod() throws {
        // 400 examples, costs 1…7 m$ in a cycle, 4 of 5 right. R = Σc / Σk; the delta method's
        // se(R) = sd(cᵢ − R·kᵢ) / (mean k · √n).
        let n = 400
        let costs = (0..<n).map { 0.001 * Double(1 + $0 % 7) }, correct = (0..<n).map { $0 % 5 != 0 }
        let k = correct.map { $0 ? 1.0 : 0.0 }
        let r = costs.reduce(0, +) / k.reduce(0, +)
        let resid = zip(costs, k).map { $0 - r * $1 }, mean = resid.reduce(0, +) / Double(n)
        let sd = (resid.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n - 1)).squareRoot()
        let se = sd / (k.reduce(0, +) / Double(n) * Double(n).squareRoot())
        let ci = try #require(Bootstrap.costPerCorrect(costs: costs, correct: correct, seed: 3))
        #expect(ci.lower < r && r < ci.upper)
        #expect(abs(ci.lower - (r - 1.96 * se)) < 0.15 * 1.96 * se && abs(ci.upper - (r + 1.96 * se)) < 0.15 * 1.96 * se,
                "\(ci) vs \(r) ± \(1.96 * se)")
        // Every answer right at one price: no spread at all. A resample with no right answer: unbounded, so nil.
        #expect(Bootstrap.costPerCorrect(costs: [0.002, 0.002, 0.002], correct: [true, true, true], seed: 3) == Interval(lower: 0.002, upper: 0.002))
        #expect(Bootstrap.costPerCorrect(costs: [0.002, 0.002], correct: [true, false], seed: 3) == nil)
        // The worked example's picked policy: 4 held-out examples, one a wrong escalation; (1/4)⁴ of
        // resamples draw it four times, so its cost per correct answer is not bounded.
        let t = Routing.calibrate(workedExample, .targetAccuracy(0.97))
        #expect(t.reported.costPerCorrect != nil && t.reported.costPerCorrectCI95 == nil)
        // Priced per example with many right answers: bounded, around the point estimate.
        let big = (0..<40).flatMap { _ in workedExample }
        let b = Routing.calibrate(big, .targetAccuracy(0.97))
        let bci = try #require(b.reported.costPerCorrectCI95)
        #expect(bci.lower < b.reported.costPerCorrect! && b.reported.costPerCorrect! < bci.upper, "\(bci)")
    }

    @Test func reportSaysWhenADifferenceIsNotSignificant() throws {
        let report = try workedReport(RoutingConfig(reference: "big", targetAccuracy: 0.97))
        let d = try #require(report.differences?.first)
        // The worked example: tuned 5/8, big 6/8.
        #expect(d.model == .adapter && d.versus == "big" && d.delta == -0.125 && !d.significant && d.examples == 8)
        #expect(d.ci95.lower < 0 && d.ci95.upper > 0 && d.onlyModel + d.onlyVersus > 0)
        let md = report.markdown()
        #expect(md.contains("## Differences in exact_match (paired bootstrap, 2000 resamples, 95%)"), "\(md)")
        #expect(md.contains("adapter − big: -12.5 points") && md.contains("not significant at 95%"), "\(md)")
        let json = String(decoding: try report.jsonData(), as: UTF8.self)
        #expect(json.contains("\"differences\"") && json.contains("\"only_versus\""))
    }
}
