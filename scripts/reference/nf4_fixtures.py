#!/usr/bin/env python3
"""nf4_fixtures.py — bitsandbytes' blockwise NF4 (blocksize 64) on a small seeded matrix, as the
oracle for tune's CK_TYPE_NF4 (quantize bytes, absmax, dequantized values).

Writes Tests/Fixtures/nf4/nf4.json:
    {"bitsandbytes": ver, "torch": ver, "blocksize": 64, "levels": [16 floats],
     "x": [n floats], "absmax": [n/64 floats], "packed": [n/2 ints], "dequantized": [n floats]}
`packed` is bitsandbytes' byte stream (element 2i in the high nibble of byte i).

Usage: scripts/reference/.venv/bin/python scripts/reference/nf4_fixtures.py --out Tests/Fixtures/nf4/nf4.json
(needs `pip install bitsandbytes`; the committed fixture was made with bitsandbytes 0.50.2, torch 2.15.0, CPU)
"""
import argparse
import json

import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
args = ap.parse_args()

g = torch.Generator().manual_seed(1234)
rows = [torch.randn(128, generator=g) * s for s in (1.0, 0.02, 5.0)]
special = torch.zeros(128)                       # block 0: all zeros
special[64] = -3.0                               # block 1: one negative value, the rest 0
special[65:128] = torch.linspace(-3.0, 3.0, 63)  # … and a ramp through every level
x = torch.cat(rows + [special]).float()

q, state = F.quantize_4bit(x.reshape(-1, 1), blocksize=64, quant_type="nf4")
y = F.dequantize_4bit(q, state).reshape(-1)
out = {
    "bitsandbytes": bnb.__version__, "torch": torch.__version__, "blocksize": 64,
    "levels": [float(v) for v in state.code.tolist()],
    "x": [float(v) for v in x.tolist()],
    "absmax": [float(v) for v in state.absmax.tolist()],
    "packed": [int(v) for v in q.reshape(-1).tolist()],
    "dequantized": [float(v) for v in y.tolist()],
}
with open(args.out, "w") as f:
    json.dump(out, f)
print(f"wrote {args.out}: {x.numel()} values, {len(out['absmax'])} blocks")
