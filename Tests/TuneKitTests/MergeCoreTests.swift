// MergeCoreTests — the pure merge core: magnitude top-k, DARE statistics, TIES sign election and
// normalization on hand-worked numbers, λ, the truncated SVD against known singular values.
import Engine
import Foundation
import Testing
import TuneKit

@Suite("MergeCore")
struct MergeCoreTests {
    @Test("magnitude keeps exactly ⌊density·n⌋ largest |x|")
    func magnitudeTopK() throws {
        var v: [Float] = [0.1, -5, 3, -0.2, 4, 0, -1, 2]
        try Sparsify.magnitude(&v, density: 0.5, label: "t")
        #expect(v == [0, -5, 3, 0, 4, 0, 0, 2])
        var rng = SplitMix64(seed: 3)
        var big = (0..<10_000).map { _ in rng.symmetric() }
        let sorted = big.map { abs($0) }.sorted(by: >)
        try Sparsify.magnitude(&big, density: 0.3, label: "t")
        #expect(big.filter { $0 != 0 }.count == 3000)
        #expect(big.filter { $0 != 0 }.map { abs($0) }.min()! >= sorted[2999])
        var tiny: [Float] = [1, 2, 3]
        #expect(throws: TuneError.self) { try Sparsify.magnitude(&tiny, density: 0.2, label: "t") }
    }

    @Test("DARE: kept fraction ≈ density, 1/density rescale preserves the expected sum")
    func dareStatistics() {
        let n = 200_000
        let tau = [Float](repeating: 0.5, count: n)
        for density in [0.1, 0.5, 0.9] {
            var v = tau
            var rng = SplitMix64(seed: 42)
            let kept = Sparsify.bernoulli(&v, density: density, rescale: .inverseDensity, rng: &rng)
            let frac = Double(kept) / Double(n)
            let sigma = (density * (1 - density) / Double(n)).squareRoot()
            #expect(abs(frac - density) < 5 * sigma, "kept \(frac) vs \(density)")
            let sum = v.reduce(0.0) { $0 + Double($1) }
            #expect(abs(sum / Double(n) - 0.5) < 5 * 0.5 * sigma / density, "mean \(sum / Double(n))")
            #expect(v.allSatisfy { $0 == 0 || abs($0 - Float(0.5 / density)) < 1e-6 })
        }
        // Same seed, same mask.
        var a = tau, b = tau, r1 = SplitMix64(seed: 9), r2 = SplitMix64(seed: 9)
        Sparsify.bernoulli(&a, density: 0.3, rescale: nil, rng: &r1)
        Sparsify.bernoulli(&b, density: 0.3, rescale: nil, rng: &r2)
        #expect(a == b)
    }

    @Test("TIES sign election and normalization, worked by hand")
    func tiesByHand() throws {
        // Three models, four entries; weights 1, 1, 2.
        var deltas: [[Float]] = [[1, -2, 0.5, 3], [-3, -1, 0.5, -1], [1, 1, -1, 0]]
        var rng = SplitMix64(seed: 0)
        let ties = MergeMethods.named("ties")!
        let params = [ModelMergeParameters(weight: 1), .init(weight: 1), .init(weight: 2)]
        let (d, _) = try TaskArithmetic.merge(deltas: &deltas, parameters: params, method: ties, options: .init(), rng: &rng)
        // entry 0: wτ = 1, -3, 2 → Σ=0 ⇒ +; agreeing 1 and 2 (weights 1+2) → (1+2)/3 = 1
        // entry 1: wτ = -2, -1, 2 → Σ=-1 ⇒ −; agreeing -2,-1 (weights 2) → -1.5
        // entry 2: wτ = .5, .5, -2 → Σ=-1 ⇒ −; agreeing -2 (weight 2) → -1
        // entry 3: wτ = 3, -1, 0 → Σ=2 ⇒ +; agreeing 3 (weight 1) → 3 (the zero is not counted)
        #expect(d == [1, -1.5, -1, 3])
        var again: [[Float]] = [[1, -2, 0.5, 3], [-3, -1, 0.5, -1], [1, 1, -1, 0]]
        let (u, _) = try TaskArithmetic.merge(deltas: &again, parameters: params, method: ties,
                                              options: .init(normalize: false, lambda: 0.5), rng: &rng)
        #expect(u == [1.5, -1.5, -1, 1.5])
    }

    @Test("task arithmetic and linear: weighted sums, normalize divides by Σw, λ scales")
    func linearAndTaskArithmetic() throws {
        var rng = SplitMix64(seed: 0)
        let params = [ModelMergeParameters(weight: 0.5), .init(weight: 1.5)]
        var a: [[Float]] = [[2, 4], [4, -4]]
        let (ta, _) = try TaskArithmetic.merge(deltas: &a, parameters: params, method: MergeMethods.named("task_arithmetic")!,
                                               options: .init(lambda: 2), rng: &rng)
        #expect(ta == [14, -8])
        var b: [[Float]] = [[2, 4], [4, -4]]
        let (lin, _) = try TaskArithmetic.merge(deltas: &b, parameters: params, method: MergeMethods.named("linear")!,
                                                options: .init(), rng: &rng)
        #expect(lin == [3.5, -2])
    }

    @Test("every method in the table has a paper and a distinct preset")
    func table() {
        #expect(MergeMethods.names == ["linear", "task_arithmetic", "ties", "dare_ties", "dare_linear"])
        #expect(MergeMethods.all.allSatisfy { $0.paper.hasPrefix("https://arxiv.org/") })
        #expect(Set(MergeMethods.all.map { "\($0.sparsification)\($0.consensus)\($0.defaultNormalize)" }).count == 5)
    }

    @Test("truncated SVD: known singular values, exact on low rank, energy of a dense matrix")
    func svd() {
        // M = U diag(5, 3, 1e-3) Vᵀ with orthonormal U [6×3], V [4×3] built from Householder-free rotations.
        let m = 6, n = 4
        let u: [[Double]] = [[1, 1, 1, 1, 1, 1].map { $0 / 6.0.squareRoot() },
                             [1, -1, 1, -1, 1, -1].map { $0 / 6.0.squareRoot() },
                             [1, 1, -1, -1, 0, 0].map { $0 / 2 }]
        let v: [[Double]] = [[1, 1, 1, 1].map { $0 / 2 }, [1, -1, 1, -1].map { $0 / 2 }, [1, 1, -1, -1].map { $0 / 2 }]
        let s = [5.0, 3.0, 1e-3]
        var a = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { a[i * n + j] = Float((0..<3).reduce(0.0) { $0 + s[$1] * u[$1][i] * v[$1][j] }) } }
        let full = TruncatedSVD(a, rows: m, cols: n, rank: 3)
        for (got, want) in zip(full.sigma, s) { #expect(abs(got - want) < 1e-5 * max(1, want), "σ \(got) vs \(want)") }
        let two = TruncatedSVD(a, rows: m, cols: n, rank: 2)
        #expect(abs(two.energyKept - 34 / (34 + 1e-6)) < 1e-6)
        // Reconstruction from the LoRA factors.
        let (fa, fb) = full.loraFactors()
        var maxErr: Float = 0
        for i in 0..<m { for j in 0..<n {
            var x: Float = 0
            for k in 0..<3 { x += fb[i * 3 + k] * fa[k * n + j] }
            maxErr = max(maxErr, abs(x - a[i * n + j]))
        } }
        #expect(maxErr < 1e-5)

        // A dense random 40×30 matrix: rank 10 keeps the top-10 energy, and more rank keeps more.
        var rng = SplitMix64(seed: 5)
        let d = (0..<1200).map { _ in rng.symmetric() }
        let r10 = TruncatedSVD(d, rows: 40, cols: 30, rank: 10), r30 = TruncatedSVD(d, rows: 40, cols: 30, rank: 30)
        #expect(abs(r30.energyKept - 1) < 1e-9)
        let top10 = r30.sigma.prefix(10).reduce(0) { $0 + $1 * $1 } / r30.totalEnergy
        #expect(abs(r10.energyKept - top10) < 1e-3, "\(r10.energyKept) vs optimal \(top10)")
        #expect(zip(r30.sigma, r30.sigma.dropFirst()).allSatisfy { $0 >= $1 })
    }
}
