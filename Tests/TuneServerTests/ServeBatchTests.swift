// ServeBatchTests — continuous batching in `tune serve`: concurrent chat completions (whole and
// streamed) share decoding steps (the metrics' peak batch > 1) and each gets exactly the answer it gets
// alone from a server without batching (tiny float model, greedy: bit-identical logits).
import Engine
import Foundation
import Hummingbird
import Testing
@testable import TuneServer

@Suite struct ServeBatchTests {
    private func answers(_ f: ServeFixture, concurrently: Bool) async throws -> (answers: [String], metrics: String) {
        try await f.live { client in
            let h: HTTPFields = { var h = f.auth; h[.contentType] = "application/json"; return h }()
            @Sendable func ask(_ i: Int) async throws -> String {
                let body: [String: Any] = ["model": "tiny", "messages": [["role": "user", "content": "item \(i) " + String(repeating: "word ", count: i)]],
                                           "max_tokens": 150 + i, "temperature": 0, "stream": i % 2 == 1]
                return try await client.execute(uri: "/v1/chat/completions", method: .post, headers: h, body: try jsonBody(body)) { r in
                    #expect(r.status == .ok, "\(String(buffer: r.body))")
                    let text = String(buffer: r.body)
                    guard i % 2 == 1 else {
                        let o = try json(r)
                        return ((o["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? "<none>"
                    }
                    // Streamed: the deltas in order.
                    return text.split(separator: "\n").compactMap { line -> String? in
                        guard line.hasPrefix("data: {"), let o = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
                        else { return nil }
                        return ((o["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
                    }.joined()
                }
            }
            var out = [String](repeating: "", count: 8)
            if concurrently {
                try await withThrowingTaskGroup(of: (Int, String).self) { g in
                    for i in 0..<8 { g.addTask { (i, try await ask(i)) } }
                    for try await (i, s) in g { out[i] = s }
                }
            } else {
                for i in 0..<8 { out[i] = try await ask(i) }
            }
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: f.auth) { String(buffer: $0.body) }
            return (out, metrics)
        }
    }

    @Test func concurrentChatSharesStepsAndAnswersAsAlone() async throws {
        func fixture(batch: Int) throws -> ServeFixture {
            try ServeFixture { c, dir in
                let p = dir.appendingPathComponent("tiny-f32.gguf").path
                try TinyLlama.writeGGUF(to: p, config: .tiny, seed: 4, weightType: .f32)
                c.modelPath = p
                c.modelID = "tiny"
                c.batchSize = batch
            }
        }
        let alone = try fixture(batch: 0)
        defer { alone.cleanUp() }
        let reference = try await answers(alone, concurrently: false)
        #expect(reference.metrics.contains("tune_batch_steps_total 0"))
        #expect(reference.answers.map(\.count).reduce(0, +) > 20, "\(reference.answers)")

        // Requests arrive over HTTP a little apart: a round shares steps once one joins another mid-decode
        // (150+ steps each); a few rounds make sure the peak shows it. Every round answers as alone.
        let batched = try fixture(batch: 8)
        defer { batched.cleanUp() }
        var peak = 0
        for _ in 0..<4 where peak < 2 {
            let together = try await answers(batched, concurrently: true)
            #expect(together.answers == reference.answers)
            peak = together.metrics.split(separator: "\n").first { $0.hasPrefix("tune_batch_peak_sequences ") }
                .flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        }
        #expect(peak > 1, "no step carried two requests")
    }
}
