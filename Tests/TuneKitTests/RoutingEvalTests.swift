// RoutingEvalTests — routing through the real evaluation path: a tiny random Llama is the tuned model
// (its confidences checked against teacher-forced scoring from scratch), a scripted reference on
// loopback answers through the OpenAI client over libcurl (right on a known subset, usage scripted per
// example), and the report's picked τ, escalations, accuracy and cost on the reporting half are
// recomputed by hand from those.
import Engine
import Foundation
import LoopbackHTTP
import Testing
@testable import TuneKit

private func close(_ a: Double?, _ b: Double, _ tol: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tol * max(1, abs(b))
}

private func tinyModel(seed: UInt64) throws -> (LlamaModel, URL) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tune-routing-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: p, config: .tiny, seed: seed, weightType: .f32)
    return (try LlamaModel.load(path: p), dir)
}

@Suite struct RoutingEvalTests {
    /// The generation confidence is the mean ln p of the greedy tokens, as scoring them from scratch gives.
    @Test func greedyAnswerConfidenceIsItsMeanTokenLogprob() throws {
        let (m, dir) = try tinyModel(seed: 11)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = m.tokenizer
        let examples = (0..<3).map { i -> DatasetExample in
            let p = tok.encode("question \(i) is"), a = tok.encode(" answer \(i)")
            return DatasetExample(ids: p + a, mask: p.map { _ in 0 } + a.map { _ in 1 })
        }
        var config = EvalConfig()
        config.metrics = ["exact_match"]
        config.maxNewTokens = 4
        config.references = [ReferenceModel(name: "r", model: "m")]
        config.routing = RoutingConfig(reference: "r", maxEscalation: 0.5)
        let e = try Evaluator.evaluate(model: m, role: .adapter, name: "tiny", examples: examples, config: config)
        let outcomes = try #require(e.outcomes)
        #expect(outcomes.count == 3 && e.generatedTokens > 0, "routing without choice generates")
        for (i, ex) in examples.enumerated() {
            let prompt = Array(ex.ids.prefix(ex.mask.firstIndex(of: 1)!))
            let g = try m.generate(promptIDs: prompt, options: GenerationOptions(maxTokens: 4))
            var ids = g.ids
            if g.finishReason == .stop, let eos = tok.eosID { ids.append(eos) }
            let lp = try m.score(ids: prompt + ids).tokenLogprobs.suffix(ids.count)
            let want = lp.reduce(0, +) / Double(lp.count)
            let got = try #require(outcomes[i].confidence)
            #expect(abs(got - want) < 1e-4, "example \(i): \(got) vs \(want)")
            #expect(got < 0 && outcomes[i].promptTokens == prompt.count && outcomes[i].outputTokens == g.ids.count)
        }
    }

    @Test func routesTheTinyModelAgainstALoopbackReference() throws {
        let (m, dir) = try tinyModel(seed: 5)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tok = m.tokenizer, choices = ["yes", "no"], n = 12
        let labels = (0..<n).map { choices[$0 % 2] }
        let prompts = (0..<n).map { tok.encode("q\($0) ok?") }
        let examples = (0..<n).map { i -> DatasetExample in
            let a = tok.encode(labels[i])
            return DatasetExample(ids: prompts[i] + a, mask: prompts[i].map { _ in 0 } + a.map { _ in 1 })
        }
        var config = EvalConfig()
        config.metrics = ["choice"]
        config.choices = choices
        config.maxNewTokens = 2
        config.batch = 5
        let key = "sk-routing-SECRET-1"
        let p = try FakeProvider()
        p.requiredKey = key
        // Right unless i % 3 == 0; usage 50 + i prompt tokens, 1 completion token.
        p.chat = { _, messages in
            let i = Int((messages.last?["content"] ?? "").filter(\.isNumber)) ?? 0
            return (i % 3 == 0 ? "maybe" : ["yes", "no"][i % 2], 50 + i, 1)
        }
        var ref = ReferenceModel(name: "big", model: "big-1", baseURL: p.url)
        ref.apiKeyEnv = "ROUTING_KEY"
        ref.inputPerMillion = 100
        ref.outputPerMillion = 1000
        config.references = [ref]
        config.costs = CostConfig(hardwarePerHour: 3.6)
        config.routing = RoutingConfig(reference: "big", targetAccuracy: 0.9)
        try config.validate()

        let local = try Evaluator.evaluate(model: m, role: .adapter, name: "tiny", examples: examples, config: config)
        let conversations = (0..<n).map { [ChatMessageBody(role: "user", content: "q\($0) ok?"), ChatMessageBody(role: "assistant", content: labels[$0])] }
        let remote = try ref.evaluate(conversations: conversations, config: config, environment: ["ROUTING_KEY": key])
        let report = try EvalReport(models: [local, remote], config: config, subjects: [:], dataset: "tiny")
        let r = try #require(report.routing)

        // By hand: each option's summed ln p scored from scratch → the local answer and its margin.
        var conf: [Double] = [], localOK: [Bool] = []
        for i in 0..<n {
            let sums = try choices.map { o -> Double in
                let ids = tok.encode(o)
                return try m.score(ids: prompts[i] + ids).tokenLogprobs.suffix(ids.count).reduce(0, +)
            }
            conf.append(abs(sums[0] - sums[1]))
            localOK.append(choices[sums[0] >= sums[1] ? 0 : 1] == labels[i])
        }
        let outcomes = try #require(local.outcomes)
        for i in 0..<n {
            #expect(abs(outcomes[i].confidence! - conf[i]) < 1e-4 && outcomes[i].correct == localOK[i], "example \(i)")
        }
        let refOK = (0..<n).map { $0 % 3 != 0 }
        #expect(remote.outcomes?.map(\.correct) == refOK)
        #expect(r.confidence == "choice_margin" && r.local == .adapter)

        // End points: the tiny model alone and the reference alone (8/12 right, priced from its usage).
        #expect(r.curve.first?.correct == localOK.filter { $0 }.count && r.curve.last?.correct == 8)
        let localPer = try #require(ModelCost.of(local, costs: config.costs!, references: [ref], accuracyMetric: "choice").perRequest)
        let refCost = (0..<n).map { (Double(50 + $0) * 100 + 1000) / 1e6 }
        #expect(close(r.curve.first?.costPer1k, localPer * 1000) && close(r.curve.last?.costPer1k, refCost.reduce(0, +) / Double(n) * 1000))

        // τ by hand on the even half: the cheapest policy reaching 90% (else the most accurate), then measured on the odd half.
        let even = stride(from: 0, to: n, by: 2).map { $0 }, odd = stride(from: 1, to: n, by: 2).map { $0 }
        func routed(_ idx: [Int], _ tau: Double?, reference: Bool) -> (correct: Int, escalated: Int, cost: Double) {
            var c = 0, e = 0, cost = 0.0
            for i in idx {
                let up = reference || (tau.map { conf[i] < $0 } ?? false)
                if up { e += 1; cost += refCost[i] }
                if !reference { cost += localPer }
                if up ? refOK[i] : localOK[i] { c += 1 }
            }
            return (c, e, cost)
        }
        let candidates: [(tau: Double?, reference: Bool)] = [(nil, false)] + Set(even.map { conf[$0] }).sorted().dropFirst().map { ($0, false) } + [(nil, true)]
        let measured = candidates.map { routed(even, $0.tau, reference: $0.reference) }
        let reach = measured.indices.filter { Double(measured[$0].correct) / Double(even.count) >= 0.9 }
        let pick = reach.min { (measured[$0].cost, $0) < (measured[$1].cost, $1) }
            ?? measured.indices.max { (measured[$0].correct, -measured[$0].cost) < (measured[$1].correct, -measured[$1].cost) }!
        #expect(r.met == !reach.isEmpty)
        #expect(r.chosenOn.tau == candidates[pick].tau && (r.chosenOn.policy == .alwaysReference) == candidates[pick].reference)
        let want = routed(odd, candidates[pick].tau, reference: candidates[pick].reference)
        #expect(r.reportedOn.examples == odd.count && r.reportedOn.correct == want.correct && r.reportedOn.escalated == want.escalated)
        #expect(close(r.reportedOn.costPer1k, want.cost / Double(odd.count) * 1000), "\(r.reportedOn) vs \(want)")
        #expect(!String(decoding: try report.jsonData(), as: UTF8.self).contains(key))
    }
}
