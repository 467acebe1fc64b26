// OpsBench — `tune bench ops`: effective memory bandwidth (GB/s, bytes each op must read and
// write once) of the elementwise/normalization/optimizer kernels on arrays far larger than the
// caches, against a STREAM-style copy (threaded, same thread count) measured in the same run.

import CKernels
import Foundation

public struct OpsBenchRow: Codable, Sendable {
    public var op: String
    public var bytes: Int
    public var gbPerSecond: Double
    /// gbPerSecond ÷ copy's GB/s.
    public var ofCopy: Double
    enum CodingKeys: String, CodingKey { case op, bytes, gbPerSecond = "gb_per_second", ofCopy = "of_copy" }
}

public struct OpsBenchReport: Codable, Sendable {
    public var threads: Int
    public var elements: Int
    public var rows: [OpsBenchRow]
}

public struct OpsBench: Sendable {
    /// Elements per array (f32); the default is 96 MiB per array, past any L3.
    public var elements = 24 << 20
    public init() {}

    public func run(progress: (String) -> Void = { _ in }) -> OpsBenchReport {
        let n = elements - elements % (576 * 49152 / 64) // whole rows for every op below
        let C = 576, V = 49152, H = 9, D = 64
        var a = [Float](repeating: 0, count: n), b = a, c = a, d = a
        for i in 0..<n { a[i] = Float(i % 1000) / 1000 - 0.5; b[i] = Float(i % 777) / 777; d[i] = 0.001 }
        let w = [Float](repeating: 1, count: C), pos = (0..<(n / (H * D))).map { Int32($0 % 2048) }
        var rstd = [Float](repeating: 0, count: n / C)
        var measured: [(String, Int, Double)] = []
        func bench(_ name: String, _ bytesPerElement: Int, _ body: () -> Void) {
            progress(name)
            let s = GemmBench.time(body)
            measured.append((name, bytesPerElement * n, Double(bytesPerElement * n) / s / 1e9))
        }
        // STREAM-style copy on as many threads as the kernels use (equal contiguous slices).
        let threads = Int(ck_get_threads())
        bench("copy", 8) {
            c.withUnsafeMutableBufferPointer { dst in
                a.withUnsafeBufferPointer { src in
                    let (d, s) = (UnsafeMutableSendablePtr(p: dst.baseAddress!), UnsafeSendablePtr(p: src.baseAddress!))
                    DispatchQueue.concurrentPerform(iterations: threads) { i in
                        let lo = n * i / threads, hi = n * (i + 1) / threads
                        (d.p + lo).update(from: s.p + lo, count: hi - lo)
                    }
                }
            }
        }
        bench("rmsnorm", 8) { ck_rmsnorm_forward(&c, &rstd, a, w, 1e-5, Int64(n / C), Int64(C)) }
        bench("rope", 8) { ck_rope_forward(&c, pos, Int64(n / (H * D)), Int64(H), Int64(D), 10000) }
        // RoPE with the cos/sin table the training graph caches per (positions, D, theta)
        var table = [Float](repeating: 0, count: 2048 * D)
        ck_rope_table(&table, 2048, Int64(D), 10000)
        bench("rope (cached)", 8) { ck_rope_forward_cached(&c, pos, table, Int64(n / (H * D)), Int64(H), Int64(D)) }
        bench("rope_backward", 8) { ck_rope_backward(&c, pos, Int64(n / (H * D)), Int64(H), Int64(D), 10000) }
        bench("rope_backward (cached)", 8) { ck_rope_backward_cached(&c, pos, table, Int64(n / (H * D)), Int64(H), Int64(D)) }
        bench("swiglu", 12) { ck_swiglu_forward(&c, a, b, Int64(n)) }
        bench("add", 12) { ck_add_inplace(&c, a, Int64(n)) }
        bench("log_softmax", 8) { ck_log_softmax_forward(&c, a, Int64(n / V), Int64(V)) }
        bench("adamw", 28) { ck_adamw_step(&c, a, &b, &d, Int64(n), 1e-3, 0.9, 0.999, 1e-8, 0.01, 10) }
        let copy = measured[0].2
        return OpsBenchReport(threads: Int(ck_get_threads()), elements: n,
                              rows: measured.map { OpsBenchRow(op: $0.0, bytes: $0.1, gbPerSecond: $0.2, ofCopy: $0.2 / copy) })
    }
}

/// Raw pointers handed to concurrentPerform's closure (each iteration touches a disjoint slice).
private struct UnsafeMutableSendablePtr: @unchecked Sendable { let p: UnsafeMutablePointer<Float> }
private struct UnsafeSendablePtr: @unchecked Sendable { let p: UnsafePointer<Float> }
