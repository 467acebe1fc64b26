#!/usr/bin/env python3
"""family_fixtures.py — transformers' own model classes (float32, eager attention) over tune's tiny random
models of the families beyond Llama 2: Qwen3 (q/k norm, head_dim ≠ C/H), Gemma 3 ((1 + w) norms, sandwich norms,
GeGLU, √C embedding scale, sliding-window layers with their own RoPE θ), Llama 3.x (`llama3` RoPE scaling), Phi-3
(fused qkv_proj/gate_up_proj, a sliding window on every layer), Mistral (MistralForCausalLM, head_dim 32 ≠ C/H) and
Qwen2 (q/k/v biases; qwen2_fixtures.py is its numpy float64 reference, this is transformers'). Writes
Tests/Fixtures/forward/families_tiny_logits.json, which FamilyForwardTests compares tune's logits against, for the HF
directories, the GGUFs tune writes of the same weights and the GGUFs llama.cpp's converter writes of them
(converted_gguf_fixtures.py).

The models are TinyLlama.writeHF(config: .tinyQwen3 / .tinyGemma3 / .tinyLlama3 / .tinyPhi3 / .tinyMistral /
.tinyQwen2, seed: 13), written by the Swift test when asked:

    TUNE_WRITE_FAMILIES_TINY=/tmp/families swift test -c release --filter FamilyForwardTests/description
    /work/refvenv/bin/python scripts/reference/family_fixtures.py --models /tmp/families

Each family records the sha256 of the model.safetensors and config.json it read; the test regenerates the model
and requires the same hashes, so the fixture always describes the bytes tune loads.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

SEED = 13
FAMILIES = ["qwen3", "gemma3", "llama3", "phi3", "mistral", "qwen2"]
SEQUENCES = [
    ("short", [1, 72, 101, 108, 108, 111]),
    # 24 tokens: past Gemma's 8-token window, so the sliding layers must clip.
    ("long", [(7 * i * i + 3 * i + 5) % 285 for i in range(24)]),
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="directory with the families' HF directories written by the Swift test")
    ap.add_argument("--out", default="Tests/Fixtures/forward/families_tiny_logits.json")
    a = ap.parse_args()
    out = {"format": "tune-families-forward-fixture", "version": 1,
           "generator": f"scripts/reference/family_fixtures.py (torch {torch.__version__}, transformers {transformers.__version__}, float32, eager attention)",
           "seed": SEED, "families": {}}
    for fam in FAMILIES:
        d = os.path.join(a.models, fam)
        cfg = AutoConfig.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        model.eval()
        print(fam, type(model).__name__, file=sys.stderr)
        seqs = []
        for name, ids in SEQUENCES:
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0]
            seqs.append({"name": name, "ids": ids,
                         "logits": [[float("%.7g" % v) for v in row] for row in logits.tolist()]})
        out["families"][fam] = {
            "class": type(model).__name__, "model_type": cfg.model_type,
            "model_safetensors_sha256": sha256(os.path.join(d, "model.safetensors")),
            "config_json_sha256": sha256(os.path.join(d, "config.json")),
            "sequences": seqs,
        }
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
