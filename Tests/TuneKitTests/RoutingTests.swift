// RoutingTests — confidence routing (docs/routing.md): the sweep, the Pareto front, the three rules
// that pick τ and the even/odd calibration on hand-computed numbers (the docs' worked example);
// Wilson intervals; the report (end points = the local model's and the reference's own figures,
// Markdown/HTML/JSON); `eval.routing` parsing with errors at the key.
import Foundation
import Testing
@testable import TuneKit

private func close(_ a: Double?, _ b: Double, _ tol: Double = 1e-12) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tol * max(1, abs(b))
}

/// The worked example of docs/routing.md: 8 examples, local $0.001 and reference $0.01 each.
///   index      0    1    2    3    4    5    6    7
///   conf      .9   .2   .7   .4   .1   .8   .3   .6
///   local ok   T    F    T    T    F    T    F    T
///   ref ok     T    T    F    T    T    T    T    F
let workedExample: [RoutedExample] = zip(zip([0.9, 0.2, 0.7, 0.4, 0.1, 0.8, 0.3, 0.6], [true, false, true, true, false, true, false, true]),
                                         [true, true, false, true, true, true, true, false]).map {
    RoutedExample(confidence: $0.0, localCorrect: $0.1, referenceCorrect: $1, localCost: 0.001, referenceCost: 0.01)
}

@Suite struct RoutingTests {
    @Test func sweepByHand() {
        let s = Routing.sweep(workedExample)
        // always local, τ = .2 .3 .4 .6 .7 .8 .9 (every confidence but the smallest), always reference.
        #expect(s.map(\.policy) == [.alwaysLocal] + Array(repeating: .threshold, count: 7) + [.alwaysReference])
        #expect(s.compactMap(\.tau) == [0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
        #expect(s.map(\.escalated) == [0, 1, 2, 3, 4, 5, 6, 7, 8])
        #expect(s.map(\.correct) == [5, 6, 7, 8, 8, 7, 6, 6, 6])
        // $ = 8 × 0.001 + escalated × 0.01, except always reference: 8 × 0.01.
        let per1k = [1.0, 2.25, 3.5, 4.75, 6.0, 7.25, 8.5, 9.75, 10.0]
        for (p, c) in zip(s, per1k) { #expect(close(p.costPer1k, c), "\(p.label): \(p.costPer1k ?? -1) vs \(c)") }
        #expect(close(s[0].costPerCorrect, 0.008 / 5) && close(s[3].costPerCorrect, 0.038 / 8) && close(s[8].costPerCorrect, 0.08 / 6))
        #expect(s.map(\.accuracy) == [0.625, 0.75, 0.875, 1, 1, 0.875, 0.75, 0.75, 0.75])
        #expect(s.map(\.escalationRate) == [0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1])
        // Front on (accuracy ↑, $ ↓): always local, τ .2, .3, .4; τ .6 reaches 100% too but costs more.
        #expect(s.map(\.pareto) == [true, true, true, true, false, false, false, false, false])
    }

    /// The end points are exactly the local model alone and the reference alone.
    @Test func endPointsAreAlwaysLocalAndAlwaysReference() {
        let s = Routing.sweep(workedExample)
        let local = s.first!, ref = s.last!
        #expect(local.accuracy == Double(workedExample.filter(\.localCorrect).count) / 8 && local.escalated == 0)
        #expect(ref.accuracy == Double(workedExample.filter(\.referenceCorrect).count) / 8 && ref.escalated == 8)
        #expect(close(local.costPer1k, 0.001 * 1000) && close(ref.costPer1k, 0.01 * 1000), "the reference alone never runs the local model")
        // τ below every confidence = always local; τ above every confidence escalates all but still pays the local pass.
        #expect(Routing.point(workedExample, .threshold, tau: 0.05).correct == local.correct)
        let above = Routing.point(workedExample, .threshold, tau: 1)
        #expect(above.correct == ref.correct && close(above.costPer1k, 11))
    }

    @Test func rulesPickTauOnTheEvenHalfAndReportTheOddHalf() {
        let (choose, report) = Routing.halves(workedExample)
        #expect(choose.map(\.confidence) == [0.9, 0.7, 0.1, 0.3] && report.map(\.confidence) == [0.2, 0.4, 0.8, 0.6])
        // Choosing half: always local 2/4 ($1.00/1k), τ .3 3/4 ($3.50), τ .7 4/4 ($6.00), τ .9 3/4 ($8.50), always reference 3/4 ($10).
        let c = Routing.sweep(choose)
        #expect(c.compactMap(\.tau) == [0.3, 0.7, 0.9] && c.map(\.correct) == [2, 3, 4, 3, 3])

        // target_accuracy 0.97: only τ = .7 reaches it. On the odd half, τ = .7 escalates .2 (ref ✓), .4 (ref ✓),
        // .6 (ref ✗) and keeps .8 (local ✓): 3/4 right, 3 escalations, $ = 4 × 0.001 + 3 × 0.01 = 0.034.
        let t = Routing.calibrate(workedExample, .targetAccuracy(0.97))
        #expect(t.met && t.chosen.tau == 0.7 && t.chosen.accuracy == 1 && t.chosen.examples == 4)
        #expect(t.reported.tau == 0.7 && t.reported.examples == 4 && t.reported.correct == 3 && t.reported.escalated == 3)
        #expect(close(t.reported.costPer1k, 8.5) && close(t.reported.costPerCorrect, 0.034 / 3))
        // The Wilson interval of 3/4 (z = 1.96): center 0.62753, half-width 0.32689.
        let ci = t.reported.accuracyCI95!
        #expect(abs(ci.lower - 0.30064) < 5e-5 && abs(ci.upper - 0.95442) < 5e-5, "\(ci)")

        // max_escalation 0.25: always local or τ .3 (1 of 4) → τ .3 (more accurate). Odd half: .2 escalates (ref ✓), the rest local ✓ → 4/4.
        let e = Routing.calibrate(workedExample, .maxEscalation(0.25))
        #expect(e.met && e.chosen.tau == 0.3 && e.reported.correct == 4 && e.reported.escalated == 1 && close(e.reported.costPer1k, 3.5))
        // max_cost_per_1k $5: always local ($1) or τ .3 ($3.50) → τ .3; $3.49 leaves only always local.
        #expect(Routing.calibrate(workedExample, .maxCostPer1k(5)).chosen.tau == 0.3)
        let cheap = Routing.calibrate(workedExample, .maxCostPer1k(3.49))
        #expect(cheap.met && cheap.chosen.policy == .alwaysLocal && cheap.reported.correct == 3 && cheap.reported.escalated == 0)
        // Bounds nothing meets: the most accurate / the cheapest policy, flagged.
        let wrong = [RoutedExample](repeating: RoutedExample(confidence: 0, localCorrect: false, referenceCorrect: false, localCost: 1, referenceCost: 2), count: 2)
        let none = Routing.pick(Routing.sweep(wrong), .targetAccuracy(0.5))
        #expect(!none.met && none.index == 0)
        let broke = Routing.pick(Routing.sweep(workedExample), .maxCostPer1k(0.5))
        #expect(!broke.met && broke.index == 0)
        // Exactly at the target counts as reaching it (7/8 = 0.875): τ .3 is the cheapest that does.
        let exact = Routing.pick(Routing.sweep(workedExample), .targetAccuracy(0.875))
        #expect(exact.met && Routing.sweep(workedExample)[exact.index].tau == 0.3)
    }

    @Test func unpricedRoutingStillMeasuresAccuracyAndEscalation() {
        let xs = workedExample.map { x -> RoutedExample in var x = x; x.referenceCost = nil; return x }
        let s = Routing.sweep(xs)
        #expect(close(s[0].costPer1k, 1) && s[1].costPer1k == nil && s[8].costPer1k == nil)
        #expect(s.map(\.correct) == [5, 6, 7, 8, 8, 7, 6, 6, 6])
        // Front on (accuracy ↑, escalation ↓) without prices: the same four points.
        #expect(s.map(\.pareto) == [true, true, true, true, false, false, false, false, false])
        #expect(Routing.calibrate(xs, .targetAccuracy(0.97)).chosen.tau == 0.7)
    }

    @Test func wilsonIntervals() {
        // k = n: lower = n / (n + z²); k = 0: upper = z² / (n + z²).
        let z2 = 1.959963984540054 * 1.959963984540054
        let all = Interval.wilson(successes: 4, of: 4)!, none = Interval.wilson(successes: 0, of: 10)!
        #expect(close(all.lower, 4 / (4 + z2), 1e-12) && all.upper == 1)
        #expect(none.lower == 0 && close(none.upper, z2 / (10 + z2), 1e-12))
        // 8/10: the textbook 95% interval [0.4902, 0.9433].
        let eight = Interval.wilson(successes: 8, of: 10)!
        #expect(abs(eight.lower - 0.4902) < 1e-4 && abs(eight.upper - 0.9433) < 1e-4, "\(eight)")
        #expect(Interval.wilson(successes: 0, of: 0) == nil && Interval.wilson(successes: 3, of: 2) == nil)
        #expect(eight.percent == "[49.0%, 94.3%]")
    }
}
