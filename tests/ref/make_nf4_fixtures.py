#!/usr/bin/env python3
"""make_nf4_fixtures.py - NF4 + double-quantization reference fixtures for
tests/unit/test_nf4.c, written by bitsandbytes itself (its CPU backend).

Run by hand (the output is committed as tests/fixtures/quant/nf4_ref.safetensors):

    python3 -m venv .venv-bnb && .venv-bnb/bin/pip install bitsandbytes==0.50.2
    .venv-bnb/bin/python tests/ref/make_nf4_fixtures.py

(pip pulls torch 2.15.0 from PyPI with its CUDA wheels, ~4 GB; only the CPU is used.)

What bitsandbytes 0.50.2 does on the CPU, which lorac reproduces (src/quant/nf4.c):

* ``functional.quantize_4bit(A, blocksize=64, compress_statistics=True, quant_type="nf4")``
  calls the op ``bitsandbytes::quantize_4bit``; the CPU backend registers no kernel for it, so
  the ``default`` one runs (backends/default/ops.py): blocks of 64 over the flattened tensor,
  absmax = max |x| (the last, partial block is padded), scaled = clamp(x * (1/absmax), -1, 1)
  for full blocks but clamp(x / absmax) for the partial one (absmax clamped to >= 1e-38 in
  both, and the clamped value is what a partial block stores), code = torch.bucketize(scaled,
  midpoints) with midpoints = (code[i] + code[i+1]) / 2 in fp32 (a tie goes to the LOWER
  code; these midpoints equal the CUDA kernel's dQuantizeNF4 thresholds bit for bit), packed
  ``q[2i] << 4 | q[2i+1]`` (first element in the high nibble; an odd count is padded with
  scaled 0.0 -> code 7).
* double quantization: offset = absmax.mean() (fp32), then
  ``quantize_blockwise(absmax - offset, blocksize=256)`` with the dynamic map
  ``create_dynamic_map(signed=True)``; on the CPU that is the C++ kernel
  ``cquantize_blockwise_cpu_fp32`` (csrc/cpu_ops.cpp, quantize_cpu_impl), which does NOT search
  the nearest code: it looks the normalised value up in a 65536-entry table
  (lut[(uint16)(((clamp(x * (1/absmax), -1, 1) + 1) * 0.5) * 65535 + 0.5)], the table built
  from the fp32 midpoints of the map). An all-zero block gets absmax 0 and codes 0.
* ``dequantize_4bit``: absmax = code8[qabsmax] * absmax2[block // 256] + offset (fp32), then
  value = nf4[nibble] * absmax (fp32).

The fixture stores, per case, the input, bitsandbytes' packed codes, the first-level fp32
absmax (from the op itself, before double quantization), the double-quantized statistics
(qabsmax, absmax2, offset), the dequantized statistics and the dequantized tensor; plus the
16 NF4 values, the 256 dynamic-map values and a few standalone 8-bit blockwise cases.
Seeded; re-running gives a byte-identical file (checked by --check).
"""
import os
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import bitsandbytes as bnb  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "quant", "nf4_ref.safetensors")

torch.set_num_threads(1)
rng = np.random.default_rng(20240527)
f32 = np.float32


def nf4_cases():
    cases = {}
    cases["a_3x100"] = rng.standard_normal((3, 100)).astype(f32)
    cases["b_64x64"] = (rng.standard_normal((64, 64)) * 0.02).astype(f32)
    cases["c_7x333"] = (rng.standard_normal((7, 333)) * 3.0).astype(f32)
    # > 256 blocks: two second-level groups, the last one partial (272 blocks)
    w = (rng.standard_normal((90, 193)) * 0.05).astype(f32)
    w[3, 10:20] *= 40.0  # outliers: one block with a large absmax
    cases["d_90x193"] = w
    # one block: absmax - mean == 0 -> second-level absmax 0
    cases["e_1x64"] = rng.standard_normal((1, 64)).astype(f32)
    # an all-zero block, a block of one repeated value, a block of -0.0
    z = rng.standard_normal((4, 64)).astype(f32)
    z[1] = 0.0
    z[2] = 0.375
    z[3] = -0.0
    cases["f_zeros_4x64"] = z
    # ties: values exactly on the fp32 midpoints between NF4 codes (absmax 1)
    code = F.get_4bit_type("nf4", device="cpu").numpy()
    mid = ((code[:-1] + code[1:]) / f32(2)).astype(f32)
    t = np.zeros((2, 64), dtype=f32)
    t[0, 0] = 1.0
    t[0, 1:16] = mid
    t[0, 16:31] = -mid[::-1]
    t[0, 31:47] = code
    t[0, 47:62] = np.nextafter(mid, np.inf, dtype=f32)
    t[1, 0] = -1.0
    t[1, 1:16] = np.nextafter(mid, -np.inf, dtype=f32)
    t[1, 16:32] = -code
    t[1, 32:64] = rng.uniform(-1, 1, 32).astype(f32)
    cases["g_ties_2x64"] = t
    # a partial last block that is all zeros (rows*cols = 65): stored absmax is 1e-38
    p = rng.standard_normal((5, 13)).astype(f32)
    p[4, 12] = 0.0
    p.reshape(-1)[64] = 0.0
    cases["h_5x13"] = p
    return cases


def q8_cases():
    cases = {}
    x = (rng.standard_normal(3000) * 0.3).astype(f32)
    x[512:768] = 0.0  # an all-zero block
    cases["q8_a"] = x
    cases["q8_b"] = (rng.standard_normal(37) * 1e-3 + 0.01).astype(f32)
    code = F.create_dynamic_map().numpy()
    mid = ((code[:-1] + code[1:]) * f32(0.5)).astype(f32)
    y = np.zeros(512, dtype=f32)
    y[0] = 1.0
    y[1:256] = mid  # fp32 midpoints of the map (LUT rounding decides)
    y[256] = -1.0
    y[257:512] = code[1:256]
    cases["q8_c"] = y
    return cases


def write_safetensors(path, tensors, metadata):
    """A .safetensors file with a sorted header (the safetensors library writes
    __metadata__ in hash-map order, so its files differ from run to run)."""
    dt = {np.dtype(np.float32): "F32", np.dtype(np.uint8): "U8"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.tobytes()
        header[name] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    check = "--check" in sys.argv
    out = {}
    code4 = F.get_4bit_type("nf4", device="cpu")
    out["nf4_code"] = code4.numpy().astype(f32)
    out["dynamic_map"] = F.create_dynamic_map(signed=True).numpy().astype(f32)
    for name, w in nf4_cases().items():
        A = torch.from_numpy(w.copy())
        # the op that quantize_4bit calls: codes + first-level fp32 absmax
        packed0, absmax32 = torch.ops.bitsandbytes.quantize_4bit.default(A, 64, "nf4", torch.uint8)
        q, st = F.quantize_4bit(A, blocksize=64, compress_statistics=True, quant_type="nf4")
        assert torch.equal(packed0, q), name
        assert st.blocksize == 64 and st.state2.blocksize == 256 and st.nested
        deq = F.dequantize_4bit(q, st)
        absdeq = F.dequantize_blockwise(st.absmax, st.state2) + st.offset
        out[f"{name}.w"] = w
        out[f"{name}.codes"] = q.reshape(-1).numpy().astype(np.uint8)
        out[f"{name}.absmax32"] = absmax32.numpy().astype(f32)
        out[f"{name}.qabsmax"] = st.absmax.numpy().astype(np.uint8)
        out[f"{name}.absmax2"] = st.state2.absmax.numpy().astype(f32)
        out[f"{name}.offset"] = np.array([st.offset.item()], dtype=f32)
        out[f"{name}.absmax_deq"] = absdeq.numpy().astype(f32)
        out[f"{name}.deq"] = deq.numpy().astype(f32)
        assert torch.equal(st.state2.code, F.create_dynamic_map()), "state2 code is the dynamic map"
    for name, x in q8_cases().items():
        q, st = F.quantize_blockwise(torch.from_numpy(x.copy()), blocksize=256)
        out[f"{name}.x"] = x
        out[f"{name}.q"] = q.numpy().astype(np.uint8)
        out[f"{name}.absmax"] = st.absmax.numpy().astype(f32)
        out[f"{name}.deq"] = F.dequantize_blockwise(q, st).numpy().astype(f32)
    meta = {"bitsandbytes": bnb.__version__, "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tmp = OUT + ".new"
    write_safetensors(tmp, out, meta)
    if check and os.path.exists(OUT):
        same = open(tmp, "rb").read() == open(OUT, "rb").read()
        os.remove(tmp)
        print("identical to the committed file" if same else "DIFFERS from the committed file")
        return 0 if same else 1
    os.replace(tmp, OUT)
    print(f"{OUT}: {os.path.getsize(OUT)} bytes, {len(out)} tensors, {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
