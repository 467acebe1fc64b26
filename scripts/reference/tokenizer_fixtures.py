#!/usr/bin/env python3
"""Reference fixtures for Engine/Tokenizer (byte-level BPE parity + chat templates).

Builds the reference HF tokenizer for SmolLM2 straight from the GGUF metadata with the
`tokenizers` library (vocab + merges from gguf's GGUFReader; pre_tokenizer exactly as SmolLM2's
own tokenizer.json: Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)];
added tokens = the control tokens), cross-checks it against
`transformers.AutoTokenizer.from_pretrained(dir, gguf_file=...)`, and writes
Tests/Fixtures/tokenizer/smollm2.json.

Usage: scripts/reference/.venv/bin/python scripts/reference/tokenizer_fixtures.py [path/to/model.gguf]
       ... tokenizer_fixtures.py --fuzz N OUT.json [path/to/model.gguf]
  --fuzz writes N random strings with their reference ids to OUT.json (not committed); run
  TOKENIZER_FUZZ_FIXTURE=OUT.json swift test --filter TokenizerSmolLMParityTests to compare.
"""
import json
import os
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer", "smollm2.json")

# MARK: - test strings

STRINGS = [
    "",
    " ",
    "  ",
    "Hello",
    "Hello, world!",
    " Hello world",
    "Hello world ",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between words",
    "tab\tseparated\tvalues",
    "\t\tindented with tabs",
    "line one\nline two\n",
    "windows\r\nline\r\nendings\r\n",
    "\n\n\nthree newlines first",
    "blank lines\n\n\n\nbetween",
    "mixed \t \n \r\n whitespace  \n  end",
    "It's a dog's life, isn't it? We'll see, they'd say, you're right, I've done, I'm here.",
    "IT'S SHOUTING: DON'T, WE'LL, THEY'RE",
    "'s 't 're 've 'm 'll 'd ''' '",
    "1",
    "12",
    "123",
    "1234567890",
    "3.14159265358979",
    "The year 2024 had 366 days; 1,000,000 people; 0.5% growth.",
    "Phone: +1 (555) 010-9999, ext. 42",
    "x1y22z333",
    "café naïve résumé façade Ångström",
    "Straße größer Übermaß",
    "日本語のテキストです。",
    "中文分词测试：你好，世界！",
    "한국어 문장입니다.",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "e\u0301 a\u0300 o\u0308 combining marks n\u0303",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo",
    "emoji 😀🎉👍🏽 and 👨‍👩‍👧‍👦 family",
    "🤖🤖🤖",
    "flags 🇫🇷🇯🇵 keycap 1️⃣",
    "math: ∀x∈ℝ, x² ≥ 0; ∑_{i=1}^{n} i = n(n+1)/2",
    "Roman Ⅻ, fractions ½ ¾, superscripts ¹²³, Arabic digits ٣٤٥",
    "full-width ＡＢＣ１２３",
    "non-breaking\u00a0space and\u2003em space and\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200d",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "func greet(_ name: String) -> String { \"Hello, \\(name)!\" }",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"container\"><p>Hello &amp; welcome</p></div>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}",
    "const f = async (x) => { await sleep(100); return x ?? 'default'; };",
    "https://example.com/path?query=1&other=two#frag",
    "user@example.com",
    "!!!???...,,,;;;",
    "--- *** ___ ~~~ ``` $$$",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text",
    "<|im_end|><|im_end|>",
    "<|im_start|",
    "<repo_name>tune<file_sep>main.swift",
    "a<|im_start|>b <|im_end|> c",
    "The quick brown fox jumps over the lazy dog.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "wordwithoutspaces" * 6,
    "\u0000\u0001\u007f control chars",
    "Mixed: Hello世界 123abc 😀ok",
    " \n ",
    "end with newline\n",
]

CHATS = [
    {"messages": [{"role": "user", "content": "Hello!"}]},
    {"messages": [{"role": "system", "content": "You are a terse assistant."},
                  {"role": "user", "content": "What is 2+2?"}]},
    {"messages": [{"role": "user", "content": "Write a haiku about tokenizers."},
                  {"role": "assistant", "content": "Bytes merge into words,\nranks decide the quiet order —\nids flow like water."},
                  {"role": "user", "content": "Another one, please 😀"}]},
    {"messages": [{"role": "system", "content": "Réponds en français."},
                  {"role": "user", "content": "  spaces around  "},
                  {"role": "assistant", "content": "D'accord.\n"}]},
]

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Extra pre-tokenizer strings that stress the Llama-3 pattern.
PRE_EXTRA = ["12345678", "x1234y", "'Re 'VE 'LL 'D 'M 'T 'S", "a\n\n  b", "  \n\t\n  x", "!!!\n\n", "(foo)\r\n",
             "\tword", "-word", "ab12cd345ef", "٣٤٥٦ ¹²³⁴", "x  \u3000y", "end  "]

# Chat templates rendered with transformers for the non-SmolLM formats.
CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                   "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
                   "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
                   "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# MARK: - reference tokenizer from GGUF


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_ints(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def field_scalar(reader, key):
    f = reader.fields[key]
    part = f.parts[f.data[0]]
    if f.types[0].name == "STRING":
        return bytes(part).decode("utf-8")
    return part.tolist()[0]


def build_reference(gguf_path):
    reader = GGUFReader(gguf_path)
    tokens = field_strings(reader, "tokenizer.ggml.tokens")
    types = field_ints(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field_strings(reader, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    control = [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == 3]
    tok.add_special_tokens(control)
    template = field_scalar(reader, "tokenizer.chat_template")
    return tok, template


# MARK: - main


FUZZ_ALPHABET = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3
                 + list(" " * 20 + "\t\n\r'\"!?.,;:-_()[]{}<>/\\|@#$%^&*+=~`")
                 + list("éüñßçøåÆŒ日本語中文한국ЖжΩπ😀🎉👍🏽\u200d\u0301\u00a0\u3000١٢³½ⅫΣσςſKİı"))


def fuzz(n, out, gguf_path):
    import random
    rng = random.Random(1234)
    ref, _ = build_reference(gguf_path)
    specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    llama3_pre = pre_tokenizers.Split(Regex(LLAMA3_REGEX), "isolated")
    cases = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 40)):
            r = rng.random()
            if r < 0.03:
                parts.append(rng.choice(specials))
            elif r < 0.06:
                parts.append(rng.choice(["'s", "'t", "'re", "'ll", "'D", " " * rng.randint(2, 6), "\r\n", "\n\n"]))
            else:
                parts.append(rng.choice(FUZZ_ALPHABET))
        text = "".join(parts)
        cases.append({"text": text, "ids": ref.encode(text, add_special_tokens=False).ids,
                      "llama3": [w for w, _ in llama3_pre.pre_tokenize_str(text)]})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    print(f"wrote {out}: {n} random strings")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--fuzz":
        fuzz(int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else DEFAULT_GGUF)
        return
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    ref, template = build_reference(gguf_path)

    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)),
                                       gguf_file=os.path.basename(gguf_path))

    differences = []
    cases = []
    for s in STRINGS:
        enc = ref.encode(s, add_special_tokens=False)
        ids = enc.ids
        assert ref.decode(ids, skip_special_tokens=False) == s, f"reference round trip failed: {s!r}"
        hf_ids = hf.encode(s, add_special_tokens=False)
        if hf_ids != ids:
            differences.append({"text": s, "reference": ids, "transformers": hf_ids})
        cases.append({"text": s, "ids": ids, "tokens": enc.tokens})

    chats = []
    for chat in CHATS:
        for gen in (False, True):
            rendered = hf.apply_chat_template(chat["messages"], tokenize=False, add_generation_prompt=gen)
            ids = ref.encode(rendered, add_special_tokens=False).ids
            chats.append({"messages": chat["messages"], "add_generation_prompt": gen,
                          "text": rendered, "ids": ids})

    smollm_pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                          pre_tokenizers.Split(Regex(GPT2_REGEX), "isolated")])
    llama3_pre = pre_tokenizers.Split(Regex(LLAMA3_REGEX), "isolated")
    pre = [{"text": s, "smollm": [w for w, _ in smollm_pre.pre_tokenize_str(s)],
            "llama3": [w for w, _ in llama3_pre.pre_tokenize_str(s)]} for s in STRINGS + PRE_EXTRA if s]

    templates = []
    for name, tmpl in (("chatml", CHATML_TEMPLATE), ("llama3", LLAMA3_TEMPLATE)):
        renders = []
        for chat in CHATS:
            for gen in (False, True):
                text = hf.apply_chat_template(chat["messages"], chat_template=tmpl, tokenize=False,
                                              add_generation_prompt=gen, bos_token="<|begin_of_text|>")
                renders.append({"messages": chat["messages"], "add_generation_prompt": gen, "text": text})
        templates.append({"name": name, "template": tmpl, "renders": renders})

    fixture = {
        "source": os.path.basename(gguf_path),
        "generator": "scripts/reference/tokenizer_fixtures.py",
        "pre_tokenizer": "Sequence[Digits(individual_digits=true), ByteLevel(add_prefix_space=false, use_regex=true)]",
        "chat_template": template,
        "transformers_differences": differences,
        "cases": cases,
        "chats": chats,
        "pre_tokenizer_splits": pre,
        "templates": templates,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} strings, {len(chats)} chat renders, {os.path.getsize(OUT)} bytes")
    print(f"transformers cross-check: {len(differences)} difference(s)")
    for d in differences:
        print(f"  {d['text']!r}\n    reference:    {d['reference']}\n    transformers: {d['transformers']}")


if __name__ == "__main__":
    main()
