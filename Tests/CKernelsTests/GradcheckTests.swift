// GradcheckTests.swift — every `_backward` kernel (fast path) against central finite
// differences of a float64 Swift forward on tiny shapes. Scalar loss L = Σ out·r for a random
// r (cross-entropy: L = scale·Σ loss_t); each input/weight element is perturbed by ±h.
import CKernels
import Foundation
import Testing

/// ∂f/∂x by central differences in Double.
private func numGrad(_ x: [Double], h: Double = 1e-5, _ f: ([Double]) -> Double) -> [Double] {
    var x = x
    return x.indices.map { i in
        let v = x[i]
        x[i] = v + h; let fp = f(x)
        x[i] = v - h; let fm = f(x)
        x[i] = v
        return (fp - fm) / (2 * h)
    }
}

private func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
private func d(_ a: [Float]) -> [Double] { a.map(Double.init) }

/// Expects the kernel gradient to match finite differences within 1e-3·(|g| + 1e-2·max|g|).
private func expectGrad(_ got: [Float], _ want: [Double], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let scale = want.map(abs).max() ?? 1
    let tol = want.map { 1e-3 * abs($0) + 2e-3 * scale + 1e-6 }
    expectClose(got, want.map { Float($0) }, tol: tol, what, sourceLocation: sourceLocation)
}

@Suite("gradient checks (finite differences, float64)") struct GradcheckTests {
    @Test("matmul backward input and weight")
    func matmul() {
        var rng = RNG(0x9c1)
        let (T, K, N) = (3, 5, 4)
        let x = rng.floats(T * K), w = rng.floats(N * K), r = rng.floats(T * N)
        func f(_ x: [Double], _ w: [Double]) -> Double {
            var s = 0.0
            for t in 0..<T { for n in 0..<N { var o = 0.0; for k in 0..<K { o += x[t * K + k] * w[n * K + k] }; s += o * Double(r[t * N + n]) } }
            return s
        }
        let wb = w.withUnsafeBytes { [UInt8]($0) }
        let dx = backwardInput(ref: false, dout: r, w: wb, type: Int32(CK_TYPE_F32.rawValue), initial: nil, T: T, K: K, N: N).out
        expectGrad(dx, numGrad(d(x)) { f($0, d(w)) }, "dX")
        let dw = backwardWeight(ref: false, dw: [Float](repeating: 0, count: N * K), dout: r, inp: x, T: T, K: K, N: N)
        expectGrad(dw, numGrad(d(w)) { f(d(x), $0) }, "dW")
    }

    @Test("rmsnorm backward (input and weight)")
    func rmsnorm() {
        var rng = RNG(0x9c2)
        let (T, C, eps) = (2, 9, 1e-5)
        let x = rng.floats(T * C), w = rng.floats(C, 0.5, 1.5), r = rng.floats(T * C)
        func f(_ x: [Double], _ w: [Double]) -> Double {
            var s = 0.0
            for t in 0..<T {
                let ms = (0..<C).reduce(0.0) { $0 + x[t * C + $1] * x[t * C + $1] } / Double(C)
                let rs = 1 / (ms + eps).squareRoot()
                for i in 0..<C { s += x[t * C + i] * rs * w[i] * Double(r[t * C + i]) }
            }
            return s
        }
        var out = [Float](repeating: 0, count: T * C), rstd = [Float](repeating: 0, count: T)
        ck_rmsnorm_forward(&out, &rstd, x, w, Float(eps), Int64(T), Int64(C))
        var dx = [Float](repeating: 0, count: T * C), dw = [Float](repeating: 0, count: C)
        ck_rmsnorm_backward(&dx, &dw, r, x, w, rstd, Int64(T), Int64(C))
        expectGrad(dx, numGrad(d(x)) { f($0, d(w)) }, "rmsnorm dX")
        expectGrad(dw, numGrad(d(w)) { f(d(x), $0) }, "rmsnorm dW")
    }

    @Test("swiglu backward")
    func swiglu() {
        var rng = RNG(0x9c3)
        let n = 11
        let g = rng.floats(n, -4, 4), u = rng.floats(n), r = rng.floats(n)
        func f(_ g: [Double], _ u: [Double]) -> Double {
            (0..<n).reduce(0.0) { $0 + g[$1] / (1 + exp(-g[$1])) * u[$1] * Double(r[$1]) }
        }
        var dg = [Float](repeating: 0, count: n), du = dg
        ck_swiglu_backward(&dg, &du, r, g, u, Int64(n))
        expectGrad(dg, numGrad(d(g)) { f($0, d(u)) }, "dgate")
        expectGrad(du, numGrad(d(u)) { f(d(g), $0) }, "dup")
    }

    @Test("rope backward")
    func rope() {
        var rng = RNG(0x9c4)
        let (T, H, D, theta): (Int, Int, Int, Float) = (3, 2, 8, 10000)
        let pos: [Int32] = [0, 5, 123]
        let x = rng.floats(T * H * D), r = rng.floats(T * H * D)
        func f(_ x: [Double]) -> Double {
            var s = 0.0
            for t in 0..<T { for h in 0..<H { for i in 0..<(D / 2) {
                let a = Float(pos[t]) * (1 / powf(theta, Float(2 * i) / Float(D)))
                let c = cos(Double(a)), sn = sin(Double(a)), b = (t * H + h) * D
                s += (x[b + i] * c - x[b + i + D / 2] * sn) * Double(r[b + i])
                s += (x[b + i + D / 2] * c + x[b + i] * sn) * Double(r[b + i + D / 2])
            } } }
            return s
        }
        var g = r
        ck_rope_backward(&g, pos, Int64(T), Int64(H), Int64(D), theta)
        expectGrad(g, numGrad(d(x), f), "rope dX")
    }

    @Test("softmax cross-entropy with ignore mask")
    func xent() {
        var rng = RNG(0x9c5)
        let (T, V, scale) = (4, 13, Float(0.5))
        let z = rng.floats(T * V, -3, 3)
        let targets: [Int32] = [3, -100, 12, 0]
        func f(_ z: [Double]) -> Double {
            var s = 0.0
            for t in 0..<T where targets[t] >= 0 {
                let row = z[(t * V)..<((t + 1) * V)], m = row.max()!
                let lse = m + log(row.reduce(0.0) { $0 + exp($1 - m) })
                s += lse - z[t * V + Int(targets[t])]
            }
            return s * Double(scale)
        }
        var g = z, losses = [Float](repeating: 0, count: T)
        #expect(ck_xent_forward_backward(&losses, &g, targets, scale, Int64(T), Int64(V)) == 3)
        expectGrad(g, numGrad(d(z), f), "dlogits")
        #expect(abs(Double(losses.reduce(0, +)) * Double(scale) - f(d(z))) < 1e-5)
    }

    @Test("AdamW step vs float64 formula")
    func adamw() {
        var rng = RNG(0x9c6)
        let n = 37
        var p = rng.floats(n), m = rng.floats(n, -0.1, 0.1), v = rng.floats(n, 0, 0.01)
        let g = rng.floats(n), (p0, m0, v0) = (p, m, v)
        let (lr, b1, b2, eps, wd, step) = (1e-2, 0.9, 0.999, 1e-8, 0.1, 5.0)
        ck_adamw_step(&p, g, &m, &v, Int64(n), Float(lr), Float(b1), Float(b2), Float(eps), Float(wd), Int64(step))
        for i in 0..<n {
            let mm = b1 * Double(m0[i]) + (1 - b1) * Double(g[i]), vv = b2 * Double(v0[i]) + (1 - b2) * Double(g[i]) * Double(g[i])
            let want = Double(p0[i]) - lr * ((mm / (1 - pow(b1, step))) / ((vv / (1 - pow(b2, step))).squareRoot() + eps) + wd * Double(p0[i]))
            #expect(abs(Double(p[i]) - want) < 1e-6, "p[\(i)]")
            #expect(abs(Double(m[i]) - mm) < 1e-7 && abs(Double(v[i]) - vv) < 1e-7, "float (1 - beta) rounding")
        }
    }
}
