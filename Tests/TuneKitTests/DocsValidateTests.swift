// DocsValidateTests — the docs say what the parser accepts, checked on every run:
// (a) every key in docs/pipeline.md's field tables is known to `PipelineSpec.parse` (set in a minimal
//     pipeline it never draws "unknown field"; a key whose default column is one literal value parses
//     with that value without any problem at the key);
// (b) every ```yaml block in docs/*.md, README.md and pipelines/README.md parses, as `tune validate`
//     would: a whole pipeline as it stands; a block whose first line is `# fragment: SECTION` is the
//     inside of SECTION (`pipeline` = top-level keys), wrapped into a minimal pipeline; a block whose first
//     line is `# mergekit config` goes through MergekitConfig's parser. No block is skipped.
// (c) every pipelines/*.yaml file parses (merge.yaml, a mergekit config, through MergekitConfig).
import Engine
import Foundation
import Testing
import TuneKit

private let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

private func read(_ relative: String) throws -> String {
    try String(contentsOf: repoRoot.appendingPathComponent(relative), encoding: .utf8)
}

/// The diagnostics of parsing `yaml` as a pipeline (empty when valid).
private func pipelineProblems(_ yaml: String, file: String) -> [Diagnostic] {
    do {
        _ = try PipelineSpec.parse(yaml: yaml, file: file, baseDirectory: repoRoot.appendingPathComponent("docs").path)
        return []
    } catch let e as ConfigError {
        return e.diagnostics
    } catch {
        Issue.record("\(file): not a config error: \(error)")
        return []
    }
}

// MARK: - (a) table keys

/// One row of a field table: the dotted key (with its section), its type and default columns.
struct DocKey: CustomStringConvertible {
    var section: String?     // nil = top level
    var key: String
    var type: String
    var defaultValue: String
    var line: Int
    var description: String { "docs/pipeline.md:\(line): \(section.map { "\($0)." } ?? "")\(key)" }
    var path: [String] { (section.map { [$0] } ?? []) + key.split(separator: ".").map(String.init) }
}

/// Backticked spans of a table cell.
private func codeSpans(_ cell: String) -> [String] {
    cell.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
}

/// Every field-table row of docs/pipeline.md, under `## Top level` and `## \`SECTION\``.
func pipelineDocKeys(_ text: String) -> [DocKey] {
    var keys: [DocKey] = []
    var section: String?? = .none   // .none: not in a field table section
    for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let line = String(raw)
        if line.hasPrefix("## ") {
            let title = line.dropFirst(3)
            if title == "Top level" { section = .some(nil) }
            else if let s = codeSpans(String(title)).first, codeSpans(String(title)).count == 1, title.hasPrefix("`") { section = .some(s) }
            else { section = .none }
            continue
        }
        guard case .some(let sec) = section, line.hasPrefix("| `") else { continue }
        let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard cells.count >= 5 else { continue }
        // `a`, `b` and `a` + `b` name several keys in one row.
        for k in codeSpans(cells[1]) {
            keys.append(DocKey(section: sec, key: k, type: cells[2], defaultValue: cells[3], line: n + 1))
        }
    }
    return keys
}

/// A minimal pipeline with `path` set to `value` (YAML text), nested as block mappings.
private func pipeline(setting path: [String], to value: String) -> String {
    var top: [String] = []
    if path.first != "name" { top.append("name: docs-key") }
    if path.first != "base" { top.append("base: model.gguf") }
    var nested = ""
    for (depth, k) in path.enumerated() {
        let indent = String(repeating: "  ", count: depth)
        nested += depth == path.count - 1 ? "\(indent)\(k): \(value)\n" : "\(indent)\(k):\n"
    }
    return top.joined(separator: "\n") + "\n" + nested
}

private func isAt(_ d: Diagnostic, _ key: String) -> Bool {
    d.path == key || d.path.hasPrefix(key + ".") || d.path.hasPrefix(key + "[")
}

/// The key as the parser sees it: placeholders (`METRIC`, `BOUND`, `STAGE`) filled in, a trailing `.…` dropped.
private func concrete(_ k: DocKey) -> (path: [String], openEnded: Bool) {
    var parts = k.path
    let openEnded = parts.last == "…"
    if openEnded { parts.removeLast() }
    parts = parts.map { p in
        switch p {
        case "METRIC": "accuracy"
        case "BOUND": "min"
        case "STAGE": "register"   // a stage with no required field
        default: p
        }
    }
    return (parts, openEnded)
}

@Suite struct DocsValidateTests {
    @Test func everyTableKeyOfPipelineDocIsKnownToTheParser() throws {
        let keys = pipelineDocKeys(try read("docs/pipeline.md"))
        // The tables cover top level, prepare, train, merge, eval and register: a broken extractor must not pass.
        #expect(keys.count >= 60, "only \(keys.count) keys extracted from docs/pipeline.md's tables")
        for s in ["prepare", "train", "merge", "eval", "register"] {
            #expect(keys.contains { $0.section == s }, "no table rows found for `\(s)`")
        }
        #expect(keys.contains { $0.section == nil && $0.key == "base" })
        for k in keys {
            let (path, openEnded) = concrete(k)
            let dotted = path.joined(separator: ".")
            let spans = codeSpans(k.defaultValue)
            let literal = spans.count == 1 && k.defaultValue == "`\(spans[0])`" ? spans[0] : nil
            // The default when it is one literal; else the first option of the type column; else a
            // placeholder (then only "the parser knows the key" is checked, not the value).
            let value = openEnded ? "{}" : literal ?? codeSpans(k.type).first.map { $0.contains(" ") ? "x" : $0 } ?? "x"
            let yaml = pipeline(setting: path, to: value)
            let problems = pipelineProblems(yaml, file: "docs-key.yaml")
            let unknown = problems.filter { $0.message == "unknown field" && (isAt($0, dotted) || dotted.hasPrefix($0.path + ".")) }
            #expect(unknown.isEmpty, "\(k) is documented but the parser rejects it: \(unknown.map(\.description))\n\(yaml)")
            if let literal, !openEnded {
                let atKey = problems.filter { isAt($0, dotted) }
                #expect(atKey.isEmpty, "\(k): the documented default `\(literal)` is refused: \(atKey.map(\.description))\n\(yaml)")
            }
        }
    }

    /// A wrong key in a table is caught (the check above can fail).
    @Test func aDriftedKeyIsCaught() throws {
        let drifted = pipelineDocKeys("""
            ## `prepare`

            | field | type | default | meaning |
            |---|---|---|---|
            | `eval_fraction` | number | `0.1` | old name |
            """)
        #expect(drifted.count == 1)
        let (path, _) = concrete(drifted[0])
        let problems = pipelineProblems(pipeline(setting: path, to: "0.1"), file: "x.yaml")
        #expect(problems.contains { $0.message == "unknown field" && $0.path == "prepare.eval_fraction" }, "\(problems)")
    }

    // MARK: (b) YAML examples

    @Test(arguments: docFiles()) func everyYAMLExampleParses(file: String) throws {
        let blocks = yamlBlocks(try read(file))
        for b in blocks {
            let problems = check(b, file: file)
            #expect(problems.isEmpty, "\(file):\(b.line): the example does not parse:\n\(problems.joined(separator: "\n"))\n---\n\(b.text)")
        }
    }

    @Test func theExamplesAreFound() throws {
        // Each of these docs shows YAML; finding none would mean the extractor broke.
        for f in ["docs/pipeline.md", "docs/prepare.md", "docs/merge.md", "docs/eval.md", "docs/managed.md",
                  "docs/schedule.md", "docs/slurm.md", "docs/registry-postgres.md"] {
            #expect(!yamlBlocks(try read(f)).isEmpty, "no ```yaml block found in \(f)")
        }
        #expect(yamlBlocks(try read("docs/merge.md")).contains { $0.kind == .mergekit })
        #expect(yamlBlocks(try read("docs/eval.md")).contains { if case .fragment("eval") = $0.kind { true } else { false } })
    }

    @Test func aBrokenExampleFails() {
        let bad = yamlBlocks("""
            ```yaml
            # fragment: prepare
            eval_fraction: 0.1
            ```
            ```yaml
            # mergekit config
            merge_methd: ties
            models: [{model: a}]
            ```
            ```yaml
            name: x
            base: m.gguf
            train: {lora: {rank: sixteen}}
            ```
            """)
        #expect(bad.count == 3)
        for b in bad { #expect(!check(b, file: "bad.md").isEmpty, "\(b.text)") }
    }

    // MARK: (c) pipelines/

    @Test func everyPipelineFileParses() throws {
        let dir = repoRoot.appendingPathComponent("pipelines")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 4)
        for f in files {
            let path = dir.appendingPathComponent(f).path
            do {
                if f == "merge.yaml" {
                    let problems = mergekitProblems { try MergekitConfig.load(path: path) }
                    #expect(problems.isEmpty, "pipelines/merge.yaml: \(problems)")
                } else {
                    _ = try PipelineSpec.load(path: path)
                }
            } catch {
                Issue.record("pipelines/\(f): \(error)")
            }
        }
    }
}

// MARK: - YAML blocks in the docs

func docFiles() -> [String] {
    let docs = (try? FileManager.default.contentsOfDirectory(atPath: repoRoot.appendingPathComponent("docs").path)) ?? []
    return docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 } + ["README.md", "pipelines/README.md"]
}

struct YAMLBlock {
    enum Kind: Equatable { case pipeline, fragment(String), mergekit }
    var line: Int
    var text: String
    var kind: Kind
}

/// Every ```yaml fenced block, with what its first-line marker says it is.
func yamlBlocks(_ markdown: String) -> [YAMLBlock] {
    var out: [YAMLBlock] = []
    var current: (line: Int, lines: [String])?
    for (n, raw) in markdown.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let line = String(raw)
        if current == nil {
            if line.trimmingCharacters(in: .whitespaces) == "```yaml" { current = (n + 1, []) }
        } else if line.trimmingCharacters(in: .whitespaces) == "```" {
            let text = current!.lines.joined(separator: "\n") + "\n"
            let first = current!.lines.first?.trimmingCharacters(in: .whitespaces) ?? ""
            let kind: YAMLBlock.Kind
            if first.hasPrefix("# fragment:") {
                kind = .fragment(first.dropFirst("# fragment:".count).trimmingCharacters(in: .whitespaces))
            } else if first == "# mergekit config" {
                kind = .mergekit
            } else {
                kind = .pipeline
            }
            out.append(YAMLBlock(line: current!.line, text: text, kind: kind))
            current = nil
        } else {
            current!.lines.append(line)
        }
    }
    return out
}

/// The problems of one block as `tune validate` (or `tune merge --config`) would report them.
func check(_ b: YAMLBlock, file: String) -> [String] {
    switch b.kind {
    case .pipeline:
        return pipelineProblems(b.text, file: file).map(\.description)
    case .mergekit:
        return mergekitProblems { try MergekitConfig.parse(yaml: b.text, file: file) }
    case .fragment(let section):
        return pipelineProblems(wrap(b.text, in: section), file: file).map(\.description)
    }
}

/// The problems of a mergekit config, except that its input paths exist: the docs' paths are
/// illustrative and pipelines/merge.yaml names adapters a run produces (`tune merge` checks them when it runs).
func mergekitProblems(_ parse: () throws -> MergeSpec) -> [String] {
    do {
        _ = try parse()
        return []
    } catch let e as ConfigError {
        return e.diagnostics.filter { !$0.message.contains("does not exist (resolved to") }.map(\.description)
    } catch { return ["\(error)"] }
}

/// A fragment as a whole pipeline: nested under `section` (dotted; `pipeline` = the top level), plus
/// `name:` and `base:` when it has none, plus `prepare:` and `eval:` stages when it has no stage at all.
func wrap(_ text: String, in section: String) -> String {
    var body = text
    if section != "pipeline" {
        for key in section.split(separator: ".").reversed() {
            body = "\(key):\n" + body.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
        }
    }
    // Top-level keys: unindented `key:` lines (comments and list items aside).
    let top = Set(body.split(separator: "\n").compactMap { l -> String? in
        guard let c = l.first, c.isLetter, let colon = l.firstIndex(of: ":") else { return nil }
        return String(l[..<colon])
    })
    var head: [String] = []
    if !top.contains("name") { head.append("name: docs-example") }
    if !top.contains("base") { head.append("base: models/SmolLM2-135M-Instruct.Q4_1.gguf") }
    var tail: [String] = []
    if top.isDisjoint(with: ["prepare", "train", "merge", "eval", "register"]) {
        tail = ["prepare: {train: train.jsonl}", "eval: {}"]
    }
    return (head + [body] + tail).joined(separator: "\n") + "\n"
}
