// LlamaModel+PromptEval — one prefill per prompt, then everything an evaluation needs from that
// KV cache: teacher-forced scores of several continuations (the reference answer, each option of a
// multiple-choice set) and a greedy continuation, batched across prompts.
//
//   prefill   the head all prompts share once (its KV rows copied), then the rest of every prompt in one
//             batched forward → each prompt's cache + logits L0 after it
//   score     each continuation runs from a copy of its prompt's cache (all copies in one forward);
//             ln p(cont[j] | prompt, cont[..<j]) from L0 (j = 0) or the row after cont[j-1] (LM head in chunks)
//   generate  greedy, one row per unfinished sequence per step, all sequences in one forward and one
//             LM-head call (`decodeBatch`, GenerateBatch.swift); each chosen token's ln p is kept
//             (an answer's confidence)
//
// Same numbers as scoring `prompt + continuation` from scratch (`score(ids:)`) and as `generate`
// with temperature 0, without repeating the prompt's forward once per option.

import CKernels
import Foundation

/// A prompt and what to do with it.
public struct PromptTask: Sendable {
    public var prompt: [Int32]
    /// Token sequences to score after the prompt, each with the positions (indices into the
    /// continuation) whose log-probability and greedy agreement are wanted.
    public var continuations: [(ids: [Int32], targets: [Int])]
    /// Greedy tokens to generate (0: none).
    public var maxNewTokens: Int

    public init(prompt: [Int32], continuations: [(ids: [Int32], targets: [Int])], maxNewTokens: Int) {
        self.prompt = prompt
        self.continuations = continuations
        self.maxNewTokens = maxNewTokens
    }
}

/// What `evaluate(prompts:)` found for one prompt.
public struct PromptResult: Sendable, Equatable {
    /// One per continuation, in order.
    public var scores: [TargetScores]
    /// Greedy continuation, without the stop token that ended it.
    public var generated: [Int32]
    public var finishReason: FinishReason
    /// ln p of each greedy token as it was chosen: one per `generated` token, then (when a stop token
    /// ended it, `finishReason == .stop`) that stop token's. The mean is the answer's confidence.
    public var generatedLogprobs: [Double] = []
}

extension LlamaSession {
    /// A new session holding a copy of this one's cache (same position).
    func fork(extra: Int) throws -> LlamaSession {
        let s = LlamaSession(model: model, capacity: min(model.config.contextLength, position + extra))
        try s.reserve(position + max(1, extra))
        try s.adoptPrefix(of: self, count: position)
        return s
    }
}

extension LlamaModel {
    /// Runs `tasks` as one batch (see the file header). `stopTokens` (plus EOS) end generation. With
    /// `fastGeneration` the greedy decode steps run on the fast path (`GenerationOptions.fast`: not exact,
    /// docs/PERFORMANCE.md has the drift); the prefill and every score stay exact.
    public func evaluate(prompts tasks: [PromptTask], stopTokens: Set<Int32> = [], fastGeneration: Bool = false) throws -> [PromptResult] {
        guard !tasks.isEmpty else { return [] }
        let V = config.vocabSize, C = config.hiddenSize
        for t in tasks {
            guard !t.prompt.isEmpty else { throw EngineError(.invalidArgument, "evaluate: empty prompt") }
            for c in t.continuations where !c.targets.allSatisfy({ $0 >= 0 && $0 < c.ids.count }) {
                throw EngineError(.invalidArgument, "evaluate: continuation targets must be in 0..<\(c.ids.count)")
            }
        }
        // Prefill: one forward over every prompt; L0 = logits after each prompt's last token.
        let longest = tasks.map { t in max(t.maxNewTokens + 1, t.continuations.map(\.ids.count).max() ?? 0) }
        let sessions = tasks.indices.map { makeSession(contextLength: tasks[$0].prompt.count + longest[$0]) }
        let acts = Activations()
        // Prompts that begin alike (an eval's system turn and instruction) compute that head once; each
        // session copies its KV rows (PrefixPool.swift's reasoning: rows are computed alike in any batch).
        let shared = Self.sharedHead(tasks.map(\.prompt))
        if shared > 0 {
            let head = makeSession(contextLength: shared)
            _ = try forwardHidden([(head, Array(tasks[0].prompt[..<shared]))], acts: acts)
            for s in sessions { try s.adoptPrefix(of: head, count: shared) }
        }
        let hidden = try forwardHidden(Array(zip(sessions, tasks.map { Array($0.prompt[shared...]) })).map { ($0, $1) }, acts: acts)
        var l0 = [Float](repeating: 0, count: tasks.count * V)
        var row = 0
        try l0.withUnsafeMutableBufferPointer { buf in
            for (i, t) in tasks.enumerated() {
                row += t.prompt.count - shared
                try lmHead(hidden + (row - 1) * C, rows: 1, into: buf.baseAddress! + i * V)
            }
        }

        // Continuations from forked caches, in one forward.
        var scores = tasks.map { [TargetScores](repeating: .init(logprobs: [], greedyHits: []), count: $0.continuations.count) }
        var fed: [(task: Int, cont: Int, session: LlamaSession, tokens: [Int32])] = []
        for (i, t) in tasks.enumerated() {
            for (j, c) in t.continuations.enumerated() where c.ids.count > 1 {
                fed.append((i, j, try sessions[i].fork(extra: c.ids.count), Array(c.ids.dropLast())))
            }
        }
        let logits = UnsafeMutablePointer<Float>.allocate(capacity: V)
        defer { logits.deallocate() }
        func judge(_ row: UnsafeMutablePointer<Float>, _ want: Int32) -> (Double, Bool) { Self.judge(row, vocab: V, want: want) }
        if !fed.isEmpty {
            let h = try forwardHidden(fed.map { ($0.session, $0.tokens) }, acts: acts)
            // Every judged position: L0 for j = 0, else the hidden row after cont[j-1] (through the LM head in
            // chunks: `judge(hiddenRows:wants:)`).
            var judged: [(fed: Int, row: Int?, want: Int32)] = []
            var base = 0
            for (k, f) in fed.enumerated() {
                let c = tasks[f.task].continuations[f.cont]
                for j in c.targets { judged.append((k, j == 0 ? nil : base + j - 1, c.ids[j])) }
                base += f.tokens.count
            }
            var fromRows = try self.judge(hiddenRows: judged.compactMap { $0.row.map { UnsafePointer(h + $0 * C) } },
                                     wants: judged.filter { $0.row != nil }.map(\.want))[...]
            let results = judged.map { item -> (Double, Bool) in
                if item.row != nil { return fromRows.removeFirst() }
                logits.update(from: l0.withUnsafeBufferPointer { $0.baseAddress! + fed[item.fed].task * V }, count: V)
                return judge(logits, item.want)
            }
            var k = 0
            for f in fed {
                let n = tasks[f.task].continuations[f.cont].targets.count
                let slice = results[k..<(k + n)]
                scores[f.task][f.cont] = TargetScores(logprobs: slice.map(\.0), greedyHits: slice.map(\.1))
                k += n
            }
        }
        for (i, t) in tasks.enumerated() {
            for (j, c) in t.continuations.enumerated() where c.ids.count == 1 {
                var lp: [Double] = [], hits: [Bool] = []
                for _ in c.targets {
                    logits.update(from: l0.withUnsafeBufferPointer { $0.baseAddress! + i * V }, count: V)
                    let (p, hit) = judge(logits, c.ids[0])
                    lp.append(p); hits.append(hit)
                }
                scores[i][j] = TargetScores(logprobs: lp, greedyHits: hits)
            }
        }

        // Greedy generation from the prefilled caches: generateBatch's loop, one forward per step.
        var generated = [[Int32]](repeating: [], count: tasks.count)
        var lps = [[Double]](repeating: [], count: tasks.count)
        var reason = [FinishReason](repeating: .length, count: tasks.count)
        let live = tasks.indices.filter { tasks[$0].maxNewTokens > 0 }.map { i -> DecodeSequence in
            let s = DecodeSequence(index: i, promptIDs: tasks[i].prompt, session: sessions[i],
                                   options: GenerationOptions(maxTokens: tasks[i].maxNewTokens, stopTokens: stopTokens, fast: fastGeneration),
                                   eos: tokenizer.eosID)
            s.logits = Array(l0[(i * V)..<((i + 1) * V)])
            s.recordsLogprobs = true
            return s
        }
        try decodeBatch(waiting: [], prompts: [], live: live, maxBatch: max(1, live.count), prefillRows: 0) { s in
            generated[s.index] = s.out
            reason[s.index] = s.reason
            lps[s.index] = s.chosenLogprobs
        }
        return tasks.indices.map {
            PromptResult(scores: scores[$0], generated: generated[$0], finishReason: reason[$0], generatedLogprobs: lps[$0])
        }
    }
}

extension LlamaModel {
    /// Tokens every prompt of a batch begins with, when worth computing once (two or more prompts, at
    /// least 16 tokens: more than the fused small-T GEMV takes), leaving each prompt one token or more; else 0.
    public static func sharedHead(_ prompts: [[Int32]]) -> Int {
        guard prompts.count >= 2, let first = prompts.first else { return 0 }
        var n = prompts.map(\.count).min()! - 1
        for p in prompts.dropFirst() {
            var i = 0
            while i < n, p[i] == first[i] { i += 1 }
            n = i
        }
        return n >= 16 ? n : 0
    }
}
