// PrepareStageTests — the stage end to end on the tiny tokenizer: shards round-trip, manifests are
// byte-identical across runs, drop reasons are counted with file:line, on_error: fail stops.
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct PrepareStageTests {
    let tok = PrepareFixtures.tiny

    func run(_ inputs: [String], _ cfg: PrepareConfig) throws -> (DatasetManifest, String) {
        let out = try PrepareFixtures.tempDir().path
        return (try PrepareStage.run(inputs: inputs, config: cfg, tokenizer: tok, outputDir: out), out)
    }

    @Test func shardRoundTrip() throws {
        let examples = [DatasetExample(ids: [1, 2, 3, 70000], mask: [0, 1, 1, 0]),
                        DatasetExample(ids: [], mask: [], segmentStarts: []),
                        DatasetExample(ids: [5, 6, 7, 8, 9], mask: [1, 1, 0, 1, 1], segmentStarts: [0, 2])]
        let bytes = try DatasetShard.encode(examples)
        #expect(Array(bytes[0..<8]) == Array("TUNESHD1".utf8))
        #expect(try DatasetShardReader.decode(bytes, source: "mem") == examples)
        var corrupt = bytes
        corrupt[corrupt.count - 3] ^= 0xFF
        #expect(throws: TuneError.self) { try DatasetShardReader.decode(corrupt, source: "mem") }
        #expect(throws: TuneError.self) { try DatasetShardReader.decode(Array(bytes.prefix(30)), source: "mem") }
    }

    @Test func stageShardsMatchManifest() throws {
        let lines = (0..<30).map { PrepareFixtures.chat("Document number \($0) about shipment \($0 * 7)", "label\($0 % 3)") }
        var cfg = PrepareFixtures.config(evalFraction: 0.2)
        cfg.shardRows = 7
        let (m, out) = try run([try PrepareFixtures.jsonl(lines)], cfg)
        #expect(m.counts.kept == 30 && m.splits["train"]?.rows == 24 && m.splits["eval"]?.rows == 6)
        #expect(m.splits["train"]?.shards.map(\.sequences) == [7, 7, 7, 3])
        var tokens = 0, trainable = 0
        for (i, path) in m.shardPaths(split: "train", directory: out).enumerated() {
            let shard = try DatasetShardReader(path: path)
            #expect(try SHA256.hashFile(path) == m.splits["train"]!.shards[i].sha256)
            for e in shard.examples {
                tokens += e.ids.count
                trainable += e.trainableCount
                #expect(e.ids.count == e.mask.count && e.segmentStarts == [0])
                #expect(tok.tokenizer.decode(zip(e.ids, e.mask).filter { $0.1 == 1 }.map(\.0)).hasPrefix("label"))
            }
        }
        #expect(tokens == m.splits["train"]?.tokens && trainable == m.splits["train"]?.trainableTokens)
        #expect(try DatasetManifest.load(path: out) == m)
    }

    @Test func manifestAndShardsAreByteIdenticalAcrossRuns() throws {
        let input = PrepareFixtures.shippingDocs.appendingPathComponent("train.jsonl").path
        var cfg = PrepareFixtures.config(evalFraction: 0.1)
        cfg.pack.enabled = true
        cfg.pack.seqLen = 1024
        let (m1, o1) = try run([input], cfg)
        let (m2, o2) = try run([input], cfg)
        #expect(m1 == m2)
        for f in try FileManager.default.contentsOfDirectory(atPath: o1).sorted() {
            let a = FileManager.default.contents(atPath: o1 + "/" + f), b = FileManager.default.contents(atPath: o2 + "/" + f)
            #expect(a != nil && a == b, "\(f) differs between runs")
        }
        // Packing: every packed sequence fits and its segments are rows that each start untrained.
        let shard = try DatasetShardReader(path: m1.shardPaths(split: "train", directory: o1)[0])
        #expect(shard.examples.allSatisfy { $0.ids.count <= 1024 })
        #expect(shard.examples.contains { $0.segmentStarts.count > 1 })
        #expect(m1.splits["train"]!.sequences < m1.splits["train"]!.rows)
        for e in shard.examples { for s in e.segments { #expect(e.mask[s.lowerBound] == 0) } }
        // A different split seed gives a different split.
        cfg.split.seed = 1
        let (m3, _) = try run([input], cfg)
        #expect(m3.splits["train"]!.shards[0].sha256 != m1.splits["train"]!.shards[0].sha256)
    }

    @Test func badRowsAreCountedWithFileAndLine() throws {
        let (m, _) = try run([PrepareFixtures.badRows], PrepareFixtures.config())
        let f = PrepareFixtures.badRows
        #expect(m.counts.inputRows == 13 && m.counts.blankLines == 1 && m.counts.kept == 2 && m.counts.droppedTotal == 11)
        #expect(m.counts.dropped.mapValues(\.count) == ["invalid_json": 2, "missing_field": 1, "invalid_role": 2, "empty_content": 1,
                                                         "invalid_utf8": 1, "not_an_object": 1, "unknown_format": 1,
                                                         "wrong_type": 1, "duplicate": 1])
        #expect(m.counts.dropped["invalid_role"]?.examples == [
            "\(f):4: invalid_role: messages[1].role \"bot\" is not one of assistant, system, user",
            "\(f):12: invalid_role: no assistant message to train on"])
        #expect(m.counts.dropped["duplicate"]?.examples == ["\(f):13: duplicate: same text as \(f):1"])
        #expect(m.counts.formats == ["chat": 1, "completion": 1])
    }

    @Test func onErrorFailStopsAtFirstMalformedRow() throws {
        var cfg = PrepareFixtures.config()
        cfg.onError = .fail
        #expect {
            try run([PrepareFixtures.badRows], cfg)
        } throws: { e in
            (e as? TuneError)?.message.hasPrefix("\(PrepareFixtures.badRows):2: invalid_json: not valid JSON") == true
        }
        // Filters are not malformed rows: a too-long row is counted, never fatal.
        cfg.maxTokens = 200
        let ok = PrepareFixtures.chat("short", "yes")
        let (m, _) = try run([try PrepareFixtures.jsonl([ok, PrepareFixtures.chat(String(repeating: "long ", count: 40), "no")])], cfg)
        #expect(m.counts.dropped["too_long"]?.count == 1 && m.counts.kept == 1)
    }

    @Test func filtersAndEvalOverlap() throws {
        let long = PrepareFixtures.chat(String(repeating: "word ", count: 200), "x")
        let a = PrepareFixtures.chat("alpha beta gamma delta epsilon zeta eta theta", "one")
        let b = PrepareFixtures.chat("iota kappa lambda mu nu xi omicron pi rho sigma", "two")
        var cfg = PrepareFixtures.config()
        cfg.maxTokens = 300
        cfg.split.evalFile = try PrepareFixtures.jsonl([a], name: "eval.jsonl")
        let (m, _) = try run([try PrepareFixtures.jsonl([long, a, b])], cfg)
        #expect(m.counts.dropped["too_long"]?.count == 1)
        #expect(m.counts.dropped["eval_overlap"]?.count == 1)
        #expect(m.splits["train"]?.rows == 1 && m.splits["eval"]?.rows == 1)
        #expect(m.inputs.map(\.role) == ["eval", "train"])
    }

    @Test func configDecodesWithDefaultsAndReportsAllProblems() throws {
        let c = try JSONDecoder().decode(PrepareConfig.self, from: Data(#"{"max_tokens": 512, "dedup": {"near": null}, "pack": {"enabled": true}}"#.utf8))
        #expect(c.maxTokens == 512 && c.dedup.near == nil && c.dedup.exact && c.pack.seqLen == 2048 && c.split.evalFraction == 0.1)
        var bad = PrepareConfig()
        bad.maxTokens = 0
        bad.split.evalFraction = 1.5
        #expect(bad.problems().count == 3)
        #expect(throws: TuneError.self) { try PrepareStage.run(inputs: ["x"], config: bad, tokenizer: tok, outputDir: "/tmp/never") }
    }

    @Test func yamlConfigWithPrepareSection() throws {
        let path = try PrepareFixtures.tempDir().appendingPathComponent("pipeline.yaml").path
        try Data("""
            base: smollm2
            prepare:
              template: none
              max_tokens: 256
              dedup: {exact: true, near: null}
              split: {seed: 9, eval_fraction: 0.2}
              pack: {enabled: true, seq_len: 128}
            """.utf8).write(to: URL(fileURLWithPath: path))
        let c = try PrepareConfig.load(path: path)
        #expect(c.template == "none" && c.maxTokens == 256 && c.dedup.near == nil && c.split.seed == 9 && c.pack.seqLen == 128)
        try Data("prepare:\n  max_tokens: 0\n  shard_rows: 0\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try PrepareConfig.load(path: path) } throws: { e in
            (e as? TuneError)?.message.split(separator: "\n").count == 3   // max_tokens, min > max, shard_rows
        }
    }
}

@Suite struct PrepareStageFormatsTests {
    @Test func mixedFormatsInOneFileAndDeclaredFormat() throws {
        let lines = [#"{"instruction":"Name the document type.","input":"PACKING LIST PL1","output":"packing_list"}"#,
                     #"{"prompt":"Classify: INVOICE 7","completion":"commercial_invoice"}"#,
                     #"{"text":"Bills of lading are receipts for cargo."}"#,
                     PrepareFixtures.chat("Classify: POD 9", "delivery_receipt")]
        let out = try PrepareFixtures.tempDir().path
        let m = try PrepareStage.run(inputs: [try PrepareFixtures.jsonl(lines)], config: PrepareFixtures.config(),
                                     tokenizer: PrepareFixtures.tiny, outputDir: out)
        #expect(m.counts.formats == ["alpaca": 1, "completion": 1, "text": 1, "chat": 1])
        let ex = try DatasetShardReader(path: m.shardPaths(split: "train", directory: out)[0]).examples
        let t = PrepareFixtures.tiny.tokenizer
        let trained = ex.map { e in t.decode(zip(e.ids, e.mask).filter { $0.1 == 1 }.map(\.0)) }
        #expect(trained == ["packing_list<|im_end|>", "commercial_invoice<|im_end|>",
                            "Bills of lading are receipts for cargo.<|im_end|>", "delivery_receipt<|im_end|>"])
        var cfg = PrepareFixtures.config()
        cfg.format = .text
        cfg.onError = .skip
        let m2 = try PrepareStage.run(inputs: [try PrepareFixtures.jsonl(lines)], config: cfg, tokenizer: PrepareFixtures.tiny, outputDir: out)
        #expect(m2.counts.kept == 1 && m2.counts.dropped["missing_field"]?.count == 3)
    }

    @Test func handWrittenTinyChatSample() throws {
        let m = try PrepareStage.run(inputs: [PrepareFixtures.root.appendingPathComponent("datasets/tiny-chat.jsonl").path],
                                     config: PrepareFixtures.config(), tokenizer: PrepareFixtures.tiny,
                                     outputDir: try PrepareFixtures.tempDir().path)
        #expect(m.counts.droppedTotal == 0 && m.counts.kept == m.counts.inputRows)
    }

    @Test func preparedDatasetVerifiesShardsAndTokenizer() throws {
        let lines = (0..<12).map { PrepareFixtures.chat("Delivery receipt number \($0) for dock \($0 + 3)", "delivery_receipt") }
        let out = try PrepareFixtures.tempDir().path
        let m = try PrepareStage.run(inputs: [try PrepareFixtures.jsonl(lines)], config: PrepareFixtures.config(evalFraction: 0.25),
                                     tokenizer: PrepareFixtures.tiny, outputDir: out)
        let data = try PreparedDataset(directory: out)
        #expect(data.manifest == m)
        #expect(try data.examples(split: "train").count == 9 && data.examples(split: "eval").count == 3)
        try data.requireTokenizer(sha256: PrepareFixtures.tiny.sha256)
        #expect(throws: TuneError.self) { try data.requireTokenizer(sha256: String(repeating: "0", count: 64)) }
        #expect(throws: TuneError.self) { try data.examples(split: "test") }
        // Tamper with a shard: the hash check catches it.
        let shard = m.shardPaths(split: "train", directory: out)[0]
        var bytes = [UInt8](FileManager.default.contents(atPath: shard)!)
        bytes[bytes.count - 1] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: shard))
        #expect { try data.examples(split: "train") } throws: { e in (e as? TuneError)?.message.contains("does not match the manifest") == true }
    }

    @Test func nearDuplicateInSampleIsDropped() throws {
        let train = PrepareFixtures.shippingDocs.appendingPathComponent("train.jsonl").path
        var lines = try String(contentsOfFile: train, encoding: .utf8).split(separator: "\n").prefix(40).map(String.init)
        // Row 41 = row 3 with one more sentence at the end: a near-duplicate, not an exact one.
        let marker = "\"}, {\"role\": \"assistant\""
        lines.append(lines[2].replacingOccurrences(of: marker, with: " Copy for the bank." + marker))
        #expect(lines[40] != lines[2])
        let m = try PrepareStage.run(inputs: [try PrepareFixtures.jsonl(lines)], config: PrepareFixtures.config(),
                                     tokenizer: PrepareFixtures.tiny, outputDir: try PrepareFixtures.tempDir().path)
        #expect(m.counts.dropped["near_duplicate"]?.count == 1)
        #expect(m.counts.dropped["near_duplicate"]?.examples.first?.contains(":41: near_duplicate: near-duplicate (similarity ") == true)
        #expect(m.counts.dropped["near_duplicate"]?.examples.first?.hasSuffix(":3") == true)
        #expect(m.counts.kept == 40)
    }
}
