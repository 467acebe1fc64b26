// DropoutMaskTests — LoRA dropout masks come from `ck_dropout_mask` (threaded, vectorized): the same
// values as LoRADropout's counter-based hash written out in Swift, for any thread count and ISA,
// keeping about 1 − p of the elements.
import CKernels
@testable import Engine
import Testing

@Suite("LoRA dropout masks")
struct DropoutMaskTests {
    @Test("ck_dropout_mask = the Swift hash, bit for bit, on every ISA and thread count", arguments: [0.05, 0.1, 0.5])
    func kernelMatchesReference(p: Double) {
        let d = LoRADropout(p: Float(p), seed: 0xD40F)
        let n = 3 * 16_384 + 77 // several chunks and a ragged end
        let want = d.maskReference(count: n, step: 5, layer: 3, target: .up)
        let saved = (ck_get_threads(), ck_isa_active())
        defer { ck_set_threads(saved.0); ck_set_isa(saved.1) }
        for isa in [CK_ISA_AVX512, CK_ISA_AVX2, CK_ISA_REF].map({ Int32($0.rawValue) }) where isa <= ck_isa_detected() {
            #expect(ck_set_isa(isa) == 0)
            for threads in [1, 2, 3] {
                ck_set_threads(Int32(threads))
                var got = [Float](repeating: .nan, count: n)
                got.withUnsafeMutableBufferPointer { d.mask($0.baseAddress!, count: n, step: 5, layer: 3, target: .up) }
                #expect(got == want, "isa \(isa), \(threads) threads")
            }
        }
        let kept = Double(want.filter { $0 != 0 }.count) / Double(n)
        #expect(abs(kept - (1 - p)) < 0.01, "kept \(kept)")
        #expect(want.allSatisfy { $0 == 0 || $0 == 1 / Float(1 - p) })
        // Another step, layer or target gives another mask.
        #expect(d.maskReference(count: 1000, step: 6, layer: 3, target: .up) != Array(want.prefix(1000)))
    }
}
