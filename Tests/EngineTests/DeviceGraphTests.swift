// DeviceGraphTests — the training graph on a device without a GPU: through `CheckedHostDevice` (CPU
// kernels behind a tracked "device" allocator that checks every op's and copy's pointers), a training
// step must give exactly the CPU graph's loss and gradients, and a whole training run (dropout,
// gradient accumulation, clipping, AdamW, checkpoints, resume) exactly the CPU run's log and adapter —
// with no pointer violation and no leaked device allocation. With the CUDA table's op set (uncached
// RoPE, plain LM-head GEMM, CUDA weight types) results agree to float rounding, and weight types the
// CUDA GEMMs do not decode are refused up front. The built libtunecuda.so must export every tcu_
// symbol the CUDA table resolves.
#if canImport(Glibc)
import Glibc
#endif
import Engine
import Foundation
import Testing

private let realLib = TestPaths.root.appendingPathComponent("cuda/build/libtunecuda.so").path

@Suite("Training graph on a checked device")
struct DeviceGraphTests {
    @Test("one step on the checked device = the CPU graph, bit for bit (f32, q4_1, bf16 products, dropout)",
          arguments: [(GGMLType.f32, false, 0.0), (.q4_1, false, 0.0), (.q4_1, true, 0.0), (.f32, false, 0.25)])
    func stepMatchesCPU(type: GGMLType, bf16: Bool, dropout: Double) throws {
        let model = try LoRATestModel.load(type: type)
        let seqs = LoRATestModel.sequences
        let cpu = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(dropout: dropout), sequences: seqs,
                                            dropoutSeed: 5, step: 3, bf16Products: bf16)
        let dev = CheckedHostDevice(.cpuOps)
        let got = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(dropout: dropout), sequences: seqs,
                                            dropoutSeed: 5, step: 3, bf16Products: bf16, backend: dev)
        #expect(dev.violations.isEmpty, "\(dev.violations)")
        #expect(got.loss == cpu.loss)
        #expect(got.targets == cpu.targets)
        #expect(got.grad == cpu.grad, "max |Δgrad| \(zip(got.grad, cpu.grad).map { abs($0 - $1) }.max() ?? 0)")
        let c = dev.counts
        #expect(c.ops > 100 && c.h2d > 10 && c.d2h > 0, "\(c)")
        #expect(dev.liveAllocations == 0, "every device allocation is freed with the graph")
    }

    @Test("the CUDA op set (uncached RoPE, unpacked LM head) agrees to rounding, with no pointer violation")
    func cudaOpSetMatches() throws {
        for type in [GGMLType.f32, .q4_1] {
            let model = try LoRATestModel.load(type: type)
            let seqs = LoRATestModel.sequences
            let cpu = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(dropout: 0.2), sequences: seqs, dropoutSeed: 5)
            let dev = CheckedHostDevice(.cudaOps)
            let got = try LoRAGradients.compute(model: model, lora: try LoRATestModel.adapter(dropout: 0.2), sequences: seqs,
                                                dropoutSeed: 5, backend: dev)
            #expect(dev.violations.isEmpty, "\(dev.violations)")
            #expect(abs(got.loss - cpu.loss) <= 1e-6 * abs(cpu.loss), "\(got.loss) vs \(cpu.loss)")
            var num = 0.0, den = 0.0
            for (a, b) in zip(got.grad, cpu.grad) { num += Double(a - b) * Double(a - b); den += Double(b) * Double(b) }
            #expect(num <= 1e-10 * den, "gradient NMSE \(num / den)")
        }
    }

    @Test("a training run on the checked device = the CPU run: log, evals, adapter bytes, and resume")
    func trainerMatchesCPU() throws {
        let m = try LoRATestModel.load(type: .q4_1)
        var o = TrainerFixture.options(steps: 6)
        o.checkpointEvery = 2
        o.evalEvery = 3
        let cpuDir = try TestPaths.tempDir(), devDir = try TestPaths.tempDir()
        let cpu = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: cpuDir.path).run()
        let dev = CheckedHostDevice(.cpuOps)
        var calls = 0
        let part = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: devDir.path, backend: dev)
            .run(shouldStop: { calls += 1; return calls == 3 })
        #expect(part.interrupted && part.steps == 3)
        let trainer = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: devDir.path, backend: dev)
        #expect(trainer.backendName == "checked-host" && trainer.backendNotice == nil)
        let rest = try trainer.run()
        #expect(dev.violations.isEmpty, "\(dev.violations)")
        #expect(rest.log == cpu.log)
        #expect(rest.evals == cpu.evals)
        let file = "adapter_model.safetensors"
        #expect(try Data(contentsOf: devDir.appendingPathComponent(file)) == Data(contentsOf: cpuDir.appendingPathComponent(file)))
    }

    @Test("host pointers given to device ops and copies the wrong way are caught")
    func violationsAreCaught() throws {
        let dev = CheckedHostDevice(.cudaOps)
        let k = try dev.kernelTable()
        let d = try k.allocFloats(16)
        let host = UnsafeMutablePointer<Float>.allocate(capacity: 16)
        defer { host.deallocate() }
        host.initialize(repeating: 1, count: 16)
        try k.upload(d, from: UnsafePointer(host), count: 16)
        #expect(dev.violations.isEmpty)
        k.addInplace(d, host, 16)                    // host pointer into a device op
        #expect(dev.violations.first?.hasPrefix("add_inplace: y (64 bytes at 0x") == true, "\(dev.violations)")
        k.addInplace(d + 8, d, 16)                   // runs past the end of its allocation
        #expect(dev.violations.count == 2)
        #expect(throws: EngineError.self) { try k.sync("test") }   // sync reports the latest violation
        #expect(throws: EngineError.self) {                 // declared h2d, is d2h: refused
            try k.copy(UnsafeMutableRawPointer(host), UnsafeRawPointer(d), bytes: 64, .hostToDevice)
        }
        #expect(dev.violations.count == 3)
        #expect(dev.violations.last?.hasPrefix("copy hostToDevice of 64 bytes: source 0x") == true, "\(dev.violations)")
        k.free(UnsafeMutableRawPointer(d))
        #expect(dev.liveAllocations == 0)
    }

    @Test("weight types the CUDA GEMMs do not decode are refused up front; auto falls back to the CPU with a notice")
    func unsupportedTypeRefused() throws {
        let m = try LoRATestModel.load(type: .f32)
        var o = TrainerFixture.options(steps: 1)
        o.baseWeights = .nf4
        do {
            _ = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: try TestPaths.tempDir().path,
                                backend: CheckedHostDevice(.cudaOps))
            Issue.record("expected an error")
        } catch let e as EngineError {
            #expect(e.kind == .unsupported)
            #expect(e.message.hasPrefix("not supported on checked-host yet: weight type nf4 (blk.0.attn_q)"), "\(e.message)")
        }
        let t = try LoRATrainer(model: m, options: o, data: TrainerFixture.data(), output: try TestPaths.tempDir().path,
                                backend: CheckedHostDevice(.cudaOps), fallbackToCPU: true)
        #expect(t.backendName == "cpu")
        #expect(t.backendNotice?.hasSuffix("; running on CPU") == true)
    }

    /// Every symbol the CUDA kernel table resolves must be exported by the built library (it loads
    /// without a GPU; tunecuda_init is not called).
    @Test(.enabled(if: FileManager.default.fileExists(atPath: realLib), "cuda/build/libtunecuda.so not built (scripts/setup-cuda && make -C cuda)"))
    func cudaLibraryExportsTheTable() throws {
        guard let h = dlopen(realLib, RTLD_LAZY | RTLD_LOCAL) else {
            Issue.record("cannot dlopen \(realLib): \(dlerror().map { String(cString: $0) } ?? "?")")
            return
        }
        typealias Version = @convention(c) () -> Int32
        let v = dlsym(h, "tunecuda_abi_version").map { unsafeBitCast($0, to: Version.self)() }
        #expect(v == CUDABackend.abiVersion)
        for name in KernelTable.cudaSymbols { #expect(dlsym(h, name) != nil, "\(realLib) does not export \(name)") }
    }
}
