// Interval — 95% confidence intervals for the proportions a report shows (accuracy, routed accuracy):
// the Wilson score interval, which stays inside [0, 1] and is honest at 0 or n successes and on the
// ~80 examples an eval split typically has (the normal approximation is not).

import Foundation

public struct Interval: Codable, Sendable, Equatable {
    public var lower: Double
    public var upper: Double

    public init(lower: Double, upper: Double) {
        self.lower = lower
        self.upper = upper
    }

    /// Wilson score interval of `successes` out of `n` at `z` (1.96: 95%); nil for n = 0.
    ///   center = (p̂ + z²/2n) / (1 + z²/n),  half = z / (1 + z²/n) · √(p̂(1 − p̂)/n + z²/4n²)
    public static func wilson(successes k: Int, of n: Int, z: Double = 1.959963984540054) -> Interval? {
        guard n > 0, k >= 0, k <= n else { return nil }
        let nn = Double(n), p = Double(k) / nn, z2 = z * z
        let denom = 1 + z2 / nn
        let center = (p + z2 / (2 * nn)) / denom
        let half = z / denom * (p * (1 - p) / nn + z2 / (4 * nn * nn)).squareRoot()
        return Interval(lower: max(0, center - half), upper: min(1, center + half))
    }

    /// "[81.2%, 95.3%]"
    public var percent: String { String(format: "[%.1f%%, %.1f%%]", 100 * lower, 100 * upper) }
}
