// OpenBLASCoreTests — the GEMM bench measures OpenBLAS on the best core the CPU supports: the
// override decision on CPU flag sets (AVX-512 Xeon detected as Haswell/Prescott, AMD Zen 4, AVX2-only,
// unknown), and, where libopenblas is installed, the real unload / OPENBLAS_CORETYPE / reload path
// from a simulated mis-detection.
import Foundation
import Testing
@testable import TuneKit

/// Whether libopenblas.so.0 loads (closed again: the core is chosen when the library initializes,
/// so a handle left open here would pin the first load's core).
private let openBLASInstalled: Bool = {
    guard let h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL) else { return false }
    dlclose(h)
    return true
}()

@Suite("OpenBLAS core for the GEMM bench")
struct OpenBLASCoreTests {
    let avx512: Set<String> = ["avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    @Test("a core lacking an ISA the CPU has is overridden with the best core; a right one is kept")
    func overrideDecision() {
        let xeon = OpenBLASCore.CPU(vendor: "GenuineIntel", flags: avx512)
        #expect(xeon.bestCore == "SkylakeX")
        #expect(OpenBLASCore.override(detected: "Haswell", cpu: xeon) == "SkylakeX")
        #expect(OpenBLASCore.override(detected: "Prescott", cpu: xeon) == "SkylakeX")
        #expect(OpenBLASCore.override(detected: "SkylakeX", cpu: xeon) == nil)
        #expect(OpenBLASCore.override(detected: "Cooperlake", cpu: xeon) == nil)
        let zen4 = OpenBLASCore.CPU(vendor: "AuthenticAMD", flags: avx512.union(["avx512_bf16"]))
        #expect(zen4.bestCore == "Cooperlake")
        #expect(OpenBLASCore.override(detected: "Zen", cpu: zen4) == "Cooperlake")
        #expect(OpenBLASCore.override(detected: "SkylakeX", cpu: zen4) == "Cooperlake")
        #expect(OpenBLASCore.override(detected: "COOPERLAKE", cpu: zen4) == nil)
        let zen2 = OpenBLASCore.CPU(vendor: "AuthenticAMD", flags: ["avx", "avx2", "fma"])
        #expect(zen2.bestCore == "Zen")
        #expect(OpenBLASCore.override(detected: "Zen", cpu: zen2) == nil)
        #expect(OpenBLASCore.override(detected: "Haswell", cpu: zen2) == nil)
        #expect(OpenBLASCore.override(detected: "Barcelona", cpu: zen2) == "Zen")
        let unknown = OpenBLASCore.CPU(vendor: "", flags: [])
        #expect(unknown.bestCore == nil && OpenBLASCore.override(detected: "Prescott", cpu: unknown) == nil)
    }

    @Test("a simulated mis-detection is reloaded on the CPU's best core",
          .enabled(if: openBLASInstalled && ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil
                   && OpenBLASCore.CPU.current().bestCore != nil, "needs libopenblas.so.0 and a known x86 CPU"))
    func reloadsOnBestCore() throws {
        let cpu = OpenBLASCore.CPU.current()
        let loaded = try #require(OpenBLASCore.load(cpu: cpu, simulatedDetection: "Prescott"))
        #expect(loaded.core?.lowercased() == cpu.bestCore?.lowercased(), "\(loaded.note)")
        #expect(loaded.note.contains("set by the bench") && loaded.note.contains("Prescott"), "\(loaded.note)")
        #expect(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, "the override is not left in the environment")
    }
}
