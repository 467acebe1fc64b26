#!/usr/bin/env python3
"""lora_fixtures.py — PEFT LoRA reference fixtures on SmolLM2-135M-Instruct (GGUF Q4_1).

Scope: produces Tests/Fixtures/lora/, the fixtures the Swift LoRA code is checked against:

  peft_adapter/            a LoRA adapter created and saved by PEFT itself (save_pretrained, safetensors):
                           r=4, lora_alpha=8 (scaling alpha/r = 2), dropout 0, the 7 Llama projections,
                           layers_to_transform=[0, 29], init_lora_weights=False (A and B both keep nn.Linear's
                           default kaiming_uniform(a=sqrt(5)) init, i.e. U(-1/sqrt(in), 1/sqrt(in)), so B != 0),
                           torch.manual_seed(0); afterwards every lora_B is multiplied by B_SCALE (below) so the
                           adapter changes log-probs by a clearly measurable but not destructive amount.
  peft_adapter_rslora/     the same tensors with use_rslora=True (scaling alpha/sqrt(r) = 4).
  peft_scores.json         token ids and per-token log-probs ln p(ids[i+1] | ids[..i]) of 4 texts under the base
                           model, base+adapter and base+rslora-adapter (adapters loaded back from disk with
                           PeftModel.from_pretrained, i.e. what the saved files mean, not the in-memory model).
  peft_grads.safetensors   float32 gradients of the HF causal-LM loss w.r.t. every lora_A / lora_B tensor of
  peft_grads.json          peft_adapter/ for a fixed 2x24 batch (first 8 labels of each row = -100); the json has
                           the ids, labels, loss and the expected tensor shapes.

The base model is loaded like forward_fixtures.py: transformers dequantizes the GGUF tensors to float32 and
un-permutes Q/K, so everything here is the dequantized model in float32.

Usage:
    scripts/reference/.venv/bin/python scripts/reference/lora_fixtures.py \
        [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf] [--out Tests/Fixtures/lora]
"""

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

try:
    import peft
    from peft import LoraConfig, PeftModel, get_peft_model
except ImportError:
    sys.exit("error: peft is not installed (pip install peft==0.21.2)")
import safetensors
from safetensors.torch import load_file, save_file

# MARK: - Constants

RANK = 4
ALPHA = 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LAYERS = [0, 29]
SEED = 0
# Written into adapter_config.json as base_model_name_or_path (PEFT would otherwise record the local directory
# of the GGUF file; get_peft_model overwrites a value given to LoraConfig, so it is set on the wrapped model's
# config before saving). Cosmetic: PeftModel.from_pretrained(base, dir) ignores it.
BASE_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
# With init_lora_weights=False, B ~ U(-0.5, 0.5) (in_features = r = 4). Scaled by B_SCALE the adapter moves
# the per-token log-probs of the 4 score texts by a mean |delta| of 0.185 nats (max 1.62; rslora: 0.383 / 3.37),
# recorded in peft_scores.json; the script refuses to write fixtures if it is below MIN_MEAN_ABS_DELTA.
B_SCALE = 0.25
MIN_MEAN_ABS_DELTA = 0.05

PLAIN = "The quick brown fox jumps over the lazy dog. Then it runs into the forest"
CODE = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +"
UNICODE = "Café crème, naïve façade — 東京タワー は 333 m. Привет, мир! 🚀✨ Ωmega ≥ 42°C"
CHAT_MESSAGES = [
    {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
    {"role": "assistant", "content": "The capital of France is Paris."},
]

GRAD_TEXTS = [
    "Photosynthesis is the process by which green plants, algae and some bacteria convert light energy into "
    "chemical energy, producing glucose and oxygen from carbon dioxide and water.",
    "In mathematics, a prime number is a natural number greater than one that has no positive divisors other "
    "than one and itself; two, three, five and seven are the smallest primes.",
]
GRAD_SEQ_LEN = 24
GRAD_IGNORED_PREFIX = 8


# MARK: - Helpers

def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def r6(x):
    return round(float(x), 6)


def lora_config(use_rslora):
    return LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        lora_dropout=0.0,
        target_modules=TARGETS,
        layers_to_transform=LAYERS,
        init_lora_weights=False,
        use_rslora=use_rslora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_base(gguf):
    gguf_dir, gguf_name = os.path.split(os.path.abspath(gguf))
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    model.eval()
    return model


@torch.no_grad()
def token_logprobs(model, ids):
    """ln p(ids[i+1] | ids[..i]) for i in 0..T-2: float64 log_softmax of the float32 logits."""
    out = model(input_ids=torch.tensor([ids], dtype=torch.long))
    logp = torch.log_softmax(out.logits[0].to(torch.float32).to(torch.float64), dim=-1)
    targets = torch.tensor(ids[1:], dtype=torch.long)
    return logp[:-1].gather(1, targets[:, None])[:, 0].tolist()


def strip_adapter_name(name, adapter="default"):
    """PEFT parameter name -> the key save_pretrained writes (the adapter name is removed)."""
    return name.replace(f".{adapter}.", ".")


# MARK: - Steps

def make_adapters(args, out_dir):
    """(a) create the adapter with PEFT, scale B, save it and its rslora twin. Returns the saved keys."""
    base = load_base(args.gguf)
    torch.manual_seed(SEED)
    model = get_peft_model(base, lora_config(use_rslora=False))
    model.peft_config["default"].base_model_name_or_path = BASE_MODEL_NAME
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.mul_(B_SCALE)
    lora_state = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" in n}
    print(f"adapter: {len(lora_state)} LoRA tensors, {sum(t.numel() for t in lora_state.values())} parameters")
    plain_dir = os.path.join(out_dir, "peft_adapter")
    rs_dir = os.path.join(out_dir, "peft_adapter_rslora")
    for d in (plain_dir, rs_dir):
        shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(plain_dir, safe_serialization=True, save_embedding_layers=False)

    # Same tensors, use_rslora=True: unload the LoRA layers, wrap again, copy the tensors in.
    base = model.unload()
    rs_model = get_peft_model(base, lora_config(use_rslora=True))
    rs_model.peft_config["default"].base_model_name_or_path = BASE_MODEL_NAME
    with torch.no_grad():
        params = dict(rs_model.named_parameters())
        for n, t in lora_state.items():
            params[n].copy_(t)
    rs_model.save_pretrained(rs_dir, safe_serialization=True, save_embedding_layers=False)
    base = rs_model.unload()

    for d in (plain_dir, rs_dir):
        # PEFT also writes a README.md model card; the fixture only needs config + weights.
        readme = os.path.join(d, "README.md")
        if os.path.exists(readme):
            os.remove(readme)
    saved = load_file(os.path.join(plain_dir, "adapter_model.safetensors"))
    expected = {strip_adapter_name(n): t for n, t in lora_state.items()}
    if set(saved) != set(expected):
        sys.exit(f"error: saved keys differ from parameter names: {sorted(set(saved) ^ set(expected))[:6]}")
    for k, t in saved.items():
        if not torch.equal(t, expected[k]):
            sys.exit(f"error: saved tensor {k} differs from the in-memory parameter")
    saved_rs = load_file(os.path.join(rs_dir, "adapter_model.safetensors"))
    if set(saved_rs) != set(saved) or any(not torch.equal(saved_rs[k], saved[k]) for k in saved):
        sys.exit("error: rslora copy does not hold the same tensors")
    print(f"saved {plain_dir} and {rs_dir}: {len(saved)} tensors, dtypes {sorted({str(t.dtype) for t in saved.values()})}")
    return base, plain_dir, rs_dir


def make_scores(args, base, tok, plain_dir, rs_dir, out_dir):
    """(b) log-probs of 4 texts under base, base+adapter, base+rslora-adapter (adapters loaded from disk)."""
    chat_text = tok.apply_chat_template(CHAT_MESSAGES, tokenize=False)
    texts = [("plain", PLAIN), ("code", CODE), ("unicode", UNICODE), ("chat", chat_text)]
    records = [{"name": n, "text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for n, t in texts]

    for rec in records:
        rec["base_logprobs"] = token_logprobs(base, rec["ids"])
    for key, d in (("adapter_logprobs", plain_dir), ("rslora_logprobs", rs_dir)):
        m = PeftModel.from_pretrained(base, d)
        m.eval()
        for rec in records:
            rec[key] = token_logprobs(m, rec["ids"])
        base = m.unload()

    summary = {}
    for key in ("adapter_logprobs", "rslora_logprobs"):
        deltas = np.concatenate([np.abs(np.array(rec[key]) - np.array(rec["base_logprobs"])) for rec in records])
        summary[key] = {"mean_abs_delta_vs_base": r6(deltas.mean()), "max_abs_delta_vs_base": r6(deltas.max())}
    for rec in records:
        print(f"{rec['name']:8s} T={len(rec['ids']):3d} mean base={np.mean(rec['base_logprobs']):.4f} "
              f"adapter={np.mean(rec['adapter_logprobs']):.4f} rslora={np.mean(rec['rslora_logprobs']):.4f}")
        for key in ("base_logprobs", "adapter_logprobs", "rslora_logprobs"):
            rec[key] = [r6(v) for v in rec[key]]
    print(f"mean |delta logprob| vs base: {summary}")
    if summary["adapter_logprobs"]["mean_abs_delta_vs_base"] < MIN_MEAN_ABS_DELTA:
        sys.exit(f"error: adapter changes log-probs too little ({summary}); raise B_SCALE")

    fixture = {
        "format": "tune-lora-peft-scores",
        "version": 1,
        "adapters": {
            "adapter_logprobs": {"dir": "peft_adapter", "use_rslora": False, "scaling": ALPHA / RANK},
            "rslora_logprobs": {"dir": "peft_adapter_rslora", "use_rslora": True, "scaling": ALPHA / math.sqrt(RANK)},
        },
        "definitions": {
            "ids": "tok(text, add_special_tokens=False); SmolLM2's tokenizer adds no BOS (checked), so this equals tok(text)",
            "*_logprobs": "length T-1; [i] = log_softmax(logits[i])[ids[i+1]], float64 log_softmax of float32 logits",
            "chat": "apply_chat_template(messages, tokenize=False) of a user + assistant exchange (no generation prompt)",
        },
        "delta_summary": summary,
        "texts": records,
    }
    return base, fixture


def make_grads(args, base, tok, plain_dir, out_dir):
    """(c) gradients of the HF causal-LM loss w.r.t. the LoRA tensors of peft_adapter/ for a fixed batch."""
    ids = []
    for t in GRAD_TEXTS:
        row = tok(t, add_special_tokens=False)["input_ids"]
        if len(row) < GRAD_SEQ_LEN:
            sys.exit(f"error: grad text too short ({len(row)} tokens < {GRAD_SEQ_LEN})")
        ids.append(row[:GRAD_SEQ_LEN])
    labels = [[-100] * GRAD_IGNORED_PREFIX + row[GRAD_IGNORED_PREFIX:] for row in ids]

    model = PeftModel.from_pretrained(base, plain_dir, is_trainable=True)
    model.eval()  # no dropout anywhere (lora_dropout=0, attention_dropout=0); eval() only fixes the mode
    for n, p in model.named_parameters():
        if p.requires_grad != (".lora_" in n):
            sys.exit(f"error: unexpected requires_grad={p.requires_grad} for {n}")
    input_ids = torch.tensor(ids, dtype=torch.long)
    label_t = torch.tensor(labels, dtype=torch.long)
    out = model(input_ids=input_ids, labels=label_t)
    loss = out.loss
    loss.backward()

    # Check transformers' reduction: shift by one, cross-entropy summed over all non-ignored targets of the
    # whole batch, divided by their total count (ForCausalLMLoss without num_items_in_batch -> reduction="mean"
    # over the flattened [B*T] targets).
    with torch.no_grad():
        logp = torch.log_softmax(out.logits.float(), dim=-1)[:, :-1]        # [B, T-1, V]
        tgt = label_t[:, 1:]
        mask = tgt != -100
        nll = -logp.gather(2, tgt.clamp(min=0)[..., None])[..., 0]
        loss_sum = float(nll[mask].sum())
        n_targets = int(mask.sum())
        manual = loss_sum / n_targets
        per_seq_means = [float(nll[b][mask[b]].mean()) for b in range(nll.shape[0])]
    loss_value = loss.item()
    if abs(manual - loss_value) > 1e-5:
        sys.exit(f"error: manual loss {manual} != transformers loss {loss_value}")
    print(f"loss={loss_value:.6f} (manual {manual:.6f}, n_targets={n_targets}, per-seq means {per_seq_means})")

    grads = {}
    shapes = {}
    for n, p in model.named_parameters():
        if ".lora_" in n:
            key = strip_adapter_name(n)
            grads[key] = p.grad.detach().to(torch.float32).contiguous().clone()
            shapes[key] = list(p.shape)
    saved_keys = set(load_file(os.path.join(plain_dir, "adapter_model.safetensors")))
    if set(grads) != saved_keys:
        sys.exit("error: gradient names do not match the adapter's tensor names")
    save_file(grads, os.path.join(out_dir, "peft_grads.safetensors"),
              metadata={"format": "tune-lora-peft-grads", "loss": repr(loss_value)})
    gnorm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values()))
    print(f"saved {len(grads)} gradients, global L2 norm {gnorm:.6g}")
    model.zero_grad(set_to_none=True)
    base = model.unload()

    info = {
        "format": "tune-lora-peft-grads",
        "version": 1,
        "adapter_dir": "peft_adapter",
        "ids": ids,
        "labels": labels,
        "texts": GRAD_TEXTS,
        "loss": loss_value,
        "loss_sum": loss_sum,
        "n_targets": n_targets,
        "per_sequence_mean_loss": per_seq_means,
        "grad_global_l2_norm": gnorm,
        "shapes": dict(sorted(shapes.items())),
        "definitions": {
            "loss": ("transformers ForCausalLMLoss, float32: labels shifted left by one (logits[:, i] predicts "
                     "labels[:, i+1]; the last position has no target), cross-entropy summed over every target "
                     "!= -100 in the whole batch and divided by their total count (n_targets), i.e. a token-level "
                     "mean over the batch, not a mean of per-sequence means. Here both rows have 16 targets, so "
                     "the two coincide."),
            "labels": f"ids with the first {GRAD_IGNORED_PREFIX} positions set to -100; no padding (both rows are "
                      f"the first {GRAD_SEQ_LEN} tokens of longer texts)",
            "grads": "d loss / d parameter for every lora_A/lora_B tensor, keyed by the name in "
                     "adapter_model.safetensors (PEFT parameter name without the adapter name 'default'); float32",
        },
    }
    return base, info


# MARK: - Main

def main():
    # PEFT keeps target_modules as a Python set and writes it as a list in set order, which depends on string
    # hashing; pin PYTHONHASHSEED so adapter_config.json is byte-for-byte reproducible.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable] + sys.argv)
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=os.path.join(repo, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(repo, "Tests/Fixtures/lora"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)
    gguf_dir, gguf_name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    if tok("Hello", add_special_tokens=True)["input_ids"] != tok("Hello", add_special_tokens=False)["input_ids"]:
        sys.exit("error: tokenizer adds special tokens by default; fixtures assume no BOS")

    base, plain_dir, rs_dir = make_adapters(args, args.out)
    base, scores = make_scores(args, base, tok, plain_dir, rs_dir, args.out)
    base, grads_info = make_grads(args, base, tok, plain_dir, args.out)

    generator = {
        "script": "scripts/reference/lora_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "forward_dtype": "float32",
    }
    adapter = {
        "r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.0, "target_modules": TARGETS,
        "layers_to_transform": LAYERS, "init_lora_weights": False, "seed": SEED, "b_scale": B_SCALE,
        "note": "torch.manual_seed(0); get_peft_model (A, B ~ U(-1/sqrt(in), 1/sqrt(in))); every lora_B *= b_scale",
    }
    model_rec = {"file": gguf_name, "sha256": sha256_of(args.gguf)}
    for name, obj in (("peft_scores.json", scores), ("peft_grads.json", grads_info)):
        obj["model"] = model_rec
        obj["generator"] = generator
        obj["adapter"] = adapter
        path = os.path.join(args.out, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(path + ".tmp", path)
    total = 0
    for root, _, files in os.walk(args.out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print(f"wrote {args.out} ({total} bytes in total)")


if __name__ == "__main__":
    main()
