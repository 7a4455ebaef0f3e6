#!/usr/bin/env python3
"""PEFT adapters with everything in the mix, for lorac's adapter loader (issue 4).

Writes, with PEFT's own save_pretrained:
    tests/fixtures/parity/peft_mix_llama/   tiny_llama, LoRA r=4 alpha=8 on q/k/v/o/gate/up/down,
                                            lora_dropout=0.1, bias="lora_only", use_rslora=True,
                                            modules_to_save=["lm_head"]
    tests/fixtures/parity/peft_mix_bert/    tiny_bert (a classifier), LoRA r=4 alpha=8 on
                                            query/key/value/output.dense/intermediate.dense,
                                            lora_dropout=0.1, bias="lora_only", use_rslora=True,
                                            modules_to_save=["classifier"]
and in each folder expected.safetensors: input_ids, attention_mask (right-padded), and the
logits of PeftModel in eval mode (dropout off). Every LoRA B, every targeted bias and the saved
modules are perturbed first, so each feature changes the output.

    .venv-ref/bin/python tests/ref/make_peft_mix_fixture.py
"""
import json
import os
import shutil
import struct

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")

CASES = [
    ("peft_mix_llama", "tiny_llama", AutoModelForCausalLM,
     ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], ["lm_head"]),
    ("peft_mix_bert", "tiny_bert", AutoModelForSequenceClassification,
     ["query", "key", "value", "output.dense", "intermediate.dense"], ["classifier"]),
]


def write_st(path, tensors, meta):
    """safetensors with a sorted header, so re-runs are byte-identical"""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        dt = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        raw = t.numpy().tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".part", path)


def main():
    torch.manual_seed(2024)
    torch.set_num_threads(1)
    for out_name, model_name, auto, targets, mts in CASES:
        base = auto.from_pretrained(os.path.join(FIX, "models", model_name), torch_dtype=torch.float32)
        cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, bias="lora_only", use_rslora=True,
                         target_modules=targets, modules_to_save=mts)
        pm = get_peft_model(base, cfg)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if p.requires_grad:  # lora_A/B, the lora_only biases, the saved modules
                    p.add_(torch.randn_like(p) * 0.1)
        pm.eval()
        out = os.path.join(FIX, "parity", out_name)
        shutil.rmtree(out, ignore_errors=True)
        pm.save_pretrained(out)
        g = torch.Generator().manual_seed(5)
        ids = torch.randint(1, base.config.vocab_size, (2, 7), generator=g)
        mask = torch.ones(2, 7, dtype=torch.long)
        mask[1, 5:] = 0
        ids[1, 5:] = 0
        with torch.no_grad():
            logits = pm(input_ids=ids, attention_mask=mask).logits.float()
        write_st(os.path.join(out, "expected.safetensors"),
                 {"input_ids": ids, "attention_mask": mask, "logits": logits},
                 {"what": f"PeftModel({model_name}) logits in eval mode with the adapter in this folder",
                  "lora": "r=4 alpha=8 dropout=0.1 bias=lora_only use_rslora=True modules_to_save=" + ",".join(mts)})
        print(out, tuple(logits.shape))


if __name__ == "__main__":
    main()
