#!/usr/bin/env python3
"""peft_score.py — per-token log-likelihoods of token-id sequences under a GGUF base model + a PEFT adapter.

Scope: a one-off cross-check that an adapter directory written by `tune` (adapter_config.json +
adapter_model.safetensors) loads in PEFT and gives the same log-likelihoods as tune's engine. The base model
is loaded like forward_fixtures.py (transformers dequantizes the GGUF to float32 and un-permutes Q/K); the
adapter with `PeftModel.from_pretrained(base, DIR)`. `--no-adapter` scores the base model alone.

Input (`--ids`): a JSON list of token-id lists, e.g. [[1, 2, 3], [4, 5, 6, 7]] (no BOS is added).
Output (stdout, one JSON object):
    {"logprobs": [[ln p(ids[i+1] | ids[..i]) for i in 0..T-2] per sequence], "peft": ver, "torch": ver,
     "transformers": ver, "adapter": DIR}
log-probs are float64 log_softmax of the float32 logits. Everything else goes to stderr.

Usage:
    scripts/reference/.venv/bin/python scripts/reference/peft_score.py \
        --adapter DIR --ids ids.json [--model models/SmolLM2-135M-Instruct.Q4_1.gguf] [--threads 2]
"""

import argparse
import json
import os
import sys


def fail(msg):
    print(f"peft_score: error: {msg}", file=sys.stderr)
    sys.exit(2)


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(repo, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--adapter", help="PEFT adapter directory (adapter_config.json + adapter_model.safetensors)")
    ap.add_argument("--no-adapter", action="store_true", help="score the base model only")
    ap.add_argument("--ids", required=True, help="JSON file: a list of token-id lists")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not args.no_adapter and not args.adapter:
        fail("--adapter DIR is required (or --no-adapter)")

    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM
        import peft
        from peft import PeftModel
    except ImportError as e:
        fail(f"missing Python package: {e.name} (pip install torch transformers accelerate gguf peft)")

    with open(args.ids, encoding="utf-8") as f:
        seqs = json.load(f)
    if not isinstance(seqs, list) or not all(isinstance(s, list) and all(isinstance(t, int) for t in s) for s in seqs):
        fail("--ids must hold a JSON list of lists of integers")

    torch.set_num_threads(max(1, args.threads))
    gguf_dir, gguf_name = os.path.split(os.path.abspath(args.model))
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    if not args.no_adapter:
        model = PeftModel.from_pretrained(model, args.adapter)
    model.eval()

    results = []
    with torch.no_grad():
        for ids in seqs:
            if len(ids) < 2:
                results.append([])
                continue
            out = model(input_ids=torch.tensor([ids], dtype=torch.long))
            logp = torch.log_softmax(out.logits[0].to(torch.float32).to(torch.float64), dim=-1)
            targets = torch.tensor(ids[1:], dtype=torch.long)
            results.append(logp[:-1].gather(1, targets[:, None])[:, 0].tolist())
            print(f"T={len(ids)} mean logprob={sum(results[-1]) / len(results[-1]):.6f}")

    real_stdout.write(json.dumps({
        "logprobs": results,
        "adapter": None if args.no_adapter else args.adapter,
        "peft": peft.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }) + "\n")


if __name__ == "__main__":
    main()
