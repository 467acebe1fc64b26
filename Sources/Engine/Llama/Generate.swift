// Generate — autoregressive decoding with a KV cache: greedy or seeded temperature / top-p sampling.

import Foundation

/// Decoding options. `temperature == 0` is greedy (argmax; ties go to the lowest id).
public struct GenerationOptions: Sendable, Equatable {
    public var maxTokens: Int
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64
    /// Extra token ids that end generation (and EOS, unless `stopAtEOS` is false).
    public var stopTokens: Set<Int32>
    /// Whether the model's EOS token ends generation (benchmarks turn it off to decode a fixed count).
    public var stopAtEOS: Bool
    /// Like Hugging Face's `min_new_tokens`: stop tokens are masked out until this many were generated.
    public var minNewTokens: Int
    /// OpenAI's `logit_bias`: added to a token's logit before sampling (not to the logits reported to
    /// `onToken`/`onStop`, which are the model's own, as vLLM reports them).
    public var logitBias: [Int32: Float]
    /// The prompt and every decode step through the fast path (`Kernels.withFastInference`: int8 decode
    /// steps, bf16-product prefill where the CPU gains from it): faster, not exact (docs/PERFORMANCE.md
    /// has the drift). Off: the exact float32 path that scoring uses.
    public var fast: Bool

    public init(maxTokens: Int = 128, temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0,
                stopTokens: Set<Int32> = [], stopAtEOS: Bool = true, minNewTokens: Int = 0, logitBias: [Int32: Float] = [:],
                fast: Bool = false) {
        self.fast = fast
        self.logitBias = logitBias
        self.stopAtEOS = stopAtEOS
        self.minNewTokens = minNewTokens
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.stopTokens = stopTokens
    }
}

extension GenerationOptions {
    /// The next token from `logits` with `logitBias` added.
    func sample(_ sampler: inout Sampler, _ logits: [Float]) -> Int32 {
        guard !logitBias.isEmpty else { return sampler.sample(logits) }
        var biased = logits
        for (id, b) in logitBias where id >= 0 && Int(id) < biased.count { biased[Int(id)] += b }
        return sampler.sample(biased)
    }
}

/// Why generation ended.
public enum FinishReason: String, Sendable, Codable { case stop, length }

/// The result of `LlamaModel.generate`.
public struct Generation: Sendable {
    public var promptIDs: [Int32]
    public var ids: [Int32]              // generated ids, excluding a final stop token
    public var text: String
    public var finishReason: FinishReason
    public var promptSeconds: Double
    public var generateSeconds: Double
}

/// Picks the next token from logits.
public struct Sampler: Sendable {
    public var temperature: Float
    public var topP: Float
    private var rng: SplitMix64

    public init(temperature: Float, topP: Float, seed: UInt64) {
        self.temperature = temperature
        self.topP = topP
        self.rng = SplitMix64(seed: seed)
    }

    public mutating func sample(_ logits: [Float]) -> Int32 {
        if temperature <= 0 { return Self.argmax(logits) }
        let maxL = logits.max() ?? 0
        var probs = logits.map { Double(($0 - maxL) / temperature) }.map { exp($0) }
        let z = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= z }
        var order = Array(probs.indices)
        order.sort { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : $0 < $1 }
        // Nucleus: the smallest prefix whose mass reaches top_p (always at least one token).
        var kept = 0, mass = 0.0
        while kept < order.count {
            mass += probs[order[kept]]
            kept += 1
            if mass >= Double(topP) { break }
        }
        var u = rng.nextUnitDouble() * mass
        for i in 0..<kept {
            u -= probs[order[i]]
            if u < 0 { return Int32(order[i]) }
        }
        return Int32(order[kept - 1])
    }

    public static func argmax(_ x: [Float]) -> Int32 {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return Int32(best)
    }
}

// MARK: - Decoding loop

extension LlamaModel {
    /// Generates a continuation of `promptIDs`. `onText` receives decoded text as it becomes valid
    /// UTF-8 (for streaming to a terminal); return `false` from it to stop early.
    public func generate(promptIDs: [Int32], options: GenerationOptions,
                         onText: (String) -> Bool = { _ in true }) throws -> Generation {
        guard !promptIDs.isEmpty else { throw EngineError(.invalidArgument, "generate: the prompt is empty") }
        guard options.maxTokens >= 0 else {
            throw EngineError(.invalidArgument, "max tokens must be >= 0, got \(options.maxTokens)")
        }
        let session = makeSession(contextLength: min(config.contextLength, promptIDs.count + options.maxTokens + 1))
        let t0 = DispatchTime.now()
        let logits = try options.fast ? Kernels.withFastInference { try session.logits(for: promptIDs) } : session.logits(for: promptIDs)
        let t1 = DispatchTime.now()
        var g = try generate(continuing: session, logits: logits, promptIDs: promptIDs, options: options, onText: onText)
        g.promptSeconds = Double(t1.uptimeNanoseconds - t0.uptimeNanoseconds) / 1e9
        return g
    }

    /// Continues a generation from a session that already holds `promptIDs`, `logits` being the logits
    /// after its last token. `onToken` sees each generated token with the logits it was chosen from;
    /// a stop token (EOS or `stopTokens`) that ends the generation goes to `onStop` instead, with its
    /// logits (it is neither in `ids` nor in the text).
    public func generate(continuing session: LlamaSession, logits first: [Float], promptIDs: [Int32], options: GenerationOptions,
                         onToken: (Int32, [Float]) -> Void = { _, _ in },
                         onStop: (Int32, [Float]) -> Void = { _, _ in },
                         onText: (String) -> Bool = { _ in true }) throws -> Generation {
        guard options.maxTokens >= 0 else {
            throw EngineError(.invalidArgument, "max tokens must be >= 0, got \(options.maxTokens)")
        }
        var sampler = Sampler(temperature: options.temperature, topP: options.topP, seed: options.seed)
        var stops = options.stopTokens
        if options.stopAtEOS, let eos = tokenizer.eosID { stops.insert(eos) }
        var masked = stops
        if let eos = tokenizer.eosID { masked.insert(eos) }

        let t1 = DispatchTime.now()
        var logits = first
        var out: [Int32] = [], pending: [UInt8] = [], text = ""
        var reason = FinishReason.length
        while out.count < options.maxTokens {
            if out.count < options.minNewTokens {
                for id in masked where Int(id) < logits.count { logits[Int(id)] = -.infinity }
            }
            let next = options.sample(&sampler, logits)
            if stops.contains(next) { onStop(next, logits); reason = .stop; break }
            onToken(next, logits)
            out.append(next)
            pending += tokenizer.decodeBytes([next])
            let (piece, rest) = UTF8Stream.split(pending)
            pending = rest
            if !piece.isEmpty {
                text += piece
                if !onText(piece) { reason = .stop; break }
            }
            if out.count == options.maxTokens { break }
            logits = try options.fast ? Kernels.withFastInference { try session.logits(for: [next]) } : session.logits(for: [next])
        }
        if !pending.isEmpty {
            let tail = String(decoding: pending, as: UTF8.self)
            text += tail
            _ = onText(tail)
        }
        let t2 = DispatchTime.now()
        return Generation(promptIDs: promptIDs, ids: out, text: text, finishReason: reason, promptSeconds: 0,
                          generateSeconds: Double(t2.uptimeNanoseconds - t1.uptimeNanoseconds) / 1e9)
    }
}

/// Splits a byte buffer into the longest prefix that is complete UTF-8 and the incomplete tail
/// (at most 3 bytes of a multi-byte character still to come).
public enum UTF8Stream {
    public static func split(_ bytes: [UInt8]) -> (String, [UInt8]) {
        var cut = bytes.count
        // Walk back over at most 3 continuation bytes to the last lead byte.
        var i = bytes.count - 1, back = 0
        while i >= 0, back < 4 {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {   // lead or ASCII byte
                let need = b < 0x80 ? 1 : b >> 5 == 0b110 ? 2 : b >> 4 == 0b1110 ? 3 : b >> 3 == 0b11110 ? 4 : 1
                if bytes.count - i < need { cut = i }
                break
            }
            i -= 1
            back += 1
        }
        return (String(decoding: bytes[..<cut], as: UTF8.self), Array(bytes[cut...]))
    }
}
