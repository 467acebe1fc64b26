// CheckedHostDevice — a test double of a GPU for the device-side orchestration, on a machine without
// one. Its kernel table runs the CPU kernels, but memory is a separate "device": every allocation is
// tracked, frozen weights and host arrays are never used in place (hostAddressable = false), and each
// op and copy checks its pointer arguments:
//   - every array an op reads or writes lies entirely inside one live device allocation (a host
//     pointer handed to a device op is the bug this catches: on a GPU it reads garbage or faults);
//   - copies go the declared way (h2d: host source, device destination; d2h the reverse; d2d both device);
//   - free gets the base of a live allocation.
// Violations are recorded (first 20) and `sync` reports the first one, so a trainer fails with it.
//
//     let dev = CheckedHostDevice(.cudaOps)      // the op set of the CUDA table
//     let r = try LoRAGradients.compute(model: m, lora: a, sequences: s, backend: dev)
//     #expect(dev.violations.isEmpty)
import CKernels
import Foundation

public final class CheckedHostDevice: Backend, @unchecked Sendable { // mutable state behind `lock`
    /// Which ops the double's table offers.
    public enum OpSet: Sendable {
        /// Every op of the CPU table (RoPE cache, packed LM head): results bit-identical to `.cpu`.
        case cpuOps
        /// Only the ops and weight types the CUDA table has (uncached RoPE, plain LM-head GEMM).
        case cudaOps
    }

    public let opSet: OpSet
    private let lock = NSLock()
    private var live: [(base: UInt, bytes: Int)] = []
    private var _violations: [String] = []
    private var reported = 0
    private var _ops = 0, _h2d = 0, _d2h = 0, _d2d = 0
    private var _bytes = 0, _peak = 0

    public init(_ opSet: OpSet = .cpuOps) { self.opSet = opSet }

    public var name: String { "checked-host" }
    public var device: String { "checked host device (CPU kernels, tracked allocations)" }
    public func supports(_ op: BackendOp) -> Bool {
        opSet == .cpuOps ? CPUBackend().supports(op) : op != .logSoftmaxForward
    }

    public func matmulForward(inp: [Float], weight: [UInt8], wtype: Int32, bias: [Float]?, T: Int, K: Int, N: Int) throws -> [Float] {
        try CPUBackend().matmulForward(inp: inp, weight: weight, wtype: wtype, bias: bias, T: T, K: K, N: N)
    }

    // MARK: - what was seen

    /// Pointer and direction errors seen so far (at most 20 kept).
    public var violations: [String] { lock.withLock { _violations } }
    /// Ops run, and copies per direction.
    public var counts: (ops: Int, h2d: Int, d2h: Int, d2d: Int) { lock.withLock { (_ops, _h2d, _d2h, _d2d) } }
    /// Device bytes allocated now, and the peak.
    public var deviceBytes: (now: Int, peak: Int) { lock.withLock { (_bytes, _peak) } }
    public var liveAllocations: Int { lock.withLock { live.count } }

    private func violation(_ s: String) {
        if _violations.count < 20 { _violations.append(s) }
    }

    private func find(_ p: UInt, _ n: Int) -> Bool {
        live.contains { p >= $0.base && p + UInt(max(n, 1)) <= $0.base + UInt($0.bytes) }
    }

    private func touches(_ p: UInt) -> Bool { live.contains { p >= $0.base && p < $0.base + UInt($0.bytes) } }

    /// Checks that each (pointer, bytes, name) lies in a device allocation; nil pointers pass (optional
    /// args). False when one does not: the op is then not run (on a GPU it would fault or corrupt).
    private func op(_ name: String, _ args: [(UnsafeRawPointer?, Int, String)]) -> Bool {
        lock.withLock {
            _ops += 1
            var ok = true
            for (p, n, arg) in args {
                guard let p else { continue }
                let a = UInt(bitPattern: p)
                if !find(a, n) {
                    violation("\(name): \(arg) (\(n) bytes at 0x\(String(a, radix: 16))) is not inside a device allocation")
                    ok = false
                }
            }
            return ok
        }
    }

    // MARK: - the table

    /// A table over this device (its closures hold the device; the device does not hold the table).
    public func kernelTable() throws -> KernelTable { makeTable() }

    private func makeTable() -> KernelTable {
        let cpu = KernelTable.cpu
        func rb(_ t: Int32, _ k: Int64) -> Int { Int(ck_type_row_bytes(t, k)) }
        func f(_ p: UnsafeRawPointer?) -> UnsafeRawPointer? { p }
        return KernelTable(
            name: "checked-host", hostAddressable: false,
            weightTypes: opSet == .cudaOps ? KernelTable.cudaWeightTypes : nil,
            alloc: { [self] n in
                let p = UnsafeMutableRawPointer.allocate(byteCount: max(1, n), alignment: 64)
                self.lock.withLock {
                    self.live.append((UInt(bitPattern: p), max(1, n)))
                    _bytes += max(1, n); _peak = max(_peak, _bytes)
                }
                return p
            },
            free: { [self] p in
                lock.withLock {
                    if let i = live.firstIndex(where: { $0.base == UInt(bitPattern: p) }) {
                        _bytes -= live[i].bytes
                        live.remove(at: i)
                    } else { violation("free: 0x\(String(UInt(bitPattern: p), radix: 16)) is not a live device allocation") }
                }
                p.deallocate()
            },
            copy: { [self] d, s, n, kind in
                let ok: Bool = lock.withLock {
                    let dd = UInt(bitPattern: d), ss = UInt(bitPattern: s)
                    let dDev = find(dd, n), sDev = find(ss, n), dHost = !touches(dd), sHost = !touches(ss)
                    let ok: Bool
                    switch kind {
                    case .hostToDevice: _h2d += 1; ok = dDev && sHost
                    case .deviceToHost: _d2h += 1; ok = sDev && dHost
                    case .deviceToDevice: _d2d += 1; ok = sDev && dDev
                    }
                    if !ok {
                        violation("copy \(kind) of \(n) bytes: source 0x\(String(ss, radix: 16)) \(sDev ? "on device" : sHost ? "on host" : "straddles a device allocation"), "
                                  + "destination 0x\(String(dd, radix: 16)) \(dDev ? "on device" : dHost ? "on host" : "straddles a device allocation")")
                    }
                    return ok
                }
                guard ok else { return -1 }
                d.copyMemory(from: s, byteCount: n)
                return 0
            },
            memset: { [self] d, v, n in
                guard op("memset", [(UnsafeRawPointer(d), n, "dst")]) else { return -1 }
                d.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: v), count: n)
                return 0
            },
            sync: { [self] in
                lock.withLock {
                    guard _violations.count > reported else { return nil }
                    reported = _violations.count
                    return _violations[reported - 1]
                }
            },
            matmulForward: { [self] o, x, w, t, b, T, K, N in
                guard op("matmul_forward", [(f(o), Int(T * N) * 4, "out"), (f(x), Int(T * K) * 4, "inp"), (w, Int(N) * rb(t, K), "w"), (f(b), Int(N) * 4, "bias")]) else { return -1 }
                return cpu.matmulForward(o, x, w, t, b, T, K, N)
            },
            matmulBackwardInput: { [self] dx, dy, w, t, T, K, N, acc in
                guard op("matmul_backward_input", [(f(dx), Int(T * K) * 4, "dinp"), (f(dy), Int(T * N) * 4, "dout"), (w, Int(N) * rb(t, K), "w")]) else { return -1 }
                return cpu.matmulBackwardInput(dx, dy, w, t, T, K, N, acc)
            },
            matmulBackwardWeight: { [self] dw, dy, x, T, K, N in
                guard op("matmul_backward_weight", [(f(dw), Int(N * K) * 4, "dw"), (f(dy), Int(T * N) * 4, "dout"), (f(x), Int(T * K) * 4, "inp")]) else { return }
                cpu.matmulBackwardWeight(dw, dy, x, T, K, N)
            },
            matmulForwardBF16: { [self] o, x, w, t, b, T, K, N in
                guard op("matmul_forward_bf16", [(f(o), Int(T * N) * 4, "out"), (f(x), Int(T * K) * 4, "inp"), (w, Int(N) * rb(t, K), "w"), (f(b), Int(N) * 4, "bias")]) else { return -1 }
                return cpu.matmulForwardBF16(o, x, w, t, b, T, K, N)
            },
            matmulBackwardInputBF16: { [self] dx, dy, w, t, T, K, N, acc in
                guard op("matmul_backward_input_bf16", [(f(dx), Int(T * K) * 4, "dinp"), (f(dy), Int(T * N) * 4, "dout"), (w, Int(N) * rb(t, K), "w")]) else { return -1 }
                return cpu.matmulBackwardInputBF16(dx, dy, w, t, T, K, N, acc)
            },
            embeddingForward: { [self] o, ids, tab, t, T, C in
                guard op("embedding_forward", [(f(o), Int(T * C) * 4, "out"), (f(ids), Int(T) * 4, "ids"), (tab, rb(t, C), "table")]) else { return -1 }
                return cpu.embeddingForward(o, ids, tab, t, T, C)
            },
            rmsnormForward: { [self] o, r, x, w, eps, T, C in
                guard op("rmsnorm_forward", [(f(o), Int(T * C) * 4, "out"), (f(r), Int(T) * 4, "rstd"), (f(x), Int(T * C) * 4, "inp"), (f(w), Int(C) * 4, "weight")]) else { return }
                cpu.rmsnormForward(o, r, x, w, eps, T, C)
            },
            rmsnormBackward: { [self] dx, dw, dy, x, w, r, T, C in
                guard op("rmsnorm_backward", [(f(dx), Int(T * C) * 4, "dinp"), (f(dw), Int(C) * 4, "dweight"), (f(dy), Int(T * C) * 4, "dout"),
                                        (f(x), Int(T * C) * 4, "inp"), (f(w), Int(C) * 4, "weight"), (f(r), Int(T) * 4, "rstd")]) else { return }
                cpu.rmsnormBackward(dx, dw, dy, x, w, r, T, C)
            },
            ropeForward: { [self] x, pos, T, H, D, th in
                guard op("rope_forward", [(f(x), Int(T * H * D) * 4, "x"), (f(pos), Int(T) * 4, "pos")]) else { return }
                cpu.ropeForward(x, pos, T, H, D, th)
            },
            ropeBackward: { [self] x, pos, T, H, D, th in
                guard op("rope_backward", [(f(x), Int(T * H * D) * 4, "dx"), (f(pos), Int(T) * 4, "pos")]) else { return }
                cpu.ropeBackward(x, pos, T, H, D, th)
            },
            attentionForwardTrain: { [self] o, lse, q, k, v, T, H, Hkv, D in
                guard op("attention_forward_train", [(f(o), Int(T * H * D) * 4, "out"), (f(lse), Int(T * H) * 4, "lse"), (f(q), Int(T * H * D) * 4, "q"),
                                               (f(k), Int(T * Hkv * D) * 4, "k"), (f(v), Int(T * Hkv * D) * 4, "v")]) else { return }
                cpu.attentionForwardTrain(o, lse, q, k, v, T, H, Hkv, D)
            },
            attentionBackward: { [self] dq, dk, dv, dy, q, k, v, o, lse, T, H, Hkv, D in
                let qb = Int(T * H * D) * 4, kb = Int(T * Hkv * D) * 4
                guard op("attention_backward", [(f(dq), qb, "dq"), (f(dk), kb, "dk"), (f(dv), kb, "dv"), (f(dy), qb, "dout"), (f(q), qb, "q"),
                                          (f(k), kb, "k"), (f(v), kb, "v"), (f(o), qb, "out"), (f(lse), Int(T * H) * 4, "lse")]) else { return }
                cpu.attentionBackward(dq, dk, dv, dy, q, k, v, o, lse, T, H, Hkv, D)
            },
            swigluForward: { [self] o, g, u, n in
                guard op("swiglu_forward", [(f(o), Int(n) * 4, "out"), (f(g), Int(n) * 4, "gate"), (f(u), Int(n) * 4, "up")]) else { return }
                cpu.swigluForward(o, g, u, n)
            },
            swigluBackward: { [self] dg, du, dy, g, u, n in
                guard op("swiglu_backward", [(f(dg), Int(n) * 4, "dgate"), (f(du), Int(n) * 4, "dup"), (f(dy), Int(n) * 4, "dout"),
                                       (f(g), Int(n) * 4, "gate"), (f(u), Int(n) * 4, "up")]) else { return }
                cpu.swigluBackward(dg, du, dy, g, u, n)
            },
            addInplace: { [self] x, y, n in
                guard op("add_inplace", [(f(x), Int(n) * 4, "x"), (f(y), Int(n) * 4, "y")]) else { return }
                cpu.addInplace(x, y, n)
            },
            axpy: { [self] x, y, s, n in
                guard op("axpy", [(f(x), Int(n) * 4, "x"), (f(y), Int(n) * 4, "y")]) else { return }
                cpu.axpy(x, y, s, n)
            },
            scale: { [self] x, s, n in
                guard op("scale", [(f(x), Int(n) * 4, "x")]) else { return }
                cpu.scale(x, s, n)
            },
            mulInplace: { [self] x, y, n in
                guard op("mul_inplace", [(f(x), Int(n) * 4, "x"), (f(y), Int(n) * 4, "y")]) else { return }
                cpu.mulInplace!(x, y, n)
            },
            xentForwardBackward: { [self] l, lg, t, s, T, V in
                guard op("xent_forward_backward", [(f(l), Int(T) * 4, "losses"), (f(lg), Int(T * V) * 4, "logits"), (f(t), Int(T) * 4, "targets")]) else { return 0 }
                return cpu.xentForwardBackward(l, lg, t, s, T, V)
            },
            adamwStep: { [self] p, g, m, v, n, lr, b1, b2, eps, wd, step in
                guard op("adamw_step", [(f(p), Int(n) * 4, "param"), (f(g), Int(n) * 4, "grad"), (f(m), Int(n) * 4, "m"), (f(v), Int(n) * 4, "v")]) else { return }
                cpu.adamwStep(p, g, m, v, n, lr, b1, b2, eps, wd, step)
            },
            sumsq: { [self] x, n in
                guard op("sumsq", [(f(x), Int(n) * 4, "x")]) else { return .nan }
                return cpu.sumsq(x, n)
            },
            ropeCache: opSet == .cudaOps ? nil : KernelTable.RopeCache(
                table: { [self] tab, P, D, th in
                    guard op("rope_table", [(f(tab), Int(P * D) * 4, "tab")]) else { return }
                    cpu.ropeCache!.table(tab, P, D, th)
                },
                forward: { [self] x, pos, tab, T, H, D in
                    guard op("rope_forward_cached", [(f(x), Int(T * H * D) * 4, "x"), (f(pos), Int(T) * 4, "pos"), (f(tab), Int(D) * 4, "tab")]) else { return }
                    cpu.ropeCache!.forward(x, pos, tab, T, H, D)
                },
                backward: { [self] x, pos, tab, T, H, D in
                    guard op("rope_backward_cached", [(f(x), Int(T * H * D) * 4, "dx"), (f(pos), Int(T) * 4, "pos"), (f(tab), Int(D) * 4, "tab")]) else { return }
                    cpu.ropeCache!.backward(x, pos, tab, T, H, D)
                }),
            packed: opSet == .cudaOps ? nil : KernelTable.PackedGEMM(
                size: cpu.packed!.size,
                pack: { [self] p, w, t, K, N in
                    guard op("matmul_pack", [(f(p), Int(cpu.packed!.size(K, N)) * 4, "packed"), (w, Int(N) * rb(t, K), "w")]) else { return -1 }
                    return cpu.packed!.pack(p, w, t, K, N)
                },
                forward: { [self] o, x, p, b, T, K, N in
                    guard op("matmul_forward_packed", [(f(o), Int(T * N) * 4, "out"), (f(x), Int(T * K) * 4, "inp"),
                                                 (f(p), Int(cpu.packed!.size(K, N)) * 4, "packed"), (f(b), Int(N) * 4, "bias")]) else { return -1 }
                    return cpu.packed!.forward(o, x, p, b, T, K, N)
                }),
            family: opSet == .cudaOps ? nil : KernelTable.FamilyOps(
                gegluForward: { [self] o, g, u, n in
                    guard op("geglu_forward", [(f(o), Int(n) * 4, "out"), (f(g), Int(n) * 4, "gate"), (f(u), Int(n) * 4, "up")]) else { return }
                    cpu.family!.gegluForward(o, g, u, n)
                },
                gegluBackward: { [self] dg, du, dy, g, u, n in
                    guard op("geglu_backward", [(f(dg), Int(n) * 4, "dgate"), (f(du), Int(n) * 4, "dup"), (f(dy), Int(n) * 4, "dout"),
                                              (f(g), Int(n) * 4, "gate"), (f(u), Int(n) * 4, "up")]) else { return }
                    cpu.family!.gegluBackward(dg, du, dy, g, u, n)
                },
                attentionForwardTrainWindow: { [self] o, lse, q, k, v, T, H, Hkv, D, win in
                    guard op("attention_forward_train_window", [(f(o), Int(T * H * D) * 4, "out"), (f(lse), Int(T * H) * 4, "lse"),
                                                              (f(q), Int(T * H * D) * 4, "q"), (f(k), Int(T * Hkv * D) * 4, "k"),
                                                              (f(v), Int(T * Hkv * D) * 4, "v")]) else { return }
                    cpu.family!.attentionForwardTrainWindow(o, lse, q, k, v, T, H, Hkv, D, win)
                },
                attentionBackwardWindow: { [self] dq, dk, dv, dy, q, k, v, o, lse, T, H, Hkv, D, win in
                    let qb = Int(T * H * D) * 4, kb = Int(T * Hkv * D) * 4
                    guard op("attention_backward_window", [(f(dq), qb, "dq"), (f(dk), kb, "dk"), (f(dv), kb, "dv"), (f(dy), qb, "dout"),
                                                         (f(q), qb, "q"), (f(k), kb, "k"), (f(v), kb, "v"), (f(o), qb, "out"),
                                                         (f(lse), Int(T * H) * 4, "lse")]) else { return }
                    cpu.family!.attentionBackwardWindow(dq, dk, dv, dy, q, k, v, o, lse, T, H, Hkv, D, win)
                }))
    }
}
