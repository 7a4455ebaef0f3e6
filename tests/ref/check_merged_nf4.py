#!/usr/bin/env python3
"""check_merged_nf4.py - read a checkpoint that `lorac merge --requantize nf4` wrote with
bitsandbytes itself, and compare it with the fp32 merge of the same adapter.

    python3 -m venv .venv-bnb && .venv-bnb/bin/pip install bitsandbytes==0.50.2 safetensors \
        transformers==4.57.1 accelerate          # torch comes with bitsandbytes (CPU use only)
    .venv-bnb/bin/python tests/ref/check_merged_nf4.py NF4_DIR FP32_DIR [--report REPORT.json]

For every Linear stored in bitsandbytes' 4-bit serialization (X.weight + X.weight.absmax,
.nested_absmax, .quant_map, .nested_quant_map, .quant_state.bitsandbytes__nf4), rebuild the
QuantState with bitsandbytes' own QuantState.from_dict and dequantize with
bitsandbytes.functional.dequantize_4bit (what transformers does with such a checkpoint), then
compare with X.weight of the fp32 merge. Prints the RMS and max error over the re-quantized
Linears; with --report (the JSON `lorac merge --json --requantize nf4` printed) checks that
lorac's own figures agree. Every other tensor must equal the fp32 merge's. If transformers is
installed, also loads NF4_DIR with AutoModelForCausalLM (bitsandbytes on the CPU) and prints the
logits' relative difference from FP32_DIR on a fixed token sequence.
"""
import argparse
import json
import math
import sys

import torch
from safetensors.torch import load_file

import bitsandbytes.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nf4_dir")
    ap.add_argument("fp32_dir")
    ap.add_argument("--report")
    a = ap.parse_args()
    q = load_file(a.nf4_dir + "/model.safetensors")
    f = load_file(a.fp32_dir + "/model.safetensors")
    prefixes = sorted(k[: -len(".quant_state.bitsandbytes__nf4")] for k in q if k.endswith(".quant_state.bitsandbytes__nf4"))
    se = sw = 0.0
    n = 0
    mx = 0.0
    adapted_se = 0.0
    for p in prefixes:
        qs_dict = {k[len(p) + 1:]: v for k, v in q.items() if k.startswith(p + ".")}
        qs = F.QuantState.from_dict(qs_dict, device=torch.device("cpu"))
        w = F.dequantize_4bit(q[p], qs).float()
        ref = f[p].float()
        if w.shape != ref.shape:
            sys.exit("%s: shape %s, fp32 merge %s" % (p, tuple(w.shape), tuple(ref.shape)))
        d = (w - ref).double()
        se += float((d * d).sum())
        sw += float((ref.double() ** 2).sum())
        n += ref.numel()
        mx = max(mx, float(d.abs().max()))
    others = [k for k in q if not any(k == p or k.startswith(p + ".") for p in prefixes)]
    bad = [k for k in others if k not in f or not torch.equal(q[k], f[k])]
    if bad:
        sys.exit("tensors that differ from the fp32 merge: %s" % bad[:5])
    rms = math.sqrt(se / n)
    print("bitsandbytes read %d NF4 Linears (%d weights): RMS |deq - fp32 merge| %.6g (%.3f%% of RMS W'), max %.6g; "
          "%d other tensors equal" % (len(prefixes), n, rms, 100 * rms / math.sqrt(sw / n), mx, len(others)))
    if a.report:
        rep = json.load(open(a.report))["requantized"]
        print("lorac's report: %d re-quantized Linears, weight RMS error %.6g, max %.6g"
              % (rep["tensors"], rep["weight_rms_err"], rep["weight_max_err"]))
        if rep["tensors"] != len(prefixes) or abs(rep["weight_rms_err"] - rms) > 1e-3 * rms or \
                abs(rep["weight_max_err"] - mx) > 1e-3 * mx:
            sys.exit("lorac's report disagrees with what bitsandbytes reads")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        print("transformers not installed: not loading the model")
        return
    ids = torch.tensor([[(i * 7919 + 13) % 256 + 1 for i in range(32)]])
    with torch.no_grad():
        m4 = AutoModelForCausalLM.from_pretrained(a.nf4_dir, device_map="cpu")
        for mod in m4.modules():  # bitsandbytes' AVX512-BF16 repacking wants large shapes: its plain CPU path
            if hasattr(mod, "support_avx512bf16_for_cpu"):
                mod.support_avx512bf16_for_cpu = False
        m32 = AutoModelForCausalLM.from_pretrained(a.fp32_dir, torch_dtype=torch.float32)
        y4 = m4(ids).logits.float()
        y32 = m32(ids).logits.float()
    print("transformers + bitsandbytes loaded %s (%d Linear4bit modules); logits rel. RMS difference from the fp32 merge %.4g"
          % (a.nf4_dir, sum(type(mod).__name__ == "Linear4bit" for mod in m4.modules()),
             float(((y4 - y32) ** 2).mean().sqrt() / (y32 ** 2).mean().sqrt())))


if __name__ == "__main__":
    main()
