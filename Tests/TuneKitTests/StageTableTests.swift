// StageTableTests — the stage list is the one source of stage names, order and sections; stages hand
// typed outputs to later ones (whether they ran, were cached or were reached through --from).
import Engine
import Foundation
import Testing
import TuneKit

@Suite struct StageTableTests {
    @Test func namesAndOrderComeFromTheList() throws {
        #expect(StageKind.allCases == [.prepare, .train, .merge, .eval, .register])
        #expect(StageKind.allCases.map(\.order) == [0, 1, 2, 3, 4])
        #expect(StageKind(rawValue: "train") == .train)
        #expect(StageKind(rawValue: "deploy") == nil)
        let json = try JSONEncoder().encode([StageKind.merge])
        #expect(String(decoding: json, as: UTF8.self) == #"["merge"]"#)
        #expect(try JSONDecoder().decode([StageKind].self, from: json) == [.merge])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([StageKind].self, from: Data(#"["deploy"]"#.utf8)) }
    }

    @Test func sectionsAreKeptPerStageWithTypedAccess() throws {
        let yaml = """
            name: t
            base: m.gguf
            train: {lora: {rank: 4}, max_steps: 3}
            register: {aliases: [staging]}
            """
        var spec = try PipelineSpec.parse(yaml: yaml, file: "p.yaml")
        #expect(spec.stages == [.train, .register])
        #expect(spec.train?.rank == 4)
        #expect(spec.section(Stages.Train.self)?.maxSteps == 3)
        #expect(spec.prepare == nil && !spec.has(.prepare))
        spec.register = nil
        #expect(spec.stages == [.train])
        // Unknown top-level stage-like keys are still refused by the parser, naming the known stages.
        #expect(throws: ConfigError.self) { try PipelineSpec.parse(yaml: "name: t\nbase: m.gguf\ndeploy: {}\n", file: "p.yaml") }
    }

    @Test func stagesHandTypedOutputsOnAlsoWhenCachedOrSkippedByFrom() throws {
        let (dir, path) = try PipelineRunnerTests.setUp()
        defer { try? FileManager.default.removeItem(at: dir) }
        var opts = RunOptions()
        opts.blobRoot = dir.appendingPathComponent("blobs").path
        let spec = try PipelineSpec.load(path: path)
        let (ran, outputs) = try PipelineRunner(spec: spec, options: opts).runWithOutputs()
        #expect(ran.stages.map(\.status) == ["ran", "ran"])
        let dataset = try #require(outputs.of(Stages.Prepare.self))
        #expect(dataset.artifact.ref == "tiny-run-dataset@1")
        #expect(FileManager.default.fileExists(atPath: dataset.directory + "/manifest.json"))
        #expect(outputs.of(Stages.Train.self) == nil)
        #expect(outputs.of(Stages.Register.self)?.ref == "tiny-run-dataset@1")   // the aliases went to the last output
        #expect(outputs.all.map(\.ref) == ["tiny-run-dataset@1", "tiny-run-dataset@1"])

        // Cached: the same typed outputs, rebuilt from the registry.
        let (_, cached) = try PipelineRunner(spec: spec, options: opts).runWithOutputs()
        #expect(cached.of(Stages.Prepare.self)?.directory == dataset.directory)

        // --from register: prepare is not run, but its output still reaches register.
        var from = opts
        from.from = .register
        let (only, skipped) = try PipelineRunner(spec: spec, options: from).runWithOutputs()
        #expect(only.stages.map(\.stage) == [.register])
        #expect(skipped.of(Stages.Prepare.self)?.artifact.ref == "tiny-run-dataset@1")
    }

    @Test func everyStageRegistersUnderItsOwnOutputName() throws {
        let spec = try PipelineSpec.parse(yaml: "name: shipping\nbase: m.gguf\nregister: {}\n", file: "p.yaml")
        let r = PipelineRunner(spec: spec, options: RunOptions())
        #expect(StageKind.allCases.map { r.outputName($0) }
                == ["shipping-dataset", "shipping-adapter", "shipping-merged", "shipping-eval", "shipping-registered"])
    }
}
