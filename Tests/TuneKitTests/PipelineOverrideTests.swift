// PipelineOverrideTests — `--set KEY=VALUE`: applied to the YAML before validation, so values, errors
// (naming the `--set` argument) and cache keys are exactly those of the same value written in the file.
import Engine
import Foundation
import Testing
import TuneKit

private let base = """
    name: x
    base: m.gguf
    train:
      max_steps: 60
      lora: {rank: 8}
    eval:
      metrics: [loss, choice]
      choices: [a, b]
      gate:
        accuracy: {min_delta_vs_base: 0.3}
    """

private func parse(_ sets: [String], yaml: String = base) throws -> PipelineSpec {
    try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml", overrides: try sets.map(PipelineOverride.init(argument:)))
}

private func problems(_ sets: [String], yaml: String = base) -> String {
    do { _ = try parse(sets, yaml: yaml); return "ok" } catch { return "\(error)" }
}

@Suite struct PipelineOverrideTests {
    @Test func overridesReplaceAndAddValuesAndRecordWhatTheFileHad() throws {
        let spec = try parse(["train.max_steps=4", "train.lora.alpha=3", "eval.gate.accuracy.min_delta_vs_base=-1",
                              "eval.choices=[c, d, e]", "register.aliases=staging"])
        #expect(spec.train?.maxSteps == 4 && spec.train?.rank == 8 && spec.train?.alpha == 3)
        #expect(spec.eval?.config.choices == ["c", "d", "e"])
        #expect(spec.eval?.config.gate.first?.minDeltaVsBase == -1)
        #expect(spec.register?.aliases == ["staging"])   // a whole new section
        #expect(spec.overrides.map(\.previous) == ["60", nil, "0.3", "[a, b]", nil])
        #expect(spec.overrides.map(\.argument) == ["train.max_steps=4", "train.lora.alpha=3", "eval.gate.accuracy.min_delta_vs_base=-1",
                                                   "eval.choices=[c, d, e]", "register.aliases=staging"])
        // The last of two overrides of one key wins, as in the file.
        #expect(try parse(["train.max_steps=4", "train.max_steps=5"]).train?.maxSteps == 5)
    }

    @Test func cacheKeysAreThoseOfTheValueWrittenInTheFile() throws {
        let (dir, path) = try PipelineRunnerTests.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        opts.dryRun = true
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let written = try PipelineSpec.parse(yaml: text.replacingOccurrences(of: "eval_fraction: 0.25", with: "eval_fraction: 0.5"),
                                             file: path, baseDirectory: dir.path)
        let overridden = try PipelineSpec.parse(yaml: text, file: path, baseDirectory: dir.path,
                                                overrides: [try PipelineOverride(argument: "prepare.split.eval_fraction=0.5")])
        let plain = try PipelineSpec.load(path: path)
        let keys = { (s: PipelineSpec) in try PipelineRunner(spec: s, options: opts).run().stages.map(\.cacheKey) }
        #expect(try keys(overridden) == keys(written))
        #expect(try keys(overridden) != keys(plain))
    }

    @Test func errorsNameTheArgumentTheFieldAndWhatWasExpected() {
        #expect(problems(["train.max_stepz=4"]) == """
            --set train.max_stepz=4: train.max_stepz: unknown field
              hint: did you mean "max_steps"?
            """)
        #expect(problems(["train.max_steps=four"]) == """
            --set train.max_steps=four: train.max_steps: expected a positive integer, got "four"
            """)
        #expect(problems(["trainn.max_steps=4"]) == "--set trainn.max_steps=4: trainn: unknown field\n  hint: did you mean \"train\"?",
                "\(problems(["trainn.max_steps=4"]))")
        #expect(problems(["name.first=4"]) == "--set name.first=4: name.first: name is \"x\", not a mapping; cannot set first in it")
        #expect(problems(["train.max_steps=[unclosed"]).hasPrefix("--set train.max_steps=[unclosed: train.max_steps: the value is not YAML:"))
        #expect(problems(["eval.metrics.5=x"]) == "--set eval.metrics.5=x: eval.metrics.5: eval.metrics is a list of 2; expected an index 0…1")
        // A file problem and an override problem are both reported, each with its own source.
        #expect(problems(["train.max_steps=0"], yaml: base + "\nseed: -1") == """
            --set train.max_steps=0: train.max_steps: expected a positive integer, got 0
            pipeline.yaml:11:7: seed: expected a non-negative integer, got -1
            """)
        #expect {
            try PipelineOverride(argument: "train.max_steps")
        } throws: { "\($0)" == "--set train.max_steps: expected KEY=VALUE\n  hint: e.g. --set train.max_steps=4" }
        #expect {
            try PipelineOverride(argument: "train..max_steps=4")
        } throws: { "\($0)".contains("expected a dotted field path") }
    }

    @Test func listItemsByIndexAndAnEmptySectionFilledIn() throws {
        let spec = try parse(["eval.choices.1=z", "register.aliases=[s]"], yaml: base + "\nregister:\n")
        #expect(spec.eval?.config.choices == ["a", "z"])
        #expect(spec.register?.aliases == ["s"])
    }
}
