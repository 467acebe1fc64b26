// PrepareCLITests — golden transcripts of `tune prepare` on the committed bad-rows file: every
// malformed line is reported on stderr as FILE:LINE: reason: detail, and counted in the summary.
import Foundation
import Testing
import Engine
import TuneKit

@Suite struct PrepareCLITests {
    static let bad = "datasets/shipping-docs/bad-rows.jsonl"

    /// A tiny model (byte-level tokenizer, SmolLM2's ChatML template) so the test needs no download.
    func tinyModel() throws -> String {
        let path = try makeTempDir().appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: path, config: .tiny, seed: 1, weightType: .f32)
        return path
    }

    @Test func badRowsTranscript() throws {
        let out = try makeTempDir().path
        let r = try tune(["prepare", Self.bad, "--model", try tinyModel(), "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        let b = Self.bad
        #expect(r.stderr == """
            … reading \(b) (train)
            skipped \(b):2: invalid_json: not valid JSON (Unexpected end of file during JSON parse)
            skipped \(b):3: missing_field: no "output" key
            skipped \(b):4: invalid_role: messages[1].role "bot" is not one of assistant, system, user
            skipped \(b):5: empty_content: "completion" is empty
            skipped \(b):6: invalid_utf8: invalid UTF-8 byte 0xFF at column 35
            skipped \(b):7: invalid_json: not valid JSON (Invalid value around character 1)
            skipped \(b):9: not_an_object: expected a JSON object, got an array
            skipped \(b):10: unknown_format: no "messages", "instruction", "prompt"/"completion" or "text" key (found: "body", "label")
            skipped \(b):11: wrong_type: "messages[0].content" must be a string, got a number
            skipped \(b):12: invalid_role: no assistant message to train on

            """)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "prepared \(out): kept 2 of 13 rows, dropped 11 (1 blank lines ignored)")
        #expect(lines.contains("  duplicate           1  e.g. \(b):13: duplicate: same text as \(b):1"))
        #expect(lines.contains("  invalid_json        2  e.g. \(b):2: invalid_json: not valid JSON (Unexpected end of file during JSON parse)"))
        #expect(lines.contains { $0.hasPrefix("train: 2 rows, ") && $0.hasSuffix(" 1 shard") })
        #expect(lines.last?.hasPrefix("template chatml (model), tokenizer sha256 ") == true)
        let m = try DatasetManifest.load(path: out)
        #expect(m.counts.droppedTotal == 11)
    }

    @Test func onErrorFailExits65WithTheLine() throws {
        let r = try tune(["prepare", Self.bad, "--model", try tinyModel(), "--out", try makeTempDir().path, "--on-error", "fail"])
        #expect(r.status == 65)
        #expect(r.stderr.hasSuffix("""
            error: \(Self.bad):2: invalid_json: not valid JSON (Unexpected end of file during JSON parse) (on_error: fail; use on_error: skip to count and skip such rows)

            """))
    }

    @Test func jsonOutputIsTheManifest() throws {
        let out = try makeTempDir().path
        let r = try tune(["prepare", "datasets/shipping-docs/eval.jsonl", "--model", try tinyModel(), "--out", out,
                          "--seed", "3", "--eval-fraction", "0.25", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.isEmpty)
        let m = try JSONDecoder().decode(DatasetManifest.self, from: Data(r.stdout.utf8))
        #expect(m.splits["train"]?.rows == 60 && m.splits["eval"]?.rows == 20 && m.seed == 3)
        #expect(m == (try DatasetManifest.load(path: out)))
    }

    @Test func missingInputExits66() throws {
        let r = try tune(["prepare", "datasets/nope.jsonl", "--model", try tinyModel(), "--out", try makeTempDir().path])
        #expect(r.status == 66)
        #expect(r.stderr.hasSuffix("error: datasets/nope.jsonl: no such file\n"))
    }

    /// The sample task on the real SmolLM2 tokenizer: the summary is a golden transcript.
    @Test(.enabled(if: hasRealModel)) func shippingDocsOnRealModel() throws {
        let out = try makeTempDir().path
        let r = try tune(["prepare", "datasets/shipping-docs/train.jsonl", "--eval", "datasets/shipping-docs/eval.jsonl",
                          "--model", realModelPath, "--out", out])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == """
            prepared \(out): kept 480 of 480 rows, dropped 0
            train: 400 rows, 97689 tokens (2246 trainable), 1 shard
            eval: 80 rows, 18729 tokens (462 trainable), 1 shard
            template chatml (model), tokenizer sha256 6a8d38037ef69ddd…

            """)
        let data = try PreparedDataset(directory: out)
        #expect(try data.examples(split: "train").count == 400)
    }
}
