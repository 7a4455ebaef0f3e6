#!/usr/bin/env python3
"""make_gguf_fixtures.py - write the GGUF reference fixtures for test_gguf.c.

Run by hand (the outputs are committed under tests/fixtures/gguf/):

    python3 -m venv .venv-io && .venv-io/bin/pip install gguf numpy safetensors
    .venv-io/bin/python tests/ref/make_gguf_fixtures.py

Uses llama.cpp's own `gguf` Python package (GGUFWriter, gguf.quants) so the
files and the expected values come from the reference implementation:

  types.gguf            one tensor per supported ggml type, awkward shapes
  types_ref.safetensors the same tensors dequantized to float32 by gguf.quants
  meta.gguf             every metadata value type, string arrays with odd
                        bytes, a nested array, general.alignment = 64
  smollm2_ref.safetensors  a few dequantized rows of the real
                        SmolLM2-135M-Instruct.Q4_1.gguf (if it is in .cache)

K-quant blocks (Q4_K, Q6_K) are random bytes with controlled scales: gguf-py
cannot quantize to them, and random blocks exercise every bit of the packed
scales. Everything is seeded, so re-running gives identical files.
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from gguf import GGUFReader, GGUFWriter, quants
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
REAL = os.path.join(ROOT, ".cache", "models", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")

rng = np.random.default_rng(1234)


def f16_bytes(x):
    return np.array([x], dtype=np.float16).view(np.uint8)


def random_blocks(qtype, rows, cols):
    """Random raw blocks of `qtype` for a [rows, cols] tensor, with every
    f16 scale replaced by a finite value (random bytes could be NaN/Inf).
    The first block gets a subnormal scale to exercise f16 decoding."""
    block, nbytes = quants.GGML_QUANT_SIZES[qtype]
    nblk = rows * cols // block
    raw = rng.integers(0, 256, size=(nblk, nbytes), dtype=np.uint8)
    scale_at = {Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q8_0: [0], Q.Q4_K: [0, 2], Q.Q6_K: [208]}[qtype]
    for b in range(nblk):
        for k, at in enumerate(scale_at):
            v = rng.uniform(-0.05, 0.05) if k == 0 else rng.uniform(-0.5, 0.5)
            raw[b, at:at + 2] = f16_bytes(v)
    raw[0, scale_at[0]:scale_at[0] + 2] = np.array([0x0003], dtype=np.uint16).view(np.uint8)  # subnormal
    return raw.reshape(rows, cols // block * nbytes)


def add(writer, ref, name, raw, qtype, shape):
    """Add raw tensor bytes to the GGUF and its gguf.quants dequantization to ref."""
    if qtype in (Q.F32, Q.F16):
        writer.add_tensor(name, raw)
        ref[name] = raw.astype(np.float32).reshape(shape)
    else:
        writer.add_tensor(name, raw, raw_dtype=qtype)
        ref[name] = quants.dequantize(raw, qtype).astype(np.float32).reshape(shape)


def make_types():
    w = GGUFWriter(os.path.join(OUT, "types.gguf"), "llama")
    w.add_uint32("test.n_tensors", 14)
    ref = {}
    data = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    add(w, ref, "f32", data(3, 5), Q.F32, (3, 5))
    add(w, ref, "f32_3d", data(2, 3, 4), Q.F32, (2, 3, 4))
    add(w, ref, "f32_1d", data(11), Q.F32, (11,))
    add(w, ref, "f16", data(4, 7).astype(np.float16), Q.F16, (4, 7))
    add(w, ref, "bf16", quants.quantize(data(2, 9), Q.BF16), Q.BF16, (2, 9))
    add(w, ref, "q4_0", quants.quantize(data(3, 64), Q.Q4_0), Q.Q4_0, (3, 64))
    add(w, ref, "q4_0_rand", random_blocks(Q.Q4_0, 2, 32), Q.Q4_0, (2, 32))
    add(w, ref, "q4_1", quants.quantize(data(5, 96), Q.Q4_1), Q.Q4_1, (5, 96))
    add(w, ref, "q4_1_rand", random_blocks(Q.Q4_1, 1, 64), Q.Q4_1, (1, 64))
    add(w, ref, "q8_0", quants.quantize(data(4, 96), Q.Q8_0), Q.Q8_0, (4, 96))
    add(w, ref, "q4_k", random_blocks(Q.Q4_K, 7, 256), Q.Q4_K, (7, 256))
    add(w, ref, "q4_k_wide", random_blocks(Q.Q4_K, 1, 512), Q.Q4_K, (1, 512))
    add(w, ref, "q6_k", random_blocks(Q.Q6_K, 7, 256), Q.Q6_K, (7, 256))
    add(w, ref, "q6_k_wide", random_blocks(Q.Q6_K, 1, 512), Q.Q6_K, (1, 512))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_file(ref, os.path.join(OUT, "types_ref.safetensors"))


def make_meta():
    w = GGUFWriter(os.path.join(OUT, "meta.gguf"), "testarch")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.15625)
    w.add_uint64("t.u64", 10000000000000000000)
    w.add_int64("t.i64", -9000000000000000000)
    w.add_float64("t.f64", -2.5e-300)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo wörld")
    w.add_key_value("t.str_bytes", b"a\x00b\nc", V.STRING)
    w.add_key_value("t.arr_str", ["<s>", "", b"x\x00y", "\u2581the"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("t.arr_i32", [-1, 0, 7, 2147483647], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("t.arr_f32", [0.5, -1.25, 3.0], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.arr_u8", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr_bool", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_array("t.arr_nested", [[1, 2], [3], [4, 5, 6]])
    w.add_array("t.arr_nested2", [[["a", "b"]], [["c"]]])
    w.add_uint32("t.after_nested", 77)
    w.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("v", np.arange(5, dtype=np.float32) * -1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_real_ref():
    if not os.path.exists(REAL):
        print("skipping smollm2_ref.safetensors:", REAL, "is absent")
        return
    r = GGUFReader(REAL)
    ref = {}
    for name, rows in (("token_embd.weight", (0, 1234)), ("blk.0.ffn_down.weight", (0,))):
        t = next(t for t in r.tensors if t.name == name)
        for row in rows:
            ref[f"{name}.row{row}"] = quants.dequantize(t.data[row:row + 1], t.tensor_type).astype(np.float32)[0]
    save_file(ref, os.path.join(OUT, "smollm2_ref.safetensors"))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_types()
    make_meta()
    make_real_ref()
    for f in sorted(os.listdir(OUT)):
        print(f"{f}: {os.path.getsize(os.path.join(OUT, f))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
