// ContinuousBatcher — continuous batching for a server: one decoding thread per model whose every
// step is ONE batched forward over all live sequences (GenerateBatch's step), with requests joining
// between steps (their prompts prefilled in the same forward, at most `prefillRows` prompt tokens a
// step) and leaving as soon as they finish or their client stops listening. Each request gets its text
// piece by piece, as `generate`'s `onText` would, and its `Generation` at the end.
//
//     let b = ContinuousBatcher(model: m, maxBatch: 16)
//     b.submit(BatchPrompt(promptIDs: ids, options: opts), onText: { piece in send(piece); return !gone }) { result in … }
//
// Per sequence the decisions are `generate`'s (the sampler, seed, stop tokens, lengths); with
// temperature 0 the tokens are `generate`'s whenever the logits are (see GenerateBatch.swift).
// A joining prompt that begins like a live or recently finished sequence copies that sequence's KV rows
// for the shared tokens and prefills only the rest (PrefixPool.swift: automatic prefix caching).

import Foundation

public final class ContinuousBatcher: @unchecked Sendable {
    public typealias TextHandler = @Sendable (String) -> Bool
    public typealias DoneHandler = @Sendable (Result<Generation, any Error>) -> Void

    private struct Request {
        var prompt: BatchPrompt
        var onText: TextHandler
        var onDone: DoneHandler
    }

    private final class Live {
        let seq: DecodeSequence
        let request: Request
        var emitted = 0          // UTF-8 bytes of `seq.text` already handed to onText
        var stopped = false      // onText returned false
        init(seq: DecodeSequence, request: Request) { self.seq = seq; self.request = request }
    }

    public let model: LlamaModel
    public let maxBatch: Int
    public let prefillRows: Int
    private let cond = NSCondition()
    private var inbox: [Request] = []
    private var closed = false
    private var thread: Thread?
    /// Sequences decoded in the busiest step so far, steps taken, and prompt tokens whose KV rows were
    /// copied from an earlier sequence instead of computed (for tests and metrics).
    private var stats = (steps: 0, peak: 0, reused: 0)
    private let pool: PrefixPool

    /// `packedWeightBytes`: the budget of weights packed once for the tile GEMM (PackedWeights.swift), which
    /// a step of a few rows per sequence would otherwise dequantize and pack on every call; 0 leaves it off.
    /// `prefixCache`: finished sequences whose KV caches are kept for prompts that begin like them (0: none;
    /// live sequences are always candidates).
    public init(model: LlamaModel, maxBatch: Int = 16, prefillRows: Int = 1024, packedWeightBytes: Int = 1 << 30, prefixCache: Int = 16) {
        self.model = model
        pool = PrefixPool(capacity: prefixCache)
        self.maxBatch = max(1, maxBatch)
        self.prefillRows = max(1, prefillRows)
        if packedWeightBytes > 0 { model.packWeights(upToBytes: packedWeightBytes) }
    }

    /// Queues a prompt. `onText` gets each piece of text (return false to end the sequence: it leaves the
    /// batch before the next step, finishing with `.stop`); `onDone` gets the generation or the error (a
    /// prompt that cannot run fails at once). Both are called on the decoding thread: keep them short.
    /// Returns false, calling neither, when the batcher is shut down (the caller generates elsewhere).
    @discardableResult
    public func submit(_ prompt: BatchPrompt, onText: @escaping TextHandler, onDone: @escaping DoneHandler) -> Bool {
        if let problem = check(prompt) { onDone(.failure(problem)); return true }
        cond.lock()
        if closed { cond.unlock(); return false }
        inbox.append(Request(prompt: prompt, onText: onText, onDone: onDone))
        if thread == nil {
            let t = Thread { self.loop() }   // holds the batcher until shutdown() lets the loop end
            t.stackSize = 8 << 20
            t.name = "tune-batcher"
            thread = t
            t.start()
        }
        cond.signal()
        cond.unlock()
        return true
    }

    /// Steps taken, the most sequences one step decoded, and prompt tokens taken from the prefix cache.
    public var counters: (steps: Int, peakBatch: Int, reusedPromptTokens: Int) {
        cond.lock(); defer { cond.unlock() }; return (stats.steps, stats.peak, stats.reused)
    }

    /// Stops the decoding thread once the sequences in flight are done; later submissions fail.
    public func shutdown() {
        cond.lock()
        closed = true
        cond.broadcast()
        cond.unlock()
    }

    private func check(_ p: BatchPrompt) -> EngineError? {
        let c = model.config
        if p.promptIDs.isEmpty { return EngineError(.invalidArgument, "the prompt is empty") }
        if p.options.maxTokens < 0 { return EngineError(.invalidArgument, "max tokens must be >= 0, got \(p.options.maxTokens)") }
        if p.promptIDs.count + p.options.maxTokens > c.contextLength {
            return EngineError(.invalidArgument, "\(p.promptIDs.count) prompt tokens + max tokens \(p.options.maxTokens) exceed the context length \(c.contextLength)")
        }
        if let bad = p.promptIDs.first(where: { $0 < 0 || Int($0) >= c.vocabSize }) {
            return EngineError(.invalidArgument, "token id \(bad) is outside the vocabulary [0, \(c.vocabSize))")
        }
        return nil
    }

    /// Hands `l` the text decoded since the last call (`stopped` once its consumer wants no more).
    private func emit(_ l: Live, final: Bool) {
        let text = final ? l.seq.result().text : l.seq.text
        let bytes = text.utf8.count
        guard bytes > l.emitted else { return }
        let piece = String(decoding: text.utf8.dropFirst(l.emitted), as: UTF8.self)
        l.emitted = bytes
        if !l.stopped, !l.request.onText(piece) { l.stopped = true }
    }

    private func finish(_ l: Live) {
        pool.add(tokens: l.seq.promptIDs + l.seq.out, session: l.seq.session)
        emit(l, final: true)
        var g = l.seq.result()
        if l.stopped { g.finishReason = .stop }
        l.request.onDone(.success(g))
    }

    private func loop() {
        let scratch = DecodeScratch(model: model)
        var ready: [Live] = []        // sequences whose logits are current
        var waiting: [Request] = []
        while true {
            cond.lock()
            while inbox.isEmpty && ready.isEmpty && waiting.isEmpty && !closed { cond.wait() }
            waiting += inbox
            inbox = []
            let done = closed && ready.isEmpty && waiting.isEmpty
            cond.unlock()
            if done { return }

            var feed: [(live: Live, tokens: [Int32])] = []
            for l in ready {
                let next = l.stopped ? nil : l.seq.step(model.tokenizer)
                if let next {
                    emit(l, final: false)
                    if l.stopped { finish(l) } else { feed.append((l, [next])) }
                } else {
                    finish(l)
                }
            }
            var rows = 0, reused = 0
            let donors = waiting.isEmpty ? [] : feed.map { (tokens: $0.live.seq.promptIDs + $0.live.seq.out, session: $0.live.seq.session) }
            while feed.count < maxBatch, let r = waiting.first {
                let p = r.prompt
                if p.options.maxTokens == 0 {   // nothing to generate: no prefill
                    waiting.removeFirst()
                    finish(Live(seq: DecodeSequence(index: 0, promptIDs: p.promptIDs, session: model.makeSession(contextLength: 1),
                                                    options: p.options, eos: model.tokenizer.eosID), request: r))
                    continue
                }
                let l = Live(seq: DecodeSequence(index: 0, prompt: p, model: model), request: r)
                var tokens = p.promptIDs
                if let (donor, n) = pool.donor(for: p.promptIDs, live: donors), (try? l.seq.session.adoptPrefix(of: donor, count: n)) != nil {
                    tokens = Array(p.promptIDs[n...])
                }
                if rows > 0, rows + tokens.count > prefillRows { break }
                waiting.removeFirst()
                reused += p.promptIDs.count - tokens.count
                feed.append((l, tokens))
                rows += tokens.count
            }
            if feed.isEmpty { ready = []; continue }
            do {
                try scratch.step(feed.map { ($0.live.seq, $0.tokens) })
            } catch {
                for f in feed { f.live.request.onDone(.failure(error)) }
                ready = []
                continue
            }
            cond.lock()
            stats.steps += 1
            stats.peak = max(stats.peak, feed.count)
            stats.reused += reused
            cond.unlock()
            ready = feed.map(\.live)
        }
    }
}
