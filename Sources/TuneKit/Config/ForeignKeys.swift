// ForeignKeys — the names axolotl, torchtune and PEFT give to settings tune has under another key, so
// an unknown key says where its setting lives in tune ("`learning_rate` is `train.lr` in tune")
// wherever in the file it appears. Edit distance cannot find these; this table does.

import Foundation

enum ForeignKeys {
    /// Foreign key → tune's key path (with a value where the setting is one).
    static let table: [String: String] = [
        // LoRA (axolotl, torchtune, PEFT)
        "lora_r": "train.lora.rank", "lora_rank": "train.lora.rank",
        "lora_alpha": "train.lora.alpha", "lora_dropout": "train.lora.dropout",
        "lora_target_modules": "train.lora.targets", "lora_attn_modules": "train.lora.targets", "target_modules": "train.lora.targets",
        "peft_use_rslora": "train.lora.rslora", "use_rslora": "train.lora.rslora",
        "adapter": "train.method", "load_in_4bit": "train.method: qlora",
        // Optimization
        "learning_rate": "train.lr", "lr": "train.lr", "lr_scheduler": "train.schedule", "lr_scheduler_type": "train.schedule",
        "warmup_steps": "train.warmup_steps", "num_warmup_steps": "train.warmup_steps",
        "micro_batch_size": "train.batch_size", "batch_size": "train.batch_size",
        "per_device_train_batch_size": "train.batch_size",
        "gradient_accumulation_steps": "train.grad_accum",
        "num_epochs": "train.epochs", "epochs": "train.epochs", "num_train_epochs": "train.epochs",
        "max_steps": "train.max_steps", "max_steps_per_epoch": "train.max_steps",
        "sequence_len": "train.seq_len", "max_seq_len": "train.seq_len", "max_seq_length": "train.seq_len", "seq_len": "train.seq_len",
        "weight_decay": "train.weight_decay", "max_grad_norm": "train.max_grad_norm", "clip_grad_norm": "train.max_grad_norm",
        "eval_steps": "train.eval_every", "save_steps": "train.checkpoint_every",
        "early_stopping_patience": "train.early_stop",
        // Data, model, output, seed
        "datasets": "prepare.train", "dataset": "prepare.train",
        "val_set_size": "prepare.split.eval_fraction", "base_model": "base",
        "output_dir": "registry (tune registers every artifact; `tune artifacts path` finds it)",
        "seed": "seed",
    ]

    /// "`learning_rate` is `train.lr` in tune" for a known foreign key met at `path` (nil otherwise, and
    /// inside `train.openai`, whose hyperparameters are the provider's own names).
    static func message(for key: String, at path: String) -> String? {
        guard !path.hasPrefix("train.openai"), let tune = table[key] else { return nil }
        let (name, rest) = tune.firstIndex(of: " ").map { (String(tune[..<$0]), String(tune[$0...])) } ?? (tune, "")
        if let colon = name.firstIndex(of: ":") {   // a setting with its value: `train.method: qlora`
            return "`\(key)` is `\(name[..<colon]): \(rest.trimmingCharacters(in: .whitespaces))` in tune"
        }
        return "`\(key)` is \(name.contains(".") ? "" : "the top-level ")`\(name)` in tune\(rest)"
    }
}
