#!/usr/bin/env python3
"""Check that `lorac merge` writes checkpoints that transformers loads as plain models.

For each tiny fixture model (GPT-2 with Conv1D weights, Llama, BERT and DistilBERT
classifiers) this script:
  1. builds a PEFT LoRA adapter with non-zero lora_B (PEFT's own save_pretrained; for the
     decoders the committed adapter fixtures in tests/fixtures/parity are used), and for the
     real stories260K (shared/data) has `lorac train` write one, so PEFT reads lorac's files,
  2. runs `lorac merge --model BASE --adapter ADAPTER --out DIR` (the C binary),
  3. loads DIR with transformers' Auto classes, with no PEFT, and requires that no weight
     is missing, unexpected or newly initialised,
  4. compares its logits with PEFT's base + adapter logits on a right-padded batch (1e-4).
Then the same for the real GGUF files in .cache (SmolLM2, Qwen2.5-Coder, Gemma 3), where lorac writes
config.json itself: PEFT over transformers' own GGUF loader is the reference (1e-3 of the largest logit:
two dequantizations of the same blocks, 24 layers deep).

Run by hand (not by the C test suite), after a build:
    .venv-ref/bin/python tests/ref/check_merged.py [--lorac build/lorac]
Prints one line per model and exits 1 if any check fails.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                          logging as hf_logging)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")

CASES = [
    # name, auto class, existing adapter dir or (targets, modules_to_save) to build one
    ("tiny_gpt2", AutoModelForCausalLM, os.path.join(FIX, "parity", "tiny_gpt2_peft_adapter")),
    ("tiny_llama", AutoModelForCausalLM, os.path.join(FIX, "parity", "tiny_llama_peft_adapter")),
    ("tiny_bert", AutoModelForSequenceClassification,
     (["query", "key", "value", "output.dense", "intermediate.dense"], ["classifier"])),
    ("tiny_distilbert", AutoModelForSequenceClassification,
     (["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"], ["pre_classifier", "classifier"])),
    # PEFT's DoRA adapters (tests/ref/make_peft_variant_fixtures.py): lorac merges m / ||W + s B A|| (W + s B A)
    ("tiny_gpt2", AutoModelForCausalLM, os.path.join(FIX, "parity", "variants", "tiny_gpt2_dora_peft")),
    ("tiny_llama", AutoModelForCausalLM, os.path.join(FIX, "parity", "variants", "tiny_llama_dora_peft")),
    ("tiny_bert", AutoModelForSequenceClassification, os.path.join(FIX, "parity", "variants", "tiny_bert_dora_peft")),
    # an adapter trained and written by lorac itself: PEFT must read it as lorac means it
    ("stories260K", AutoModelForCausalLM, "lorac-train"),
]
DATA = os.environ.get("LORAC_DATA", os.path.join(ROOT, "..", "shared", "data"))
CACHE = os.environ.get("LORAC_CACHE", os.path.join(ROOT, ".cache"))
# Real GGUF bases (scripts/fetch-models): lorac writes the merged checkpoint's config.json itself, so the
# family must be right (Qwen2's q/k/v-only biases, Gemma 3's blocks and sliding layers). The reference is
# PEFT over transformers' own GGUF loader (the same blocks, dequantized), with a random adapter.
GGUF_CASES = [
    ("smollm2", "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"),
    ("qwen2.5-coder", "models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ("gemma3-270m", "models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"),
]


def lorac_train_adapter(lorac, base_dir, out):
    text = os.path.join(out + ".txt")
    with open(text, "w") as f:
        for _ in range(24):
            f.write("Once upon a time there was a little cat named Tom. Tom liked to play with a red ball.\n\n")
    subprocess.run([lorac, "train", "--model", base_dir, "--task", "lm", "--data", text, "--max-steps", "8",
                    "--batch", "4", "--lr", "1e-2", "--r", "4", "--alpha", "8", "--target", "all-linear",
                    "--seed", "3", "--out", out], check=True, capture_output=True)


def batch(vocab):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, vocab, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    ids[1, 5:] = 0
    return ids, mask


def logits_of(model, ids, mask):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def build_adapter(base_dir, auto, targets, mts, out):
    torch.manual_seed(11)
    base = auto.from_pretrained(base_dir, torch_dtype=torch.float32)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets, modules_to_save=mts)
    pm = get_peft_model(base, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
            if "modules_to_save" in n:
                p.add_(torch.randn_like(p) * 0.05)
    pm.save_pretrained(out)


def check_gguf(lorac, name, rel, tmp):
    """lorac merge of a .gguf base into a Hugging Face directory, against PEFT over transformers' GGUF load."""
    path = os.path.join(CACHE, rel)
    if not os.path.isfile(path):
        print(f"skip {name}: {path} not fetched")
        return 0
    load = dict(gguf_file=os.path.basename(path), dtype=torch.float32)
    torch.manual_seed(11)
    base = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), **load)
    pm = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                         target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.02)
    adapter = os.path.join(tmp, name + "-adapter")
    pm.save_pretrained(adapter)
    out = os.path.join(tmp, name + "-merged")
    r = subprocess.run([lorac, "merge", "--model", path, "--adapter", adapter, "--out", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL {name}: lorac merge exited {r.returncode}: {r.stderr.strip()}")
        return 1
    merged, info = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    pm.eval()
    merged.eval()
    ids, mask = batch(min(merged.config.vocab_size, 30000))
    want = logits_of(pm, ids, mask)
    got = logits_of(merged, ids, mask)
    real = mask.bool()
    diff = (got[real] - want[real]).abs().max().item()
    scale = want[real].abs().max().item()
    ok = not problems and diff <= 1e-3 * max(1.0, scale)
    print(f"{'ok  ' if ok else 'FAIL'} {name} (GGUF base): transformers loads the merged checkpoint as "
          f"{type(merged).__name__} ({'no missing/unexpected keys' if not problems else problems}); "
          f"max |logits - PEFT over transformers' GGUF load + adapter| = {diff:.2e} (max |logit| {scale:.3g})")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lorac", default=os.path.join(ROOT, "build", "lorac"))
    ap.add_argument("--gguf-only", action="store_true", help="only the real GGUF bases")
    args = ap.parse_args()
    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    failed = 0
    tmp = tempfile.mkdtemp(prefix="lorac-merged-")
    try:
        for name, auto, adapter in [] if args.gguf_only else CASES:
            base_dir = os.path.join(FIX, "models", name)
            if adapter == "lorac-train":
                base_dir = os.path.join(DATA, "stories260K", "hf")
                if not os.path.isdir(base_dir):
                    print(f"skip {name}: {base_dir} not found")
                    continue
                adapter = os.path.join(tmp, name + "-adapter")
                lorac_train_adapter(args.lorac, base_dir, adapter)
            if isinstance(adapter, tuple):
                ad = os.path.join(tmp, name + "-adapter")
                build_adapter(base_dir, auto, adapter[0], adapter[1], ad)
                adapter = ad
            out = os.path.join(tmp, name + "-" + os.path.basename(str(adapter)) + "-merged")
            r = subprocess.run([args.lorac, "merge", "--model", base_dir, "--adapter", adapter, "--out", out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {name}: lorac merge exited {r.returncode}: {r.stderr.strip()}")
                failed += 1
                continue
            merged, info = auto.from_pretrained(out, torch_dtype=torch.float32, output_loading_info=True)
            problems = {k: v for k, v in info.items() if v and k != "error_msgs" or (k == "error_msgs" and v)}
            base = auto.from_pretrained(base_dir, torch_dtype=torch.float32)
            peft_model = PeftModel.from_pretrained(base, adapter)
            merged.eval()
            peft_model.eval()
            ids, mask = batch(merged.config.vocab_size)
            want = logits_of(peft_model, ids, mask)
            got = logits_of(merged, ids, mask)
            real = mask.bool() if got.dim() == 3 else torch.ones(got.shape[0], dtype=torch.bool)
            diff = (got[real] - want[real]).abs().max().item()
            scale = want[real].abs().max().item()
            ok = not problems and diff <= 1e-4 * max(1.0, scale)
            print(f"{'ok  ' if ok else 'FAIL'} {name}{' (' + os.path.basename(adapter) + ')' if 'variants' in adapter else ''}: transformers {auto.__name__} loads the merged checkpoint "
                  f"({'no missing/unexpected keys' if not problems else problems}); "
                  f"max |logits - PEFT base+adapter| = {diff:.2e} (max |logit| {scale:.3g})")
            failed += not ok
        for name, rel in GGUF_CASES:
            failed += check_gguf(args.lorac, name, rel, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
