#!/usr/bin/env python3
"""format_fixtures.py — small reference files written by numpy and the safetensors library.

Scope: Tests/Fixtures/npy/*.npy (numpy.save of float32 arrays; the Swift NPY writer must produce the same
bytes) and Tests/Fixtures/safetensors/python_small.safetensors (safetensors.numpy.save_file with F32, F16
and BF16 tensors plus metadata; the Swift reader must read it). Values are k * 0.25 - 1 for k = 0..n-1,
exactly representable in every dtype used.

Usage: scripts/reference/.venv/bin/python scripts/reference/format_fixtures.py
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# MARK: - NPY

NPY_SHAPES = {"scalar": (), "vec5": (5,), "mat2x3": (2, 3), "t2x3x4": (2, 3, 4), "empty0": (0,)}


def values(n):
    return np.arange(n, dtype=np.float32) * np.float32(0.25) - np.float32(1)


def main():
    npy_dir = os.path.join(REPO, "Tests/Fixtures/npy")
    os.makedirs(npy_dir, exist_ok=True)
    for name, shape in NPY_SHAPES.items():
        a = values(int(np.prod(shape))).reshape(shape)
        np.save(os.path.join(npy_dir, f"{name}.npy"), a)

    # MARK: - safetensors
    st_dir = os.path.join(REPO, "Tests/Fixtures/safetensors")
    os.makedirs(st_dir, exist_ok=True)
    tensors = {
        "a.f32": torch.from_numpy(values(6).reshape(2, 3)),
        "b.f16": torch.from_numpy(values(4)).to(torch.float16),
        "c.bf16": torch.from_numpy(values(8).reshape(2, 2, 2)).to(torch.bfloat16),
        "d.scalar": torch.tensor(3.5, dtype=torch.float32),
    }
    save_file(tensors, os.path.join(st_dir, "python_small.safetensors"), metadata={"format": "pt", "note": "tune"})
    print("wrote", npy_dir, st_dir)


if __name__ == "__main__":
    main()
