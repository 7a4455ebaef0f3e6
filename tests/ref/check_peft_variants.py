#!/usr/bin/env python3
"""Check that PEFT loads the DoRA / rank_pattern / PiSSA / OLoRA / LoRA+ adapters `lorac train`
writes, and that transformers loads what `lorac merge` makes of them (issue 17).

For each base with a tokenizer (the real stories260K Llama and shared/data's tiny random GPT-2
with the GPT-2 tokenizer) and each feature this script:
  1. trains a few steps with `lorac train --task lm ... FEATURE FLAGS --out ADAPTER`,
  2. loads ADAPTER with PEFT (PeftModel.from_pretrained over the base) -> logits,
  3. runs `lorac merge --model BASE --adapter ADAPTER --out MERGED` and loads MERGED with
     transformers alone (no missing / unexpected weights) -> logits,
  4. requires PEFT's logits == the merged model's (1e-4 of the largest logit): PEFT reads
     lorac's adapter as lorac means it, and lorac's merge (DoRA's m / ||W + s B A|| scaling
     included) is what PEFT computes unmerged.
A PiSSA / OLoRA adapter is written converted to a plain LoRA on the original base (PEFT's
path_initial_model_for_weight_conversion), so step 2 needs no residual model.

Run by hand after a build:
    .venv-peer/bin/python tests/ref/check_peft_variants.py [--lorac build/lorac]
Prints one line per case and exits 1 if any check fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, logging as hf_logging

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("LORAC_DATA", os.path.join(ROOT, "..", "shared", "data"))
BASES = [
    # name, model dir, extra lorac flags, r
    ("stories260K", os.path.join(DATA, "stories260K", "hf"), [], 4),
    ("tiny_gpt2_random", os.path.join(DATA, "tiny_gpt2_random"),
     ["--tokenizer", os.path.join(DATA, "gpt2_tokenizer")], 2),
]
FEATURES = {
    "dora": ["--dora"],
    "dora+dropout": ["--dora", "--dropout", "0.1"],
    "rank/alpha pattern": ["--rank-pattern", "q_proj=2,c_fc=1", "--alpha-pattern", "v_proj=3,c_attn=5"],
    "pissa": ["--init", "pissa"],
    "pissa_niter_4": ["--init", "pissa_niter_4"],
    "olora": ["--init", "olora"],
    "gaussian": ["--init", "gaussian"],
    "loraplus": ["--loraplus-ratio", "16"],
    "dora+pissa": ["--dora", "--init", "pissa"],
}
TEXT = "Once upon a time there was a little cat named Tom. Tom liked to play with a red ball.\n\n"


def logits_of(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorac", default=os.path.join(ROOT, "build", "lorac"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    failed = 0
    tmp = tempfile.mkdtemp(prefix="lorac-variants-")
    text = os.path.join(tmp, "text.txt")
    with open(text, "w") as f:
        f.write(TEXT * 24)
    try:
        for bname, bdir, bflags, r in BASES:
            if not os.path.isdir(bdir):
                print(f"skip {bname}: {bdir} not found")
                continue
            for feat, flags in FEATURES.items():
                if bname == "tiny_gpt2_random" and "olora" in feat:
                    continue   # refused for Conv1D weights (PEFT's OLoRA gets their shapes wrong)
                case = f"{bname} {feat}"
                out = os.path.join(tmp, f"{bname}-{feat.replace('/', '_')}")
                cmd = [args.lorac, "train", "--model", bdir, *bflags, "--task", "lm", "--data", text,
                       "--max-steps", "6", "--batch", "4", "--lr", "1e-2", "--r", str(r), "--alpha", str(2 * r),
                       "--target", "all-linear", "--seed", "3", "--out", out, *flags]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"FAIL {case}: lorac train exited {p.returncode}: {p.stderr.strip().splitlines()[-1:]}")
                    failed += 1
                    continue
                with open(os.path.join(out, "adapter_config.json")) as f:
                    acfg = json.load(f)
                merged = out + "-merged"
                p = subprocess.run([args.lorac, "merge", "--model", bdir, "--adapter", out, "--out", merged, *bflags],
                                   capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"FAIL {case}: lorac merge exited {p.returncode}: {p.stderr.strip()}")
                    failed += 1
                    continue
                base = AutoModelForCausalLM.from_pretrained(bdir, torch_dtype=torch.float32)
                pm = PeftModel.from_pretrained(base, out).eval()
                mm, info = AutoModelForCausalLM.from_pretrained(merged, torch_dtype=torch.float32,
                                                                output_loading_info=True)
                problems = {k: v for k, v in info.items() if v}
                g = torch.Generator().manual_seed(7)
                ids = torch.randint(1, base.config.vocab_size, (2, 9), generator=g)
                mask = torch.ones_like(ids)
                mask[1, 7:] = 0
                want, got = logits_of(pm, ids, mask), logits_of(mm.eval(), ids, mask)
                real = mask.bool()
                diff = (got[real] - want[real]).abs().max().item()
                scale = want[real].abs().max().item()
                ok = not problems and diff <= 1e-4 * max(1.0, scale)
                kinds = f"r={acfg['r']} use_dora={acfg.get('use_dora')} init={acfg.get('init_lora_weights')}"
                print(f"{'ok  ' if ok else 'FAIL'} {case}: PEFT loads lorac's adapter ({kinds}); transformers loads the "
                      f"merge ({'clean' if not problems else problems}); max |PEFT - merged| = {diff:.2e} "
                      f"(max |logit| {scale:.3g})")
                failed += not ok
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
