#!/usr/bin/env python3
"""dequant_fixtures.py — reference fixtures for tune's ggml quant kernels, made with gguf-py.

Writes under Tests/Fixtures/dequant/:
  deq_<type>.bin  header "CKDQ", u32 version=1, u32 ggml type, u32 n_elements, u32 n_bytes,
                  then n_bytes of raw blocks (random but valid: sane f16 scales), then
                  n_elements little-endian float32 = gguf.quants.dequantize(raw).
  qnt_<type>.bin  header "CKQZ", u32 version=1, u32 ggml type, u32 n_elements, u32 n_bytes,
                  then n_elements float32 inputs, then n_bytes = gguf.quants.quantize(inputs).
  writer_sample.gguf  a small GGUF written by gguf-py's GGUFWriter: metadata of every value
                  type (nested arrays too) and tensor "src.f32" plus that tensor quantized by
                  gguf-py to f16/bf16/q4_0/q4_1/q8_0 — our writer must reproduce it byte for byte.
  smollm2_sha256.json  sha256 of the float32 bytes gguf-py dequantizes for a few tensors of
                  models/SmolLM2-135M-Instruct.Q4_1.gguf (if present).
Run: scripts/reference/.venv/bin/python scripts/reference/dequant_fixtures.py [repo_root]
"""
import hashlib, json, os, struct, sys
import numpy as np
from gguf import GGMLQuantizationType as T, GGUFReader
from gguf.quants import dequantize, quantize

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "dequant")
rng = np.random.default_rng(20261123)

# (type, elements per block, bytes per block, byte offsets of f16 scale fields)
LAYOUTS = {
    T.Q4_0: (32, 18, [0]), T.Q4_1: (32, 20, [0, 2]), T.Q5_0: (32, 22, [0]), T.Q5_1: (32, 24, [0, 2]),
    T.Q8_0: (32, 34, [0]), T.Q2_K: (256, 84, [80, 82]), T.Q3_K: (256, 110, [108]),
    T.Q4_K: (256, 144, [0, 2]), T.Q5_K: (256, 176, [0, 2]), T.Q6_K: (256, 210, [208]),
}


def header(magic, t, n, nbytes):
    return magic + struct.pack("<IIII", 1, int(t), n, nbytes)


def raw_blocks(t):
    if t == T.F16:
        return rng.normal(0, 1, 256).astype(np.float16).view(np.uint8)
    if t == T.BF16:
        f = rng.normal(0, 1, 256).astype(np.float32)
        return (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    block, size, scales = LAYOUTS[t]
    nb = 8 if block == 32 else 4
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for b in range(nb):
        for off in scales:
            v = np.float16(rng.uniform(-0.05, 0.05) if off != 2 or t in (T.Q4_1, T.Q5_1) else rng.uniform(0, 0.05))
            raw[b, off:off + 2] = np.frombuffer(v.tobytes(), dtype=np.uint8)
    return raw.reshape(-1)


def write_dequant(t):
    raw = raw_blocks(t)
    out = dequantize(raw, t).astype(np.float32).reshape(-1)
    with open(os.path.join(OUT, f"deq_{t.name.lower()}.bin"), "wb") as f:
        f.write(header(b"CKDQ", t, out.size, raw.size) + raw.tobytes() + out.astype("<f4").tobytes())


def write_quant(t):
    x = rng.normal(0, 0.5, (8, 32)).astype(np.float32)
    x[1] = 0                                   # all-zero block (d = 0)
    x[2] = 0.25                                # constant block
    x[3] = np.linspace(-1, 1, 32, dtype=np.float32)
    x[4, 7] = -3.0                             # negative absolute max
    x[5] = np.round(x[5] * 8) / 8              # values on the grid (ties)
    x = x.reshape(-1)
    q = quantize(x.reshape(1, -1), t).reshape(-1).view(np.uint8)
    with open(os.path.join(OUT, f"qnt_{t.name.lower()}.bin"), "wb") as f:
        f.write(header(b"CKQZ", t, x.size, q.size) + x.astype("<f4").tobytes() + q.tobytes())


def write_writer_sample():
    from gguf import GGUFWriter, GGUFValueType as V
    path = os.path.join(OUT, "writer_sample.gguf")
    w = GGUFWriter(path, arch="llama")
    w.add_uint8("t.u8", 200); w.add_int8("t.i8", -100); w.add_uint16("t.u16", 60000); w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000); w.add_int32("t.i32", -2000000000)
    w.add_uint64("t.u64", 2**64 - 1); w.add_int64("t.i64", -2**63)
    w.add_float32("t.f32", -1.5e-7); w.add_float64("t.f64", 3.141592653589793)
    w.add_bool("t.yes", True); w.add_bool("t.no", False)
    w.add_string("t.str", "h\u00e9llo \u2713 \U0001d11e"); w.add_string("t.empty", "")
    w.add_array("t.strs", ["a", "", "\u0120t"]); w.add_array("t.ints", [1, -2, 3])
    w.add_array("t.floats", [0.5, -1.25]); w.add_array("t.nested", [[1, 2], [3]])
    x = rng.normal(0, 0.5, (4, 64)).astype(np.float32)
    x[1, :32] = 0
    w.add_tensor("src.f32", x)
    for t in [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q8_0]:
        w.add_tensor(f"src.{t.name.lower()}", quantize(x, t), raw_dtype=t)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()


def model_hashes():
    path = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        print("model not found, skipping sha256s:", path)
        return
    r = GGUFReader(path)
    names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.0.attn_norm.weight"]
    sums = {}
    for t in r.tensors:
        if t.name in names:
            f = dequantize(t.data, t.tensor_type).astype("<f4")
            sums[t.name] = {"type": t.tensor_type.name.lower(), "elements": int(f.size),
                            "sha256": hashlib.sha256(f.tobytes()).hexdigest()}
    with open(os.path.join(OUT, "smollm2_sha256.json"), "w") as f:
        json.dump(sums, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for t in [T.F16, T.BF16, *LAYOUTS]:
        write_dequant(t)
    for t in [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q8_0]:
        write_quant(t)
    write_writer_sample()
    model_hashes()
    print("wrote", sorted(os.listdir(OUT)))
