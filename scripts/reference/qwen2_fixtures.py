#!/usr/bin/env python3
"""qwen2_fixtures.py — a numpy float64 Qwen2 forward (no PyTorch) over tune's tiny random qwen2 model.

Scope: produces Tests/Fixtures/forward/qwen2_tiny_logits.json, which Qwen2ForwardTests compares tune's
logits against (GGUF and HF layouts). The model is TinyLlama.writeHF(config: .tinyQwen2, seed: 11) —
written by the Swift test itself when asked:

    TUNE_WRITE_QWEN2_TINY=/tmp/qwen2-tiny swift test --skip-build --filter Qwen2ForwardTests
    python3 scripts/reference/qwen2_fixtures.py --model /tmp/qwen2-tiny

The fixture records the sha256 of the model.safetensors and config.json it read; the test regenerates
the model with the same seed and requires the same hashes, so the fixture always describes the bytes
tune loads.

The forward follows transformers' Qwen2 modeling code written out by hand:
    x = embed[ids]
    per layer: h = RMSNorm(x)·g (eps from config); q,k,v = h·Wᵀ + b (q/k/v biases; o_proj has none)
               rotate-half RoPE with rope_theta on q, k; causal GQA softmax(q·kᵀ/√D)·v; x += o_proj(att)
               h = RMSNorm(x)·g;  x += down(silu(gate(h)) · up(h))
    x = RMSNorm(x)·g;  logits = x · embed_tokensᵀ (tie_word_embeddings) or lm_head
in float64 from the stored float32 weights. Needs only numpy (safetensors parsed with struct/json).
"""

import argparse
import hashlib
import json
import os
import struct
import sys

import numpy as np

SEED = 11
SEQUENCES = [
    ("short", [1, 72, 101, 108, 108, 111]),
    ("chatish", [1, 120, 101, 112, 2, 10, 1, 97, 115, 115, 278, 33]),
    ("long", [(7 * i * i + 3 * i + 5) % 285 for i in range(24)]),
]


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"{path}: tensor {name} is {info['dtype']}; this script reads F32 only")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope(x, theta):
    # x [T, heads, D]; HF rotate_half convention
    T, _, D = x.shape
    inv = theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :]
    rot = np.concatenate([-x[..., D // 2 :], x[..., : D // 2]], axis=-1)
    return x * cos + rot * sin


def forward(w, cfg, ids):
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = C // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)
        q = h @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]
        k = h @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]
        v = h @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]
        q = rope(q.reshape(T, H, D), theta)
        k = rope(k.reshape(T, Hkv, D), theta)
        v = v.reshape(T, Hkv, D)
        att = np.zeros((T, H, D))
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for hh in range(H):
            kh = hh // (H // Hkv)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            att[:, hh, :] = s @ v[:, kh, :]
        x = x + att.reshape(T, H * D) @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="HF directory written by TinyLlama.writeHF (.tinyQwen2, seed 11)")
    ap.add_argument("--out", default="Tests/Fixtures/forward/qwen2_tiny_logits.json")
    a = ap.parse_args()
    st, cj = os.path.join(a.model, "model.safetensors"), os.path.join(a.model, "config.json")
    with open(cj) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "qwen2":
        sys.exit(f"{cj}: model_type {cfg.get('model_type')!r}, expected 'qwen2'")
    w = read_safetensors(st)
    seqs = []
    for name, ids in SEQUENCES:
        logits = forward(w, cfg, np.array(ids))
        seqs.append({"name": name, "ids": ids,
                     "logits": [[float("%.7g" % v) for v in row] for row in logits]})
    out = {
        "format": "tune-qwen2-forward-fixture", "version": 1,
        "generator": "scripts/reference/qwen2_fixtures.py (numpy %s, float64)" % np.__version__,
        "model": {"config": "LlamaConfig.tinyQwen2", "seed": SEED,
                  "model_safetensors_sha256": sha256(st), "config_json_sha256": sha256(cj)},
        "sequences": seqs,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {a.out}: {len(seqs)} sequences, {sum(len(s['ids']) for s in seqs)} logit rows")


if __name__ == "__main__":
    main()
