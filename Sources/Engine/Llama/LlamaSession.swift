// LlamaSession — one sequence being decoded: its KV cache, position and scratch activations.

import CKernels

/// One sequence's inference state. Not thread-safe; use one session per concurrent sequence.
public final class LlamaSession {
    public let model: LlamaModel
    /// Tokens already in the KV cache.
    public internal(set) var position = 0
    private(set) var capacity = 0
    private(set) var kCache: [UnsafeMutablePointer<Float>] = []   // per layer [capacity, Hkv, D]
    private(set) var vCache: [UnsafeMutablePointer<Float>] = []
    let acts = Activations()
    private let maxCapacity: Int

    init(model: LlamaModel, capacity: Int) {
        self.model = model
        self.maxCapacity = max(1, capacity)
    }

    deinit {
        kCache.forEach { $0.deallocate() }
        vCache.forEach { $0.deallocate() }
    }

    /// Forgets everything in the cache.
    public func reset() { position = 0 }

    /// Grows the KV cache to hold `n` tokens (doubling, up to the context length).
    func reserve(_ n: Int) throws {
        guard n > capacity else { return }
        guard n <= maxCapacity else {
            throw EngineError(.invalidArgument, "sequence of \(n) tokens exceeds the session's context of \(maxCapacity)")
        }
        let newCap = min(maxCapacity, max(n, capacity * 2, 64))
        let kvDim = model.config.numKVHeads * model.config.headDim
        func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
            (0..<model.config.numLayers).map { l in
                let p = UnsafeMutablePointer<Float>.allocate(capacity: newCap * kvDim)
                if l < old.count {
                    p.update(from: old[l], count: position * kvDim)
                    old[l].deallocate()
                }
                return p
            }
        }
        kCache = grow(kCache)
        vCache = grow(vCache)
        capacity = newCap
    }

    /// Feeds `tokens` and returns the logits `[V]` after the last one.
    public func logits(for tokens: [Int32]) throws -> [Float] {
        let hidden = try model.forwardHidden([(self, tokens)], acts: acts)
        let C = model.config.hiddenSize
        var out = [Float](repeating: 0, count: model.config.vocabSize)
        try out.withUnsafeMutableBufferPointer {
            try model.lmHead(hidden + (tokens.count - 1) * C, rows: 1, into: $0.baseAddress!)
        }
        return out
    }
}

// MARK: - Scoring

/// Per-token log-likelihoods of a token sequence.
public struct TokenScores: Sendable, Equatable {
    public var ids: [Int32]
    /// `tokenLogprobs[i] = ln p(ids[i+1] | ids[0...i])`; `ids.count - 1` entries.
    public var tokenLogprobs: [Double]
    public var meanLoglik: Double { tokenLogprobs.isEmpty ? 0 : tokenLogprobs.reduce(0, +) / Double(tokenLogprobs.count) }
}

extension LlamaModel {
    /// Scores `ids` from an empty cache: the natural-log probability of each token given the ones before it.
    /// The LM head runs in chunks of rows so `[T, V]` logits never exist at once.
    public func score(ids: [Int32]) throws -> TokenScores {
        guard ids.count >= 2 else {
            throw EngineError(.invalidArgument, "scoring needs at least 2 tokens, got \(ids.count)")
        }
        let session = makeSession(contextLength: ids.count)
        let hidden = try forwardHidden([(session, ids)], acts: session.acts)
        let V = config.vocabSize, C = config.hiddenSize, chunk = 32, n = ids.count - 1
        var result = [Double](repeating: 0, count: n)
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: chunk * V)
        defer { logits.deallocate() }
        var start = 0
        while start < n {
            let rows = min(chunk, n - start)
            try lmHead(hidden + start * C, rows: rows, into: logits)
            ck_log_softmax_forward(logits, logits, Int64(rows), Int64(V))
            for r in 0..<rows { result[start + r] = Double(logits[r * V + Int(ids[start + r + 1])]) }
            start += rows
        }
        return TokenScores(ids: ids, tokenLogprobs: result)
    }
}

// MARK: - Batched prefill

extension LlamaModel {
    /// Runs several independent sequences through the model in one batch (their rows share every
    /// GEMM) and returns the logits `[V]` after the last token of each.
    public func lastLogits(batch: [[Int32]]) throws -> [[Float]] {
        let sessions = batch.map { makeSession(contextLength: $0.count) }
        let acts = Activations()
        let hidden = try forwardHidden(Array(zip(sessions, batch)).map { ($0, $1) }, acts: acts)
        let C = config.hiddenSize
        var row = 0
        return try batch.map { toks in
            row += toks.count
            var out = [Float](repeating: 0, count: config.vocabSize)
            try out.withUnsafeMutableBufferPointer { try lmHead(hidden + (row - 1) * C, rows: 1, into: $0.baseAddress!) }
            return out
        }
    }
}

// MARK: - Teacher-forced target scoring

extension LlamaModel {
    /// (ln p(want), whether want is the argmax — or ties it) of a logits row; `row` is overwritten by its
    /// log-softmax.
    static func judge(_ row: UnsafeMutablePointer<Float>, vocab V: Int, want: Int32) -> (Double, Bool) {
        let want = Int(want)
        var best = 0
        for v in 1..<V where row[v] > row[best] { best = v }
        let hit = best == want || row[best] == row[want]
        ck_log_softmax_forward(row, row, 1, Int64(V))
        return (Double(row[want]), hit)
    }

    /// `judge` of the LM head's logits for each hidden row `[C]`, the rows gathered through the LM head in
    /// chunks of 32 (one GEMM each).
    func judge(hiddenRows rows: [UnsafePointer<Float>], wants: [Int32]) throws -> [(Double, Bool)] {
        let C = config.hiddenSize, V = config.vocabSize, chunk = 32
        let gathered = UnsafeMutablePointer<Float>.allocate(capacity: chunk * C), logits = UnsafeMutablePointer<Float>.allocate(capacity: chunk * V)
        defer { gathered.deallocate(); logits.deallocate() }
        var out: [(Double, Bool)] = []
        out.reserveCapacity(rows.count)
        var start = 0
        while start < rows.count {
            let n = min(chunk, rows.count - start)
            for i in 0..<n { (gathered + i * C).update(from: rows[start + i], count: C) }
            try lmHead(gathered, rows: n, into: logits)
            for i in 0..<n { out.append(Self.judge(logits + i * V, vocab: V, want: wants[start + i])) }
            start += n
        }
        return out
    }
}

/// Log-probabilities and greedy agreement at chosen positions of a sequence.
public struct TargetScores: Sendable, Equatable {
    /// `ln p(ids[t] | ids[..<t])` for each requested position t.
    public var logprobs: [Double]
    /// Whether `ids[t]` is the argmax at position t — all true ⇔ greedy decoding reproduces the targets.
    public var greedyHits: [Bool]
}

extension LlamaModel {
    /// Scores positions `targets` (each t ≥ 1) of several sequences in one batched forward; the LM head
    /// runs only on the rows it needs.
    public func scoreTargets(_ batch: [(ids: [Int32], targets: [Int])]) throws -> [TargetScores] {
        guard !batch.isEmpty else { return [] }
        for (ids, targets) in batch {
            guard targets.allSatisfy({ $0 >= 1 && $0 < ids.count }) else {
                throw EngineError(.invalidArgument, "scoreTargets: target positions must be in 1..<\(ids.count)")
            }
        }
        let sessions = batch.map { makeSession(contextLength: $0.ids.count) }
        let acts = Activations()
        let hidden = try forwardHidden(Array(zip(sessions, batch.map(\.ids))).map { ($0, $1) }, acts: acts)
        let C = config.hiddenSize
        var rowsNeeded: [Int] = []
        var base = 0
        for (ids, targets) in batch {
            rowsNeeded += targets.map { base + $0 - 1 }
            base += ids.count
        }
        let flat = try judge(hiddenRows: rowsNeeded.map { UnsafePointer(hidden + $0 * C) },
                             wants: batch.flatMap { b in b.targets.map { b.ids[$0] } })
        var out: [TargetScores] = [], k = 0
        for b in batch {
            let slice = flat[k..<(k + b.targets.count)]
            out.append(TargetScores(logprobs: slice.map(\.0), greedyHits: slice.map(\.1)))
            k += b.targets.count
        }
        return out
    }
}
