#!/usr/bin/env python3
"""train_bench.py — PyTorch + PEFT LoRA training throughput, the reference side of `tune bench train`.

Scope: loads a GGUF model through transformers (dequantized to float32, like forward_fixtures.py), wraps it
with a PEFT LoRA adapter (rank/alpha from the flags, dropout 0, all 7 Llama projections q/k/v/o/gate/up/down
in every layer, PEFT's default init), and times full optimizer steps — forward, HF causal-LM loss
(labels = input ids), backward, AdamW(lr 1e-4) step, zero_grad — on random token batches (seeded; one fresh
batch per step, all generated before timing). `--warmup` steps run first and are not timed.

stdout gets exactly one line of JSON:
    {"tokens_per_s": float, "peak_rss_bytes": int, "step_seconds": [...], "torch": str, "peft": str,
     "threads": int, "batch": int, "seq_len": int, "rank": int, ...}
tokens_per_s = batch * seq_len * steps / sum(step_seconds) (timed steps only; with --rows, the timed
batches' real tokens, padding excluded, over their time); peak_rss_bytes is
ru_maxrss * 1024 of this process (Linux reports KiB). step_cpu_seconds (process CPU time per timed step, all
threads) helps to tell a slow step from one that was starved by other processes on a shared machine. Everything else (progress, warnings) goes to stderr.
Exits non-zero with a message on stderr if torch, transformers or peft is missing.

Usage:
    scripts/reference/.venv/bin/python scripts/reference/train_bench.py \
        [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--batch 4] [--seq-len 256] [--rank 8] [--alpha 16] \
        [--threads 2] [--steps 3] [--warmup 1] [--dtype fp32] [--seed 0] [--device cpu|cuda]

With --device cuda the model, batches and optimizer live on the GPU, each step ends with
torch.cuda.synchronize() before its time is taken, and the JSON adds "peak_gpu_bytes"
(torch.cuda.max_memory_allocated) and "gpu" (the device name): the side-by-side for issue [8/8].
"""

import argparse
import json
import os
import resource
import sys
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def fail(msg):
    print(f"train_bench: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(repo, "models/SmolLM2-135M-Instruct.Q4_1.gguf"),
                    help="GGUF file (loaded with transformers' gguf_file=)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps before the timed ones")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="model and LoRA parameter dtype")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--rows", help="JSONL of pre-tokenized rows {\"ids\": [...], \"mask\": [...]} (tune's prepared train "
                    "split): --batch rows per step in file order (cycling), padded per batch to its longest row "
                    "(attention_mask 0 and label -100 on padding, label -100 where mask is 0), as users run PEFT; "
                    "tokens_per_s counts the rows' real tokens")
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    args = ap.parse_args()
    if args.steps < 1 or args.batch < 1 or args.seq_len < 2 or args.rank < 1 or args.threads < 1 or args.warmup < 0:
        fail("--steps, --batch, --rank, --threads must be >= 1, --seq-len >= 2, --warmup >= 0")

    # Keep stdout for the single JSON line: everything printed while working goes to stderr.
    real_stdout = sys.stdout
    sys.stdout = sys.stderr

    try:
        import torch
    except ImportError:
        fail("torch is not installed (pip install torch)")
    try:
        import transformers
        from transformers import AutoModelForCausalLM
    except ImportError:
        fail("transformers is not installed (pip install transformers accelerate gguf)")
    try:
        import peft
        from peft import LoraConfig, get_peft_model
    except ImportError:
        fail("peft is not installed (pip install peft)")
    if not os.path.isfile(args.model):
        fail(f"model file not found: {args.model}")

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        fail("--device cuda: torch.cuda.is_available() is False")
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    torch.manual_seed(args.seed)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]

    t_load = time.perf_counter()
    gguf_dir, gguf_name = os.path.split(os.path.abspath(args.model))
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=dtype)
    cfg = LoraConfig(r=args.rank, lora_alpha=args.alpha, lora_dropout=args.lora_dropout, target_modules=TARGETS,
                     bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg).to(dev)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    opt = torch.optim.AdamW(trainable, lr=args.lr)
    load_seconds = time.perf_counter() - t_load
    print(f"loaded {gguf_name} in {load_seconds:.1f}s; LoRA r={args.rank} alpha={args.alpha}: "
          f"{n_trainable} trainable parameters; threads={torch.get_num_threads()}")

    vocab = model.config.vocab_size
    n_steps = args.warmup + args.steps
    if args.rows:
        rows = []
        with open(args.rows) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    ids, mask = r["ids"][:args.seq_len], r["mask"][:args.seq_len]
                    rows.append((ids, mask))
        if not rows:
            fail(f"--rows {args.rows}: no rows")
        batches, real_tokens = [], []
        for i in range(n_steps):
            picked = [rows[(i * args.batch + j) % len(rows)] for j in range(args.batch)]
            width = max(len(ids) for ids, _ in picked)
            ids_t = torch.zeros((args.batch, width), dtype=torch.long)
            att = torch.zeros((args.batch, width), dtype=torch.long)
            lab = torch.full((args.batch, width), -100, dtype=torch.long)
            for j, (ids, mask) in enumerate(picked):
                ids_t[j, :len(ids)] = torch.tensor(ids)
                att[j, :len(ids)] = 1
                lab[j, :len(ids)] = torch.tensor([t if m else -100 for t, m in zip(ids, mask)])
            batches.append((ids_t.to(dev), att.to(dev), lab.to(dev)))
            real_tokens.append(sum(len(ids) for ids, _ in picked))
    else:
        gen = torch.Generator().manual_seed(args.seed)
        batches = [torch.randint(0, vocab, (args.batch, args.seq_len), generator=gen).to(dev) for _ in range(n_steps)]
        batches = [(b, None, b) for b in batches]
        real_tokens = [args.batch * args.seq_len] * n_steps
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    step_seconds = []
    step_cpu_seconds = []
    losses = []
    for i, (ids, att, lab) in enumerate(batches):
        t0 = time.perf_counter()
        c0 = time.process_time()
        out = model(input_ids=ids, attention_mask=att, labels=lab)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        losses.append(out.loss.item())
        timed = i >= args.warmup
        if timed:
            step_seconds.append(dt)
            step_cpu_seconds.append(dc)
        print(f"step {i + 1}/{len(batches)} ({'timed' if timed else 'warmup'}): {dt:.3f}s "
              f"(cpu {dc:.3f}s) loss={losses[-1]:.4f}")

    tokens = sum(real_tokens[args.warmup:])
    result = {
        "tokens_per_s": tokens / sum(step_seconds),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "step_seconds": step_seconds,
        "step_cpu_seconds": step_cpu_seconds,
        "torch": torch.__version__,
        "peft": peft.__version__,
        "transformers": transformers.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "rank": args.rank,
        "alpha": args.alpha,
        "dtype": args.dtype,
        "warmup": args.warmup,
        "steps": args.steps,
        "trainable_params": n_trainable,
        "losses": losses,
        "load_seconds": load_seconds,
        "device": args.device,
        "tokens_per_step": tokens / args.steps,
        "rows": args.rows,
        "lora_dropout": args.lora_dropout,
    }
    if args.device == "cuda":
        result["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
        result["gpu"] = torch.cuda.get_device_name(0)
    real_stdout.write(json.dumps(result) + "\n")
    real_stdout.flush()


if __name__ == "__main__":
    main()
