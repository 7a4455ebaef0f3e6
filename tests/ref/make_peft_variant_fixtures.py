#!/usr/bin/env python3
"""Parity fixtures for the rest of PEFT's LoRA family (issue 17): DoRA, rank_pattern /
alpha_pattern, PiSSA / OLoRA init and LoRA+, on the committed tiny GPT-2, Llama and BERT.

For each (model, feature) it writes, with PEFT 0.21 (see tests/ref/README.md):
    tests/fixtures/parity/variants/<model>_<feature>.safetensors
        the layout of make_model_fixtures.py's LM fixtures (decoders) or
        make_encoder_fixtures.py's classifier fixtures (BERT): base logits, a right-padded
        batch, the adapter's tensors (lora_A/B, DoRA's lora_magnitude_vector, the head),
        logits and loss with them, every gradient, 5 AdamW (or LoRA+) steps; metadata
        carries the LoraConfig fields (use_dora, rank_pattern, alpha_pattern,
        init_lora_weights, loraplus_*). PiSSA / OLoRA also store PEFT's initial pair
        ("<name>.init") and every residual base weight ("<module>.weight.residual").
    tests/fixtures/parity/variants/<model>_<feature>_peft/
        PEFT's save_pretrained of the same adapter (before training) and expected.safetensors
        with the logits of PeftModel.from_pretrained(base, that dir) in eval mode.
    tests/fixtures/parity/variants/gpt2_124m_counts.json
        print_trainable_parameters() of GPT-2 124M (GPT2Config()) under each feature.
Adapter tensors are perturbed away from their init (B random, or for PiSSA/OLoRA A and B
moved by N(0, 0.05^2); DoRA's magnitudes too) so every term changes the output.

    .venv-peer/bin/python tests/ref/make_peft_variant_fixtures.py
"""
import io
import json
import os
import shutil
import sys
from contextlib import redirect_stdout

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.optimizers import create_loraplus_optimizer
from transformers import GPT2Config, GPT2LMHeadModel, logging as hf_logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_encoder_fixtures as mef  # noqa: E402
import make_model_fixtures as mmf  # noqa: E402

ROOT = mmf.ROOT
OUT = os.path.join(ROOT, "tests", "fixtures", "parity", "variants")
R, ALPHA = mmf.LORA_R, mmf.LORA_ALPHA
LORAPLUS = dict(loraplus_lr_ratio=4.0, loraplus_weight_decay=0.1)

PATTERNS = {
    "tiny_gpt2": dict(rank_pattern={"c_fc": 2, "h.1.attn.c_proj": 6}, alpha_pattern={"c_attn": 3}),
    "tiny_llama": dict(rank_pattern={"q_proj": 2, "layers.1.mlp.down_proj": 6},
                       alpha_pattern={"v_proj": 3, "gate_proj": 16}),
    "tiny_bert": dict(rank_pattern={"query": 2, "layer.1.output.dense": 6}, alpha_pattern={"value": 5}),
}
FEATURES = {
    "dora": lambda name: dict(use_dora=True),
    "pattern": lambda name: PATTERNS[name],
    "pissa": lambda name: dict(init_lora_weights="pissa"),
    "olora": lambda name: dict(init_lora_weights="olora"),
    "loraplus": lambda name: {},
    "embed": lambda name: {},   # the token embedding targeted too (EMBED_TARGET): lora_embedding_A / _B
}
EMBED_TARGET = {"tiny_gpt2": "wte", "tiny_llama": "embed_tokens", "tiny_llama_tied": "embed_tokens",
                "tiny_bert": "word_embeddings"}
CASES = [(m, f) for m in ("tiny_gpt2", "tiny_llama", "tiny_bert") for f in FEATURES
         if not (m == "tiny_gpt2" and f == "olora")]   # PEFT's OLoRA factors Conv1D's [in, out] W: wrong shapes
CASES.append(("tiny_llama_tied", "embed"))   # a tied head keeps the plain embedding (no ensure_weight_tying)


def saved_name(n):
    """PEFT parameter name -> the key save_pretrained writes (magnitudes have no .weight)."""
    return mmf.saved_name(n).replace("lora_magnitude_vector.weight", "lora_magnitude_vector")


def model_of(name):
    d = os.path.join(ROOT, "tests", "fixtures", "models", name)
    cls = mmf.MODELS[name][1] if name in mmf.MODELS else mef.MODELS[name]["cls"]
    return cls, d, cls.from_pretrained(d, attn_implementation="eager", torch_dtype=torch.float32).eval()


def lora_kwargs(name, feature):
    dec = name in mmf.MODELS
    kw = dict(r=R, lora_alpha=ALPHA, lora_dropout=0.0, bias="none",
              target_modules=mmf.TARGETS[mmf.MODELS[name][0]] if dec else mef.MODELS[name]["targets"])
    if name == "tiny_gpt2":
        kw["fan_in_fan_out"] = True
    if dec:
        kw["task_type"] = "CAUSAL_LM"
    else:
        kw["modules_to_save"] = mef.MODELS[name]["head"]
    kw.update(FEATURES[feature](name))
    if feature == "embed" or (feature == "loraplus" and name == "tiny_llama"):  # LoRA+'s embedding group too
        kw["target_modules"] = list(kw["target_modules"]) + [EMBED_TARGET[name]]
    return kw


def batch(name, vocab, gen):
    """-> (forward kwargs, labels, tensors to store)"""
    if name in mmf.MODELS:
        ids, mask, labels, pos = mmf.make_batch(vocab, gen)
        kw = dict(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
        return kw, labels, {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": pos}
    ids, mask, pos, tt = mef.make_batch(vocab, gen)
    labels = torch.tensor(mef.CLS_LABELS, dtype=torch.int64)
    kw = mef.fwd_kwargs(name, ids, mask, pos, tt)
    return kw, labels, {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": pos,
                        "token_type_ids": tt}


def run(name, model, kw, labels=None):
    """-> logits, loss, last hidden state (encoders) or None"""
    if name in mmf.MODELS:
        out = model(**kw, labels=labels)
        return out.logits, out.loss, None
    logits, loss, hidden, _ = mef.run(model, kw, labels)
    return logits, loss, hidden


def fixture(name, feature, seed):
    dec = name in mmf.MODELS
    cls, mdir, model = model_of(name)
    gen = mmf.seed_all(seed)
    kw, labels, t = batch(name, model.config.vocab_size, gen)
    with torch.no_grad():
        logits_base, loss_base, hidden_base = run(name, model, kw, labels)
    lkw = lora_kwargs(name, feature)
    torch.manual_seed(seed + 2)
    pm = get_peft_model(model, LoraConfig(**lkw)).eval()
    with torch.no_grad():
        init_diff = mmf.maxdiff(run(name, pm, kw)[0], logits_base)
    assert init_diff < 1e-4, f"{name} {feature}: PEFT init changed logits by {init_diff}"
    named = dict(pm.named_parameters())
    mutated = str(lkw.get("init_lora_weights", "")) in ("pissa", "olora")
    if mutated:   # PEFT's initial pair and the residual base weights it left
        for n, p in named.items():
            if ".lora_A." in n or ".lora_B." in n:
                t[saved_name(n) + ".init"] = p.detach().clone()
            if n.endswith(".base_layer.weight"):
                module = n[len("base_model.model."):-len(".base_layer.weight")]
                t[module + ".weight.residual"] = p.detach().clone()
    g = mmf.seed_all(seed + 3)
    with torch.no_grad():
        for n, p in sorted(named.items()):
            if not p.requires_grad or "modules_to_save" in n:
                continue
            if mutated or "lora_magnitude_vector" in n or "lora_embedding_A" in n:  # (PEFT's embedding A starts at 0)
                p.add_(0.05 * torch.randn(p.shape, generator=g))
            elif "lora_B" in n:
                p.copy_(mmf.LORA_B_STD * torch.randn(p.shape, generator=g))

    params = sorted([(saved_name(n), p) for n, p in pm.named_parameters() if p.requires_grad], key=lambda x: x[0])
    if not dec:   # the head under the checkpoint's own names, as make_encoder_fixtures.py
        ren = {f"base_model.model.{h}.{w}": f"{h}.{w}" for h in mef.MODELS[name]["head"] for w in ("weight", "bias")}
        params = sorted([(ren.get(n, n), p) for n, p in params], key=lambda x: x[0])
    for n, p in params:
        t[n] = p.detach().clone()
    t["logits_base"], t["loss_base"] = logits_base, loss_base.reshape(1)
    if hidden_base is not None:
        t["hidden_base"] = hidden_base.reshape(-1, hidden_base.shape[-1])

    with torch.no_grad():
        logits_eval = run(name, pm, kw)[0]
    pdir = os.path.join(OUT, f"{name}_{feature}_peft")
    if feature != "loraplus":
        peft_dir(name, cls, mdir, pm, pdir, kw, logits_eval)

    logits, loss, hidden = run(name, pm, kw, labels)
    loss.backward()
    mmf.check_frozen_grads(pm)
    for n, p in params:
        assert p.grad is not None and float(p.grad.abs().max()) > 0, f"{n}: no gradient"
        t[n + ".grad"] = p.grad.detach().clone()
    t["logits_lora" if dec else "logits"] = logits.detach()
    t["loss"] = loss.detach().reshape(1)
    if hidden is not None:
        t["hidden"] = hidden.detach().reshape(-1, hidden.shape[-1])

    def loss_fn():
        return run(name, pm, kw, labels)[1]
    if feature == "loraplus":
        opt = create_loraplus_optimizer(pm, torch.optim.AdamW, lr=mmf.ADAMW["lr"], betas=mmf.ADAMW["betas"],
                                        eps=mmf.ADAMW["eps"], foreach=False, **LORAPLUS)
        losses = []
        for _ in range(mmf.N_STEPS):
            opt.zero_grad(set_to_none=True)
            lo = loss_fn()
            losses.append(float(lo.detach()))
            lo.backward()
            opt.step()
        losses = torch.tensor(losses, dtype=torch.float32)
    else:
        losses = mmf.adamw_run(pm, params, loss_fn)
    t["adamw_losses"] = losses
    for n, p in params:
        t[n + ".after5"] = p.detach().clone()

    meta = {
        "generator": "tests/ref/make_peft_variant_fixtures.py", "seed": str(seed),
        "versions": json.dumps(mmf.versions()), "model": f"tests/fixtures/models/{name}",
        "feature": feature, "r": str(R), "lora_alpha": str(ALPHA), "lora_dropout": "0.0",
        "target_modules": json.dumps(lkw["target_modules"]),
        "use_dora": "true" if lkw.get("use_dora") else "false",
        "rank_pattern": json.dumps(lkw.get("rank_pattern", {})),
        "alpha_pattern": json.dumps(lkw.get("alpha_pattern", {})),
        "init_lora_weights": str(lkw.get("init_lora_weights", "true")).lower(),
        "max_abs_diff_peft_init_vs_base": repr(init_diff),
        "perturbed": "lora_B = N(0,1)*0.1 (default init); PiSSA/OLoRA A, B and DoRA magnitudes += N(0,1)*0.05",
        "optimizer": ("peft.optimizers.create_loraplus_optimizer(AdamW, lr=1e-2, betas, eps, "
                      + json.dumps(LORAPLUS) + ")") if feature == "loraplus" else
                     "torch.optim.AdamW " + json.dumps(dict(mmf.ADAMW, foreach=False)),
    }
    if feature == "loraplus":
        meta.update({k: repr(v) for k, v in LORAPLUS.items()})
    if not dec:
        meta["modules_to_save"] = json.dumps(mef.MODELS[name]["head"])
    mmf.write_st(os.path.join(OUT, f"{name}_{feature}.safetensors"), t, meta)
    print(f"{name} {feature}: init diff {init_diff:.2e} loss {float(loss):.5f} adamw "
          f"{[round(float(x), 5) for x in losses]}")


def peft_dir(name, cls, mdir, pm, pdir, kw, logits_eval):
    """save_pretrained of the adapter, reloaded by PEFT onto a fresh base: its logits."""
    if os.path.isdir(pdir):
        shutil.rmtree(pdir)
    pm.save_pretrained(pdir, safe_serialization=True)
    readme = os.path.join(pdir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    cp = os.path.join(pdir, "adapter_config.json")
    with open(cp) as f:
        c = json.load(f)
    c["base_model_name_or_path"] = f"../../../models/{name}"
    c["target_modules"] = sorted(c["target_modules"])
    with open(cp, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    base = cls.from_pretrained(mdir, attn_implementation="eager", torch_dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, pdir).eval()
    with torch.no_grad():
        got = run(name, loaded, kw)[0]
    d = mmf.maxdiff(got, logits_eval)
    assert d < 1e-5, f"{pdir}: PEFT's reload gives logits off by {d}"
    ids, mask = kw["input_ids"], kw["attention_mask"]
    mmf.write_st(os.path.join(pdir, "expected.safetensors"),
                 {"input_ids": ids, "attention_mask": mask, "logits": got.detach()},
                 {"what": f"PeftModel.from_pretrained({name}, this folder) logits in eval mode",
                  "max_abs_diff_vs_in_memory": repr(d)})


def counts():
    """print_trainable_parameters of GPT-2 124M under each feature (its own figures, parsed)."""
    cases = {
        "lora_c_attn": dict(target_modules=["c_attn"], fan_in_fan_out=True),
        "dora_c_attn": dict(target_modules=["c_attn"], fan_in_fan_out=True, use_dora=True),
        "dora_all": dict(target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True, use_dora=True),
        "pattern": dict(target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True,
                        rank_pattern={"c_fc": 4, "h.11.attn.c_proj": 32, "h.0.attn.c_attn": 2},
                        alpha_pattern={"c_attn": 32}),
        "pissa": dict(target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights="pissa_niter_2"),
        "gaussian": dict(target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights="gaussian"),
        "embed": dict(target_modules=["c_attn", "wte"], fan_in_fan_out=True),
    }
    out = {}
    torch.manual_seed(0)
    for k, extra in cases.items():
        base = GPT2LMHeadModel(GPT2Config())
        pm = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, **extra))
        buf = io.StringIO()
        with redirect_stdout(buf):
            pm.print_trainable_parameters()
        line = buf.getvalue().strip()
        tr, al = [int(x.split(":")[1].strip().replace(",", "")) for x in line.split("||")[:2]]
        cfg = {kk: v for kk, v in extra.items() if kk != "fan_in_fan_out"}
        out[k] = {"config": dict(cfg, r=8, lora_alpha=16), "printed": line, "trainable": tr, "all": al}
        print(f"GPT-2 124M {k}: {line}")
    with open(os.path.join(OUT, "gpt2_124m_counts.json"), "w") as f:
        json.dump({"generator": "tests/ref/make_peft_variant_fixtures.py", "versions": mmf.versions(),
                   "cases": out}, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    hf_logging.set_verbosity_error()
    os.makedirs(OUT, exist_ok=True)
    for i, (name, feature) in enumerate(CASES):
        fixture(name, feature, 7000 + 10 * i)
    if "--no-counts" not in sys.argv:
        counts()


if __name__ == "__main__":
    main()
