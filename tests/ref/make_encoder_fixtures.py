#!/usr/bin/env python3
"""Write the BERT / DistilBERT encoder-classifier parity fixtures for lorac's C model tests.

Reference implementation: PyTorch + transformers + PEFT, the same environment and conventions
as make_model_fixtures.py (whose helpers this script imports); see tests/ref/README.md.
Run by hand, never by the C test suite:

    tests/ref/setup-ref-env.sh                      # once: creates .venv-ref
    .venv-ref/bin/python tests/ref/make_encoder_fixtures.py
    .venv-ref/bin/python tests/ref/make_encoder_fixtures.py --list   # listing only

Writes (relative to the repository root) and touches nothing else:
    tests/fixtures/models/{tiny_bert,tiny_distilbert}/{config.json,model.safetensors}
    tests/fixtures/parity/{tiny_bert,tiny_distilbert}_cls.safetensors
        HF *ForSequenceClassification (its own head, loaded from the checkpoint) + LoRA on the
        encoder + trainable head (modules_to_save) + grads + 5 AdamW steps

Unlike make_model_fixtures.py it does NOT clear tests/fixtures/parity/: each output is written
to a temporary name next to it and renamed into place.

Everything is seeded, float32, single-threaded and deterministic: two runs give byte-identical
files.
"""
import argparse
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F

import transformers
from peft import LoraConfig, get_peft_model
from peft.utils import get_peft_model_state_dict
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import (ADAMW, BIAS_STD, LORA_ALPHA, LORA_B_STD, LORA_R,  # noqa: E402
                                 N_STEPS, NORM_STD, SEED, W_STD, adamw_run, check_frozen_grads,
                                 maxdiff, randomize_lora_b, seed_all, trainable, versions,
                                 write_st)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GENERATOR = "tests/ref/make_encoder_fixtures.py"
B, T = 2, 7          # batch, sequence length (as the decoder fixtures)
N_PAD = 2            # second sequence is right-padded by this many positions
PAD_ID = 0           # token id at padded positions (BERT's [PAD] is 0 too)
N_LABELS = 3
CLS_LABELS = [2, 0]

MODELS = {
    # name: dict(cls, cfg, targets, head modules, encoder attribute)
    "tiny_bert": dict(
        cls=BertForSequenceClassification,
        cfg=lambda: BertConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=32, type_vocab_size=2,
            hidden_act="gelu", layer_norm_eps=1e-12, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, classifier_dropout=0.0, num_labels=N_LABELS,
            problem_type="single_label_classification", pad_token_id=PAD_ID,
            position_embedding_type="absolute", torch_dtype="float32"),
        # suffix match: attention.self.{query,key,value}, attention.output.dense,
        # intermediate.dense, output.dense -- 6 per layer; not bert.pooler.dense
        targets=["query", "key", "value", "output.dense", "intermediate.dense"],
        head=["classifier"],
        encoder="bert",
        per_layer=6,
    ),
    "tiny_distilbert": dict(
        cls=DistilBertForSequenceClassification,
        cfg=lambda: DistilBertConfig(
            vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
            max_position_embeddings=32, sinusoidal_pos_embds=False, activation="gelu",
            dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0, qa_dropout=0.0,
            num_labels=N_LABELS,
            problem_type="single_label_classification", pad_token_id=PAD_ID,
            torch_dtype="float32"),
        targets=["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
        head=["pre_classifier", "classifier"],
        encoder="distilbert",
        per_layer=6,
    ),
}

HEAD_DESC = {
    "tiny_bert": "logits = classifier(tanh(bert.pooler.dense(h[:, 0]))): the pooler is the "
                 "frozen base (no LoRA), classifier = Linear(32, 3) is trainable",
    "tiny_distilbert": "logits = classifier(relu(pre_classifier(h[:, 0]))): pre_classifier = "
                       "Linear(32, 32) and classifier = Linear(32, 3), both trainable",
}
ARCH_DESC = {
    "tiny_bert": "post-LN BERT: emb = LayerNorm(word[ids] + pos[0..T-1] + type[0]); per layer "
                 "a = LayerNorm(x + output.dense(attn(x))) (attention.output.LayerNorm), "
                 "y = LayerNorm(a + output.dense(gelu(intermediate.dense(a)))) (output.LayerNorm); "
                 "gelu = exact erf GELU; eps 1e-12; scores = q.k / sqrt(8) + mask",
    "tiny_distilbert": "post-LN DistilBERT: emb = LayerNorm(word[ids] + pos[0..T-1]) (no token "
                       "types); per layer a = sa_layer_norm(x + out_lin(attn(x))), y = "
                       "output_layer_norm(a + lin2(gelu(lin1(a)))); gelu = exact erf GELU; all "
                       "LayerNorm eps 1e-12 (hard-coded in HF, not in config); HF scales q by "
                       "1/sqrt(8) before q.k and masked_fill(finfo.min)s padded keys",
}


# ----------------------------------------------------------------------------- helpers

def init_weights(model, gen):
    """As make_model_fixtures.init_weights (N(0,0.2) matrices/embeddings, N(0,0.1) biases,
    LayerNorm weight 1 + N(0,0.1), bias N(0,0.1)) but recognises BERT's "LayerNorm" and
    DistilBERT's "*_layer_norm" names. Embedding row PAD_ID is random too (not zero)."""
    seen = set()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            is_norm = "norm" in name.lower()
            noise = torch.randn(p.shape, generator=gen)
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + NORM_STD * noise)
            elif is_norm or name.endswith("bias"):
                p.copy_(BIAS_STD * noise)
            else:
                p.copy_(W_STD * noise)


def replace_dir(tmp, dst):
    """Move the finished directory tmp to dst (replacing dst, which only this script writes)."""
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def write_st_atomic(path, tensors, meta):
    tmp = path + ".tmp"
    write_st(tmp, tensors, meta)
    os.replace(tmp, path)


def build_and_save(name, seed):
    """Random model -> save_pretrained -> reload from disk (the fixtures use exactly the
    committed weights)."""
    spec = MODELS[name]
    gen = seed_all(seed)
    cfg = spec["cfg"]()
    cfg._attn_implementation = "eager"
    model = spec["cls"](cfg)
    init_weights(model, gen)
    out = os.path.join(ROOT, "tests", "fixtures", "models", name)
    tmp = out + ".tmp"
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    extra = sorted(set(os.listdir(tmp)) - {"config.json", "model.safetensors"})
    assert not extra, f"{name}: unexpected files {extra}"
    replace_dir(tmp, out)
    reloaded = spec["cls"].from_pretrained(out, attn_implementation="eager",
                                           torch_dtype=torch.float32).eval()
    sd0, sd1 = model.state_dict(), reloaded.state_dict()
    assert list(sd0) == list(sd1)
    for k in sd0:
        assert torch.equal(sd0[k], sd1[k]), f"{name}: {k} changed on reload"
    return reloaded, out


def make_batch(vocab, gen):
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, T - N_PAD:] = 0
    ids[1, T - N_PAD:] = PAD_ID
    pos = torch.arange(T).unsqueeze(0).expand(B, T).contiguous()
    tt = torch.zeros(B, T, dtype=torch.int64)
    return ids, mask, pos, tt


def fwd_kwargs(name, ids, mask, pos, tt):
    if name == "tiny_bert":
        return dict(input_ids=ids, attention_mask=mask, position_ids=pos, token_type_ids=tt)
    return dict(input_ids=ids, attention_mask=mask)   # DistilBERT: positions are always 0..T-1


def run(model, kw, labels=None):
    """-> logits [B,3], loss or None, last hidden state [B,T,C], pooled [B,C] (input of the
    final classifier Linear) for a *ForSequenceClassification model or its PEFT wrapper."""
    captured = {}
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hook = inner.classifier.register_forward_hook(
        lambda m, inp, out: captured.__setitem__("pooled", inp[0]))
    try:
        out = model(**kw, labels=labels, output_hidden_states=True)
    finally:
        hook.remove()
    return out.logits, out.loss, out.hidden_states[-1], captured["pooled"]


def padding_checks(name, model, kw, hidden):
    """HF masks padded KEYS only: padded query rows are computed like any other row.
    Checks (a) the real positions of row 1 equal row 1 run alone without its pads,
    (b) changing the token ids at the pads does not change any real position, and
    (c) the padded rows are finite and non-trivial. Returns metadata strings."""
    n = T - N_PAD
    kw1 = {k: v[1:2, :n] for k, v in kw.items()}
    with torch.no_grad():
        _, _, h1, _ = run(model, kw1)
        kw2 = dict(kw)
        ids2 = kw["input_ids"].clone()
        ids2[1, n:] = 7
        kw2["input_ids"] = ids2
        _, _, h2, _ = run(model, kw2)
    d_alone = maxdiff(h1[0], hidden[1, :n])
    d_padid = maxdiff(h2[1, :n], hidden[1, :n])
    assert d_alone < 1e-5, f"{name}: row 1 alone differs by {d_alone}"
    assert d_padid < 1e-5, f"{name}: pad token ids leak into real positions ({d_padid})"
    pad_rows = hidden[1, n:]
    assert torch.isfinite(pad_rows).all() and float(pad_rows.abs().max()) > 0.1
    return {
        "max_abs_diff_row1_alone_vs_batched": repr(d_alone),
        "max_abs_diff_other_pad_ids": repr(d_padid),
    }


# ----------------------------------------------------------------------------- fixture

def cls_fixture(name, model, seed):
    spec = MODELS[name]
    cfg = model.config
    hidden_size = cfg.hidden_size if name == "tiny_bert" else cfg.dim
    n_layers = cfg.num_hidden_layers if name == "tiny_bert" else cfg.n_layers
    gen = seed_all(seed + 11)
    ids, mask, pos, tt = make_batch(cfg.vocab_size, gen)
    labels = torch.tensor(CLS_LABELS, dtype=torch.int64)
    kw = fwd_kwargs(name, ids, mask, pos, tt)

    head0 = {f"{h}.{w}": getattr(getattr(model, h), w).detach().clone()
             for h in spec["head"] for w in ("weight", "bias")}
    with torch.no_grad():
        logits_base, loss_base, hidden_base, pooled_base = run(model, kw, labels)
        enc = getattr(model, spec["encoder"])
        direct = enc(**{k: v for k, v in kw.items()}).last_hidden_state
    assert torch.equal(direct, hidden_base), "hidden_states[-1] != encoder last_hidden_state"
    manual = F.cross_entropy(logits_base, labels)
    assert maxdiff(manual, loss_base) < 1e-6, "HF loss is not the mean CE"
    pad_meta = padding_checks(name, model, kw, hidden_base)

    torch.manual_seed(seed + 13)                     # PEFT's lora_A init draws from here
    lcfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
                      target_modules=spec["targets"], bias="none",
                      modules_to_save=spec["head"], task_type=None)
    pm = get_peft_model(model, lcfg)
    pm.eval()
    with torch.no_grad():
        logits_init, _, _, _ = run(pm, kw)
    init_diff = maxdiff(logits_init, logits_base)
    assert init_diff == 0.0, f"{name}: PEFT init changed logits by {init_diff}"
    randomize_lora_b(pm, seed_all(seed + 14))

    params = trainable(pm)
    names = [n for n, _ in params]
    assert sorted(get_peft_model_state_dict(pm).keys()) == names, \
        f"{name}: saved-name mapping differs from get_peft_model_state_dict"
    lora_modules = sorted({n[len("base_model.model."):-len(".lora_A.weight")]
                           for n in names if n.endswith(".lora_A.weight")})
    assert len(lora_modules) == n_layers * spec["per_layer"], lora_modules
    assert not any("pooler" in m for m in lora_modules)
    ren = {f"base_model.model.{h}": h for h in head0}
    assert set(ren) <= set(names), (sorted(ren), names)
    params = sorted([(ren.get(n, n), p) for n, p in params], key=lambda t: t[0])
    assert len(params) == 2 * len(lora_modules) + len(head0)
    for h, v in head0.items():
        assert torch.equal(dict(params)[h], v), f"{h} is not the checkpoint's head"

    t = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels,
         "logits_base": logits_base, "loss_base": loss_base.reshape(1),
         "hidden_base": hidden_base.reshape(B * T, hidden_size),
         "pooled_base": pooled_base}
    if name == "tiny_bert":
        t["token_type_ids"] = tt
    for n, p in params:
        t[n] = p.detach().clone()

    logits, loss, hidden, pooled = run(pm, kw, labels)
    loss.backward()
    check_frozen_grads(pm)
    for n, p in params:
        assert p.grad is not None and float(p.grad.abs().max()) > 0, f"{n}: no gradient"
        t[n + ".grad"] = p.grad.detach().clone()
    t["logits"] = logits.detach()
    t["loss"] = loss.detach().reshape(1)
    t["hidden"] = hidden.detach().reshape(B * T, hidden_size)
    t["pooled"] = pooled.detach()

    losses = adamw_run(pm, params, lambda: run(pm, kw, labels)[1])
    assert abs(float(losses[0]) - float(loss)) < 1e-6
    t["adamw_losses"] = losses
    for n, p in params:
        t[n + ".after5"] = p.detach().clone()

    heads = ", ".join(f"{h}.weight/.bias" for h in spec["head"])
    meta = {
        "generator": GENERATOR,
        "seed": str(seed),
        "versions": json.dumps(versions()),
        "model": f"tests/fixtures/models/{name} ({spec['cls'].__name__}, loaded with its head)",
        "architecture": ARCH_DESC[name],
        "head": HEAD_DESC[name],
        "r": str(LORA_R), "lora_alpha": str(LORA_ALPHA),
        "scaling": repr(LORA_ALPHA / LORA_R), "lora_dropout": "0.0",
        "use_rslora": "false", "bias": "none", "fan_in_fan_out": "false",
        "peft_task_type": "None",
        "target_modules": json.dumps(spec["targets"]),
        "lora_modules": json.dumps(lora_modules),
        "modules_to_save": json.dumps(spec["head"]),
        "lora_init": "A: PEFT default kaiming_uniform(a=sqrt(5)) under torch.manual_seed; "
                     f"B: PEFT zeros, then overwritten with N(0,1)*{LORA_B_STD}",
        "max_abs_diff_peft_init_vs_base": repr(init_diff),
        "optimizer": "torch.optim.AdamW",
        "optimizer_hparams": json.dumps(dict(ADAMW, foreach=False, amsgrad=False, steps=N_STEPS)),
        "adamw_update": "torch 1.13 AdamW, t=1..5: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; "
                        "v = b2*v + (1-b2)*g^2; p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
        "int_dtype": "input_ids, attention_mask, labels, position_ids"
                     + (", token_type_ids" if name == "tiny_bert" else "") + " are I64",
        "padding": f"right padding: sequence 1 has its last {N_PAD} positions masked "
                   f"(attention_mask 0, input_ids {PAD_ID})",
        "position_ids": "0..T-1 for both sequences" + (
            " (passed explicitly); token_type_ids all 0 (passed explicitly)"
            if name == "tiny_bert" else " (DistilBERT's forward takes none; it uses 0..T-1)"),
        "attention": "eager, bidirectional (no causal mask). Only padded KEYS are masked "
                     + ("(HF BERT adds (1-mask)*finfo(float32).min to the scores, broadcast "
                        "over query rows)" if name == "tiny_bert" else
                        "(HF DistilBERT masked_fill(finfo(float32).min) on the scores of key "
                        "columns with mask 0)")
                     + "; padded query rows are computed normally and are in hidden/hidden_base. "
                       "The real positions do not depend on them or on the pad ids.",
        "loss": f"HF single_label_classification: mean over the {B} sequences of "
                "CE(logits, labels), num_labels 3",
        "cls_labels": json.dumps(CLS_LABELS),
        "hidden_base": f"last_hidden_state of the base encoder ({spec['encoder']}), "
                       f"[B*T, {hidden_size}] row b*T+t, all rows incl. padded ones",
        "hidden": "same with the LoRA adapter active (initial A/B)",
        "pooled_base": "input of the final classifier Linear, [B, C] ("
                       + ("tanh(pooler.dense(h[:,0]))" if name == "tiny_bert"
                          else "relu(pre_classifier(h[:,0]))") + "), base model",
        "pooled": "same with LoRA (initial A/B)",
        "param_names": "LoRA: PEFT saved-file names base_model.model.<HF module>.lora_{A,B}.weight; "
                       f"head: the checkpoint's own names ({heads}), which PEFT would save as "
                       "base_model.model.<head>.*; values = the checkpoint's",
        "grads": "'<name>.grad' = d loss / d param at the initial weights, LoRA A/B and head",
        "after5": "'<name>.after5' after 5 AdamW steps on this batch (LoRA A/B and head, one "
                  "optimizer, weight decay on everything incl. biases); adamw_losses[i] = loss "
                  "before step i (adamw_losses[0] == loss)",
    }
    meta.update(pad_meta)
    return t, meta


# ----------------------------------------------------------------------------- main

OUTPUTS = [os.path.join("tests", "fixtures", "models", n, f)
           for n in MODELS for f in ("config.json", "model.safetensors")] + \
          [os.path.join("tests", "fixtures", "parity", f"{n}_cls.safetensors") for n in MODELS]


def generate():
    parity = os.path.join(ROOT, "tests", "fixtures", "parity")
    os.makedirs(parity, exist_ok=True)
    for i, name in enumerate(MODELS):
        seed = SEED + 1000 + 100 * i
        model, _ = build_and_save(name, seed)
        t, meta = cls_fixture(name, model, seed)
        write_st_atomic(os.path.join(parity, f"{name}_cls.safetensors"), t, meta)
        print(f"{name} cls: logits {[[round(x, 5) for x in r] for r in t['logits'].tolist()]} "
              f"loss_base {float(t['loss_base']):.5f} loss {float(t['loss']):.5f} "
              f"adamw {[round(float(x), 5) for x in t['adamw_losses']]}")


def list_fixtures():
    from safetensors import safe_open
    total = 0
    for rel in OUTPUTS:
        p = os.path.join(ROOT, rel)
        if not os.path.exists(p):
            print(f"{rel}  (missing)")
            continue
        total += os.path.getsize(p)
        print(f"{rel}  ({os.path.getsize(p)} bytes)")
        if p.endswith(".safetensors"):
            with safe_open(p, "pt") as f:
                for k in sorted(f.keys()):
                    s = f.get_slice(k)
                    print(f"    {k:72s} {s.get_dtype():4s} {list(s.get_shape())}")
    print(f"total bytes: {total}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="print the fixture listing and exit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()
    print("versions:", json.dumps(versions()))
    if not args.list:
        generate()
    list_fixtures()


if __name__ == "__main__":
    main()
