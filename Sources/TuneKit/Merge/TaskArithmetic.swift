// TaskArithmetic — the generalized merge of one tensor: sparsify each task vector, weight, elect
// signs, masked sum, normalize, scale by λ. Knows nothing about files; MergeJob feeds it one matrix
// at a time, so memory stays at (models + 1) copies of the largest matrix.

/// The merge core (mergekit's `GTATask.execute`, one tensor at a time).
import Engine

public enum TaskArithmetic {
    /// Statistics of one merged tensor.
    public struct Stats: Sendable, Equatable {
        /// Entries kept by sparsification, per model.
        public var kept: [Int]
        public var elements: Int
    }

    /// Merges the task vectors of one tensor and returns λ·Δ (add it to the base to get the merged weight).
    /// - Parameters:
    ///   - deltas: one task vector per model, each `n` entries in the same layout. Consumed (sparsified in place).
    ///   - parameters: per-model weight and density, same order as `deltas`.
    ///   - method: the preset (sparsification, consensus, defaults).
    ///   - options: normalize / λ / rescale; nil fields take the method's defaults.
    ///   - rng: seeded generator for DARE masks (advanced once per entry of every Bernoulli-sparsified vector).
    ///   - label: tensor name for error messages.
    /// - Returns: λ·Δ, `n` entries, and what sparsification kept.
    ///
    /// ### See Also
    /// - TIES-Merging: https://arxiv.org/abs/2306.01708
    /// - DARE: https://arxiv.org/abs/2311.03099
    /// - Task arithmetic: https://arxiv.org/abs/2212.04089
    public static func merge(deltas: inout [[Float]], parameters: [ModelMergeParameters], method: MergeMethod,
                             options: MergeOptions, rng: inout SplitMix64, label: String = "tensor") throws -> ([Float], Stats) {
        guard !deltas.isEmpty, deltas.count == parameters.count else {
            throw TuneError(.internal, "\(label): \(deltas.count) task vectors for \(parameters.count) parameter sets")
        }
        let n = deltas[0].count
        guard deltas.allSatisfy({ $0.count == n }) else {
            throw TuneError(.invalidArgument, "\(label): task vectors differ in size (\(deltas.map(\.count)))")
        }
        let rescale: RescaleNorm? = (options.rescale ?? method.defaultRescale) ? options.rescaleNorm : nil
        let normalize = options.normalize ?? method.defaultNormalize
        var kept: [Int] = []
        for i in deltas.indices {
            let d = parameters[i].density
            guard d > 0, d <= 1 else { throw TuneError(.invalidArgument, "\(label): density \(d) must be in (0, 1]") }
            switch method.sparsification {
            case .none:
                kept.append(n)
            case .magnitude:
                try Sparsify.magnitude(&deltas[i], density: d, rescale: rescale, label: label)
                kept.append(d >= 1 ? n : Int(d * Double(n)))
            case .bernoulli:
                kept.append(Sparsify.bernoulli(&deltas[i], density: d, rescale: rescale, rng: &rng))
            }
        }
        let weights = parameters.map { Float($0.weight) }
        let lambda = Float(options.lambda)
        // Passes over one model at a time (contiguous, vectorizable); sums run over models in order, as torch's.
        var mixed = [Float](repeating: 0, count: n)
        var divisor = [Float](repeating: 0, count: n)
        switch method.consensus {
        case .none:
            for i in deltas.indices {
                let w = weights[i]
                deltas[i].withUnsafeBufferPointer { d in
                    mixed.withUnsafeMutableBufferPointer { o in for e in 0..<n { o[e] += d[e] * w } }
                }
            }
            let s = weights.reduce(0, +)
            let plain: Float = abs(s) < 1e-8 ? 1 : s
            for e in 0..<n { divisor[e] = plain }
        case .sum:
            var total = [Float](repeating: 0, count: n)
            for i in deltas.indices {
                let w = weights[i]
                deltas[i].withUnsafeBufferPointer { d in
                    total.withUnsafeMutableBufferPointer { t in for e in 0..<n { t[e] += d[e] * w } }
                }
            }
            for i in deltas.indices {
                let w = weights[i]
                deltas[i].withUnsafeBufferPointer { d in
                    total.withUnsafeBufferPointer { t in
                        mixed.withUnsafeMutableBufferPointer { o in
                            divisor.withUnsafeMutableBufferPointer { dv in
                                for e in 0..<n {
                                    let wd = d[e] * w
                                    // Elected sign: + when Σ wτ >= 0. sign(0) = 0 matches neither, so zeros
                                    // (sparsified entries) add nothing to the divisor either.
                                    if (wd > 0 && t[e] >= 0) || (wd < 0 && t[e] < 0) {
                                        o[e] += wd
                                        dv[e] += w
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for e in 0..<n where divisor[e] == 0 { divisor[e] = 1 }
        }
        if normalize {
            for e in 0..<n { mixed[e] /= divisor[e] }
        }
        if lambda != 1 {
            for e in 0..<n { mixed[e] *= lambda }
        }
        let out = mixed
        return (out, Stats(kept: kept, elements: n))
    }
}
