// FastDecodeDriftTests — how far the fast inference path (Kernels.withFastInference: int8 decode steps,
// gemv_q8.c; bf16-product prefill, gemm_bf16.c, where the CPU gains from it) moves the real models'
// greedy decoding from the exact float32 path: SmolLM2-135M Q4_1 always, Qwen2.5-Coder-0.5B and
// Gemma-3-270M Q4_K_M when `scripts/setup --model …` fetched them (scripts/test does).
//
// Per prompt: one session prefills exactly, the other on the fast path; then 32 greedy steps
// teacher-forced on the exact path's tokens, each decode step once exact and once fast. Recorded:
// |Δ log p| of the exact path's chosen token under the two distributions (mean and max) and the
// fraction of steps whose argmax is the same token. A free-running fast greedy decode is also
// compared position by position (informational: one early flip changes everything after it).
import Engine
import Foundation
import Testing

private let modelFiles = ["SmolLM2-135M-Instruct.Q4_1.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "gemma-3-270m-q4_k_m.gguf"]

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

    @Test("fast path stays close to exact greedy decoding", arguments: modelFiles)
    func fastPathStaysCloseToExactGreedy(file: String) throws {
        let path = TestPaths.root.appendingPathComponent("models/\(file)").path
        guard FileManager.default.fileExists(atPath: path) else {
            print("skipped: models/\(file) not fetched (scripts/setup --model …)")
            return
        }
        let model = try LlamaModel.load(path: path)
        var deltas: [Double] = [], prefillDeltas: [Double] = [], agree = 0, total = 0, freeSame = 0
        for text in Self.prompts {
            let prompt = model.tokenizer.encodeAddingBOS(text)
            let exact = model.makeSession(), fast = model.makeSession()
            var le = try exact.logits(for: prompt)
            var lf = try Kernels.withFastInference { try fast.logits(for: prompt) }
            #expect(try model.makeSession().logits(for: prompt) == le, "exact prefill must not depend on an earlier fast one")
            var exactIDs: [Int32] = []
            for step in 0..<Self.steps {
                let id = argmax(le)
                if argmax(lf) == id { agree += 1 }
                total += 1
                let d = abs(logprob(le, id) - logprob(lf, id))
                deltas.append(d)
                if step == 0 { prefillDeltas.append(d) }
                exactIDs.append(id)
                le = try exact.logits(for: [id])
                lf = try Kernels.withFastInference { try fast.logits(for: [id]) }
            }
            // free-running fast greedy from the same prompt (generate with `fast`)
            let free = try model.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: Self.steps, stopAtEOS: false, fast: true))
            freeSame += zip(exactIDs, free.ids).filter { $0 == $1 }.count
        }
        let mean = deltas.reduce(0, +) / Double(deltas.count), maxD = deltas.max() ?? .nan
        let frac = Double(agree) / Double(total)
        print(String(format: "fast path drift, %@ (decode %@, prefill GEMM %@; %d prompts × %d steps): mean |Δ log p| %.5f, max %.5f (after the prefill: mean %.5f); same greedy token %d/%d (%.1f%%); free-running identical %d/%d",
                     file, Kernels.fastDecodeKernel, Kernels.fastGEMMKernel, Self.prompts.count, Self.steps, mean, maxD,
                     prefillDeltas.reduce(0, +) / Double(prefillDeltas.count), agree, total, 100 * frac, freeSame, total))
        #expect(frac >= 0.9, "\(file): the fast path picks the exact path's greedy token in only \(agree)/\(total) steps")
        #expect(mean > 0, "\(file): the fast path changed nothing: it is not being used")
        #expect(mean < 0.05, "\(file): mean |Δ log p| \(mean) is far above the activation-rounding scale")
    }
}
