// OpProfile — where a training step's time goes, op by op: a `Backend` whose kernel table times every
// call of the table it wraps (`ProfilingBackend`), grouped by what the call does (the base GEMMs per
// weight type and direction, the LoRA side GEMMs, the LM head, attention, the elementwise ops, the
// optimizer), with the floating-point work of the GEMMs and attention so a row can say what fraction
// of the machine's GEMM rate it reached. `tune bench train --profile` prints it for the timed steps.
//
//     let profile = OpProfile(vocabSize: model.config.vocabSize, loraRank: 8)
//     let trainer = try LoRATrainer(model: m, options: o, data: d, output: dir,
//                                   backend: ProfilingBackend(base: CPUBackend(), profile: profile))
//     … train …; profile.reset() after warmup …
//     for row in profile.rows() { print(row.op, row.seconds, row.gflops ?? 0) }
//
// On a backend whose ops are queued (CUDA), each call is followed by the table's sync so its time is
// the op's own; an error that sync reports is kept and returned by the wrapped table's next sync.

import Foundation

/// Per-op totals gathered by a profiled `KernelTable`.
public final class OpProfile: @unchecked Sendable { // every access under `lock`
    public struct Row: Codable, Sendable {
        public var op: String
        public var calls: Int
        public var seconds: Double
        /// Floating-point operations (multiply and add counted apart); nil for ops not counted.
        public var flops: Double?
        public var gflops: Double? { flops.map { $0 / max(seconds, 1e-12) / 1e9 } }
    }

    private let lock = NSLock()
    private var totals: [String: (calls: Int, ns: UInt64, flops: Double, counted: Bool)] = [:]
    private var pendingError: String?
    /// The model's vocabulary: a GEMM with this many outputs is the LM head.
    public let vocabSize: Int
    /// The adapter's rank: an f32 GEMM with this many inputs or outputs is a LoRA side GEMM.
    public let loraRank: Int

    public init(vocabSize: Int, loraRank: Int) { self.vocabSize = vocabSize; self.loraRank = loraRank }

    /// Forgets everything recorded so far (e.g. after the warmup steps).
    public func reset() { lock.withLock { totals = [:] } }

    /// Totals per op, largest time first.
    public func rows() -> [Row] {
        lock.withLock {
            totals.map { Row(op: $0.key, calls: $0.value.calls, seconds: Double($0.value.ns) * 1e-9, flops: $0.value.counted ? $0.value.flops : nil) }
                .sorted { $0.seconds > $1.seconds }
        }
    }

    func record(_ op: String, ns: UInt64, flops: Double?) {
        lock.withLock {
            var t = totals[op] ?? (0, 0, 0, flops != nil)
            t.calls += 1; t.ns += ns; t.flops += flops ?? 0
            totals[op] = t
        }
    }

    func keep(error: String) { lock.withLock { if pendingError == nil { pendingError = error } } }
    func takeError() -> String? { lock.withLock { defer { pendingError = nil }; return pendingError } }

    /// What a GEMM with `n` outputs from `k` inputs is in the training graph.
    func gemmLabel(_ dir: String, wtype: Int32, k: Int64, n: Int64, bf16: Bool = false) -> String {
        let products = bf16 ? ", bf16 products" : ""
        if n == Int64(vocabSize) { return "LM head \(dir) (\(typeName(wtype))\(products))" }
        // LoRA's A (k → rank) and B (rank → n): one side is the rank.
        if (k == Int64(loraRank) || n == Int64(loraRank)) && wtype == Self.f32 { return "LoRA GEMM \(dir)" }
        return "GEMM \(dir) \(typeName(wtype))" + products
    }

    static let f32 = Int32(GGMLType.f32.rawValue)

    private func typeName(_ t: Int32) -> String { t >= 0 ? GGMLType(rawValue: UInt32(t)).name : "type \(t)" }
}

/// `base` with every kernel-table call timed into `profile`.
public struct ProfilingBackend: Backend {
    public let base: any Backend
    public let profile: OpProfile
    public init(base: any Backend, profile: OpProfile) { self.base = base; self.profile = profile }
    public var name: String { base.name }
    public var device: String { base.device }
    public func supports(_ op: BackendOp) -> Bool { base.supports(op) }
    public func matmulForward(inp: [Float], weight: [UInt8], wtype: Int32, bias: [Float]?, T: Int, K: Int, N: Int) throws -> [Float] {
        try base.matmulForward(inp: inp, weight: weight, wtype: wtype, bias: bias, T: T, K: K, N: N)
    }
    public func kernelTable() throws -> KernelTable { try base.kernelTable().profiled(by: profile) }
}

extension KernelTable {
    /// This table with every op timed into `p` (memory ops too: "copy", "memset").
    public func profiled(by p: OpProfile) -> KernelTable {
        let t = self
        let queued = !hostAddressable
        // Runs `body`, waits for it on a queued backend, records its time under `op`.
        func timed<R>(_ op: @autoclosure () -> String, _ flops: @autoclosure () -> Double?, _ body: () -> R) -> R {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = body()
            if queued, let e = t.syncFn() { p.keep(error: e) }
            p.record(op(), ns: DispatchTime.now().uptimeNanoseconds - t0, flops: flops())
            return r
        }
        func gemm(_ T: Int64, _ K: Int64, _ N: Int64) -> Double { 2 * Double(T) * Double(K) * Double(N) }
        // Causal attention over T positions, H query heads of D: QKᵀ and PV each H·T²/2·D multiply-adds;
        // the backward recomputes P and forms dV, dP, dQ, dK (five such products).
        func attention(_ T: Int64, _ H: Int64, _ D: Int64, window: Int64? = nil, backward: Bool) -> Double {
            let keys = window.map { Double(min(T, $0)) } ?? Double(T) / 2
            return (backward ? 5 : 2) * 2 * Double(H) * Double(T) * keys * Double(D)
        }
        let rope = ropeCache.map { c in
            RopeCache(table: { a, b, c2, d in timed("rope table", nil) { c.table(a, b, c2, d) } },
                      forward: { a, b, c2, d, e, f in timed("rope fwd", nil) { c.forward(a, b, c2, d, e, f) } },
                      backward: { a, b, c2, d, e, f in timed("rope bwd", nil) { c.backward(a, b, c2, d, e, f) } },
                      tableFreq: c.tableFreq.map { tf in { a, b, c2, d in timed("rope table", nil) { tf(a, b, c2, d) } } })
        }
        let packedHead = packed.map { pk in
            PackedGEMM(size: pk.size,
                       pack: { a, b, c, d, e in timed("LM head pack", nil) { pk.pack(a, b, c, d, e) } },
                       forward: { o, x, w, b, T, K, N in timed("LM head fwd (packed f32)", gemm(T, K, N)) { pk.forward(o, x, w, b, T, K, N) } })
        }
        let fam = family.map { f in
            FamilyOps(gegluForward: { a, b, c, n in timed("geglu fwd", nil) { f.gegluForward(a, b, c, n) } },
                      gegluBackward: { a, b, c, d, e, n in timed("geglu bwd", nil) { f.gegluBackward(a, b, c, d, e, n) } },
                      attentionForwardTrainWindow: { o, l, q, k, v, T, H, Hk, D, W in
                          timed("attention fwd", attention(T, H, D, window: W, backward: false)) { f.attentionForwardTrainWindow(o, l, q, k, v, T, H, Hk, D, W) } },
                      attentionBackwardWindow: { dq, dk, dv, dout, q, k, v, o, l, T, H, Hk, D, W in
                          timed("attention bwd", attention(T, H, D, window: W, backward: true)) {
                              f.attentionBackwardWindow(dq, dk, dv, dout, q, k, v, o, l, T, H, Hk, D, W) } })
        }
        return KernelTable(
            name: name, hostAddressable: hostAddressable, weightTypes: weightTypes,
            alloc: { n in timed("alloc", nil) { t.alloc(n) } }, free: t.free,
            copy: { d, s, n, k in timed("copy", nil) { t.copyFn(d, s, n, k) } },
            memset: { d, v, n in timed("memset", nil) { t.memsetFn(d, v, n) } },
            sync: { p.takeError() ?? t.syncFn() },
            matmulForward: { o, x, w, ty, b, T, K, N in
                timed(p.gemmLabel("fwd", wtype: ty, k: K, n: N), gemm(T, K, N)) { t.matmulForward(o, x, w, ty, b, T, K, N) } },
            matmulBackwardInput: { dx, dy, w, ty, T, K, N, acc in
                timed(p.gemmLabel("dX", wtype: ty, k: K, n: N), gemm(T, K, N)) { t.matmulBackwardInput(dx, dy, w, ty, T, K, N, acc) } },
            matmulBackwardWeight: { dw, dy, x, T, K, N in
                timed(p.gemmLabel("dW", wtype: OpProfile.f32, k: K, n: N), gemm(T, K, N)) { t.matmulBackwardWeight(dw, dy, x, T, K, N) } },
            matmulForwardBF16: { o, x, w, ty, b, T, K, N in
                timed(p.gemmLabel("fwd", wtype: ty, k: K, n: N, bf16: true), gemm(T, K, N)) { t.matmulForwardBF16(o, x, w, ty, b, T, K, N) } },
            matmulBackwardInputBF16: { dx, dy, w, ty, T, K, N, acc in
                timed(p.gemmLabel("dX", wtype: ty, k: K, n: N, bf16: true), gemm(T, K, N)) { t.matmulBackwardInputBF16(dx, dy, w, ty, T, K, N, acc) } },
            embeddingForward: { o, ids, w, ty, T, C in timed("embedding", nil) { t.embeddingForward(o, ids, w, ty, T, C) } },
            rmsnormForward: { a, b, c, d, e, T, C in timed("rmsnorm fwd", nil) { t.rmsnormForward(a, b, c, d, e, T, C) } },
            rmsnormBackward: { a, b, c, d, e, f, T, C in timed("rmsnorm bwd", nil) { t.rmsnormBackward(a, b, c, d, e, f, T, C) } },
            ropeForward: { a, b, c, d, e, f in timed("rope fwd", nil) { t.ropeForward(a, b, c, d, e, f) } },
            ropeBackward: { a, b, c, d, e, f in timed("rope bwd", nil) { t.ropeBackward(a, b, c, d, e, f) } },
            attentionForwardTrain: { o, l, q, k, v, T, H, Hk, D in
                timed("attention fwd", attention(T, H, D, backward: false)) { t.attentionForwardTrain(o, l, q, k, v, T, H, Hk, D) } },
            attentionBackward: { dq, dk, dv, dout, q, k, v, o, l, T, H, Hk, D in
                timed("attention bwd", attention(T, H, D, backward: true)) { t.attentionBackward(dq, dk, dv, dout, q, k, v, o, l, T, H, Hk, D) } },
            swigluForward: { a, b, c, n in timed("swiglu fwd", nil) { t.swigluForward(a, b, c, n) } },
            swigluBackward: { a, b, c, d, e, n in timed("swiglu bwd", nil) { t.swigluBackward(a, b, c, d, e, n) } },
            addInplace: { a, b, n in timed("add (residual)", nil) { t.addInplace(a, b, n) } },
            axpy: { a, b, s, n in timed("axpy", nil) { t.axpy(a, b, s, n) } },
            scale: { a, s, n in timed("scale", nil) { t.scale(a, s, n) } },
            mulInplace: mulInplace.map { f in { a, b, n in timed("dropout mask", nil) { f(a, b, n) } } },
            xentForwardBackward: { l, g, y, s, T, V in timed("cross-entropy fwd+bwd", nil) { t.xentForwardBackward(l, g, y, s, T, V) } },
            adamwStep: { a, b, c, d, n, e, f, g, h, i, j in timed("AdamW", nil) { t.adamwStep(a, b, c, d, n, e, f, g, h, i, j) } },
            sumsq: { a, n in timed("grad norm", nil) { t.sumsq(a, n) } },
            ropeCache: rope, packed: packedHead, family: fam)
    }
}
