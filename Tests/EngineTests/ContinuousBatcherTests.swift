// ContinuousBatcherTests — continuous batching (a server's decoding loop): requests submitted while
// others are mid-decode join the running batch and give `generate`'s tokens and text (tiny float
// model: bit-identical logits), their text arrives piece by piece and adds up to the result, a consumer
// that stops listening ends only its own sequence, bad prompts fail alone, and steps really are shared.
import Engine
import Foundation
import Testing

private final class Collected: @unchecked Sendable {
    let lock = NSLock()
    var pieces: [Int: String] = [:]
    var results: [Int: Result<Generation, any Error>] = [:]
    let done = DispatchGroup()
    func add(_ i: Int, _ p: String) { lock.lock(); pieces[i, default: ""] += p; lock.unlock() }
    func finish(_ i: Int, _ r: Result<Generation, any Error>) { lock.lock(); results[i] = r; lock.unlock(); done.leave() }
}

@Suite struct ContinuousBatcherTests {
    @Test func requestsJoiningMidDecodeGetGeneratesTokens() throws {
        let (m, dir) = try tinyModel(.f32)
        defer { try? FileManager.default.removeItem(at: dir) }
        let prompts = GenerateBatchTests.prompts(vocab: m.config.vocabSize)
        // The first runs 120 steps, so the others (submitted microseconds later) join it mid-decode.
        let options = prompts.indices.map { i in
            i == 0 ? GenerationOptions(maxTokens: 120, stopAtEOS: false)
                : i % 3 == 2 ? GenerationOptions(maxTokens: 9, temperature: 0.8, topP: 0.9, seed: UInt64(7 + i), stopAtEOS: false)
                : GenerationOptions(maxTokens: [0, 5, 0, 17, 30, 3, 12][i], stopAtEOS: i % 2 == 0)
        }
        let b = ContinuousBatcher(model: m, maxBatch: 4, prefillRows: 16)
        defer { b.shutdown() }
        let c = Collected()
        for (i, p) in prompts.enumerated() {
            c.done.enter()
            b.submit(BatchPrompt(promptIDs: p, options: options[i]), onText: { c.add(i, $0); return true }) { c.finish(i, $0) }
        }
        #expect(c.done.wait(timeout: .now() + 120) == .success)
        for (i, p) in prompts.enumerated() {
            let one = try m.generate(promptIDs: p, options: options[i])
            let g = try #require(try c.results[i]?.get())
            #expect(g.ids == one.ids && g.text == one.text && g.finishReason == one.finishReason, "prompt \(i)")
            #expect((c.pieces[i] ?? "") == one.text, "prompt \(i): the pieces add up to the text")
        }
        let counters = b.counters
        #expect(counters.peakBatch > 1 && counters.peakBatch <= 4, "\(counters)")
        #expect(prompts.indices.map { c.results[$0].flatMap { try? $0.get().ids.count } ?? 0 }.reduce(0, +) > 40)
    }

    @Test func aConsumerThatStopsEndsOnlyItsSequence() throws {
        let (m, dir) = try tinyModel(.q8_0)
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = ContinuousBatcher(model: m, maxBatch: 8)
        defer { b.shutdown() }
        let c = Collected()
        let opts = GenerationOptions(maxTokens: 20, stopAtEOS: false)
        let long = Array((0..<m.config.contextLength).map { Int32($0 % 50) })
        let prompts: [[Int32]] = [[1, 2, 3], [4, 5], long]
        for (i, p) in prompts.enumerated() {
            c.done.enter()
            b.submit(BatchPrompt(promptIDs: p, options: opts), onText: { piece in
                c.add(i, piece)
                return i != 0 || (c.lock.withLock { c.pieces[0]?.count ?? 0 } < 3)   // request 0 hangs up after a few characters
            }) { c.finish(i, $0) }
        }
        #expect(c.done.wait(timeout: .now() + 120) == .success)
        let stopped = try #require(try c.results[0]?.get()), full = try #require(try c.results[1]?.get())
        #expect(stopped.finishReason == .stop && stopped.ids.count < 20, "\(stopped.ids.count) tokens")
        #expect(full.ids.count == 20 && full.finishReason == .length)
        #expect(full.ids == (try m.generate(promptIDs: [4, 5], options: opts)).ids)
        // A prompt that cannot fit fails alone, naming the limit.
        guard case .failure(let e)? = c.results[2] else { Issue.record("the over-long prompt did not fail"); return }
        #expect("\(e)".contains("context length"), "\(e)")
        // Shut down: a new prompt is refused (neither handler runs), so the caller can generate elsewhere.
        b.shutdown()
        let accepted = b.submit(BatchPrompt(promptIDs: [1, 2], options: opts), onText: { _ in Issue.record("onText ran"); return true }) { _ in
            Issue.record("onDone ran")
        }
        #expect(!accepted)
    }
}

/// Packed weight panels (PackedWeights.swift) change speed, not results: logits of multi-row forwards
/// (a prompt, a batched step) are bit-identical with and without them, under each ISA this CPU runs,
/// on float and quantized weights; the budget bounds what is packed.
@Suite(.serialized) struct PackedWeightsTests {
    @Test(arguments: [GGMLType.f32, .q8_0, .q4_1])
    func packedPanelsGiveTheSameBits(_ type: GGMLType) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-packed-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: p, config: .tiny, seed: 5, weightType: type)
        let plain = try LlamaModel.load(path: p), packed = try LlamaModel.load(path: p)
        packed.packWeights(upToBytes: 64 << 20)
        let before = Kernels.active
        defer { try? Kernels.set(isa: before) }
        let prompts = GenerateBatchTests.prompts(vocab: plain.config.vocabSize)
        for isa in [Kernels.ISA.avx2, .avx512] {
            guard (try? Kernels.set(isa: isa)) != nil else { continue }   // a path this CPU lacks
            let long = (0..<40).map { Int32(($0 * 13 + 5) % plain.config.vocabSize) }   // 40 rows: the tile path
            #expect(try plain.makeSession().logits(for: long) == packed.makeSession().logits(for: long), "\(isa)")
            let opts = GenerationOptions(maxTokens: 6, stopAtEOS: false)
            let a = try plain.generateBatch(prompts: prompts, options: opts, maxBatch: 16)
            let b = try packed.generateBatch(prompts: prompts, options: opts, maxBatch: 16)
            #expect(a.map(\.ids) == b.map(\.ids), "\(isa)")
        }
        #expect(packed.packedWeightBytes > 0 && plain.packedWeightBytes == 0)
        // A budget too small for any matrix packs nothing, and still gives the same logits.
        let small = try LlamaModel.load(path: p)
        small.packWeights(upToBytes: 1024)
        let long = (0..<40).map { Int32(($0 * 7 + 1) % plain.config.vocabSize) }
        #expect(try small.makeSession().logits(for: long) == plain.makeSession().logits(for: long))
        #expect(small.packedWeightBytes == 0)
    }

    /// Prefix caching: prompts that begin like an earlier sequence (a shared system turn; a conversation's
    /// next turn, which repeats the previous answer) copy its KV rows and still give `generate`'s tokens.
    @Test func sharedPrefixesReuseKVRowsAndKeepTheTokens() throws {
        let (m, dir) = try tinyModel(.f32)
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = ContinuousBatcher(model: m, maxBatch: 4)
        defer { b.shutdown() }
        let opts = GenerationOptions(maxTokens: 12, stopAtEOS: false)
        let system: [Int32] = (0..<20).map { Int32(($0 * 7 + 3) % 50) }
        func run(_ p: [Int32]) throws -> Generation {
            let c = Collected()
            c.done.enter()
            b.submit(BatchPrompt(promptIDs: p, options: opts), onText: { _ in true }) { c.finish(0, $0) }
            #expect(c.done.wait(timeout: .now() + 60) == .success)
            return try #require(try c.results[0]?.get())
        }
        let first = try run(system + [11, 12, 13])
        #expect(b.counters.reusedPromptTokens == 0)
        let second = try run(system + [21, 22])
        #expect(b.counters.reusedPromptTokens == system.count, "\(b.counters)")
        let nextTurn = system + [11, 12, 13] + first.ids + [31, 32]   // the conversation goes on
        let third = try run(nextTurn)
        #expect(b.counters.reusedPromptTokens == 2 * system.count + 3 + first.ids.count - 1, "\(b.counters)")  // all but the last answer token (never fed)
        for (p, g) in [(system + [11, 12, 13], first), (system + [21, 22], second), (nextTurn, third)] {
            #expect(g.ids == (try m.generate(promptIDs: p, options: opts)).ids, "prompt of \(p.count) tokens")
        }
        let unrelated = try run([40, 41, 42, 43, 44])
        #expect(b.counters.reusedPromptTokens == 2 * system.count + 3 + first.ids.count - 1, "no shared prefix, nothing reused")
        #expect(unrelated.ids == (try m.generate(promptIDs: [40, 41, 42, 43, 44], options: opts)).ids)
    }
}
