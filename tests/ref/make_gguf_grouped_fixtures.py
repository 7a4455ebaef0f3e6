#!/usr/bin/env python3
"""make_gguf_grouped_fixtures.py - reference values for the grouped GGML
formats (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS; src/quant/ggml_grouped.c),
from llama.cpp's own `gguf` Python package. Run by hand (outputs committed):

    /path/to/venv-with-gguf/bin/python tests/ref/make_gguf_grouped_fixtures.py

writes under tests/fixtures/gguf/:
  grouped.gguf              one [4, 256] tensor per format, random blocks
                            (every bit of levels and packed scales random,
                            the f16 scales finite, the first one subnormal)
  grouped_ref.safetensors   the same tensors dequantized by gguf.quants
                            (float32 [4, 256] each, named as in the GGUF)
  real_q5_0_ref.safetensors (when the models are in .cache) a few rows of
                            Q5_0 tensors of the real Qwen2.5-Coder-0.5B and
                            Gemma 3 270M Q4_K_M files dequantized by gguf-py,
                            and per tensor the zlib CRC-32 of the whole
                            dequantized float32 tensor (<name>.crc32, int64)
Seeded: re-running gives the same files.
"""
import os
import sys
import zlib

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter, quants
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
MODELS = os.path.join(ROOT, ".cache", "models")
REAL = {  # file -> [(tensor, rows to store)]
    "qwen": ("qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
             [("blk.0.attn_q.weight", (0, 500)), ("blk.0.attn_k.weight", (127,)), ("blk.23.ffn_up.weight", ())]),
    "gemma": ("gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
              [("blk.0.attn_q.weight", (3,)), ("blk.0.attn_k.weight", ())]),
}

# byte offsets of each format's f16 fields (d first)
F16_AT = {Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q5_K: [0, 2], Q.IQ4_NL: [0], Q.IQ4_XS: [0]}

rng = np.random.default_rng(20261207)


def random_blocks(qtype, rows, cols):
    block, nbytes = quants.GGML_QUANT_SIZES[qtype]
    nblk = rows * cols // block
    raw = rng.integers(0, 256, size=(nblk, nbytes), dtype=np.uint8)
    for b in range(nblk):
        for k, at in enumerate(F16_AT[qtype]):
            v = rng.uniform(-0.05, 0.05) if k == 0 else rng.uniform(-0.5, 0.5)
            raw[b, at:at + 2] = np.array([v], dtype=np.float16).view(np.uint8)
    at = F16_AT[qtype][0]
    raw[0, at:at + 2] = np.array([0x0003], dtype=np.uint16).view(np.uint8)  # a subnormal f16 scale
    return raw.reshape(rows, cols // block * nbytes)


def make_grouped():
    w = GGUFWriter(os.path.join(OUT, "grouped.gguf"), "llama")
    ref = {}
    for qt in F16_AT:
        raw = random_blocks(qt, 4, 256)
        name = qt.name.lower()
        w.add_tensor(name, raw, raw_dtype=qt)
        ref[name] = quants.dequantize(raw, qt).astype(np.float32).reshape(4, 256)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(ref, os.path.join(OUT, "grouped_ref.safetensors"))


def make_real():
    ref = {}
    for tag, (path, tensors) in REAL.items():
        full = os.path.join(MODELS, path)
        if not os.path.exists(full):
            print("skipping", tag, ":", full, "is absent")
            continue
        r = GGUFReader(full)
        for name, rows in tensors:
            t = next(t for t in r.tensors if t.name == name)
            assert t.tensor_type == Q.Q5_0, (name, t.tensor_type)
            x = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            for row in rows:
                ref[f"{tag}.{name}.row{row}"] = np.ascontiguousarray(x[row])
            ref[f"{tag}.{name}.crc32"] = np.array([zlib.crc32(np.ascontiguousarray(x).tobytes())], dtype=np.int64)
    if ref:
        save_file(ref, os.path.join(OUT, "real_q5_0_ref.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_grouped()
    make_real()
    for f in ("grouped.gguf", "grouped_ref.safetensors", "real_q5_0_ref.safetensors"):
        p = os.path.join(OUT, f)
        if os.path.exists(p):
            print(f"{f}: {os.path.getsize(p)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
