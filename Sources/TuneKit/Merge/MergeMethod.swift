// MergeMethod — the merge methods tune knows, listed once. Every method is the same generalized
// task-arithmetic algorithm (mergekit's GeneralizedTaskArithmeticMerge) with a different
// (sparsify, consensus, normalize, rescale) preset:
//
//     τᵢ = Mᵢ − B                      task vector (for a LoRA adapter: scale·Bᵢ·Aᵢ)
//     τᵢ ← sparsify(τᵢ, densityᵢ)      none | magnitude top-k | Bernoulli (DARE, ×1/density)
//     mᵢ = [sign(wᵢτᵢ) = sign(Σⱼ wⱼτⱼ)] TIES sign election (all ones without consensus)
//     Δ  = Σ wᵢ·mᵢ·τᵢ / (normalize ? Σ wᵢ·mᵢ : 1)
//     W  = B + λ·Δ
//
//     let ties = MergeMethods.named("ties")!          // magnitude + sign consensus, normalize
//     let delta = try TaskArithmetic.merge(deltas: [τ1, τ2], parameters: [.init(weight: 1, density: 0.5)] * 2,
//                                          method: ties, options: .init(), rng: &rng)

/// How a task vector is thinned before merging.
public enum Sparsification: String, Codable, Sendable, Hashable {
    /// Keep everything.
    case none
    /// Keep the `density` fraction with the largest magnitude (TIES "trim").
    case magnitude
    /// Keep each entry with probability `density` (DARE "drop"); with `rescale`, kept entries are ×1/density.
    case bernoulli
}

/// How the models vote on the sign of each entry.
public enum Consensus: String, Codable, Sendable, Hashable {
    /// Every model contributes everywhere.
    case none
    /// TIES: the elected sign is the sign of Σ wᵢτᵢ; entries of the other sign (and zeros) are dropped.
    case sum
}

/// One named merge method: a preset of the generalized algorithm, with its paper.
public struct MergeMethod: Sendable, Hashable, Codable {
    public var name: String
    public var sparsification: Sparsification
    public var consensus: Consensus
    /// `normalize` when the config does not say (mergekit's per-method default).
    public var defaultNormalize: Bool
    /// `rescale` when the config does not say (DARE: true).
    public var defaultRescale: Bool
    /// True for `linear`: without a base model the models themselves are mixed (their "task vector" is Mᵢ − 0).
    public var baseOptional: Bool
    public var paper: String
}

/// The table of merge methods (the list of methods, written once).
public enum MergeMethods {
    public static let all: [MergeMethod] = [
        MergeMethod(name: "linear", sparsification: .none, consensus: .none, defaultNormalize: true, defaultRescale: false,
                    baseOptional: true, paper: "https://arxiv.org/abs/2203.05482"),
        MergeMethod(name: "task_arithmetic", sparsification: .none, consensus: .none, defaultNormalize: false,
                    defaultRescale: false, baseOptional: false, paper: "https://arxiv.org/abs/2212.04089"),
        MergeMethod(name: "ties", sparsification: .magnitude, consensus: .sum, defaultNormalize: true, defaultRescale: false,
                    baseOptional: false, paper: "https://arxiv.org/abs/2306.01708"),
        MergeMethod(name: "dare_ties", sparsification: .bernoulli, consensus: .sum, defaultNormalize: false,
                    defaultRescale: true, baseOptional: false, paper: "https://arxiv.org/abs/2311.03099"),
        MergeMethod(name: "dare_linear", sparsification: .bernoulli, consensus: .none, defaultNormalize: false,
                    defaultRescale: true, baseOptional: false, paper: "https://arxiv.org/abs/2311.03099"),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) -> MergeMethod? { all.first { $0.name == name } }
}

/// Per-model parameters (mergekit `models[].parameters`).
public struct ModelMergeParameters: Sendable, Hashable, Codable {
    public var weight: Double
    /// Fraction of entries kept by sparsification, in (0, 1].
    public var density: Double

    public init(weight: Double = 1, density: Double = 1) {
        self.weight = weight
        self.density = density
    }
}

/// Global parameters (mergekit `parameters:`).
public struct MergeOptions: Sendable, Hashable, Codable {
    /// Divide by the sum of (agreeing) weights; nil = the method's default.
    public var normalize: Bool?
    /// Scale of the merged task vector.
    public var lambda: Double = 1
    /// Rescale kept entries after sparsification; nil = the method's default (DARE: true).
    public var rescale: Bool?
    /// How `rescale` scales: ×1/density (the DARE paper) or to the task vector's L1 norm (mergekit ≥ 0.1).
    public var rescaleNorm: RescaleNorm = .inverseDensity

    public init(normalize: Bool? = nil, lambda: Double = 1, rescale: Bool? = nil, rescaleNorm: RescaleNorm = .inverseDensity) {
        self.normalize = normalize
        self.lambda = lambda
        self.rescale = rescale
        self.rescaleNorm = rescaleNorm
    }
}

/// How sparsified task vectors are rescaled.
public enum RescaleNorm: String, Codable, Sendable, Hashable, CaseIterable {
    /// Kept entries ×1/density: every entry keeps its expected value (DARE, arXiv 2311.03099 eq. 2).
    case inverseDensity = "density"
    /// Kept entries × ‖τ‖₁/‖masked τ‖₁ (mergekit 0.1's `RescaleNorm.l1`).
    case l1
}
