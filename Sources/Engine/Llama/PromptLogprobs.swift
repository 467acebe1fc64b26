// PromptLogprobs — a prompt's per-token log-probabilities with the top-k alternatives at each position
// (what OpenAI's legacy completions return for `echo: true, logprobs: k`), from the exact float path:
// the same forward and the same chunked LM head as `score(ids:)`, so `logprobs` are `score(ids:)`'s
// numbers bit for bit. The prefilled session is handed back with the logits after the last token (as
// `generate` computes them), so a completion continues from the same cache without a second prefill.

import CKernels

/// One alternative at a position: a token id and its natural-log probability.
public struct TokenLogprob: Sendable, Equatable {
    public var id: Int32
    public var logprob: Double
    public init(id: Int32, logprob: Double) {
        self.id = id
        self.logprob = logprob
    }
}

/// What `scorePrompt` found.
public struct PromptLogprobs {
    public var ids: [Int32]
    /// `logprobs[i] = ln p(ids[i+1] | ids[0...i])` (`ids.count - 1` entries), equal to `score(ids:)`'s.
    public var logprobs: [Double]
    /// The `topK` most likely tokens at each of those positions, most likely first (ties: lower id first).
    public var top: [[TokenLogprob]]
    /// The session holding `ids` in its KV cache, ready to continue.
    public var session: LlamaSession
    /// Logits `[V]` after the last token of `ids`, computed as `generate` computes its first ones.
    public var lastLogits: [Float]
}

extension LlamaModel {
    /// Prefills `ids` into a fresh session with room for `extra` more tokens and scores every position
    /// (see the file header). `topK` may be 0.
    public func scorePrompt(ids: [Int32], topK: Int, extra: Int = 0) throws -> PromptLogprobs {
        guard !ids.isEmpty else { throw EngineError(.invalidArgument, "scorePrompt: the prompt is empty") }
        guard topK >= 0 else { throw EngineError(.invalidArgument, "scorePrompt: topK must be >= 0, got \(topK)") }
        let session = makeSession(contextLength: min(config.contextLength, ids.count + max(0, extra) + 1))
        let hidden = try forwardHidden([(session, ids)], acts: session.acts)
        let V = config.vocabSize, C = config.hiddenSize, chunk = 32, n = ids.count - 1
        var logprobs = [Double](repeating: 0, count: n)
        var top: [[TokenLogprob]] = Array(repeating: [], count: n)
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: chunk * V)
        defer { logits.deallocate() }
        // The same row chunks as score(ids:): each LM-head call sees the same rows, so the same bits.
        var start = 0
        while start < n {
            let rows = min(chunk, n - start)
            try lmHead(hidden + start * C, rows: rows, into: logits)
            ck_log_softmax_forward(logits, logits, Int64(rows), Int64(V))
            for r in 0..<rows {
                let row = UnsafeBufferPointer(start: logits + r * V, count: V)
                logprobs[start + r] = Double(row[Int(ids[start + r + 1])])
                top[start + r] = Self.topK(row, k: topK)
            }
            start += rows
        }
        var last = [Float](repeating: 0, count: V)
        try last.withUnsafeMutableBufferPointer { try lmHead(hidden + n * C, rows: 1, into: $0.baseAddress!) }
        return PromptLogprobs(ids: ids, logprobs: logprobs, top: top, session: session, lastLogits: last)
    }

    /// `ln softmax(logits)[want]` and the top `k` alternatives of one logits row, through the same
    /// log-softmax kernel as scoring.
    public static func logprobs(_ logits: [Float], want: Int32, topK k: Int) -> (logprob: Double, top: [TokenLogprob]) {
        var row = logits
        return row.withUnsafeMutableBufferPointer { b in
            ck_log_softmax_forward(b.baseAddress!, b.baseAddress!, 1, Int64(b.count))
            let lp = want >= 0 && Int(want) < b.count ? Double(b[Int(want)]) : -.infinity
            return (lp, topK(UnsafeBufferPointer(b), k: k))
        }
    }

    /// The `k` largest entries of `row` as (index, value), largest first; ties go to the lower index.
    static func topK(_ row: UnsafeBufferPointer<Float>, k: Int) -> [TokenLogprob] {
        guard k > 0 else { return [] }
        var best: [(Int, Float)] = []
        best.reserveCapacity(k + 1)
        for (i, v) in row.enumerated() {
            if best.count == k, let worst = best.last, !(v > worst.1) { continue }
            var at = best.count
            while at > 0, v > best[at - 1].1 { at -= 1 }
            best.insert((i, v), at: at)
            if best.count > k { best.removeLast() }
        }
        return best.map { TokenLogprob(id: Int32($0.0), logprob: Double($0.1)) }
    }
}
