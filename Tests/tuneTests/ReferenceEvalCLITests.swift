// ReferenceEvalCLITests — `tune run` with `eval.reference:` against a scripted chat-completions provider
// on loopback: the reference is right on a known subset of the eval split with scripted usage, so its
// accuracy, $ per request and $ per correct answer are known by hand; the open model's figures and the
// break-even follow the documented formulas from the measured report; the API key is nowhere (output,
// registry, blobs); a reference failing with 5xx past its retries fails the stage naming it.
import Engine
import Foundation
import LoopbackHTTP
import Testing

private let key = "sk-tune-ref-SECRET-0a1b2c3d4e"

/// Train rows "doc 100…119", eval rows "doc 0…3" (the eval split is exactly these four).
private func refPipeline(_ url: String, concurrency: Int = 2, maxAttempts: Int = 6) throws -> (dir: URL, pipeline: String) {
    let dir = try makeTempDir()
    try TinyLlama.writeGGUF(to: dir.appendingPathComponent("tiny.gguf").path, config: .tiny, seed: 2, weightType: .q4_1)
    let train = (100..<120).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
    try (train.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("data.jsonl"), atomically: true, encoding: .utf8)
    let eval = (0..<4).map { i in #"{"prompt": "doc \#(i)", "completion": "c\#(i % 3)"}"# }
    try (eval.joined(separator: "\n") + "\n").write(to: dir.appendingPathComponent("eval.jsonl"), atomically: true, encoding: .utf8)
    let yaml = """
        name: tiny-ref
        base: tiny.gguf
        registry: reg.sqlite
        seed: 5
        prepare:
          train: data.jsonl
          eval: eval.jsonl
        eval:
          metrics: [exact_match, contains]
          max_new_tokens: 4
          reference:
            - name: closed
              model: gpt-4o-mini
              base_url: \(url)
              api_key_env: TUNE_TEST_REF_KEY
              input_per_million: 2
              output_per_million: 8
              concurrency: \(concurrency)
              max_attempts: \(maxAttempts)
          costs: {hardware_per_hour: 1.5, monthly_fixed: 50}
        """
    let p = dir.appendingPathComponent("p.yaml").path
    try yaml.write(toFile: p, atomically: true, encoding: .utf8)
    return (dir, p)
}

/// Right ("c<i mod 3>") for doc 0, 1, 2 and wrong for doc 3; usage 100 + i prompt and 5 completion tokens.
private func script(_ model: String, _ messages: [[String: String]]) -> (text: String, promptTokens: Int, completionTokens: Int) {
    let i = Int((messages.last { $0["role"] == "user" }?["content"] ?? "").filter(\.isNumber)) ?? -1
    return (i < 3 ? "c\(i % 3)" : "nope", 100 + i, 5)
}

private func close(_ a: Any?, _ b: Double, _ rel: Double = 1e-9) -> Bool {
    guard let a = a as? Double else { return false }
    return abs(a - b) <= rel * max(abs(b), 1e-12)
}

@Suite struct ReferenceEvalCLITests {
    @Test func referenceIsEvaluatedPricedAndComparedWithoutLeakingTheKey() throws {
        let provider = try FakeProvider(lifetime: 300)
        provider.requiredKey = key
        provider.chat = script
        let (dir, p) = try refPipeline(provider.url)
        defer { try? FileManager.default.removeItem(at: dir) }
        let blobs = dir.appendingPathComponent("blobs").path, reg = dir.appendingPathComponent("reg.sqlite").path
        let r = try tune(["run", p, "--blobs", blobs], env: ["TUNE_TEST_REF_KEY": key])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("eval: reference closed (gpt-4o-mini): 4 examples in") && r.stderr.contains("latency p50"), "\(r.stderr)")
        #expect(provider.chatModels.count == 4 && Set(provider.chatModels) == ["gpt-4o-mini"])

        let show = try tune(["artifacts", "show", "tiny-ref-eval@1", "--registry", reg, "--blobs", blobs, "--json"])
        #expect(show.stdout.contains(#""reference_closed_exact_match":0.75"#), "\(show.stdout)")
        let found = FileManager.default.enumerator(atPath: blobs)?.compactMap { $0 as? String }.first { $0.hasSuffix("report.json") }
        let reportDir: String = (blobs as NSString).appendingPathComponent(try #require(found))
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportDir))) as! [String: Any]
        let models = json["models"] as! [[String: Any]]
        #expect(models.map { $0["role"] as! String } == ["base", "reference"])
        let ref = models[1]
        #expect(ref["model"] as? String == "closed" && ref["api_model"] as? String == "gpt-4o-mini")
        // 3 of 4 right; usage: prompt 100 + 101 + 102 + 103 = 406, completion 4 × 5 = 20.
        #expect((ref["metrics"] as! [String: Double]) == ["exact_match": 0.75, "contains": 0.75], "\(ref)")
        #expect(ref["prompt_tokens"] as? Int == 406 && ref["generated_tokens"] as? Int == 20)
        #expect((ref["latency_p50_s"] as? Double ?? -1) > 0 && (ref["latency_p95_s"] as? Double ?? -1) >= (ref["latency_p50_s"] as? Double ?? 0))
        #expect((json["subjects"] as! [String: String])["reference:closed"] == "gpt-4o-mini at \(provider.url)/v1")

        let costs = json["costs"] as! [String: Any]
        let perModel = costs["models"] as! [[String: Any]]
        let closed = try #require(perModel.first { $0["role"] as? String == "reference" })
        // (406/4 × $2 + 20/4 × $8) / 1e6 = (203 + 40) / 1e6 = $0.000243 per request; / 0.75 = $0.000324 per correct.
        #expect(close(closed["per_request"], 243e-6) && close(closed["cost_per_correct"], 324e-6), "\(closed)")
        #expect(closed["basis"] as? String == "usage")
        // The open model (base, the only local one): (p + o) / r / 3600 × $1.5 from its measured report figures.
        let base = models[0]
        let n: Double = Double(base["examples"] as! Int), pt: Double = Double(base["prompt_tokens"] as! Int)
        let generated: Int = base["generated_tokens"] as! Int, target: Int = base["target_tokens"] as! Int
        let ot: Double = Double(generated > 0 ? generated : target)
        let secs: Double = base["seconds"] as! Double
        let rate: Double = (pt + ot) / secs
        let perReq: Double = (pt + ot) / n / rate / 3600 * 1.5
        let open = try #require(perModel.first { $0["role"] as? String == "base" })
        #expect(close(open["per_request"], perReq, 1e-6), "\(open) vs \(perReq)")
        let acc = (base["metrics"] as! [String: Double])["exact_match"]!
        let b = try #require((costs["references"] as! [[String: Any]]).first)
        #expect(b["reference"] as? String == "closed" && b["open"] as? String == "base" && close(b["fixed_monthly"], 50))
        if acc > 0 {
            // V* = 50 / (0.000243 × a / 0.75 − c_o) when positive.
            let saving = 243e-6 * acc / 0.75 - perReq
            if saving > 0 { #expect(close(b["break_even_monthly_requests"], 50 / saving, 1e-6), "\(b)") }
            else { #expect(b["break_even_monthly_requests"] == nil && (b["note"] as? String ?? "").hasPrefix("never"), "\(b)") }
        } else {
            #expect(b["break_even_monthly_requests"] == nil && (b["note"] as? String ?? "") == "never: the open model answers nothing correctly", "\(b)")
        }
        let md = try String(contentsOfFile: (reportDir as NSString).deletingLastPathComponent + "/report.md", encoding: .utf8)
        #expect(md.contains("| reference: closed | 4 |") && md.contains("| reference: closed | usage | $0.000243 | 75.0% | $0.000324 |"), "\(md)")

        // The key is nowhere: output, registry metadata, and every file the run wrote.
        for out in [r, show] { #expect(!out.stdout.contains(key) && !out.stderr.contains(key)) }
        for f in FileManager.default.enumerator(atPath: dir.path)!.compactMap({ $0 as? String }) {
            let data = FileManager.default.contents(atPath: dir.appendingPathComponent(f).path) ?? Data()
            #expect(data.range(of: Data(key.utf8)) == nil, "the key is in \(f)")
        }
    }

    @Test func aFailingReferenceFailsTheStageNamingIt() throws {
        let provider = try FakeProvider(lifetime: 300)
        provider.requiredKey = key
        provider.chat = script
        provider.inject("POST /v1/chat/completions", [.json(503, #"{"error":{"message":"upstream overloaded","type":"server_error"}}"#),
                                                      .json(502, #"{"error":{"message":"bad gateway","type":"server_error"}}"#)])
        let (dir, p) = try refPipeline(provider.url, concurrency: 1, maxAttempts: 2)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["run", p, "--blobs", dir.appendingPathComponent("blobs").path], env: ["TUNE_TEST_REF_KEY": key])
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("error: eval reference \"closed\" (gpt-4o-mini at \(provider.url)/v1) failed: chat completion with gpt-4o-mini")
                && r.stderr.contains("gave up after 2 tries; last: HTTP 502"), "\(r.stderr)")
        #expect(r.stderr.contains("retry 2/2"), "the retry is reported: \(r.stderr)")
        #expect(!r.stderr.contains(key) && !r.stdout.contains(key))
        let unset = try tune(["run", p, "--blobs", dir.appendingPathComponent("blobs").path])
        #expect(unset.status == 65 && unset.stderr.contains("eval reference \"closed\": the API key is not set: export TUNE_TEST_REF_KEY"),
                "\(unset.stderr)")
    }
}
