// TrainRecipeTests — the one train recipe: its defaults (the pipeline's), errors that name the YAML key,
// the train section's encoding that train cache keys hash (unchanged by the recipe), the event lines,
// and the axolotl / torchtune / PEFT key names that the config reader maps to tune's keys.
import Engine
import Foundation
import Testing
import TuneKit

private func parseProblems(_ yaml: String) -> String {
    do {
        _ = try PipelineSpec.parse(yaml: yaml, file: "pipeline.yaml")
        return "ok"
    } catch let e as ConfigError {
        return e.description
    } catch {
        return "unexpected: \(error)"
    }
}

@Suite struct TrainRecipeTests {
    @Test func defaultsAreThePipelines() throws {
        let o = try TrainRecipe().options(model: LlamaConfig.tiny)
        #expect(o.baseWeights == .quantized && o.lora.rank == 8 && o.lora.alpha == 16 && o.lora.dropout == 0.05)
        #expect(o.lora.targets == LoRATarget.allCases && !o.lora.useRSLoRA)
        #expect(o.learningRate == 2e-4 && o.schedule == .cosine && o.warmupSteps == 0 && o.steps == nil && o.epochs == 1)
        #expect(o.batchSize == 4 && o.gradAccum == 1 && o.seqLen == 512 && o.weightDecay == 0 && o.maxGradNorm == 1)
        #expect(o.seed == 0 && o.evalEvery == 50 && o.checkpointEvery == 50 && o.earlyStopPatience == nil && o.bf16Products == nil)
        // The default seq_len follows a shorter context; an explicit one must fit it.
        var short = LlamaConfig.tiny
        short.contextLength = 256
        #expect(try TrainRecipe().options(model: short).seqLen == 256)
        var r = TrainRecipe()
        r.rank = 4
        #expect(try r.options(model: LlamaConfig.tiny).lora.alpha == 8, "alpha defaults to 2·rank")
        r.method = .lora
        #expect(try r.options(model: LlamaConfig.tiny).baseWeights == .f32)

        // A pipeline with no train settings resolves to exactly the recipe's defaults.
        let spec = try PipelineSpec.parse(yaml: "name: x\nbase: m.gguf\ntrain: {}\n", file: "p.yaml")
        #expect(spec.train?.recipe == TrainRecipe())
        #expect(try spec.train!.recipe(seed: spec.seed).options(model: LlamaConfig.tiny) == o)
    }

    @Test("Phi-3's fused modules: qkv_proj / gate_up_proj name their matrices; part of a fused module is refused")
    func fusedTargets() throws {
        var r = TrainRecipe()
        r.targets = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
        #expect(try r.options(model: .tinyPhi3).lora.targets == LoRATarget.allCases)
        r.targets = ["q_proj", "v_proj"]
        #expect(try r.options(model: .tiny).lora.targets == [.q, .v], "unfused families adapt any subset")
        #expect(throws: TuneError.self) { try r.options(model: .tinyPhi3) }
        do { _ = try r.options(model: .tinyPhi3) } catch let e as TuneError {
            #expect(e.message == "lora.targets: phi3 fuses q_proj, k_proj, v_proj into one module: name qkv_proj (or all of them) or none", "\(e.message)")
        }
    }

    @Test func errorsNameTheKey() {
        let cases: [((inout TrainRecipe) -> Void, String)] = [
            ({ $0.rank = 0 }, "lora.rank: expected a positive integer, got 0"),
            ({ $0.rank = 40 }, "lora.rank: 40 exceeds k_proj's smaller dimension 32"),
            ({ $0.dropout = 1 }, "lora.dropout: expected a number in [0, 1), got 1.0"),
            ({ $0.targets = ["q_proj", "foo_proj"] }, "lora.targets: unknown module 'foo_proj'"),
            ({ $0.baseWeights = .f32 }, "base_weights: f32 conflicts with method qlora"),
            ({ $0.method = .lora; $0.baseWeights = .nf4 }, "base_weights: nf4 conflicts with method lora"),
            ({ $0.learningRate = 0 }, "lr: expected a learning rate > 0, got 0.0"),
            ({ $0.seqLen = 100_000 }, "seq_len: 100000 exceeds the model's context length 512"),
            ({ $0.batchSize = 0 }, "batch_size: expected a positive integer, got 0"),
            ({ $0.earlyStopPatience = 0 }, "early_stop: expected a positive integer, got 0"),
            ({ $0.evalEvery = -1 }, "eval_every: expected a non-negative integer"),
        ]
        for (change, message) in cases {
            var r = TrainRecipe()
            change(&r)
            do {
                _ = try r.options(model: LlamaConfig.tiny, keyPrefix: "train.")
                Issue.record("no error for \(message)")
            } catch let e as TuneError {
                #expect(e.message.hasPrefix("train." + message), "\(e.message)")
            } catch { Issue.record("\(error)") }
        }
    }

    /// Train cache keys hash the section's JSON: the keys and values it had before the recipe existed.
    @Test func sectionEncodingIsTheOneCacheKeysHash() throws {
        let spec = try PipelineSpec.parse(yaml: "name: x\nbase: m.gguf\ntrain: {}\n", file: "p.yaml")
        let targets = #"["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]"#
        #expect(try JSONValue(encoding: spec.train!).canonicalJSON() == #"{"alpha":16,"backend":"local","batchSize":4,"checkpointEvery":50,"#
                + #""dropout":0.05,"epochs":1,"evalEvery":50,"gradAccum":1,"learningRate":0.0002,"maxGradNorm":1,"method":"qlora","#
                + #""rank":8,"rsLoRA":false,"schedule":"cosine","seqLen":512,"targets":\#(targets),"warmupSteps":0,"weightDecay":0}"#)
        let set = try PipelineSpec.parse(yaml: """
            name: x
            base: m.gguf
            train: {method: lora, lora: {rank: 4}, max_steps: 8, seq_len: 128, early_stop: 2, schedule: linear}
            """, file: "p.yaml")
        let json = try JSONValue(encoding: set.train!).canonicalJSON()
        for part in [#""alpha":8,"#, #""maxSteps":8,"#, #""seqLen":128,"#, #""earlyStopPatience":2,"#, #""method":"lora""#, #""schedule":"linear""#] {
            #expect(json.contains(part), "\(json)")
        }
        #expect(!json.contains("seed"), "the seed enters the key from the pipeline's top level, as before")
        // And it decodes back to the same section.
        #expect(try JSONDecoder().decode(TrainSection.self, from: Data(json.utf8)) == set.train!)
    }

    @Test func recipeJSONRoundTripsInTheYAMLLayout() throws {
        var r = TrainRecipe()
        r.rank = 16; r.alpha = 8; r.maxSteps = 3; r.seed = 9; r.baseWeights = .nf4; r.targets = ["q_proj"]
        let data = try JSONEncoder().encode(r)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""lora":{"#) && text.contains(#""max_steps":3"#) && text.contains(#""base_weights":"nf4""#), "\(text)")
        #expect(try JSONDecoder().decode(TrainRecipe.self, from: data) == r)
        #expect(try JSONDecoder().decode(TrainRecipe.self, from: Data("{}".utf8)) == TrainRecipe())
    }

    @Test func eventLinesAndHumanDurations() throws {
        #expect(humanDuration(250) == "4m10s" && humanDuration(12.4) == "12s" && humanDuration(3720) == "1h02m")
        #expect(humanDuration(.infinity) == "?" && humanDuration(-1) == "?")
        // The Engine's event payloads have no public initializers: decode them, as their JSON is public.
        let p = try JSONDecoder().decode(TrainProgress.self, from: Data(#"""
            {"record": {"step": 3, "loss": 1.5, "learningRate": 0.0002, "gradNorm": 1, "tokens": 100, "targetTokens": 50},
             "totalSteps": 10, "epoch": 0.5, "tokensPerSecond": 950, "elapsedSeconds": 3, "etaSeconds": 250}
            """#.utf8))
        #expect(TrainRecipe.Text.step(p) == "step 3/10  loss 1.5000  lr 2.00e-04  950 tok/s  epoch 0.50  ETA 4m10s")
        let e = try JSONDecoder().decode(EvalRecord.self, from: Data(#"{"step": 4, "loss": 0.25, "targetTokens": 7}"#.utf8))
        #expect(TrainRecipe.Text.line(.eval(e)) == "step 4: eval loss 0.2500 (7 tokens)")
        #expect(TrainRecipe.Text.line(.checkpoint(step: 4, path: "/x")) == nil)
    }

    /// Keys from axolotl / torchtune / PEFT name tune's key, at any level of the file.
    @Test func foreignKeysNameTunesKey() {
        let out = parseProblems("""
            name: x
            base: m.gguf
            base_model: HuggingFaceTB/SmolLM2-135M
            datasets: [{path: data.jsonl}]
            val_set_size: 0.1
            output_dir: out
            num_epochs: 3
            epochs: 2
            batch_size: 8
            warmup_steps: 10
            lr_scheduler: cosine
            adapter: qlora
            load_in_4bit: true
            train:
              lora_r: 16
              lora_rank: 16
              lora_alpha: 32
              lora_dropout: 0.1
              learning_rate: 0.0002
              micro_batch_size: 2
              gradient_accumulation_steps: 4
              sequence_len: 256
              lora_target_modules: [q_proj]
              lora_attn_modules: [q_proj]
              eval_steps: 10
              save_steps: 10
              seed: 7
              lora:
                lora_alpha: 32
            """)
        let expected: [(String, String)] = [
            ("base_model", "the top-level `base`"), ("datasets", "`prepare.train`"), ("val_set_size", "`prepare.split.eval_fraction`"),
            ("output_dir", "the top-level `registry`"), ("num_epochs", "`train.epochs`"), ("epochs", "`train.epochs`"),
            ("batch_size", "`train.batch_size`"), ("warmup_steps", "`train.warmup_steps`"), ("lr_scheduler", "`train.schedule`"),
            ("adapter", "`train.method`"), ("load_in_4bit", "`train.method: qlora`"),
            ("train.lora_r", "`train.lora.rank`"), ("train.lora_rank", "`train.lora.rank`"), ("train.lora_alpha", "`train.lora.alpha`"),
            ("train.lora_dropout", "`train.lora.dropout`"), ("train.learning_rate", "`train.lr`"),
            ("train.micro_batch_size", "`train.batch_size`"), ("train.gradient_accumulation_steps", "`train.grad_accum`"),
            ("train.sequence_len", "`train.seq_len`"), ("train.lora_target_modules", "`train.lora.targets`"),
            ("train.lora_attn_modules", "`train.lora.targets`"), ("train.eval_steps", "`train.eval_every`"),
            ("train.save_steps", "`train.checkpoint_every`"), ("train.seed", "the top-level `seed`"),
            ("train.lora.lora_alpha", "`train.lora.alpha`"),
        ]
        let lines = out.split(separator: "\n").map(String.init)
        for (path, tune) in expected {
            let key = String(path.split(separator: ".").last!)
            let line = lines.first { $0.contains(": \(path): unknown field: `\(key)` is ") }
            #expect(line?.contains("is \(tune)") == true, "\(path): \(out)")
        }
        #expect(out.contains("train.learning_rate: unknown field: `learning_rate` is `train.lr` in tune"), "\(out)")
        #expect(!out.contains("hint: did you mean"), "the table answers before edit distance: \(out)")
        // The provider's own hyperparameter names are left to the known-fields hint.
        let managed = parseProblems("name: x\nbase: m.gguf\ntrain:\n  backend: openai\n  openai:\n    model: m\n    hyperparameters: {lr: 2}\n")
        #expect(managed.contains("train.openai.hyperparameters.lr: unknown field\n  hint: known fields here"), "\(managed)")
    }
}
