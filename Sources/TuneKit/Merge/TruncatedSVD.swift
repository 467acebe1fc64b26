// TruncatedSVD — rank-r factorization of a merged ΔW [out, in] back into LoRA factors, in Float64.
//
// Randomized range finder (Halko, Martinsson & Tropp 2011, alg. 4.4 with q power iterations):
//   Y = (M Mᵀ)^q M Ω,  Q = orth(Y)  [m × k],  Bm = Qᵀ M  [k × n]
// then an exact SVD of the small Bm by one-sided Jacobi (Hestenes) on Bmᵀ:
//   Bmᵀ J = Ũ Σ  ⇒  M ≈ (Q J) Σ Ũᵀ.
// When M has rank ≤ k (a sum of LoRA products of total rank ≤ k) the factorization is exact up to
// rounding; for dense ΔW (TIES) the power iterations make it close to the optimal rank-r truncation.
// The kept energy Σᵢ<r σᵢ² / ‖M‖²_F is exact for the returned factors (M_r is an orthogonal projection of M).

import Engine
import Foundation

/// A rank-r factorization M ≈ U·diag(σ)·Vᵀ.
public struct TruncatedSVD: Sendable {
    /// Singular values, descending, `rank` of them.
    public var sigma: [Double]
    /// Left singular vectors, `[m, rank]` row-major.
    public var u: [Double]
    /// Right singular vectors transposed, `[rank, n]` row-major.
    public var vt: [Double]
    public var rows: Int
    public var cols: Int
    /// ‖M‖²_F of the input.
    public var totalEnergy: Double

    public var rank: Int { sigma.count }
    /// Σ σᵢ² / ‖M‖²_F (1 for a zero matrix).
    public var energyKept: Double { totalEnergy > 0 ? min(1, sigma.reduce(0) { $0 + $1 * $1 } / totalEnergy) : 1 }

    /// Computes the top-`rank` singular triplets of `m` (`[rows, cols]` row-major f32).
    /// - Parameters:
    ///   - oversample: extra random directions (k = rank + oversample, capped at min(rows, cols)).
    ///   - powerIterations: q in (M Mᵀ)^q M Ω.
    public init(_ m: [Float], rows: Int, cols: Int, rank: Int, oversample: Int = 10, powerIterations: Int = 2, seed: UInt64 = 0) {
        precondition(m.count == rows * cols && rank >= 1)
        self.rows = rows
        self.cols = cols
        let a = m.map(Double.init)
        totalEnergy = a.reduce(0) { $0 + $1 * $1 }
        let r = min(rank, rows, cols)
        let k = min(r + oversample, rows, cols)
        var rng = SplitMix64(seed: seed ^ 0x5EED_5EED)
        // Y = A Ω, Ω [cols × k]
        var omega = [Double](repeating: 0, count: cols * k)
        for i in omega.indices { omega[i] = Double(rng.symmetric()) }
        var y = Self.matmul(a, rows, cols, omega, k)                 // [rows × k]
        Self.orthonormalizeColumns(&y, rows, k)
        for _ in 0..<powerIterations {
            var z = Self.matmulTransposedA(a, rows, cols, y, k)      // Aᵀ Y  [cols × k]
            Self.orthonormalizeColumns(&z, cols, k)
            y = Self.matmul(a, rows, cols, z, k)                     // A Z   [rows × k]
            Self.orthonormalizeColumns(&y, rows, k)
        }
        // C = Bmᵀ = Aᵀ Q  [cols × k], stored column-major for the Jacobi sweeps.
        let c = Self.matmulTransposedA(a, rows, cols, y, k)
        var cols_ = [[Double]](repeating: [Double](repeating: 0, count: cols), count: k)
        for j in 0..<k { for i in 0..<cols { cols_[j][i] = c[i * k + j] } }
        var jac = [[Double]](repeating: [Double](repeating: 0, count: k), count: k)
        for j in 0..<k { jac[j][j] = 1 }
        Self.oneSidedJacobi(&cols_, &jac)
        // σⱼ = ‖cⱼ‖, Ũⱼ = cⱼ/σⱼ (right singular vectors of A), left = Q·Jⱼ.
        let norms = cols_.map { sqrt($0.reduce(0) { $0 + $1 * $1 }) }
        let order = (0..<k).sorted { norms[$0] > norms[$1] }.prefix(r)
        sigma = order.map { norms[$0] }
        var u = [Double](repeating: 0, count: rows * r), vt = [Double](repeating: 0, count: r * cols)
        for (slot, j) in order.enumerated() {
            let s = norms[j]
            if s > 0 { for i in 0..<cols { vt[slot * cols + i] = cols_[j][i] / s } }
            for i in 0..<rows {
                var acc = 0.0
                for t in 0..<k { acc += y[i * k + t] * jac[j][t] }
                u[i * r + slot] = acc
            }
        }
        self.u = u
        self.vt = vt
    }

    /// LoRA factors with B·A = U Σ Vᵀ, balanced: B = U√Σ `[rows, rank]`, A = √Σ Vᵀ `[rank, cols]` (f32).
    public func loraFactors() -> (a: [Float], b: [Float]) {
        let r = rank
        var a = [Float](repeating: 0, count: r * cols), b = [Float](repeating: 0, count: rows * r)
        for j in 0..<r {
            let s = sigma[j].squareRoot()
            for i in 0..<cols { a[j * cols + i] = Float(s * vt[j * cols + i]) }
            for i in 0..<rows { b[i * r + j] = Float(s * u[i * r + j]) }
        }
        return (a, b)
    }

    // MARK: - Dense helpers (Float64, row-major)

    /// A [m × n] · X [n × k] → [m × k].
    static func matmul(_ a: [Double], _ m: Int, _ n: Int, _ x: [Double], _ k: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m * k)
        a.withUnsafeBufferPointer { ap in
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { op in
                    for i in 0..<m {
                        let orow = op.baseAddress! + i * k
                        for p in 0..<n {
                            let v = ap[i * n + p]
                            if v == 0 { continue }
                            let xrow = xp.baseAddress! + p * k
                            for j in 0..<k { orow[j] += v * xrow[j] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Aᵀ · Y with A [m × n], Y [m × k] → [n × k].
    static func matmulTransposedA(_ a: [Double], _ m: Int, _ n: Int, _ y: [Double], _ k: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * k)
        a.withUnsafeBufferPointer { ap in
            y.withUnsafeBufferPointer { yp in
                out.withUnsafeMutableBufferPointer { op in
                    for i in 0..<m {
                        let yrow = yp.baseAddress! + i * k
                        for p in 0..<n {
                            let v = ap[i * n + p]
                            if v == 0 { continue }
                            let orow = op.baseAddress! + p * k
                            for j in 0..<k { orow[j] += v * yrow[j] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Modified Gram–Schmidt, twice ("twice is enough"), on the k columns of X [m × k] row-major.
    /// Columns whose residual vanishes (rank deficiency) become zero, not amplified noise.
    static func orthonormalizeColumns(_ x: inout [Double], _ m: Int, _ k: Int) {
        var cols = [[Double]](repeating: [Double](repeating: 0, count: m), count: k)
        for j in 0..<k { for i in 0..<m { cols[j][i] = x[i * k + j] } }
        let scale = cols.map { sqrt($0.reduce(0) { $0 + $1 * $1 }) }.max() ?? 0
        for j in 0..<k {
            let before = sqrt(cols[j].reduce(0) { $0 + $1 * $1 })
            for _ in 0..<2 {
                for p in 0..<j {
                    var d = 0.0
                    for i in 0..<m { d += cols[p][i] * cols[j][i] }
                    for i in 0..<m { cols[j][i] -= d * cols[p][i] }
                }
            }
            let nrm = sqrt(cols[j].reduce(0) { $0 + $1 * $1 })
            if nrm <= 1e-12 * max(before, scale) || nrm == 0 {
                for i in 0..<m { cols[j][i] = 0 }
            } else {
                for i in 0..<m { cols[j][i] /= nrm }
            }
        }
        for j in 0..<k { for i in 0..<m { x[i * k + j] = cols[j][i] } }
    }

    /// One-sided Jacobi: rotates column pairs of C until all are orthogonal, applying the same
    /// rotations to J. Afterwards ‖cⱼ‖ are the singular values of C and J its right singular vectors.
    static func oneSidedJacobi(_ c: inout [[Double]], _ j: inout [[Double]], maxSweeps: Int = 60) {
        let k = c.count
        guard k > 1 else { return }
        for _ in 0..<maxSweeps {
            var rotated = false
            for p in 0..<(k - 1) {
                for q in (p + 1)..<k {
                    var alpha = 0.0, beta = 0.0, gamma = 0.0
                    for i in c[p].indices {
                        alpha += c[p][i] * c[p][i]
                        beta += c[q][i] * c[q][i]
                        gamma += c[p][i] * c[q][i]
                    }
                    guard gamma != 0, abs(gamma) > 1e-15 * sqrt(alpha * beta) else { continue }
                    rotated = true
                    let zeta = (beta - alpha) / (2 * gamma)
                    let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + sqrt(1 + zeta * zeta))
                    let cs = 1 / sqrt(1 + t * t), sn = cs * t
                    for i in c[p].indices {
                        let x = c[p][i], y = c[q][i]
                        c[p][i] = cs * x - sn * y
                        c[q][i] = sn * x + cs * y
                    }
                    for i in 0..<k {
                        let x = j[p][i], y = j[q][i]
                        j[p][i] = cs * x - sn * y
                        j[q][i] = sn * x + cs * y
                    }
                }
            }
            if !rotated { break }
        }
    }
}
