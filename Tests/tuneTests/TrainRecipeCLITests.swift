// TrainRecipeCLITests — the three doors into TrainRecipe build the same TrainingOptions from the same
// settings: `tune train … --dry-run --json` (this binary), the pipeline's `train:` section (with its
// top-level seed) and `tune serve`'s OpenAI hyperparameters; and the old flag spellings still work.
import Foundation
import Testing
import Engine
import TuneKit

private func tinyModel() throws -> (dir: URL, model: String) {
    let dir = try makeTempDir()
    let model = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 4, weightType: .q4_1)
    return (dir, model)
}

private struct DryRunJSON: Decodable {
    let recipe: TrainRecipe
    let options: TrainingOptions
}

/// `tune train --dry-run --json` with `flags` on the tiny model: the recipe and options it prints.
private func dryRun(_ model: String, _ flags: [String]) throws -> DryRunJSON {
    let r = try tune(["train", "--model", model, "--data", "unused.jsonl", "--out", "/nonexistent/out", "--dry-run", "--json"] + flags)
    #expect(r.status == 0, "\(r.stderr)")
    return try JSONDecoder().decode(DryRunJSON.self, from: Data(r.stdout.utf8))
}

/// The pipeline door: a `train:` section (YAML lines) and the top-level seed, as the train stage resolves them.
private func pipelineOptions(_ train: String, seed: Int?) throws -> TrainingOptions {
    let yaml = "name: x\nbase: m.gguf\n" + (seed.map { "seed: \($0)\n" } ?? "") + "train:\n" + train
    let spec = try PipelineSpec.parse(yaml: yaml, file: "p.yaml")
    return try spec.train!.recipe(seed: spec.seed).options(model: LlamaConfig.tiny, keyPrefix: "train.")
}

@Suite struct TrainRecipeCLITests {
    @Test func threeDoorsBuildTheSameOptions() throws {
        let (dir, model) = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }

        // Nothing set anywhere: every door lands on the recipe's defaults (serve: 1 epoch, batch 4,
        // multiplier 1, seed 0, checkpoints every 50 — the values that are the defaults).
        let cliDefault = try dryRun(model, [])
        let pipelineDefault = try pipelineOptions("  {}\n", seed: nil)
        let serveDefault = try TrainRecipe(openAIHyperparameters: 1, batchSize: 4, learningRateMultiplier: 1, seed: 0, checkpointEvery: 50)
            .options(model: LlamaConfig.tiny)
        #expect(cliDefault.options == pipelineDefault)
        #expect(serveDefault == pipelineDefault)
        #expect(cliDefault.recipe == TrainRecipe())
        #expect(pipelineDefault.lora.dropout == 0.05 && pipelineDefault.baseWeights == .quantized && pipelineDefault.seed == 0
                && pipelineDefault.evalEvery == 50 && pipelineDefault.checkpointEvery == 50)

        // The settings the serve door can express: epochs, batch, lr (multiplier × 2e-4), seed, checkpoint interval.
        let cli = try dryRun(model, ["--epochs", "2", "--batch-size", "2", "--lr", "4e-4", "--seed", "7",
                                     "--checkpoint-every", "5", "--eval-every", "5"])
        let pipeline = try pipelineOptions("  epochs: 2\n  batch_size: 2\n  lr: 4e-4\n  checkpoint_every: 5\n  eval_every: 5\n", seed: 7)
        let serve = try TrainRecipe(openAIHyperparameters: 2, batchSize: 2, learningRateMultiplier: 2, seed: 7, checkpointEvery: 5)
            .options(model: LlamaConfig.tiny)
        #expect(cli.options == pipeline)
        #expect(serve == pipeline)
        #expect(pipeline.epochs == 2 && pipeline.batchSize == 2 && pipeline.learningRate == 4e-4 && pipeline.seed == 7)

        // Everything the CLI and the YAML share, with the new flag names.
        let full = try dryRun(model, ["--method", "lora", "--lora-rank", "4", "--lora-alpha", "3", "--lora-dropout", "0.1",
                                      "--lora-targets", "q_proj,v_proj", "--lora-rslora", "--schedule", "linear", "--warmup-steps", "2",
                                      "--max-steps", "9", "--grad-accum", "3", "--seq-len", "128", "--weight-decay", "0.01",
                                      "--max-grad-norm", "0.5", "--early-stop", "2", "--seed", "3"])
        let yaml = try pipelineOptions("""
              method: lora
              lora: {rank: 4, alpha: 3, dropout: 0.1, targets: [q_proj, v_proj], rslora: true}
              schedule: linear
              warmup_steps: 2
              max_steps: 9
              grad_accum: 3
              seq_len: 128
              weight_decay: 0.01
              max_grad_norm: 0.5
              early_stop: 2

            """, seed: 3)
        #expect(full.options == yaml)
        #expect(yaml.baseWeights == .f32 && yaml.lora.targets == [.q, .v] && yaml.steps == 9 && yaml.seqLen == 128)
    }

    @Test func oldFlagSpellingsAreAliases() throws {
        let (dir, model) = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = try dryRun(model, ["--qlora", "--rank", "4", "--alpha", "8", "--dropout", "0", "--targets", "q_proj",
                                     "--warmup", "1", "--steps", "6", "--batch", "2", "--rslora"])
        let new = try dryRun(model, ["--method", "qlora", "--lora-rank", "4", "--lora-alpha", "8", "--lora-dropout", "0",
                                     "--lora-targets", "q_proj", "--warmup-steps", "1", "--max-steps", "6", "--batch-size", "2", "--lora-rslora"])
        #expect(old.options == new.options && old.recipe == new.recipe)
        #expect(new.options.steps == 6 && new.options.batchSize == 2 && new.options.lora.rank == 4)
        // The same value twice is fine; two different values are an error naming both spellings.
        #expect(try dryRun(model, ["--steps", "6", "--max-steps", "6"]).options.steps == 6)
        let clash = try tune(["train", "--model", model, "--data", "d.jsonl", "--out", "o", "--dry-run", "--steps", "5", "--max-steps", "6"])
        #expect(clash.status == 65 && clash.stderr.contains("--max-steps 6 and --steps 5 disagree"), "\(clash.stderr)")
        let method = try tune(["train", "--model", model, "--data", "d.jsonl", "--out", "o", "--dry-run", "--qlora", "--method", "lora"])
        #expect(method.status == 65 && method.stderr.contains("--qlora conflicts with --method lora"), "\(method.stderr)")
        // --base-weights alone implies its method, as before (bf16 → LoRA); a contradiction names base_weights.
        #expect(try dryRun(model, ["--base-weights", "bf16"]).options.baseWeights == .bf16)
        let conflict = try tune(["train", "--model", model, "--data", "d.jsonl", "--out", "o", "--dry-run", "--method", "qlora", "--base-weights", "f32"])
        #expect(conflict.status == 65 && conflict.stderr.contains("base_weights: f32 conflicts with method qlora"), "\(conflict.stderr)")
    }

    @Test func dryRunTextPrintsTheResolvedSettings() throws {
        let (dir, model) = try tinyModel()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try tune(["train", "--model", model, "--data", "d.jsonl", "--out", dir.appendingPathComponent("out").path,
                          "--dry-run", "--lora-rank", "4"])
        #expect(r.status == 0, "\(r.stderr)")
        for line in ["method: qlora", "base_weights: quantized", "lora.rank: 4", "lora.alpha: 8", "lora.dropout: 0.05",
                     "seq_len: 512", "seed: 0", "eval_every: 50", "checkpoint_every: 50"] {
            #expect(r.stdout.split(separator: "\n").contains { $0 == line }, "\(line) in \(r.stdout)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path), "a dry run writes nothing")
    }
}
