#!/usr/bin/env python3
"""family_lora_fixtures.py — PEFT LoRA gradients on tune's tiny Qwen3, Gemma 3, Llama 3.x, Mistral, Qwen2 and Phi-3 models, the
reference for FamilyLoRAParityTests (tune's training graph vs PyTorch autograd through transformers' own classes), and
the logits of tune's own adapter of each family loaded by PEFT (`PeftModel.from_pretrained`).

The models are TinyLlama.writeHF(config: .tinyQwen3 / .tinyGemma3 / .tinyLlama3 / .tinyMistral / .tinyQwen2 / .tinyPhi3,
seed: 13),
written with tune's adapters (<family>_tune_adapter/) by the Swift test when asked:

    TUNE_WRITE_FAMILIES_TINY=/tmp/fam swift test --skip-build --filter FamilyForwardTests/description
    /work/refvenv/bin/python scripts/reference/family_lora_fixtures.py --models /tmp/fam

For each family it writes under Tests/Fixtures/lora/families/:
  <family>_adapter/        a LoRA adapter created and saved by PEFT (save_pretrained, safetensors): r=2,
                           lora_alpha=4 (scaling 2), dropout 0, the 7 projections of every layer (Phi-3: its 4
                           modules qkv_proj, o_proj, gate_up_proj, down_proj, which hold the same 7 matrices),
                           init_lora_weights=False (A and B keep nn.Linear's kaiming_uniform init, so B != 0),
                           torch.manual_seed(SEED), every lora_B then multiplied by B_SCALE.
  <family>_grads.safetensors  float32 d loss / d every lora_A / lora_B tensor (keys as in adapter_model.safetensors)
  <family>_grads.json      ids, labels, loss, n_targets, the sha256 of the model files read and of tune's adapter files.
  <family>_tune_adapter_logits.safetensors  float32 logits ("row0", "row1": [T, V]) of the two rows under PEFT with
                           tune's adapter loaded.

The batch is two rows of different lengths run one at a time (no padding): loss = Σ target NLL / Σ targets over
both rows, the mean tune's trainer takes over a micro-batch. The long row (13 tokens) is past Gemma's 8-token
window, so the sliding layers clip. float32, eager attention.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

try:
    import peft
    from peft import LoraConfig, PeftModel, get_peft_model
except ImportError:
    sys.exit("error: peft is not installed (pip install peft==0.21.2)")
from safetensors.torch import load_file, save_file

SEED = 0
RANK = 2
ALPHA = 4
B_SCALE = 0.25
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]   # Phi-3's fused modules: the same 7 matrices
FAMILIES = ["qwen3", "gemma3", "llama3", "mistral", "qwen2", "phi3"]
# The same rows as FamilyForwardTests.trainSequences[0] and [2]; labels -100 where the mask is 0.
ROWS = [
    ([5, 17, 40, 99, 3, 250, 8, 61], [0, 0, 0, 1, 1, 1, 1, 1]),
    ([3, 44, 120, 9, 77, 5, 230, 18, 64, 2, 150, 33, 81], [0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]),
]


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="directory with the families' HF directories written by the Swift test")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(repo, "Tests/Fixtures/lora/families"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    for fam in FAMILIES:
        d = os.path.join(a.models, fam)
        base = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        base.eval()
        torch.manual_seed(SEED)
        targets = PHI3_TARGETS if fam == "phi3" else TARGETS
        cfg = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets,
                         init_lora_weights=False, bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(base, cfg)
        model.peft_config["default"].base_model_name_or_path = f"tune-tiny-{fam}"
        with torch.no_grad():
            for name, p in model.named_parameters():
                if ".lora_B." in name:
                    p.mul_(B_SCALE)
        adir = os.path.join(a.out, f"{fam}_adapter")
        shutil.rmtree(adir, ignore_errors=True)
        model.save_pretrained(adir, safe_serialization=True, save_embedding_layers=False)
        readme = os.path.join(adir, "README.md")   # PEFT's generated model card: not part of the fixture
        if os.path.exists(readme):
            os.remove(readme)
        model.eval()
        for n, p in model.named_parameters():
            if p.requires_grad != (".lora_" in n):
                sys.exit(f"error: unexpected requires_grad={p.requires_grad} for {n}")

        total, count = None, 0
        labels_all = []
        for ids, mask in ROWS:
            labels = [t if m else -100 for t, m in zip(ids, mask)]
            labels_all.append(labels)
            out = model(input_ids=torch.tensor([ids], dtype=torch.long))
            logp = torch.log_softmax(out.logits[0].float(), dim=-1)[:-1]
            tgt = torch.tensor(labels[1:], dtype=torch.long)
            keep = tgt != -100
            nll = -logp[keep].gather(1, tgt[keep][:, None])[:, 0]
            total = nll.sum() if total is None else total + nll.sum()
            count += int(keep.sum())
        loss = total / count
        loss.backward()

        grads = {}
        for n, p in model.named_parameters():
            if ".lora_" in n:
                grads[n.replace(".default.", ".")] = p.grad.detach().to(torch.float32).contiguous().clone()
        saved = set(load_file(os.path.join(adir, "adapter_model.safetensors")))
        if set(grads) != saved:
            sys.exit(f"error: gradient names do not match the adapter's tensor names ({sorted(saved)[:2]} vs {sorted(grads)[:2]})")
        save_file(grads, os.path.join(a.out, f"{fam}_grads.safetensors"),
                  metadata={"format": "tune-family-lora-peft-grads", "loss": repr(loss.item())})
        info = {
            "format": "tune-family-lora-peft-grads", "version": 1, "family": fam,
            "generator": (f"scripts/reference/family_lora_fixtures.py (torch {torch.__version__}, transformers "
                          f"{transformers.__version__}, peft {peft.__version__}, float32, eager attention)"),
            "model_safetensors_sha256": sha256(os.path.join(d, "model.safetensors")),
            "config_json_sha256": sha256(os.path.join(d, "config.json")),
            "rank": RANK, "alpha": ALPHA, "seed": SEED, "b_scale": B_SCALE,
            "ids": [r[0] for r in ROWS], "labels": labels_all,
            "loss": loss.item(), "n_targets": count,
        }
        with open(os.path.join(a.out, f"{fam}_grads.json"), "w") as f:
            json.dump(info, f, indent=1)
            f.write("\n")
        # The other direction: the adapter tune writes (FamilyForwardTests.familyAdapter, saved by
        # LoRAAdapter.save into <models>/<family>_tune_adapter) loaded by PEFT; its logits on both rows.
        tdir = os.path.join(a.models, f"{fam}_tune_adapter")
        if os.path.isdir(tdir):
            fresh = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
            tuned = PeftModel.from_pretrained(fresh, tdir)
            tuned.eval()
            with torch.no_grad():
                logits = {f"row{i}": tuned(input_ids=torch.tensor([ids])).logits[0].float().contiguous()
                          for i, (ids, _) in enumerate(ROWS)}
            save_file(logits, os.path.join(a.out, f"{fam}_tune_adapter_logits.safetensors"),
                      metadata={"format": "tune-family-lora-tune-adapter-in-peft"})
            info["tune_adapter_sha256"] = {f: sha256(os.path.join(tdir, f))
                                           for f in ("adapter_config.json", "adapter_model.safetensors")}
            with open(os.path.join(a.out, f"{fam}_grads.json"), "w") as f:
                json.dump(info, f, indent=1)
                f.write("\n")
        else:
            print(f"warning: {tdir} not found; the tune-adapter-in-PEFT logits are not recorded", file=sys.stderr)
        gn = sum(float((g.double() ** 2).sum()) for g in grads.values()) ** 0.5
        print(f"{fam}: loss {loss.item():.6f} over {count} targets, {len(grads)} LoRA tensors, grad L2 {gn:.6g}")


if __name__ == "__main__":
    main()
