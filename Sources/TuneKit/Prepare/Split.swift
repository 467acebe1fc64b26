// Split — the seeded train/eval split: a SplitMix64 Fisher–Yates shuffle picks the held-out rows,
// and both splits keep their input order.

/// Seeded hold-out selection.
import Engine

public enum DatasetSplit {
    /// Indices (into `0..<count`) of the rows held out for eval: round(count × fraction) of them,
    /// chosen by a Fisher–Yates shuffle with `SplitMix64(seed:)`, returned sorted.
    /// Same (count, fraction, seed) ⇒ same indices on every platform.
    public static func evalIndices(count: Int, fraction: Double, seed: UInt64) -> [Int] {
        let k = min(count, max(0, Int((Double(count) * fraction).rounded())))
        guard k > 0 else { return [] }
        var order = Array(0..<count)
        var rng = SplitMix64(seed: seed)
        // Partial Fisher–Yates: the first k positions are a uniform random k-subset.
        for i in 0..<k {
            let j = i + Int(rng.next() % UInt64(count - i))
            order.swapAt(i, j)
        }
        return order[..<k].sorted()
    }

    /// Splits `items` into (train, eval) by `evalIndices`.
    public static func split<T>(_ items: [T], fraction: Double, seed: UInt64) -> (train: [T], eval: [T]) {
        let held = Set(evalIndices(count: items.count, fraction: fraction, seed: seed))
        var train: [T] = [], eval: [T] = []
        for (i, x) in items.enumerated() {
            if held.contains(i) { eval.append(x) } else { train.append(x) }
        }
        return (train, eval)
    }
}
