#!/usr/bin/env python3
"""HF export fixtures ([6/7] item 3): what transformers makes of the Hugging Face files tune writes for a
GGUF model, recorded once so CI (no PyTorch) can check tune against it.

For SmolLM2-135M-Instruct (Q4_1) and Qwen2.5-Coder-0.5B-Instruct (Q4_K_M):
  * `tune tokenize MODEL --write-hf DIR` writes tokenizer.json, tokenizer_config.json, ...; transformers'
    AutoTokenizer loads DIR; recorded: each file's sha256 (CI regenerates them and must get the same bytes,
    so the files transformers read are the files tune writes), the ids of >= 50 strings
    (tok(text) with the tokenizer's own special-token handling), and apply_chat_template(tokenize=False)
    of >= 10 conversations, with and without the generation prompt.
For SmolLM2 also a merged model: `tune merge --base GGUF --adapter Tests/Fixtures/lora/peft_adapter
--method linear --output model --format safetensors --dtype float32` (an HF directory made from a GGUF
base); AutoModelForCausalLM loads it as it is; recorded: per-token log-probs of 5 texts (float64
log_softmax of float32 logits) and the sha256 of its tokenizer/config files.

Run once (needs torch + transformers; /work/refvenv here):
  python scripts/reference/hf_export_fixtures.py --tune .build/release/tune
writes Tests/Fixtures/hf_export/fixtures.json.
"""
import argparse, hashlib, json, os, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = {
    "smollm2": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
    "qwen2.5": "models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
}
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
    for conv in CONVERSATIONS:
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


def merged_section(tune, model, tmp):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d = os.path.join(tmp, "smollm2-merged")
    run([tune, "merge", "--base", model, "--adapter", "Tests/Fixtures/lora/peft_adapter", "--method", "linear",
         "--output", "model", "--format", "safetensors", "--dtype", "float32", "--out", d])
    tok = AutoTokenizer.from_pretrained(d)
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    texts = []
    for t in TEXTS:
        ids = tok(t)["input_ids"]
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0].double()
        lp = torch.log_softmax(logits, dim=-1)
        texts.append({"text": t, "ids": ids, "logprobs": [lp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]})
    return {"base": model, "adapter": "Tests/Fixtures/lora/peft_adapter",
            "files": {f: sha(os.path.join(d, f)) for f in FILES + ["config.json"]}, "texts": texts}


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
                  "merged.texts.logprobs": "length T-1; [i] = float64 log_softmax(float32 logits[i])[ids[i+1]] of the exported HF directory"},
              "tokenizers": {k: tokenizer_section(tune, k, m, tmp) for k, m in MODELS.items()},
              "merged": merged_section(tune, MODELS["smollm2"], tmp)}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(fx, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
