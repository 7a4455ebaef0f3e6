#!/usr/bin/env python3
"""make_gguf_quant_fixtures.py - reference quantizations for lorac_quant_row
(test_gguf_quant.c): fp32 rows and their Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 blocks as
llama.cpp's own `gguf` Python package (gguf.quants.quantize, which follows
ggml's quantize_row_*_ref) writes them.

Run by hand (the output is committed):

    .venv-ref/bin/python tests/ref/make_gguf_quant_fixtures.py

writes tests/fixtures/gguf/quant_ref.safetensors:
  src   float32 [R, 256]  the rows: Gaussian weights at several scales, a
                          zero row, constant rows, rows with ties for the
                          largest |x|, tiny values (subnormal f16 scales),
                          values on exact rounding boundaries
  q4_0, q4_1, q5_0, q5_1, q8_0  uint8 [R, bytes per row]  gguf.quants.quantize(src, type)
gguf-py has no K-quant or IQ4 quantizers; lorac's Q2_K / Q3_K / Q4_K / Q5_K /
Q6_K / IQ4_NL / IQ4_XS ones are tested by round trip in the C test. Seeded: re-running gives the same file.
"""
import os

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import quants
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf", "quant_ref.safetensors")

rng = np.random.default_rng(20261124)
rows = []
for scale in (0.02, 0.5, 3.0, 1e-6):
    for _ in range(4):
        rows.append(rng.normal(0, scale, 256))
rows.append(np.zeros(256))
rows.append(np.full(256, 0.25))
rows.append(np.full(256, -1.5))
tie = rng.normal(0, 0.1, 256)
tie[3], tie[7] = 0.9, -0.9          # equal |x|: the first one sets Q4_0's sign
rows.append(tie)
steps = np.tile(np.arange(32) / 31.0 - 0.5, 8)   # evenly spaced: many values land on x.5 after scaling
rows.append(steps)
rows.append(rng.uniform(-1, 1, 256) * (rng.uniform(0, 1, 256) < 0.2))   # mostly zeros
rows.append(np.round(rng.normal(0, 4, 256)) / 8)                         # a coarse grid
src = np.ascontiguousarray(np.array(rows, dtype=np.float32))

out = {"src": src}
for name, qt in (("q4_0", Q.Q4_0), ("q4_1", Q.Q4_1), ("q5_0", Q.Q5_0), ("q5_1", Q.Q5_1), ("q8_0", Q.Q8_0)):
    out[name] = np.ascontiguousarray(quants.quantize(src, qt))
save_file(out, OUT)
print("wrote %s: %d rows; %s" % (OUT, src.shape[0], ", ".join("%s %s" % (k, v.shape) for k, v in out.items())))
