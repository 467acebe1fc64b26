#!/usr/bin/env python3
"""HF export fixtures ([6/7] item 3): what transformers makes of the Hugging Face files tune writes for a
GGUF model, recorded once so CI (no PyTorch) can check tune against it.

For SmolLM2-135M-Instruct (Q4_1) and Qwen2.5-Coder-0.5B-Instruct (Q4_K_M):
  * `tune tokenize MODEL --write-hf DIR` writes tokenizer.json, tokenizer_config.json, ...; transformers'
    AutoTokenizer loads DIR; recorded: each file's sha256 (CI regenerates them and must get the same bytes,
    so the files transformers read are the files tune writes), the ids of >= 50 strings
    (tok(text) with the tokenizer's own special-token handling), and apply_chat_template(tokenize=False)
    of >= 10 conversations, with and without the generation prompt.
For Gemma-3-270M (Q4_K_M, a SentencePiece GGUF: tune writes HF's byte_fallback BPE form) the same; this GGUF
has no tokenizer.chat_template, so no chats are recorded (with a template, the conversations Gemma's template
accepts: it raises on a system-only chat and on roles out of order).
Merged models: `tune merge --base GGUF --adapter A --method linear --output model --format safetensors
--dtype float32` (an HF directory made from a GGUF base) for SmolLM2 (Tests/Fixtures/lora/peft_adapter) and
Gemma-3-270M and Qwen2.5 (Tests/Fixtures/lora/gemma_peft_adapter, qwen_peft_adapter: seeded random PEFT LoRAs,
r=2 / r=1, first and last layers, all seven projections, non-zero B, written here), and SmolLM2 again with TUNE_HF_SHARD_BYTES=100000000 (a sharded
directory: model-0000k-of-0000N.safetensors + model.safetensors.index.json); AutoModelForCausalLM loads each
as it is; recorded: per-token log-probs of 5 texts (float64 log_softmax of float32 logits), the sha256 of its
tokenizer/config files (and of the shard index), and the largest |Δ log p| between the sharded and the
single-file SmolLM2 directories under transformers.

Run once (needs torch + transformers; /work/refvenv here):
  python scripts/reference/hf_export_fixtures.py --tune .build/release/tune
writes Tests/Fixtures/hf_export/fixtures.json.
"""
import argparse, hashlib, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "smollm2": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5": "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "gemma3": "models/gemma-3-270m-q4_k_m.gguf",
}
GEMMA_ADAPTER = "Tests/Fixtures/lora/gemma_peft_adapter"
QWEN_ADAPTER = "Tests/Fixtures/lora/qwen_peft_adapter"
SHARD_BYTES = 100_000_000
FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"]

STRINGS = [
    "", " ", "  ", "\n", "\n\n", "\t", "Hello world", " Hello world", "Hello  world", "hello\nworld",
    "The quick brown fox jumps over the lazy dog.", "I'm sure you've seen it; they'll say we'd go.",
    "DON'T SHOUT", "1234567890", "3.14159", "x = 42 + 7", "2026-12-07T10:15:59Z", "$1,000,000.00",
    "def f(x):\n    return x * 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }", "<html><body>hi</body></html>",
    "naïve café résumé", "Grüße aus München", "日本語のテキスト", "中文测试", "한국어", "Привет, мир!", "مرحبا بالعالم",
    "emoji 🙂👍🏽🚀", "tab\tseparated\tvalues", "trailing spaces   ", "   leading spaces", "line1\r\nline2",
    "mixed\u00a0nbsp", "zero\u200bwidth", "a" * 40, "ab" * 30, "!!!???...", "#hashtag @mention",
    "https://example.com/path?q=1&r=2", "user@example.com", "snake_case_name and camelCaseName",
    "Ship SKU-7781 to Rotterdam by 2027-01-15 via DHL Express.", "Invoice #A-0042: 3 × €19.99",
    "<|im_start|>user\nHi<|im_end|>", "text with <|endoftext|> inside", "<|im_start|>assistant\n",
    "Q: What is 2+2?\nA: 4", "   \n  \n", "CamelCase123Numbers456", "ÀÉÎÕÜ àéîõü",
]

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "What is the capital of France?"}, {"role": "assistant", "content": "Paris."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Explain TCP."}],
    [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "List 2 colors."},
     {"role": "assistant", "content": "{\"colors\": [\"red\", \"blue\"]}"}, {"role": "user", "content": "One more."}],
    [{"role": "user", "content": "Line one\nLine two\n\nLine four"}],
    [{"role": "user", "content": "Ünïcödé and emoji 🙂"}, {"role": "assistant", "content": "Noted 👍"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Empty system prompt."}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}],
    [{"role": "user", "content": "  leading and trailing spaces  "}],
    [{"role": "system", "content": "Classify shipping documents."},
     {"role": "user", "content": "Bill of lading no. 77, 12 pallets, Rotterdam → Hamburg"},
     {"role": "assistant", "content": "bill_of_lading"}],
    [{"role": "user", "content": "Write code:\n```python\nprint('x')\n```"}],
]

# Gemma's template: no system-only chat, roles alternating user/assistant after an optional system turn.
GEMMA_CONVERSATIONS = [c for c in CONVERSATIONS if c[-1]["role"] != "system"] + [
    [{"role": "system", "content": "Reply in French."}, {"role": "user", "content": "Good morning"},
     {"role": "assistant", "content": "Bonjour"}, {"role": "user", "content": "Thanks"}],
]

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Shipping documents: the bill of lading lists 12 pallets bound for Rotterdam.",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "Grüße aus München — naïve café, 3 × €19.99.",
]


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=ROOT)


def tokenizer_section(tune, key, model, tmp):
    from transformers import AutoTokenizer
    d = os.path.join(tmp, key + "-tokenizer")
    run([tune, "tokenize", model, "--write-hf", d])
    tok = AutoTokenizer.from_pretrained(d)
    out = {"model": model, "files": {f: sha(os.path.join(d, f)) for f in FILES},
           "strings": [{"text": s, "ids": tok(s)["input_ids"]} for s in STRINGS], "chats": []}
    if tok.chat_template is None:
        # The GGUF carries no tokenizer.chat_template (the Gemma-3-270M build here): tune writes none, so there is
        # nothing to render; HFExportTests checks tune refuses to guess one too.
        print(f"{key}: no chat template in the GGUF, none exported", file=sys.stderr)
        return out
    for conv in (GEMMA_CONVERSATIONS if key == "gemma3" else CONVERSATIONS):
        for gen in (False, True):
            if gen and conv[-1]["role"] == "assistant":
                continue
            try:
                text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            except Exception as e:  # a template that refuses this conversation (raise_exception)
                text = None
                print(f"{key}: template refused {conv}: {e}", file=sys.stderr)
            out["chats"].append({"messages": conv, "add_generation_prompt": gen, "text": text})
    return out


def write_random_adapter(model, out, r):
    """A seeded random PEFT LoRA for a GGUF's shapes: rank r, alpha 2r, the first and last layers,
    q/k/v/o/gate/up/down, A and B uniform in ±0.05 (B non-zero, so the merge changes the model)."""
    import gguf, numpy as np
    from safetensors.numpy import save_file
    f = gguf.GGUFReader(os.path.join(ROOT, model)).fields
    arch = f["general.architecture"].contents()
    hidden, ffn = int(f[arch + ".embedding_length"].contents()), int(f[arch + ".feed_forward_length"].contents())
    nh, nkv = int(f[arch + ".attention.head_count"].contents()), int(f[arch + ".attention.head_count_kv"].contents())
    nl = int(f[arch + ".block_count"].contents())
    hd = int(f[arch + ".attention.key_length"].contents()) if arch + ".attention.key_length" in f else hidden // nh
    shapes = {"self_attn.q_proj": (nh * hd, hidden), "self_attn.k_proj": (nkv * hd, hidden),
              "self_attn.v_proj": (nkv * hd, hidden), "self_attn.o_proj": (hidden, nh * hd),
              "mlp.gate_proj": (ffn, hidden), "mlp.up_proj": (ffn, hidden), "mlp.down_proj": (hidden, ffn)}
    layers = [0, nl - 1]
    rng = np.random.default_rng(20261207)
    tensors = {}
    for l in layers:
        for m, (out_dim, in_dim) in shapes.items():
            p = f"base_model.model.model.layers.{l}.{m}"
            tensors[p + ".lora_A.weight"] = rng.uniform(-0.05, 0.05, (r, in_dim)).astype(np.float32)
            tensors[p + ".lora_B.weight"] = rng.uniform(-0.05, 0.05, (out_dim, r)).astype(np.float32)
    d = os.path.join(ROOT, out)
    os.makedirs(d, exist_ok=True)
    save_file(tensors, os.path.join(d, "adapter_model.safetensors"))
    config = {"base_model_name_or_path": os.path.basename(model), "bias": "none", "fan_in_fan_out": False,
              "inference_mode": True, "init_lora_weights": False, "layers_to_transform": layers, "lora_alpha": 2 * r,
              "lora_dropout": 0.0, "peft_type": "LORA", "r": r,
              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
              "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}
    with open(os.path.join(d, "adapter_config.json"), "w") as fh:
        json.dump(config, fh, indent=2)
        fh.write("\n")


def logprobs(d, tok):
    import torch
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    texts = []
    for t in TEXTS:
        ids = tok(t)["input_ids"]
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1)
        texts.append({"text": t, "ids": ids, "logprobs": [lp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]})
    return texts


def merged_section(tune, key, model, adapter, tmp, shard_bytes=None):
    from transformers import AutoTokenizer
    d = os.path.join(tmp, key + "-merged")
    env = dict(os.environ)
    if shard_bytes:
        env["TUNE_HF_SHARD_BYTES"] = str(shard_bytes)
    cmd = [tune, "merge", "--base", model, "--adapter", adapter, "--method", "linear",
           "--output", "model", "--format", "safetensors", "--dtype", "float32", "--out", d]
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    files = FILES + ["config.json"]
    out = {"base": model, "adapter": adapter}
    if shard_bytes:
        index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
        out["shard_bytes"] = shard_bytes
        out["shards"] = len(set(index["weight_map"].values()))
        assert out["shards"] >= 2, out["shards"]
        files.append("model.safetensors.index.json")
    tok = AutoTokenizer.from_pretrained(d)
    out["files"] = {f: sha(os.path.join(d, f)) for f in files}
    out["texts"] = logprobs(d, tok)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tune", required=True)
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests/Fixtures/hf_export/fixtures.json"))
    a = ap.parse_args()
    tune = os.path.abspath(a.tune)
    import transformers
    with tempfile.TemporaryDirectory() as tmp:
        fx = {"format": "tune-hf-export-fixtures", "version": 1, "transformers": transformers.__version__,
              "definitions": {
                  "strings.ids": "AutoTokenizer.from_pretrained(tune's files)(text)['input_ids']",
                  "chats.text": "apply_chat_template(messages, tokenize=False, add_generation_prompt); null when the template raises",
                  "merged.*.texts.logprobs": "length T-1; [i] = float64 log_softmax(float32 logits[i])[ids[i+1]] of the exported HF directory"},
              "tokenizers": {k: tokenizer_section(tune, k, m, tmp) for k, m in MODELS.items()}}
        write_random_adapter(MODELS["gemma3"], GEMMA_ADAPTER, 2)
        write_random_adapter(MODELS["qwen2.5"], QWEN_ADAPTER, 1)
        merged = {"smollm2": merged_section(tune, "smollm2", MODELS["smollm2"], "Tests/Fixtures/lora/peft_adapter", tmp),
                  "smollm2-sharded": merged_section(tune, "smollm2-sharded", MODELS["smollm2"], "Tests/Fixtures/lora/peft_adapter",
                                                    tmp, shard_bytes=SHARD_BYTES),
                  "gemma3": merged_section(tune, "gemma3", MODELS["gemma3"], GEMMA_ADAPTER, tmp),
                  "qwen2.5": merged_section(tune, "qwen2.5", MODELS["qwen2.5"], QWEN_ADAPTER, tmp)}
        worst = max(abs(a - b) for s1, s2 in zip(merged["smollm2"]["texts"], merged["smollm2-sharded"]["texts"])
                    for a, b in zip(s1["logprobs"], s2["logprobs"]))
        merged["smollm2-sharded"]["max_abs_diff_vs_single_file"] = worst
        print(f"sharded vs single-file SmolLM2 under transformers: max |Δ log p| = {worst}", file=sys.stderr)
        fx["merged"] = merged
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(fx, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
