#!/usr/bin/env python3
"""real_gguf_fixtures.py — transformers (float32) reading a real GGUF: token ids, per-token log-probs and
greedy continuations that RealModelParityTests compares tune against.

    scripts/reference/.venv/bin/python scripts/reference/real_gguf_fixtures.py \
        --gguf models/gemma-3-270m-q4_k_m.gguf --out Tests/Fixtures/forward/gemma3_270m.json
    scripts/reference/.venv/bin/python scripts/reference/real_gguf_fixtures.py \
        --gguf models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --out Tests/Fixtures/forward/qwen25_coder_05b.json --chat

What it does: `AutoModelForCausalLM.from_pretrained(dir, gguf_file=NAME, dtype=float32)` dequantizes every
GGUF tensor to float32 (and, for Gemma, undoes llama.cpp's `1 + w` on the norms); the tokenizer is the
`tokenizers` fast tokenizer transformers builds from the GGUF's own vocabulary. Records:
  - `tokens`: ids of ≥ 50 strings (no special tokens added), the tokenizer parity cases;
  - `prompts`: for each prompt, `ids` (with BOS when the tokenizer adds one), `token_logprobs`
    (log_softmax(logits[i])[ids[i+1]] in float64 of the float32 logits) and the top-5 ids at the end;
  - `greedy`: 16 greedy tokens (`generate(do_sample=False)`) after two of the prompts.
The chat prompt uses the model's own chat template (`--chat`; Qwen's), or Gemma's turn markers written
out (Gemma-3-270M is a base model without a template).
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

STRINGS = [
    "Hello world", " Hello world", "hello  world", "Hello, World!", "HELLO", "héllo wörld", "naïve café",
    "The quick brown fox jumps over the lazy dog.", "1234567890", "3.14159", "1,000,000", "2024-12-06",
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; i++) { sum += a[i]; }", "a\tb\tc", "line1\nline2\n\nline4",
    "   leading spaces", "trailing spaces   ", "multiple     spaces", "emoji 🙂🚀", "日本語のテキスト", "中文文本测试",
    "Привет, мир", "مرحبا بالعالم", "한국어 텍스트", "Ελληνικά", "don't can't won't", "It's 5 o'clock",
    "snake_case_identifier", "camelCaseIdentifier", "URL: https://example.com/path?q=1&r=2", "email@example.com",
    "<html><body>hi</body></html>", '{"key": "value", "n": 1}', "SELECT * FROM t WHERE id = 42;", "$ ls -la | grep x",
    "x^2 + y^2 = z^2", "∑ ∫ √ ∞ ≈ ≠", "₿ € £ ¥", "a" * 40, "ab" * 15, "\n\n\n", " ", "", "Tab\there",
    "Mixed CASE and numbers 42x", "supercalifragilisticexpialidocious", "ThisIsAVeryLongCamelCaseWordWithoutSpaces",
    "ship-to: 1200 Main St., Springfield", "Order #A-10293 shipped via UPS Ground", "¿Dónde está la biblioteca?",
    "Zürich, München, Köln", "tokenization edge-case: '''quoted'''", "0x1F 0b1010 1e-9", "—dash– and … ellipsis",
]

PLAIN = ["The capital of France is", "def fibonacci(n):\n    if n < 2:\n        return n\n",
         "In 1969, Apollo 11 landed on the Moon. The mission was commanded by", "Die Hauptstadt von Deutschland ist",
         "Shipping documents must include the bill of lading, the commercial invoice and the packing list. "
         "When goods cross a border, customs also needs a certificate of origin. Which document proves ownership?"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--chat", action="store_true", help="the chat prompt uses the model's own chat template")
    a = ap.parse_args()
    torch.manual_seed(0)
    d, name = os.path.dirname(os.path.abspath(a.gguf)), os.path.basename(a.gguf)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32)
    model.eval()
    print(type(model).__name__, model.config.model_type, file=sys.stderr)

    if a.chat:
        msgs = [{"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "Name one document needed to export goods."}]
        chat = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        chat_full = chat + "A commercial invoice."
    else:
        chat = "<start_of_turn>user\nName one document needed to export goods.<end_of_turn>\n<start_of_turn>model\n"
        chat_full = chat + "A commercial invoice."

    tokens = [{"text": s, "ids": tok.encode(s, add_special_tokens=False)} for s in STRINGS]
    prompts = []
    for i, text in enumerate(PLAIN + [chat_full]):
        ids = tok.encode(text, add_special_tokens=True) if i < len(PLAIN) else tok.encode(text, add_special_tokens=False)
        if i == len(PLAIN) and tok.bos_token_id is not None and getattr(tok, "add_bos_token", False) and ids[:1] != [tok.bos_token_id]:
            ids = [tok.bos_token_id] + ids
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1)
        token_lp = [float(lp[t, ids[t + 1]]) for t in range(len(ids) - 1)]
        top5 = torch.topk(logits[-1], 5).indices.tolist()
        prompts.append({"name": "chat" if i == len(PLAIN) else f"plain{i}", "text": text, "ids": ids,
                        "token_logprobs": [float("%.7g" % v) for v in token_lp], "top5": top5})
    greedy = []
    for p in (prompts[0], {"name": "chat", "ids": tok.encode(chat, add_special_tokens=False) if not (tok.bos_token_id is not None and getattr(tok, "add_bos_token", False)) else [tok.bos_token_id] + tok.encode(chat, add_special_tokens=False)}):
        with torch.no_grad():
            out = model.generate(torch.tensor([p["ids"]]), max_new_tokens=16, do_sample=False,
                                 attention_mask=torch.ones(1, len(p["ids"]), dtype=torch.long))
        new = out[0, len(p["ids"]):].tolist()
        greedy.append({"name": p["name"], "ids": p["ids"], "new_ids": new, "text": tok.decode(new)})
        print(p["name"], repr(tok.decode(new)), file=sys.stderr)
    fixture = {
        "format": "tune-real-gguf-fixture", "version": 1,
        "generator": f"scripts/reference/real_gguf_fixtures.py (torch {torch.__version__}, transformers {transformers.__version__}, numpy {np.__version__}, float32)",
        "model": {"file": name, "sha256": sha256(a.gguf), "model_type": model.config.model_type},
        "bos_added": bool(getattr(tok, "add_bos_token", False)),
        "tokens": tokens, "prompts": prompts, "greedy": greedy,
    }
    with open(a.out, "w") as f:
        json.dump(fixture, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {a.out}: {len(tokens)} strings, {len(prompts)} prompts, {len(greedy)} greedy runs", file=sys.stderr)


if __name__ == "__main__":
    main()
