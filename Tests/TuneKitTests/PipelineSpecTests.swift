// PipelineSpecTests — golden validation messages: every problem at once, with positions and hints.
import Engine
import Testing
import TuneKit

private func problems(_ yaml: String) -> String {
    do {
        _ = try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml")
        return "ok"
    } catch let e as ConfigError {
        return e.description
    } catch {
        return "unexpected: \(error)"
    }
}

@Suite struct PipelineSpecTests {
    @Test func validSpecWithDefaults() throws {
        let spec = try PipelineSpec.parse(yaml: """
            name: shipping-docs
            base: models/SmolLM2-135M-Instruct.Q4_1.gguf
            seed: 7
            prepare:
              train: [a.jsonl, b.jsonl]
            train:
              lora: {rank: 16}
            register:
              aliases: staging
            """, file: "pipeline.yaml")
        #expect(spec.stages == [.prepare, .train, .register])
        #expect(spec.seed == 7 && spec.executor == "local")
        #expect(spec.prepare?.train == ["a.jsonl", "b.jsonl"] && spec.prepare?.config.maxTokens == 2048)
        #expect(spec.train?.rank == 16 && spec.train?.recipe.resolvedAlpha == 32 && spec.train?.method == .qlora)
        #expect(spec.train?.targets == TrainSection.allTargets)
        #expect(spec.register?.aliases == ["staging"])
    }

    @Test func typoInKeyGetsDidYouMean() {
        #expect(problems("""
            name: x
            base: m.gguf
            train:
              learning_rte: 0.1
              epochs: 2
            """) == """
            pipeline.yaml:4:3: train.learning_rte: unknown field
              hint: known fields here: backend, batch_size, checkpoint_every, early_stop, epochs, eval_every, grad_accum, lora, lr, max_grad_norm, max_steps, method, openai, resources, schedule, seq_len, warmup_steps, weight_decay
            """)
        #expect(problems("name: x\nbase: m.gguf\ntrain:\n  epoch: 2\n") == """
            pipeline.yaml:4:3: train.epoch: unknown field
              hint: did you mean "epochs"?
            """)
    }

    @Test func wrongType() {
        #expect(problems("name: x\nbase: m.gguf\ntrain:\n  lora:\n    rank: sixteen\n") == """
            pipeline.yaml:5:11: train.lora.rank: expected a positive integer, got "sixteen"
            """)
        #expect(problems("name: x\nbase: m.gguf\ntrain:\n  lr: [1]\n") == """
            pipeline.yaml:4:7: train.lr: expected a number, got a list
            """)
    }

    @Test func missingRequiredFields() {
        #expect(problems("seed: 1\nprepare:\n  format: chat\n") == """
            pipeline.yaml:1:1: base: required field is missing
            pipeline.yaml:1:1: name: required field is missing
            pipeline.yaml:3:3: prepare.train: required field is missing
              hint: train: datasets/my-task/train.jsonl
            """)
    }

    @Test func unknownStage() {
        #expect(problems("name: x\nbase: m.gguf\ndistill:\n  steps: 3\n") == """
            pipeline.yaml:1:1: no stages: add at least one of prepare, train, merge, eval, register
            pipeline.yaml:3:1: distill: unknown field
              hint: known fields here: base, drift, eval, executor, merge, name, notify, prepare, register, registry, schedule, seed, slurm, train
            """)
    }

    @Test func severalErrorsAtOnceInFileOrder() {
        let out = problems("""
            name: bad name
            base: m.gguf
            train:
              schedule: cosin
              lora:
                rank: 0
                dropout: 2
            eval:
              gate: {metric: accuracy}
            """)
        #expect(out == """
            pipeline.yaml:1:7: name: expected a name of letters, digits, '.', '_' or '-', got "bad name"
            pipeline.yaml:4:13: train.schedule: expected one of cosine, linear, constant, got "cosin"
              hint: did you mean "cosine"?
            pipeline.yaml:6:11: train.lora.rank: expected a positive integer, got 0
            pipeline.yaml:7:14: train.lora.dropout: expected a number in [0.0, 0.99], got 2
            pipeline.yaml:9:18: eval.gate.metric: gate metric "accuracy" is not among eval.metrics
              hint: add it to metrics: [loss, exact_match, accuracy]
            """)
    }

    @Test func yamlSyntaxErrorHasAPosition() {
        let out = problems("name: x\nbase: [unclosed\n")
        #expect(out.hasPrefix("pipeline.yaml:3:1: YAML syntax:"), "\(out)")
    }

    @Test func emptyFile() {
        #expect(problems("") == """
            pipeline.yaml:1:1: the file is empty; expected a pipeline mapping
              hint: start with `name:` and `base:` (see docs/pipeline.md)
            """)
    }

    @Test func managedBackendNeedsAModel() {
        #expect(problems("name: x\nbase: m.gguf\ntrain:\n  backend: openai\n") == """
            pipeline.yaml:4:12: train.openai: backend openai needs an `openai:` section with `model:`
              hint: openai: {model: gpt-4o-mini-2024-07-18}
            """)
    }
}
