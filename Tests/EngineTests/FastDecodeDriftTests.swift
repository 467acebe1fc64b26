// FastDecodeDriftTests — how far the opt-in int8 decode path (Kernels.withFastDecode, gemv_q8.c)
// moves the real SmolLM2 model's greedy decoding from the exact float32 path.
//
// Per prompt: prefill on the exact path (both sessions), then 32 greedy steps teacher-forced on
// the exact path's tokens, each decode step once exact and once under withFastDecode. Recorded:
// |Δ log p| of the exact path's chosen token under the two distributions (mean and max) and the
// fraction of steps whose argmax is the same token. A free-running int8 greedy decode is also
// compared position by position (informational: one early flip changes everything after it).
import Engine
import Foundation
import Testing

@Suite(.enabled(if: smolLMAvailable, "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)"))
struct FastDecodeDriftTests {
    private static let prompts = [
        "The capital of France is",
        "def fibonacci(n):\n    ",
        "Once upon a time, in a small village by the sea,",
        "<|im_start|>user\nWhat is 17 times 3?<|im_end|>\n<|im_start|>assistant\n",
        "Photosynthesis is the process by which plants",
        "<|im_start|>user\nWrite a haiku about autumn.<|im_end|>\n<|im_start|>assistant\n",
    ]
    private static let steps = 32

    private func argmax(_ v: [Float]) -> Int32 {
        var best = 0
        for i in v.indices where v[i] > v[best] { best = i }
        return Int32(best)
    }

    private func logprob(_ logits: [Float], _ id: Int32) -> Double {
        let m = Double(logits.max()!)
        let lse = m + log(logits.reduce(0.0) { $0 + exp(Double($1) - m) })
        return Double(logits[Int(id)]) - lse
    }

    @Test func int8DecodeStaysCloseToExactGreedy() throws {
        let model = try LlamaModel.load(path: smolLMPath)
        var deltas: [Double] = [], agree = 0, total = 0, freeSame = 0
        for text in Self.prompts {
            let prompt = model.tokenizer.encode(text)
            let exact = model.makeSession(), fast = model.makeSession()
            var le = try exact.logits(for: prompt)
            var lf = try fast.logits(for: prompt) // prefill exact on both
            #expect(le == lf, "prefill must not depend on the switch")
            var exactIDs: [Int32] = []
            for _ in 0..<Self.steps {
                let id = argmax(le)
                if argmax(lf) == id { agree += 1 }
                total += 1
                deltas.append(abs(logprob(le, id) - logprob(lf, id)))
                exactIDs.append(id)
                le = try exact.logits(for: [id])
                lf = try Kernels.withFastDecode { try fast.logits(for: [id]) }
            }
            // free-running int8 greedy from the same prompt
            let free = model.makeSession()
            var l = try free.logits(for: prompt)
            var freeIDs: [Int32] = []
            for _ in 0..<Self.steps {
                let id = argmax(l)
                freeIDs.append(id)
                l = try Kernels.withFastDecode { try free.logits(for: [id]) }
            }
            freeSame += zip(exactIDs, freeIDs).filter { $0 == $1 }.count
        }
        let mean = deltas.reduce(0, +) / Double(deltas.count), maxD = deltas.max() ?? .nan
        let frac = Double(agree) / Double(total)
        print(String(format: "fast decode drift (%@, %d prompts × %d steps): mean |Δ log p| %.5f, max %.5f, same greedy token %d/%d (%.1f%%); free-running identical %d/%d",
                     Kernels.fastDecodeKernel, Self.prompts.count, Self.steps, mean, maxD, agree, total, 100 * frac, freeSame, total))
        #expect(frac >= 0.9, "int8 decode picks the exact path's greedy token in only \(agree)/\(total) steps")
        #expect(mean > 0, "the int8 path changed nothing: it is not being used")
        #expect(mean < 0.05, "mean |Δ log p| \(mean) is far above the activation-rounding scale")
    }
}
