#!/usr/bin/env python3
"""forward_fixtures.py — reference forward pass of SmolLM2-135M-Instruct (GGUF Q4_1) via transformers.

Scope: produces Tests/Fixtures/forward/smollm2_forward.json, the parity fixture the Swift engine's
forward pass is checked against. transformers dequantizes the GGUF tensors to float32 and un-permutes
Q/K (llama.cpp stores them permuted for its RoPE layout), so the logits here are those of the
dequantized model evaluated in float32.

Per prompt it records: text, token ids (no BOS: SmolLM2's tokenizer has add_bos_token false, checked
below), per-token log-probabilities (float64 log_softmax of float32 logits), their mean, and the top-5
logits at the last position. Two prompts also get a 16-token greedy continuation. The first prompt
additionally carries the hidden state after decoder layer 0 (first 8 values of the first 3 tokens).

Usage:
    scripts/reference/.venv/bin/python scripts/reference/forward_fixtures.py \
        [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf] [--out Tests/Fixtures/forward/smollm2_forward.json]
"""

import argparse
import hashlib
import json
import os
import platform
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

# MARK: - Prompts

PLAIN = "The quick brown fox jumps over the lazy dog. Then it runs into the forest"
CODE = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) +"
NUMBERS = "1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987"
UNICODE = "Café crème, naïve façade — 東京タワー は 333 m. Привет, мир! 🚀✨ Ωmega ≥ 42°C"
PARAGRAPH = (
    "Photosynthesis is the process by which green plants, algae and some bacteria convert light "
    "energy into chemical energy. During this process, carbon dioxide and water are combined, using "
    "the energy of sunlight captured by chlorophyll, to produce glucose and oxygen. The glucose is used "
    "by the plant as a source of energy and as a building block for growth, while the oxygen is released "
    "into the atmosphere. Almost all life on Earth depends, directly or indirectly, on this remarkable "
    "set of reactions, which also shapes the composition of the air we breathe."
)
CHAT_MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
CHAT_ANSWER = "The capital of France is Paris."

# (name, greedy continuation?) — text filled in main() because the chat prompt needs the tokenizer.
GREEDY_PROMPTS = {"plain", "chat"}

# Expected SmolLM2-135M architecture; the script refuses to write a fixture for anything else.
EXPECTED_CONFIG = {
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "hidden_size": 576,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}

GREEDY_NEW_TOKENS = 16
TOP_K = 5


# MARK: - Helpers

def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rope_theta_of(config):
    """rope_theta moved into rope_parameters in newer transformers; accept either."""
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        params = getattr(config, "rope_parameters", None) or {}
        theta = params.get("rope_theta")
    return float(theta) if theta is not None else None


def check_config(config):
    seen = {
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "hidden_size": config.hidden_size,
        "rope_theta": rope_theta_of(config),
        "tie_word_embeddings": bool(config.tie_word_embeddings),
    }
    print("loaded config:")
    for k in ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings",
              "tie_word_embeddings"]:
        print(f"  {k} = {getattr(config, k, None)}")
    print(f"  rope_theta = {seen['rope_theta']}")
    bad = {k: (seen[k], v) for k, v in EXPECTED_CONFIG.items() if seen[k] != v}
    if bad:
        sys.exit(f"error: unexpected model config (seen, expected): {bad}")
    return seen


def model_config_record(config):
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": getattr(config, "head_dim", config.hidden_size // config.num_attention_heads),
        "rope_theta": rope_theta_of(config),
        "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "tie_word_embeddings": bool(config.tie_word_embeddings),
    }


def r(x, digits=6):
    """Round a float for the JSON (6 decimals is far below any tolerance the engine is held to)."""
    return round(float(x), digits)


# MARK: - Forward pass

@torch.no_grad()
def score(model, ids, want_hidden):
    inp = torch.tensor([ids], dtype=torch.long)
    out = model(input_ids=inp, output_hidden_states=want_hidden)
    logits = out.logits[0].to(torch.float32)                       # [T, V], float32 forward
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)     # float64 normalisation
    targets = torch.tensor(ids[1:], dtype=torch.long)
    token_logprobs = logp[:-1].gather(1, targets[:, None])[:, 0].tolist()
    last = logits[-1]
    top = torch.topk(last, TOP_K)
    rec = {
        "token_logprobs": [r(v) for v in token_logprobs],
        "mean_loglik": r(float(np.mean(token_logprobs))) if token_logprobs else None,
        "last_top5": {"ids": top.indices.tolist(), "logits": [r(v, 5) for v in top.values.tolist()]},
    }
    if want_hidden:
        # hidden_states[0] is the embedding output, hidden_states[1] the output of decoder layer 0.
        h = out.hidden_states[1][0]
        rec["debug_hidden_after_layer0"] = {
            "note": "output of decoder layer 0 (residual stream, before any norm); first 8 values of tokens 0..2",
            "values": [[r(v, 6) for v in h[t, :8].tolist()] for t in range(min(3, h.shape[0]))],
        }
        e = out.hidden_states[0][0]
        rec["debug_embedding"] = {
            "note": "token embedding (hidden_states[0]); first 8 values of tokens 0..2",
            "values": [[r(v, 6) for v in e[t, :8].tolist()] for t in range(min(3, e.shape[0]))],
        }
    return rec


@torch.no_grad()
def greedy(model, ids, n):
    inp = torch.tensor([ids], dtype=torch.long)
    out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), do_sample=False,
                         max_new_tokens=n, min_new_tokens=n, pad_token_id=model.config.eos_token_id)
    return out[0, len(ids):].tolist()


# MARK: - Main

def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=os.path.join(repo, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(repo, "Tests/Fixtures/forward/smollm2_forward.json"))
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    gguf_dir, gguf_name = os.path.split(os.path.abspath(args.gguf))

    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    model.eval()
    check_config(model.config)

    # No BOS: the ids must be exactly the text's tokens.
    add_bos = getattr(tok, "add_bos_token", None)
    probe = "Hello"
    with_special = tok(probe, add_special_tokens=True)["input_ids"]
    without = tok(probe, add_special_tokens=False)["input_ids"]
    print(f"tokenizer: add_bos_token={add_bos} bos={tok.bos_token!r}/{tok.bos_token_id} "
          f"eos={tok.eos_token!r}/{tok.eos_token_id}; encode('Hello') special={with_special} plain={without}")
    if with_special != without:
        sys.exit("error: tokenizer adds special tokens by default; fixture assumes add_bos_token=false")

    chat_prompt = tok.apply_chat_template(CHAT_MESSAGES, tokenize=False, add_generation_prompt=True)
    prompts = [
        ("plain", PLAIN),
        ("code", CODE),
        ("numbers", NUMBERS),
        ("unicode", UNICODE),
        ("paragraph", PARAGRAPH),
        ("chat", chat_prompt + CHAT_ANSWER),
    ]

    records = []
    for i, (name, text) in enumerate(prompts):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        rec = {"name": name, "text": text, "ids": ids}
        if name == "chat":
            rec["chat_prompt_ids_count"] = len(tok(chat_prompt, add_special_tokens=False)["input_ids"])
        rec.update(score(model, ids, want_hidden=(i == 0)))
        if name in GREEDY_PROMPTS:
            # For the chat prompt continue from the generation prompt (the assistant's turn), not the answer.
            gen_ids = ids if name != "chat" else tok(chat_prompt, add_special_tokens=False)["input_ids"]
            rec["greedy"] = {"prompt_ids_count": len(gen_ids), "new_tokens": GREEDY_NEW_TOKENS,
                             "ids": greedy(model, gen_ids, GREEDY_NEW_TOKENS)}
            rec["greedy"]["text"] = tok.decode(rec["greedy"]["ids"])
        print(f"{name:10s} T={len(ids):4d} mean_loglik={rec['mean_loglik']:.4f} top1={rec['last_top5']['ids'][0]}"
              + (f" greedy={rec['greedy']['text']!r}" if "greedy" in rec else ""))
        records.append(rec)

    fixture = {
        "format": "tune-forward-fixture",
        "version": 1,
        "model": {"file": gguf_name, "sha256": sha256_of(args.gguf), "config": model_config_record(model.config)},
        "generator": {
            "script": "scripts/reference/forward_fixtures.py",
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
            "forward_dtype": "float32",
            "logprob_dtype": "float64",
        },
        "tokenizer": {"add_bos_token": bool(add_bos) if add_bos is not None else None,
                      "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id},
        "definitions": {
            "token_logprobs": "length T-1; token_logprobs[i] = log_softmax(logits[i])[ids[i+1]]",
            "mean_loglik": "mean of token_logprobs",
            "last_top5": "top-5 raw logits (float32) and ids at position T-1",
            "greedy": "model.generate(do_sample=False) new token ids after prompt_ids_count prompt tokens",
        },
        "prompts": records,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
