// GovernanceCLITests — governance on the main path (docs/governance.md): a tiny pipeline whose base is
// given by path registers the base as a `base-model` artifact (by reference, not copied); `exposure
// --base <sha256 prefix>` lists the dataset, adapter, merged model, eval report and the registered
// version with its alias; `show` has the license and data terms from the YAML; deprecating the base
// makes `exposure --deprecated` list its descendants and aliases; `export --format csv|json` is the audit view.
import Engine
import Foundation
import Testing

private func json(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
}

@Suite struct GovernanceCLITests {
    @Test func pathBaseIsAnArtifactAndExposureDeprecationAndExportAnswer() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("tiny.gguf").path
        try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 2, weightType: .q4_1)
        try writeDocRows(20, in: dir)
        let yaml = """
            name: gov
            base: tiny.gguf
            registry: reg.sqlite
            seed: 5
            prepare:
              train:
                - {path: data.jsonl, license: CC-BY-4.0, terms: research use only, source: "https://example.org/docs"}
              split: {eval_fraction: 0.2}
            train:
              method: qlora
              lora: {rank: 4, alpha: 8, dropout: 0.0}
              max_steps: 2
              batch_size: 4
              lr: 0.01
              seq_len: 128
            merge:
              method: task_arithmetic
              adapters: [{adapter: train}]
              output: model
              dtype: q8_0
            eval:
              metrics: [loss]
            register:
              name: gov-model
              aliases: [production]
              license: apache-2.0
              notes: first governed release
            """
        let p = dir.appendingPathComponent("p.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        let reg = dir.appendingPathComponent("reg.sqlite").path, blobs = dir.appendingPathComponent("blobs").path
        let loc = ["--registry", reg, "--blobs", blobs]
        let r = try tune(["run", p, "--blobs", blobs])
        try #require(r.status == 0, "\(r.stderr)")

        // The base: one base-model artifact, by reference (the blob store holds no copy of the model).
        let bases = try #require(try JSONSerialization.jsonObject(with: Data(try tune(["artifacts", "list", "--kind", "base-model", "--json"] + loc).stdout.utf8)) as? [[String: Any]])
        try #require(bases.count == 1)
        let base = bases[0]
        let sha = try #require(base["sha256"] as? String)
        let modelSHA = try tune(["artifacts", "verify", "--json"] + loc)
        #expect(modelSHA.status == 0, "\(modelSHA.stdout) \(modelSHA.stderr)")
        #expect(base["layout"] as? String == "reference" && (base["uri"] as? String)?.hasSuffix("/tiny.gguf") == true, "\(base)")
        #expect((base["governance"] as? [String: Any])?["license"] as? String == "apache-2.0", "the GGUF's general.license: \(base)")
        let stored = FileManager.default.enumerator(atPath: blobs)?.compactMap { $0 as? String } ?? []
        #expect(!stored.contains { $0.hasSuffix(sha) }, "the base must not be copied into the blob store")

        // exposure --base <sha256 prefix>: the chain down to the registered version and its alias.
        let e = try tune(["artifacts", "exposure", "--base", String(sha.prefix(12)), "--json"] + loc)
        #expect(e.status == 0, "\(e.stderr)")
        let ex = try json(e.stdout)
        let arts = try #require(ex["artifacts"] as? [[String: Any]])
        let kinds = Set(arts.compactMap { $0["kind"] as? String })
        #expect(kinds == ["base-model", "dataset", "adapter", "merged-model", "eval-report"], "\(kinds)")
        let names = Set(arts.compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["gov-dataset", "gov-adapter", "gov-merged", "gov-eval", "gov-model"]), "\(names)")
        let registered = try #require(arts.first { $0["name"] as? String == "gov-model" })
        #expect(registered["aliases"] as? [String] == ["gov-model@production"])
        let chain = try #require(registered["chain"] as? [String])
        #expect(chain.first == "\(base["name"] as! String)@1" && chain.last == "gov-model@1" && chain.contains("gov-merged@1"), "\(chain)")
        #expect((ex["aliases"] as? [[String: Any]])?.contains { $0["alias"] as? String == "production" } == true)
        let text = try tune(["artifacts", "exposure", "--base", String(sha.prefix(12))] + loc)
        #expect(text.stdout.contains("production affected: gov-model@production → v1"), "\(text.stdout)")

        // show: license from register:, data terms from prepare:, inherited by every descendant.
        let show = try tune(["artifacts", "show", "gov-model@production"] + loc)
        #expect(show.stdout.contains("license  apache-2.0") && show.stdout.contains("terms    CC-BY-4.0 — research use only"), "\(show.stdout)")
        #expect(show.stdout.contains("https://example.org/docs") && show.stdout.contains("first governed release"), "\(show.stdout)")
        let evalShow = try json(try tune(["artifacts", "show", "gov-eval@1", "--json"] + loc).stdout)
        let evalGov = try #require((evalShow["artifact"] as? [String: Any])?["governance"] as? [String: Any])
        #expect(evalGov["data_terms"] as? String == "CC-BY-4.0 — research use only", "\(evalGov)")
        let dataset = try json(try tune(["artifacts", "show", "gov-dataset@1", "--json"] + loc).stdout)
        #expect(((dataset["artifact"] as? [String: Any])?["governance"] as? [String: Any])?["license"] as? String == "CC-BY-4.0")

        // Nothing deprecated yet; then deprecate the base: everything below it and the alias are listed.
        let none = try json(try tune(["artifacts", "exposure", "--deprecated", "--json"] + loc).stdout)
        #expect((none["artifacts"] as? [Any])?.isEmpty == true)
        let dep = try tune(["artifacts", "deprecate", "sha256:\(sha.prefix(12))", "--reason", "license withdrawn", "--date", "2026-12-31"] + loc)
        #expect(dep.status == 0 && dep.stdout.contains("from 2026-12-31: license withdrawn"), "\(dep.stdout) \(dep.stderr)")
        let d = try json(try tune(["artifacts", "exposure", "--deprecated", "--json"] + loc).stdout)
        let darts = try #require(d["artifacts"] as? [[String: Any]])
        #expect(Set(darts.compactMap { $0["name"] as? String }).isSuperset(of: ["gov-dataset", "gov-adapter", "gov-merged", "gov-eval", "gov-model"]))
        #expect(darts.filter { $0["deprecation"] != nil }.count == 1)
        #expect((d["aliases"] as? [[String: Any]])?.map { "\($0["name"]!)@\($0["alias"]!)" } == ["gov-model@production"])

        // The audit export: CSV and JSON, every artifact with base, license, terms, aliases, deprecated.
        let csv = try tune(["artifacts", "export", "--format", "csv"] + loc)
        #expect(csv.status == 0, "\(csv.stderr)")
        let lines = csv.stdout.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(lines.first == "artifact,kind,name,version,sha256,base,license,data_source,data_terms,created_at,created_by,aliases,deprecated,deprecated_because")
        let modelLine = try #require(lines.first { $0.hasPrefix("gov-model@1,") })
        #expect(modelLine.contains(",apache-2.0,") && modelLine.contains("gov-model@production,true,") && modelLine.contains("license withdrawn"), "\(modelLine)")
        let out = dir.appendingPathComponent("audit.json").path
        #expect(try tune(["artifacts", "export", "--format", "json", "--out", out] + loc).status == 0)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [[String: Any]])
        #expect(rows.count == arts.count && rows.allSatisfy { $0["deprecated"] as? Bool == true }, "\(rows)")
        // The content export still works as before.
        let copy = dir.appendingPathComponent("adapter-copy").path
        #expect(try tune(["artifacts", "export", "gov-adapter@1", "--out", copy] + loc).status == 0)
        #expect(FileManager.default.fileExists(atPath: copy + "/adapter_model.safetensors"))
    }
}
