#!/usr/bin/env python3
"""merge_fixtures.py — mergekit reference outputs for `tune merge` parity tests.

Builds tiny Llama-shaped models in-process (hidden 16, FFN 24, 2 layers, 2 heads / 1 KV head, vocab 32,
f32 safetensors + config.json), two PEFT LoRA adapters on the base, and runs mergekit on them:

  linear            3 full models, no base_model, weights 0.5/0.3/0.2 (normalize: true)
  task_arithmetic   3 full models vs the base, weights 0.7/0.5/-0.3, lambda 0.9
  ties              3 full models vs the base, weight/density 1.0/0.5, 0.6/0.7, 0.8/0.3, normalize true
  ties_lora         2 LoRA adapters via mergekit's `base+adapter` syntax, weights 1.0/0.5, density 0.6
  dare_ties_stats   one mergekit dare_ties run, only its kept fraction is recorded (random masks)

Writes under Tests/Fixtures/merge/: models/{base,m1,m2,m3}/, adapters/{a1,a2}/, <case>.yaml (mergekit
format, paths relative to the fixture dir, used verbatim by tune), expected/<case>.safetensors
(mergekit's merged tensors) and versions.json.

    /work/mkvenv/bin/python scripts/reference/merge_fixtures.py [--out Tests/Fixtures/merge]
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 24,
    "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
    "vocab_size": 32, "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "hidden_act": "silu", "torch_dtype": "float32",
}
TARGETS = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
           "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def shapes():
    c = CONFIG
    h, f, q, kv = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    out = {"model.embed_tokens.weight": (c["vocab_size"], h), "model.norm.weight": (h,)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
        out[p + "self_attn.q_proj.weight"] = (q, h)
        out[p + "self_attn.k_proj.weight"] = (kv, h)
        out[p + "self_attn.v_proj.weight"] = (kv, h)
        out[p + "self_attn.o_proj.weight"] = (h, q)
        out[p + "mlp.gate_proj.weight"] = (f, h)
        out[p + "mlp.up_proj.weight"] = (f, h)
        out[p + "mlp.down_proj.weight"] = (h, f)
    return out


def write_model(d, tensors):
    os.makedirs(d, exist_ok=True)
    save_file({k: v.astype(np.float32) for k, v in tensors.items()}, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2, sort_keys=True)


def write_adapter(d, rng, rank, alpha, targets):
    os.makedirs(d, exist_ok=True)
    t = {}
    s = shapes()
    for l in range(CONFIG["num_hidden_layers"]):
        for name in targets:
            out_f, in_f = s[f"model.layers.{l}.{TARGETS[name]}.{name}.weight"]
            p = f"base_model.model.model.layers.{l}.{TARGETS[name]}.{name}"
            t[p + ".lora_A.weight"] = (rng.standard_normal((rank, in_f)) * 0.2).astype(np.float32)
            t[p + ".lora_B.weight"] = (rng.standard_normal((out_f, rank)) * 0.05).astype(np.float32)
    save_file(t, os.path.join(d, "adapter_model.safetensors"), metadata={"format": "pt"})
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "base", "r": rank, "lora_alpha": alpha,
           "lora_dropout": 0.0, "target_modules": targets, "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
           "use_dora": False, "inference_mode": True}
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)


def run_mergekit(python, yaml_text, workdir):
    """Runs mergekit-yaml on `yaml_text` (paths made absolute: mergekit takes unknown relative paths for
    Hub ids) and returns its merged tensors."""
    exe = os.path.join(os.path.dirname(python), "mergekit-yaml")
    tmp = tempfile.mkdtemp()
    try:
        text = yaml_text.replace("models/", workdir + "/models/").replace("adapters/", workdir + "/adapters/")
        cfg = os.path.join(tmp, "config.yaml")
        with open(cfg, "w") as f:
            f.write(text)
        outdir = os.path.join(tmp, "out")
        subprocess.run([exe, cfg, outdir, "--allow-crimes", "--no-copy-tokenizer", "--lora-merge-cache", os.path.join(tmp, "lora-cache")], check=True, stdout=subprocess.DEVNULL)
        merged = {}
        for f in sorted(glob.glob(os.path.join(outdir, "*.safetensors"))):
            merged.update(load_file(f))
        return merged
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/Fixtures/merge")
    ap.add_argument("--seed", type=int, default=20240607)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, "expected"))
    rng = np.random.default_rng(a.seed)

    base = {}
    for name, shape in shapes().items():
        base[name] = (1 + 0.05 * rng.standard_normal(shape)) if len(shape) == 1 else 0.02 * rng.standard_normal(shape)
    write_model(os.path.join(out, "models/base"), base)
    for m in ["m1", "m2", "m3"]:
        write_model(os.path.join(out, "models", m), {k: v + 0.01 * rng.standard_normal(v.shape) for k, v in base.items()})
    write_adapter(os.path.join(out, "adapters/a1"), rng, rank=4, alpha=8, targets=["q_proj", "v_proj", "gate_proj", "down_proj"])
    write_adapter(os.path.join(out, "adapters/a2"), rng, rank=2, alpha=2, targets=["q_proj", "k_proj", "up_proj", "down_proj"])

    cases = {
        "linear": """merge_method: linear
models:
  - model: models/m1
    parameters: {weight: 0.5}
  - model: models/m2
    parameters: {weight: 0.3}
  - model: models/m3
    parameters: {weight: 0.2}
dtype: float32
""",
        "task_arithmetic": """merge_method: task_arithmetic
base_model: models/base
models:
  - model: models/m1
    parameters: {weight: 0.7}
  - model: models/m2
    parameters: {weight: 0.5}
  - model: models/m3
    parameters: {weight: -0.3}
parameters:
  lambda: 0.9
dtype: float32
""",
        "ties": """merge_method: ties
base_model: models/base
models:
  - model: models/m1
    parameters: {weight: 1.0, density: 0.5}
  - model: models/m2
    parameters: {weight: 0.6, density: 0.7}
  - model: models/m3
    parameters: {weight: 0.8, density: 0.3}
parameters:
  normalize: true
dtype: float32
""",
    }
    # mergekit applies a LoRA with `model: base+adapter`; tune lists the adapter directory itself.
    lora_ties = """merge_method: ties
base_model: models/base
models:
  - model: {a1}
    parameters: {{weight: 1.0, density: 0.6}}
  - model: {a2}
    parameters: {{weight: 0.5, density: 0.6}}
parameters:
  normalize: true
dtype: float32
"""
    versions = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        import mergekit, torch, peft  # noqa: F401
        from importlib.metadata import version
        versions.update({"mergekit": version("mergekit"), "torch": torch.__version__, "peft": peft.__version__})
    except ImportError as e:
        sys.exit(f"mergekit is required: {e}")

    for name, text in cases.items():
        with open(os.path.join(out, f"{name}.yaml"), "w") as f:
            f.write(text)
        save_file(run_mergekit(sys.executable, text, out), os.path.join(out, "expected", f"{name}.safetensors"))
        print("wrote", name)

    with open(os.path.join(out, "ties_lora.yaml"), "w") as f:
        f.write(lora_ties.format(a1="adapters/a1", a2="adapters/a2"))
    merged = run_mergekit(sys.executable, lora_ties.format(a1="models/base+adapters/a1", a2="models/base+adapters/a2"), out)
    save_file(merged, os.path.join(out, "expected", "ties_lora.safetensors"))
    print("wrote ties_lora")

    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump(versions, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
