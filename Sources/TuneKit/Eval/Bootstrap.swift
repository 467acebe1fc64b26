// Bootstrap — 95% intervals where no closed form fits: the paired difference in accuracy between two
// models answering the same examples (tuned − base, tuned − reference), resampling examples with
// replacement (percentile bootstrap, seeded, so a report is reproducible). A difference whose interval
// contains 0 is reported as not significant: on ~80 examples a few points of accuracy often are not.

import Engine
import Foundation

/// tuned − other on the accuracy metric, over the examples both answered.
public struct AccuracyDifference: Codable, Sendable, Equatable {
    /// The tuned model's role (`adapter`, `merged`) and what it is compared with (`base` or a reference's name).
    public var model: ModelRole
    public var versus: String
    public var metric: String
    public var examples: Int
    /// Accuracy(model) − accuracy(versus), in [−1, 1].
    public var delta: Double
    public var ci95: Interval
    /// The interval excludes 0.
    public var significant: Bool
    /// Examples only `model` got right, and only `versus` got right (the discordant pairs).
    public var onlyModel: Int
    public var onlyVersus: Int

    enum CodingKeys: String, CodingKey {
        case model, versus, metric, examples, delta, significant
        case ci95 = "ci95", onlyModel = "only_model", onlyVersus = "only_versus"
    }

    /// "adapter − base: +12.5 points [+3.8, +21.2], significant"
    public var line: String {
        String(format: "%@ − %@: %+.1f points [%+.1f, %+.1f], %@ (%d examples; %d right only for %@, %d only for %@)",
               model.rawValue, versus, 100 * delta, 100 * ci95.lower, 100 * ci95.upper,
               significant ? "significant at 95%" : "not significant at 95%", examples, onlyModel, model.rawValue, onlyVersus, versus)
    }
}

public enum Bootstrap {
    public static let resamples = 2000

    /// The percentile interval (2.5%, 97.5%) of `statistic` over `resamples` resamples of `n` indices
    /// drawn with replacement by SplitMix64(`seed`). Nil when n = 0.
    public static func percentile(n: Int, seed: UInt64, resamples: Int = resamples, _ statistic: ([Int]) -> Double) -> Interval? {
        guard n > 0, resamples > 0 else { return nil }
        var rng = SplitMix64(seed: seed)
        var idx = [Int](repeating: 0, count: n), stats: [Double] = []
        stats.reserveCapacity(resamples)
        for _ in 0..<resamples {
            for i in 0..<n { idx[i] = Int(rng.next() % UInt64(n)) }
            stats.append(statistic(idx))
        }
        stats.sort()
        return Interval(lower: quantile(stats, 0.025), upper: quantile(stats, 0.975))
    }

    /// Linear interpolation between order statistics (numpy's default, "type 7").
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        let h = Double(sorted.count - 1) * q, lo = Int(h.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
    }

    /// Σ cost / Σ correct over resampled examples: the interval of a cost per correct answer. Nil when
    /// there are no examples, the lists differ in length, or some resample has no correct answer (the
    /// ratio is then unbounded: too few right answers to bound the cost of one).
    public static func costPerCorrect(costs: [Double], correct: [Bool], seed: UInt64) -> Interval? {
        guard !costs.isEmpty, costs.count == correct.count else { return nil }
        var unbounded = false
        let ci = percentile(n: costs.count, seed: seed) { idx in
            var c = 0.0, k = 0
            for i in idx { c += costs[i]; if correct[i] { k += 1 } }
            if k == 0 { unbounded = true; return 0 }
            return c / Double(k)
        }
        return unbounded ? nil : ci
    }

    /// mean(a) − mean(b) over paired outcomes with its bootstrap interval; nil unless both have the same,
    /// non-zero number of examples.
    public static func pairedDifference(_ a: [Bool], _ b: [Bool], seed: UInt64) -> (delta: Double, ci95: Interval)? {
        guard a.count == b.count, !a.isEmpty else { return nil }
        let d = zip(a, b).map { Double(($0 ? 1 : 0) - ($1 ? 1 : 0)) }, n = Double(d.count)
        guard let ci = percentile(n: d.count, seed: seed, { idx in idx.reduce(0) { $0 + d[$1] } / n }) else { return nil }
        return (d.reduce(0, +) / n, ci)
    }

    /// Every tuned model (adapter, merged) against the base and each reference that answered the same
    /// examples, on the accuracy metric (needs per-example outcomes).
    static func differences(_ models: [ModelEvaluation], metric: String, seed: UInt64) -> [AccuracyDifference] {
        var out: [AccuracyDifference] = []
        for m in models where m.role == .adapter || m.role == .merged {
            guard let a = m.outcomes?.map(\.correct) else { continue }
            for o in models where o.role == .base || o.role == .reference {
                guard let b = o.outcomes?.map(\.correct), let (delta, ci) = pairedDifference(a, b, seed: seed) else { continue }
                out.append(AccuracyDifference(model: m.role, versus: o.role == .base ? "base" : o.model, metric: metric, examples: a.count,
                                              delta: delta, ci95: ci, significant: ci.lower > 0 || ci.upper < 0,
                                              onlyModel: zip(a, b).filter { $0 && !$1 }.count, onlyVersus: zip(a, b).filter { !$0 && $1 }.count))
            }
        }
        return out
    }
}
