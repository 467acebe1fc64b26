#!/usr/bin/env python3
"""family_grad_fixtures.py — PEFT LoRA gradients on the real Qwen2.5-Coder-0.5B and Gemma-3-270M GGUFs ([3/7]).

Scope: for each model, the gradients of the HF causal-LM loss w.r.t. every lora_A / lora_B tensor of an
adapter already committed for it (Tests/Fixtures/lora/qwen_peft_adapter: r=1, layers 0 and 23;
gemma_peft_adapter: r=2, layers 0 and 17; both seven projections, non-zero B, written by
hf_export_fixtures.py), for a fixed 2 x 32 batch whose first 8 labels per row are -100. PEFT trains over the
base as transformers loads it from the GGUF: every tensor dequantized to float32 (the file's Q4_K / Q6_K /
Q5_0 / Q8_0 blocks), which is what tune's QLoRA must match while keeping those blocks quantized.

The same gradients are computed again in float64 (model and adapter cast to double): the truth both float32
sides are measured against. Over a 24-layer model float32 alone moves a gradient tensor by up to ~1e-3
(relative L2), so "tune vs PEFT" mixes two such errors; "each vs float64" shows whose they are.

Writes, per model (KEY = qwen | gemma):
  Tests/Fixtures/lora/KEY_peft_grads.safetensors      float32 gradients keyed like adapter_model.safetensors
  Tests/Fixtures/lora/KEY_peft_grads_f64.safetensors  the float64 gradients, rounded to float32 for storage
  Tests/Fixtures/lora/KEY_peft_grads.json             ids, labels, loss (f32 and f64), n_targets, shapes,
                                                      PEFT float32's relative L2 error vs float64 per tensor

Run once (needs torch + transformers + peft + gguf; /work/refvenv here), from the repository root:
  python scripts/reference/family_grad_fixtures.py [--only qwen|gemma]
"""
import argparse
import json
import math
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

try:
    import peft
    from peft import PeftModel
except ImportError:
    sys.exit("error: peft is not installed (pip install peft)")
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "qwen": ("models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "Tests/Fixtures/lora/qwen_peft_adapter"),
    "gemma": ("models/gemma-3-270m-q4_k_m.gguf", "Tests/Fixtures/lora/gemma_peft_adapter"),
}
TEXTS = [
    "Bill of lading no. 4471: 12 pallets of machine parts shipped from Rotterdam to Hamburg on 3 March, "
    "carrier Nordic Freight, consignee Weber GmbH, freight prepaid, clean on board.",
    "def merge_sorted(a, b):\n    out, i, j = [], 0, 0\n    while i < len(a) and j < len(b):\n"
    "        if a[i] <= b[j]:\n            out.append(a[i]); i += 1\n",
]
SEQ_LEN = 32
IGNORED_PREFIX = 8


def grads_of(base, adapter, ids, labels, dtype):
    """(loss, n_targets, {name: grad}) of the HF causal-LM loss for `adapter` over `base` in `dtype`."""
    model = PeftModel.from_pretrained(base, adapter, is_trainable=True).to(dtype)
    model.eval()  # lora_dropout 0 and no attention dropout; eval() only fixes the mode
    for n, p in model.named_parameters():
        if p.requires_grad != (".lora_" in n):
            sys.exit(f"error: unexpected requires_grad={p.requires_grad} for {n}")
    label_t = torch.tensor(labels, dtype=torch.long)
    tgt = label_t[:, 1:]
    mask = tgt != -100
    n_targets = int(mask.sum())
    if dtype == torch.float32:
        # What PEFT users run: transformers' own loss (labels=).
        out = model(input_ids=torch.tensor(ids, dtype=torch.long), labels=label_t)
        loss_t = out.loss
        with torch.no_grad():
            logp = torch.log_softmax(out.logits.float(), dim=-1)[:, :-1]
            nll = -logp.gather(2, tgt.clamp(min=0)[..., None])[..., 0]
            manual = float(nll[mask].sum()) / n_targets
        if abs(manual - loss_t.item()) > 1e-5:
            sys.exit(f"error: manual loss {manual} != transformers loss {loss_t.item()}")
    else:
        # transformers casts logits to float32 inside its loss; the float64 truth computes the same loss itself.
        out = model(input_ids=torch.tensor(ids, dtype=torch.long))
        logp = torch.log_softmax(out.logits.to(dtype), dim=-1)[:, :-1]
        nll = -logp.gather(2, tgt.clamp(min=0)[..., None])[..., 0]
        loss_t = nll[mask].sum() / n_targets
    loss_t.backward()
    loss = loss_t.item()
    grads = {n.replace(".default.", "."): p.grad.detach().clone() for n, p in model.named_parameters() if ".lora_" in n}
    model.unload()
    return loss, n_targets, grads


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def make(key, out_dir):
    gguf, adapter = (os.path.join(ROOT, p) for p in MODELS[key])
    if not os.path.isfile(gguf):
        sys.exit(f"error: {gguf} not found (scripts/setup --model ...)")
    d, name = os.path.split(gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    base = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    ids = []
    for t in TEXTS:
        row = tok(t, add_special_tokens=False)["input_ids"]
        if len(row) < SEQ_LEN:
            sys.exit(f"error: text too short ({len(row)} tokens < {SEQ_LEN})")
        ids.append(row[:SEQ_LEN])
    labels = [[-100] * IGNORED_PREFIX + row[IGNORED_PREFIX:] for row in ids]
    loss, n_targets, g32 = grads_of(base, adapter, ids, labels, torch.float32)
    loss64, _, g64 = grads_of(base.double(), adapter, ids, labels, torch.float64)
    grads = {k: v.to(torch.float32).contiguous() for k, v in g32.items()}
    shapes = {k: list(v.shape) for k, v in grads.items()}
    f32_vs_f64 = {k: rel_l2(g32[k], g64[k]) for k in sorted(g32)}
    if set(grads) != set(load_file(os.path.join(adapter, "adapter_model.safetensors"))):
        sys.exit("error: gradient names do not match the adapter's tensor names")
    if any(float(g.abs().max()) == 0 for g in grads.values()):
        sys.exit("error: a gradient is all zero (the fixture would not test it)")
    gnorm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
    save_file(grads, os.path.join(out_dir, f"{key}_peft_grads.safetensors"),
              metadata={"format": "tune-lora-peft-grads", "loss": repr(loss)})
    save_file({k: v.to(torch.float32).contiguous() for k, v in g64.items()}, os.path.join(out_dir, f"{key}_peft_grads_f64.safetensors"),
              metadata={"format": "tune-lora-peft-grads-f64", "loss": repr(loss64)})
    info = {
        "format": "tune-lora-peft-grads",
        "version": 1,
        "model": os.path.basename(gguf),
        "adapter_dir": os.path.basename(adapter),
        "ids": ids,
        "labels": labels,
        "loss": loss,
        "loss_f64": loss64,
        "n_targets": n_targets,
        "peft_f32_vs_f64_rel_l2": f32_vs_f64,
        "grad_global_l2_norm": gnorm,
        "shapes": dict(sorted(shapes.items())),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
        "definitions": {
            "loss": "transformers ForCausalLMLoss in float32: token-level mean over the batch's targets "
                    "(both rows have the same number, so it equals the mean of per-row means)",
            "grads": "d loss / d parameter of every lora_A / lora_B tensor, float32, PEFT over the GGUF "
                     "dequantized to float32 by transformers; KEY_peft_grads_f64.safetensors: the same in float64 "
                     "(model and adapter cast to double), stored rounded to float32",
        },
    }
    with open(os.path.join(out_dir, f"{key}_peft_grads.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print(f"{key}: loss {loss:.6f} (f64 {loss64:.6f}), {n_targets} targets, {len(grads)} tensors, global L2 {gnorm:.6g}, "
          f"PEFT f32 vs f64: worst {max(f32_vs_f64.values()):.3g} ({max(f32_vs_f64, key=f32_vs_f64.get)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=sorted(MODELS))
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/lora"))
    args = ap.parse_args()
    torch.manual_seed(0)
    for key in ([args.only] if args.only else sorted(MODELS)):
        make(key, args.out)


if __name__ == "__main__":
    main()
