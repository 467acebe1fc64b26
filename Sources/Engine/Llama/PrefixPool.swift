// PrefixPool — automatic prefix caching for continuous batching (vLLM's `enable_prefix_caching`, llama.cpp
// server's `cache_prompt`): the KV caches of recent sequences, so a request whose tokens begin like one of
// them copies those KV rows instead of recomputing them. Chat requests share long prefixes (the template's
// system turn; every earlier turn of a conversation, answers included), and in a busy server prefill of the
// joining prompts is what bounds throughput.
//
// A sequence's cache holds rows for `tokens.prefix(session.position)`, and rows are only ever appended, so
// rows [0, n) stay valid while the sequence decodes on. The rows copied were computed in another step's
// batch; the tile GEMM computes each row alike in any batch, so the result is the same prefill up to the
// rounding differences batching already allows (GenerateBatch.swift).

import Foundation

final class PrefixPool {
    private var entries: [(tokens: [Int32], session: LlamaSession)] = []   // most recent last
    /// Sequences kept (their KV caches stay allocated while they are here).
    let capacity: Int
    /// Shortest shared prefix worth copying.
    let minimum: Int

    init(capacity: Int, minimum: Int = 4) {
        self.capacity = max(0, capacity)
        self.minimum = max(1, minimum)
    }

    /// Remembers `session`, whose cache holds `tokens` (only its first `session.position` count), as a donor.
    func add(tokens: [Int32], session: LlamaSession) {
        guard capacity > 0, session.position >= minimum else { return }
        entries.removeAll { $0.session === session }
        entries.append((tokens, session))
        if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
    }

    /// The donor sharing the longest prefix with `prompt` among the pool and `live` (at least `minimum`
    /// tokens, and at most `prompt.count - 1`: the last prompt token is always fed, for its logits).
    func donor(for prompt: [Int32], live: [(tokens: [Int32], session: LlamaSession)]) -> (session: LlamaSession, count: Int)? {
        var best: (LlamaSession, Int)?
        for (tokens, session) in entries + live {
            let limit = min(prompt.count - 1, session.position, tokens.count)
            var n = 0
            while n < limit, tokens[n] == prompt[n] { n += 1 }
            if n >= minimum, n > (best?.1 ?? 0) { best = (session, n) }
        }
        return best
    }
}

extension LlamaSession {
    /// Copies the first `n` KV rows of `donor` (same model) into this empty session.
    func adoptPrefix(of donor: LlamaSession, count n: Int) throws {
        precondition(donor.model === model && position == 0 && n <= donor.position)
        try reserve(n)
        let kvDim = model.config.numKVHeads * model.config.headDim
        for l in 0..<model.config.numLayers {
            kCache[l].update(from: donor.kCache[l], count: n * kvDim)
            vCache[l].update(from: donor.vCache[l], count: n * kvDim)
        }
        position = n
    }
}
