// LoRALinear+Table — the LoRA side path of the training graph through a `KernelTable`, on device
// pointers: the same ops in the same order as `addForward`/`addBackward` (LoRALinear.swift, which
// inference keeps on host memory), with the parameters, gradients and scratch in device memory.
//
//   forward:  u = x̃·Aᵀ  [T, r];   y += s · u·Bᵀ
//   backward: dB += s · dYᵀ·u;    du = s · dY·B;   dA += duᵀ·x̃;   dx += du·A (⊙ dropout mask)

/// Device scratch for the LoRA side paths: `u`, `tmp`, `tmp2` of `rows · max(width, r)` floats.
final class DeviceLoRAScratch {
    let k: KernelTable
    private(set) var capacity = 0
    private(set) var u: FPtr?, tmp: FPtr?, tmp2: FPtr?

    init(_ k: KernelTable) { self.k = k }
    deinit { release() }

    private func release() {
        for p in [u, tmp, tmp2] { if let p { k.free(UnsafeMutableRawPointer(p)) } }
        u = nil; tmp = nil; tmp2 = nil
    }

    func reserve(rows: Int, rank r: Int, width: Int) throws {
        let need = rows * max(width, r)
        guard need > capacity else { return }
        release()
        u = try k.allocFloats(need); tmp = try k.allocFloats(need); tmp2 = try k.allocFloats(need)
        capacity = need
    }
}

extension LoRAAdapter {
    /// `out [rows, slot.out] += scale · (inp·Aᵀ)·Bᵀ` with A, B inside device `params` (this adapter's
    /// layout); u = inp·Aᵀ is written to `saveU` [rows, r]. Every pointer is device memory of `k`.
    func addForward(_ s: LoRASlot, k: KernelTable, params: FPtr, out: FPtr, inp: CFPtr, rows: Int,
                    scratch: DeviceLoRAScratch, saveU: FPtr) throws {
        let r = rank, f32 = Int32(GGMLType.f32.rawValue)
        try scratch.reserve(rows: rows, rank: r, width: s.outFeatures)
        _ = k.matmulForward(saveU, inp, params + s.aOffset, f32, nil, Int64(rows), Int64(s.inFeatures), Int64(r))
        _ = k.matmulForward(scratch.tmp, saveU, params + s.bOffset, f32, nil, Int64(rows), Int64(r), Int64(s.outFeatures))
        k.axpy(out, scratch.tmp, scale, Int64(rows * s.outFeatures))
    }

    /// Backward of the device `addForward`: accumulates into device `grad` (params layout) and, when
    /// `dinp` is non-nil, adds du·A to it (times `dinpMask` elementwise when given: dropout).
    func addBackward(_ s: LoRASlot, k: KernelTable, params: FPtr, grad: FPtr, dout: CFPtr, u: CFPtr, inp: CFPtr,
                     dinp: FPtr?, rows: Int, scratch: DeviceLoRAScratch, dinpMask: CFPtr? = nil) throws {
        let r = rank, sc = scale, f32 = Int32(GGMLType.f32.rawValue)
        try scratch.reserve(rows: rows, rank: r, width: max(s.outFeatures, s.inFeatures))
        guard let su = scratch.u, let du = scratch.tmp, let t = scratch.tmp2 else { throw EngineError(.internal, "LoRA scratch not allocated") }
        // dB += s·dYᵀ·u  ==  dYᵀ·(s·u)
        try k.copyFloats(su, from: u, count: rows * r)
        k.scale(su, sc, Int64(rows * r))
        k.matmulBackwardWeight(grad + s.bOffset, dout, su, Int64(rows), Int64(r), Int64(s.outFeatures))
        // du = s·dY·B  [rows, r]
        _ = k.matmulBackwardInput(du, dout, params + s.bOffset, f32, Int64(rows), Int64(r), Int64(s.outFeatures), 0)
        k.scale(du, sc, Int64(rows * r))
        // dA += duᵀ·x̃
        k.matmulBackwardWeight(grad + s.aOffset, du, inp, Int64(rows), Int64(s.inFeatures), Int64(r))
        guard let dinp else { return }
        if let dinpMask {
            guard let mul = k.mulInplace else { throw EngineError(.unsupported, "not supported on \(k.name) yet: LoRA dropout (no mul_inplace)") }
            _ = k.matmulBackwardInput(t, du, params + s.aOffset, f32, Int64(rows), Int64(s.inFeatures), Int64(r), 0)
            mul(t, dinpMask, Int64(rows * s.inFeatures))
            k.addInplace(dinp, t, Int64(rows * s.inFeatures))
        } else {
            _ = k.matmulBackwardInput(dinp, du, params + s.aOffset, f32, Int64(rows), Int64(s.inFeatures), Int64(r), 1)
        }
    }
}
