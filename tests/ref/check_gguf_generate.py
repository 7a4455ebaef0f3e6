#!/usr/bin/env python3
"""Greedy generation of lorac against transformers on the same GGUF file.

Run by hand (it loads each model twice, in fp32; a few minutes on 2 cores):

    .venv-peer/bin/python tests/ref/check_gguf_generate.py [--max-new 16] [GGUF ...]

For each GGUF (default: the Qwen2.5-Coder-0.5B-Instruct and Gemma 3 270M files
that scripts/fetch-models puts in .cache/models) and each of three prompts:
transformers (AutoModelForCausalLM / AutoTokenizer with gguf_file=, float32,
greedy, no chat template, the tokenizer's own special tokens) and
`lorac generate --ids --temperature 0` with the same --max-new; prints both
id lists and whether they are equal. Exit status 1 if any differ.
"""
import argparse
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT = [
    ".cache/models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ".cache/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
]
PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, a little robot"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", nargs="*", default=DEFAULT)
    ap.add_argument("--max-new", type=int, default=16)
    ap.add_argument("--lorac", default=os.path.join(ROOT, "build", "lorac"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    bad = 0
    for rel in args.gguf:
        path = os.path.join(ROOT, rel)
        d, f = os.path.dirname(path), os.path.basename(path)
        tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
        for p in PROMPTS:
            ids = tok(p, return_tensors="pt").input_ids
            with torch.no_grad():
                out = model.generate(ids, max_new_tokens=args.max_new, do_sample=False, num_beams=1)
            ref = out[0, ids.shape[1]:].tolist()
            r = subprocess.run([args.lorac, "generate", "--model", path, "--prompt", p, "--max-new",
                                str(args.max_new), "--ids", "--threads", "2"], capture_output=True, text=True)
            got = [int(x) for x in r.stdout.split()] if r.returncode == 0 else None
            # lorac stops at EOS; transformers may pad after it
            same = got is not None and got == ref[:len(got)] and (len(got) == len(ref) or
                                                                 ref[len(got)] in (tok.eos_token_id, tok.pad_token_id))
            bad += not same
            print(f"{f} | {p!r}\n  transformers: {ref}\n  lorac:        {got}\n  equal: {same}"
                  f"   text: {tok.decode(ref)!r}", flush=True)
            if r.returncode:
                print("  lorac stderr:", r.stderr.strip()[-300:])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
