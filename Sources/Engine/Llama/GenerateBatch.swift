// GenerateBatch — many prompts decoded at once: every step is ONE batched forward over all live
// sequences (one row each; prompts joining the batch add their prefill rows to the same forward), then
// ONE LM-head call over the rows that need logits. Each sequence keeps its own KV cache, sampler, stop
// tokens and length; a finished sequence leaves the batch and the next waiting prompt takes its place.
//
// Per sequence the decisions are `generate`'s (same sampler and seed, same stop / min-new-tokens rules,
// same text assembly), so with temperature 0 the tokens are `generate`'s whenever the logits are: the
// GEMM path computes each row with the same fmaf chain whatever the batch, so on float weights they are
// bit-identical; the fused small-T quantized GEMV (Q4_0/Q4_1/Q8_0, T ≤ 8) accumulates T = 1 differently
// from T > 1, so there the logits agree to float rounding and only an exact near-tie could pick differently.
// Prompts whose options ask for the fast path (`GenerationOptions.fast`) get it for the steps where every
// live sequence does (int8 for one row, bf16 products for many where the CPU gains from it): not exact.

import Foundation

/// One prompt of a batched generation and how to decode it.
public struct BatchPrompt: Sendable {
    public var promptIDs: [Int32]
    public var options: GenerationOptions
    public init(promptIDs: [Int32], options: GenerationOptions) {
        self.promptIDs = promptIDs
        self.options = options
    }
}

/// One sequence being decoded inside a batch.
final class DecodeSequence {
    let index: Int
    let promptIDs: [Int32]
    let session: LlamaSession
    let options: GenerationOptions
    var logits: [Float] = []
    private var sampler: Sampler
    private let stops: Set<Int32>
    private let masked: Set<Int32>
    private(set) var out: [Int32] = []
    private var pending: [UInt8] = []
    private(set) var text = ""
    private(set) var reason = FinishReason.length
    /// When set, `chosenLogprobs` gets ln p of every chosen token (a stop token included) under the
    /// logits it was chosen from: an answer's confidence in eval. Off by default (it costs a pass over V).
    var recordsLogprobs = false
    private(set) var chosenLogprobs: [Double] = []
    let started = DispatchTime.now()

    init(index: Int, promptIDs: [Int32], session: LlamaSession, options: GenerationOptions, eos: Int32?) {
        self.index = index
        self.promptIDs = promptIDs
        self.session = session
        self.options = options
        sampler = Sampler(temperature: options.temperature, topP: options.topP, seed: options.seed)
        var s = options.stopTokens
        if options.stopAtEOS, let eos { s.insert(eos) }
        stops = s
        if let eos { s.insert(eos) }
        masked = s
    }

    /// Chooses the next token from `logits` as `generate` does. Returns the token to feed next, or nil
    /// when the sequence is finished (a stop token, or `maxTokens` reached).
    func step(_ tokenizer: BPETokenizer) -> Int32? {
        guard out.count < options.maxTokens else { return nil }
        if out.count < options.minNewTokens {
            for id in masked where Int(id) < logits.count { logits[Int(id)] = -.infinity }
        }
        let next = options.sample(&sampler, logits)
        if recordsLogprobs { chosenLogprobs.append(Self.logprob(of: next, in: logits)) }
        if stops.contains(next) { reason = .stop; return nil }
        out.append(next)
        pending += tokenizer.decodeBytes([next])
        let (piece, rest) = UTF8Stream.split(pending)
        pending = rest
        text += piece
        return out.count == options.maxTokens ? nil : next
    }

    /// row[id] − logsumexp(row), in Double.
    static func logprob(of id: Int32, in row: [Float]) -> Double {
        let top = Double(row.max() ?? 0)
        var sum = 0.0
        for x in row { sum += exp(Double(x) - top) }
        return Double(row[Int(id)]) - top - log(sum)
    }

    func result() -> Generation {
        let tail = pending.isEmpty ? "" : String(decoding: pending, as: UTF8.self)
        let secs = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        return Generation(promptIDs: promptIDs, ids: out, text: text + tail, finishReason: reason, promptSeconds: 0, generateSeconds: secs)
    }
}

extension LlamaModel {
    /// Generates a continuation of every prompt (see the file header), at most `maxBatch` sequences live
    /// at once; prompts join in order, at most `prefillRows` prompt tokens per step (a longer prompt joins
    /// alone). Results are in the order of `prompts`. `promptSeconds` is 0 and `generateSeconds` the time
    /// from joining to finishing (steps are shared, so per-sequence times overlap).
    public func generateBatch(_ prompts: [BatchPrompt], maxBatch: Int = 16, prefillRows: Int = 2048) throws -> [Generation] {
        guard maxBatch >= 1 else { throw EngineError(.invalidArgument, "generateBatch: maxBatch must be >= 1, got \(maxBatch)") }
        for (i, p) in prompts.enumerated() {
            guard !p.promptIDs.isEmpty else { throw EngineError(.invalidArgument, "generateBatch: prompt \(i) is empty") }
            guard p.options.maxTokens >= 0 else {
                throw EngineError(.invalidArgument, "generateBatch: prompt \(i): max tokens must be >= 0, got \(p.options.maxTokens)")
            }
            // Checked up front: a failure inside a shared step would lose every sequence of the batch.
            guard p.promptIDs.count + p.options.maxTokens <= config.contextLength else {
                throw EngineError(.invalidArgument, "generateBatch: prompt \(i): \(p.promptIDs.count) tokens + max tokens \(p.options.maxTokens) "
                                  + "exceed the context length \(config.contextLength)")
            }
            if let bad = p.promptIDs.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
                throw EngineError(.invalidArgument, "generateBatch: prompt \(i): token id \(bad) is outside the vocabulary [0, \(config.vocabSize))")
            }
        }
        var results = [Generation?](repeating: nil, count: prompts.count)
        try decodeBatch(waiting: Array(prompts.indices), prompts: prompts, live: [], maxBatch: maxBatch, prefillRows: prefillRows) {
            results[$0.index] = $0.result()
        }
        return results.map { $0! }
    }

    /// The same options for every prompt.
    public func generateBatch(prompts: [[Int32]], options: GenerationOptions, maxBatch: Int = 16) throws -> [Generation] {
        try generateBatch(prompts.map { BatchPrompt(promptIDs: $0, options: options) }, maxBatch: maxBatch)
    }

    /// The decoding loop. `live` sequences already hold their prompt and have `logits` set; `waiting`
    /// (indices into `prompts`) join as room frees up. `finished` is called once per sequence.
    func decodeBatch(waiting: [Int], prompts: [BatchPrompt], live initial: [DecodeSequence], maxBatch: Int,
                     prefillRows: Int, finished: (DecodeSequence) -> Void) throws {
        let eos = tokenizer.eosID
        let scratch = DecodeScratch(model: self)
        var queue = waiting[...]
        // Sequences whose logits are current: take a step; the ones that go on are fed their token.
        var ready = initial
        while true {
            var feed: [(seq: DecodeSequence, tokens: [Int32])] = []
            for s in ready {
                if let next = s.step(tokenizer) { feed.append((s, [next])) } else { finished(s) }
            }
            var rows = 0
            while feed.count < maxBatch, let i = queue.first {
                let p = prompts[i]
                if rows > 0, rows + p.promptIDs.count > prefillRows { break }
                queue = queue.dropFirst()
                if p.options.maxTokens == 0 {   // nothing to generate: no prefill
                    finished(DecodeSequence(index: i, promptIDs: p.promptIDs, session: makeSession(contextLength: 1), options: p.options, eos: eos))
                    continue
                }
                feed.append((DecodeSequence(index: i, prompt: p, model: self), p.promptIDs))
                rows += p.promptIDs.count
            }
            if feed.isEmpty { break }
            try scratch.step(feed)
            ready = feed.map(\.seq)
        }
    }
}

extension DecodeSequence {
    /// A sequence for `prompt` with a KV cache just long enough for it and its answer.
    convenience init(index: Int, prompt p: BatchPrompt, model: LlamaModel) {
        let session = model.makeSession(contextLength: min(model.config.contextLength, p.promptIDs.count + p.options.maxTokens + 1))
        self.init(index: index, promptIDs: p.promptIDs, session: session, options: p.options, eos: model.tokenizer.eosID)
    }
}

/// The buffers of one shared decoding step, reused across steps: the activations, the gathered last
/// hidden row of each sequence, and their logits.
final class DecodeScratch {
    let model: LlamaModel
    private let acts = Activations()
    private var gathered = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var logits = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var capacity = 0

    init(model: LlamaModel) { self.model = model }
    deinit { gathered.deallocate(); logits.deallocate() }

    /// ONE batched forward over every sequence's new tokens (a prompt's rows, or the one token it chose),
    /// then ONE LM-head call over each sequence's last row; each sequence's `logits` are set. On the fast
    /// path (`Kernels.withFastInference`) when every sequence's options ask for it, else exact.
    func step(_ feed: [(seq: DecodeSequence, tokens: [Int32])]) throws {
        if !feed.isEmpty, feed.allSatisfy({ $0.seq.options.fast }) {
            try Kernels.withFastInference { try forward(feed) }
        } else {
            try forward(feed)
        }
    }

    private func forward(_ feed: [(seq: DecodeSequence, tokens: [Int32])]) throws {
        let C = model.config.hiddenSize, V = model.config.vocabSize
        let hidden = try model.forwardHidden(feed.map { ($0.seq.session, $0.tokens) }, acts: acts)
        if feed.count > capacity {
            gathered.deallocate(); logits.deallocate()
            capacity = feed.count
            gathered = .allocate(capacity: capacity * C)
            logits = .allocate(capacity: capacity * V)
        }
        var row = 0
        for (k, f) in feed.enumerated() {
            row += f.tokens.count
            (gathered + k * C).update(from: hidden + (row - 1) * C, count: C)
        }
        try model.lmHead(gathered, rows: feed.count, into: logits)
        for (k, f) in feed.enumerated() { f.seq.logits = Array(UnsafeBufferPointer(start: logits + k * V, count: V)) }
    }
}
