#!/usr/bin/env python3
"""Write the model/LoRA parity fixtures that lorac's C model tests check against.

Reference implementation: PyTorch + transformers + PEFT (see tests/ref/README.md for
versions and for what every tensor means). Run by hand, never by the C test suite:

    tests/ref/setup-ref-env.sh                      # once: creates .venv-ref
    .venv-ref/bin/python tests/ref/make_model_fixtures.py

Writes (relative to the repository root):
    tests/fixtures/models/{tiny_gpt2,tiny_llama,tiny_llama_tied}/{config.json,model.safetensors}
    tests/fixtures/parity/<model>_lm.safetensors        causal LM + LoRA + grads + 5 AdamW steps
    tests/fixtures/parity/<model>_cls.safetensors       last-token classifier head + LoRA
    tests/fixtures/parity/<model>_peft_adapter/         PEFT save_pretrained of the LM adapter
    tests/fixtures/parity/stories260K_nll.json          cross-check of shared/data reference values

Everything is seeded, float32, single-threaded and deterministic: running it twice gives
byte-identical files (checked by --check-determinism).
"""
import argparse
import copy
import json
import os
import shutil
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import peft
import safetensors
import transformers
from peft import LoraConfig, get_peft_model
from peft.utils import get_peft_model_state_dict
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig,
                          LlamaForCausalLM)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SEED = 1234
B, T = 2, 7          # batch, sequence length
N_PAD = 2            # second sequence is right-padded by this many positions
PAD_ID = 0           # token id placed at padded positions (never a label)
LORA_R, LORA_ALPHA = 4, 8
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
N_STEPS = 5
W_STD, BIAS_STD, NORM_STD, LORA_B_STD = 0.2, 0.1, 0.1, 0.1
CLS_LABELS = [1, 0]

TARGETS = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],   # c_proj matches attn.c_proj AND mlp.c_proj
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


# ----------------------------------------------------------------------------- helpers

def seed_all(seed):
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def versions():
    v = {"torch": torch.__version__, "transformers": transformers.__version__,
         "peft": peft.__version__, "safetensors": safetensors.__version__,
         "python": sys.version.split()[0]}
    try:   # Debian's torch calls itself 1.13.0a0; the package version says what it is
        import subprocess
        deb = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "python3-torch"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if deb and torch.__file__.startswith("/usr/lib/python3/"):
            v["debian_python3_torch"] = deb
    except (OSError, subprocess.CalledProcessError):
        pass
    return v


def maxdiff(a, b):
    return float((a.detach() - b.detach()).abs().max())


def saved_name(name):
    """PEFT in-memory parameter name -> the name PEFT's save_pretrained writes."""
    name = name.replace(".modules_to_save.default", "").replace(".default", "")
    return name


def trainable(model):
    """(saved name, parameter) for every trainable parameter, in a fixed order."""
    out = [(saved_name(n), p) for n, p in model.named_parameters() if p.requires_grad]
    return sorted(out, key=lambda t: t[0])


def check_frozen_grads(model):
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"frozen parameter {n} received a gradient"


def init_weights(model, gen):
    """Deterministic N(0, 0.2) weights (bigger than HF's 0.02 so LoRA effects/grads are
    not tiny); biases N(0, 0.1); norm weights 1 + N(0, 0.1), norm biases N(0, 0.1).
    Walks named_parameters in order; tied tensors are visited once."""
    seen = set()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            is_norm = any(k in name for k in ("ln_", "norm"))
            noise = torch.randn(p.shape, generator=gen)
            if is_norm and name.endswith("weight"):
                p.copy_(1.0 + NORM_STD * noise)
            elif is_norm or name.endswith("bias"):
                p.copy_(BIAS_STD * noise)
            else:
                p.copy_(W_STD * noise)


# ----------------------------------------------------------------------------- models

def gpt2_config():
    return GPT2Config(vocab_size=101, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                      activation_function="gelu_new", layer_norm_epsilon=1e-5,
                      tie_word_embeddings=True, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, summary_first_dropout=0.0, bos_token_id=0,
                      eos_token_id=0, torch_dtype="float32")


def llama_config(tied):
    return LlamaConfig(vocab_size=103, hidden_size=32, intermediate_size=56,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=8, rms_norm_eps=1e-5, rope_theta=10000.0,
                       max_position_embeddings=64, tie_word_embeddings=tied,
                       rope_scaling=None, hidden_act="silu", attention_bias=False,
                       mlp_bias=False, attention_dropout=0.0, bos_token_id=1,
                       eos_token_id=2, pad_token_id=None, torch_dtype="float32")


MODELS = {
    # name: (family, constructor, config factory)
    "tiny_gpt2": ("gpt2", GPT2LMHeadModel, gpt2_config),
    "tiny_llama": ("llama", LlamaForCausalLM, lambda: llama_config(False)),
    "tiny_llama_tied": ("llama", LlamaForCausalLM, lambda: llama_config(True)),
}


def build_and_save(name, seed, models=None, post_save=None):
    """Create the random model, save it in HF layout, reload it from disk (so every
    fixture below is computed from exactly the committed weights). `models` is the
    registry (default MODELS); `post_save(out_dir)` may rewrite the saved files before the
    reload (make_arch_fixtures.py writes config.json in the Hub's key layout)."""
    family, cls, cfg_fn = (models or MODELS)[name]
    gen = seed_all(seed)
    cfg = cfg_fn()
    cfg._attn_implementation = "eager"
    model = cls(cfg)
    init_weights(model, gen)
    out = os.path.join(ROOT, "tests", "fixtures", "models", name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    model.save_pretrained(out, safe_serialization=True)
    gc = os.path.join(out, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)   # keep the fixture to config.json + model.safetensors
    if post_save:
        post_save(out)
    reloaded = cls.from_pretrained(out, attn_implementation="eager", torch_dtype=torch.float32)
    reloaded.eval()
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), f"{name}: {n1} changed on reload"
    return family, reloaded, out


def make_batch(vocab, gen, seq_len=None):
    """input_ids [B,T] (int64), attention_mask [B,T] (1 = token, 0 = right padding),
    labels [B,T] = input_ids with -100 at padding (HF convention: the model shifts).
    T = seq_len (default: the module's T)."""
    T = seq_len or globals()["T"]
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, T - N_PAD:] = 0
    ids[1, T - N_PAD:] = PAD_ID
    labels = ids.clone()
    labels[mask == 0] = -100
    pos = torch.arange(T).unsqueeze(0).expand(B, T).contiguous()
    return ids, mask, labels, pos


def lora_config(family, modules_to_save=None, task_type="CAUSAL_LM", targets=None):
    kw = dict(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0,
              target_modules=targets or TARGETS[family], bias="none")
    if family == "gpt2":
        kw["fan_in_fan_out"] = True   # GPT-2 Conv1D stores W as [in, out]
    if modules_to_save:
        kw["modules_to_save"] = modules_to_save
    if task_type:
        kw["task_type"] = task_type
    return LoraConfig(**kw)


def randomize_lora_b(model, gen):
    """PEFT initialises lora_B to zeros; overwrite every lora_B with N(0,1)*0.1 (seeded,
    in sorted-name order) so that the LoRA path contributes."""
    with torch.no_grad():
        for n, p in sorted(model.named_parameters(), key=lambda t: t[0]):
            if "lora_B" in n:
                p.copy_(LORA_B_STD * torch.randn(p.shape, generator=gen))


def lora_shapes_ok(family, model, hidden):
    """Check the orientation PEFT uses: lora_A is [r, in], lora_B is [out, r], also for
    GPT-2's Conv1D (whose base weight is [in, out])."""
    notes = []
    for n, p in model.named_parameters():
        if "lora_A" in n:
            assert p.shape[0] == LORA_R, (n, p.shape)
        if "lora_B" in n:
            assert p.shape[1] == LORA_R, (n, p.shape)
    if family == "gpt2":
        sd = dict(model.named_parameters())
        a = [v for k, v in sd.items() if k.endswith("h.0.attn.c_attn.lora_A.default.weight")][0]
        b = [v for k, v in sd.items() if k.endswith("h.0.attn.c_attn.lora_B.default.weight")][0]
        w = [v for k, v in sd.items() if k.endswith("h.0.attn.c_attn.base_layer.weight")][0]
        assert tuple(a.shape) == (LORA_R, hidden) and tuple(b.shape) == (3 * hidden, LORA_R)
        assert tuple(w.shape) == (hidden, 3 * hidden)
        notes.append(f"c_attn base weight (Conv1D) is [in={hidden}, out={3*hidden}]; "
                     f"lora_A is [r={LORA_R}, in={hidden}], lora_B is [out={3*hidden}, r={LORA_R}] "
                     "(same as for nn.Linear); fan_in_fan_out=True only transposes the merged "
                     "delta: W_merged = W + s * (B @ A).T")
    return " ".join(notes)


def adamw_run(model, params, loss_fn):
    """N_STEPS AdamW steps on one batch; returns losses (before each step)."""
    opt = torch.optim.AdamW([p for _, p in params], foreach=False, amsgrad=False,
                            maximize=False, **ADAMW)
    losses = []
    for _ in range(N_STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    return torch.tensor(losses, dtype=torch.float32)


def common_meta(family, loss_desc, targets=None):
    return {
        "generator": "tests/ref/make_model_fixtures.py",
        "seed": str(SEED),
        "versions": json.dumps(versions()),
        "r": str(LORA_R), "lora_alpha": str(LORA_ALPHA),
        "scaling": repr(LORA_ALPHA / LORA_R), "lora_dropout": "0.0",
        "use_rslora": "false", "bias": "none",
        "fan_in_fan_out": "true" if family == "gpt2" else "false",
        "target_modules": json.dumps(targets or TARGETS[family]),
        "lora_init": "A: PEFT default kaiming_uniform(a=sqrt(5)) under torch.manual_seed; "
                     f"B: PEFT zeros, then overwritten with N(0,1)*{LORA_B_STD}",
        "optimizer": "torch.optim.AdamW",
        "optimizer_hparams": json.dumps(dict(ADAMW, foreach=False, amsgrad=False, steps=N_STEPS)),
        "adamw_update": "torch 1.13 AdamW, t=1..5: p *= 1 - lr*wd; m = b1*m + (1-b1)*g; "
                        "v = b2*v + (1-b2)*g^2; p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
        "int_dtype": "input_ids, attention_mask, labels, position_ids are I64",
        "padding": f"right padding: sequence 1 has its last {N_PAD} positions masked "
                   f"(attention_mask 0, input_ids {PAD_ID}, labels -100)",
        "position_ids": "0..T-1 for both sequences (passed explicitly)",
        "attention": "eager (torch 1.13 has no SDPA); padded keys get finfo(float32).min added",
        "loss": loss_desc,
    }


# ----------------------------------------------------------------------------- causal LM

def lm_fixture(name, family, model, seed, targets=None, seq_len=None, per_layer=None,
               merged_key=None, adapter=None):
    """targets / seq_len / per_layer (LoRA layers per block) / merged_key / adapter (write
    the PEFT adapter dir) default to what the GPT-2 and Llama fixtures use."""
    cfg = model.config
    vocab, hidden = cfg.vocab_size, cfg.hidden_size
    gen = seed_all(seed + 1)
    ids, mask, labels, pos = make_batch(vocab, gen, seq_len)
    fwd = dict(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)

    with torch.no_grad():
        logits_base = model(**fwd).logits
        loss_base = model(**fwd, labels=labels).loss

    torch.manual_seed(seed + 2)                        # PEFT's lora_A init draws from here
    pm = get_peft_model(model, lora_config(family, targets=targets))
    pm.eval()                                          # no dropout anywhere (all p = 0 anyway)
    with torch.no_grad():
        logits_init = pm(**fwd).logits
    init_diff = maxdiff(logits_init, logits_base)
    assert init_diff == 0.0, f"{name}: PEFT init changed logits by {init_diff}"
    conv_note = lora_shapes_ok(family, pm, hidden)
    randomize_lora_b(pm, seed_all(seed + 3))

    params = trainable(pm)
    peft_sd = get_peft_model_state_dict(pm)
    assert sorted(peft_sd.keys()) == [n for n, _ in params], \
        f"{name}: saved-name mapping differs from get_peft_model_state_dict"
    n_lora_layers = len([n for n, _ in params if "lora_A" in n])
    expect = cfg.num_hidden_layers * (per_layer or (4 if family == "gpt2" else 7))
    assert n_lora_layers == expect, (n_lora_layers, expect)

    t = {"input_ids": ids, "attention_mask": mask, "labels": labels, "position_ids": pos,
         "logits_base": logits_base, "loss_base": loss_base.reshape(1)}
    for n, p in params:
        t[n] = p.detach().clone()

    out = pm(**fwd, labels=labels)
    logits_lora, loss = out.logits, out.loss
    # HF convention check: loss = mean CE of logits[:, :-1] vs labels[:, 1:], ignoring -100
    manual = F.cross_entropy(logits_lora[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1),
                             ignore_index=-100)
    assert maxdiff(manual, loss) < 1e-6, "HF loss does not match the shifted mean CE"
    loss.backward()
    check_frozen_grads(pm)
    for n, p in params:
        assert p.grad is not None and float(p.grad.abs().max()) > 0, f"{n}: no gradient"
        t[n + ".grad"] = p.grad.detach().clone()
    t["logits_lora"] = logits_lora.detach()
    t["loss"] = loss.detach().reshape(1)

    # merged weights: the adapter folded into the base (one example per model) and a check
    # that merged logits equal the LoRA logits (validates PEFT on this torch)
    merged = copy.deepcopy(pm).merge_and_unload()
    with torch.no_grad():
        merge_diff = maxdiff(merged(**fwd).logits, logits_lora)
    assert merge_diff < 1e-4, f"{name}: merged logits differ by {merge_diff}"
    mkey = merged_key or ("transformer.h.0.attn.c_attn.weight" if family == "gpt2"
                          else "model.layers.0.self_attn.q_proj.weight")
    t[mkey + ".merged"] = merged.state_dict()[mkey].detach().clone()

    # the PEFT adapter directory, as save_pretrained writes it (before training); not for
    # the tied Llama (same layout as tiny_llama's, keeps the fixtures small)
    if adapter if adapter is not None else name != "tiny_llama_tied":
        write_adapter_dir(name, pm, fwd, logits_lora)

    losses = adamw_run(pm, params, lambda: pm(**fwd, labels=labels).loss)
    assert abs(float(losses[0]) - float(loss)) < 1e-6
    t["adamw_losses"] = losses
    for n, p in params:
        t[n + ".after5"] = p.detach().clone()

    meta = common_meta(family, targets=targets, loss_desc="HF causal-LM loss: labels = input_ids with -100 at padding; "
                       "the model shifts internally, loss = mean over the "
                       f"{int((labels[:, 1:] != -100).sum())} non-ignored targets of "
                       "CE(logits[:, :-1], labels[:, 1:])")
    meta.update({
        "model": f"tests/fixtures/models/{name}",
        "peft_task_type": "CAUSAL_LM",
        "max_abs_diff_peft_init_vs_base": repr(init_diff),
        "max_abs_diff_merged_vs_lora": repr(merge_diff),
        "conv1d_orientation": conv_note or "n/a (nn.Linear)",
        "merged_example": f"{mkey}.merged = base weight + scaling * "
                          + ("(B @ A).T  (Conv1D [in,out] layout)" if family == "gpt2"
                             else "B @ A"),
        "grads": "'<name>.grad' = d loss / d param at the initial LoRA weights (loss above)",
        "after5": "'<name>.after5' = params after 5 AdamW steps on this batch; "
                  "adamw_losses[i] = loss before step i (adamw_losses[0] == loss)",
        "tied_word_embeddings": str(bool(model.config.tie_word_embeddings)).lower(),
    })
    return t, meta


def write_adapter_dir(name, pm, fwd, logits_lora):
    """tests/fixtures/parity/<name>_peft_adapter/{adapter_config.json,adapter_model.safetensors}
    exactly as PEFT writes them (only base_model_name_or_path is made relative), then
    check that PEFT loads it onto a fresh base and reproduces logits_lora."""
    from peft import PeftModel
    adir = os.path.join(ROOT, "tests", "fixtures", "parity", f"{name}_peft_adapter")
    if os.path.isdir(adir):
        shutil.rmtree(adir)
    pm.save_pretrained(adir, safe_serialization=True)
    for extra in ("README.md",):
        if os.path.exists(os.path.join(adir, extra)):
            os.remove(os.path.join(adir, extra))
    # peft writes base_model_name_or_path = the absolute local path: make it relative
    acfg_path = os.path.join(adir, "adapter_config.json")
    with open(acfg_path) as f:
        acfg = json.load(f)
    acfg["base_model_name_or_path"] = f"../../models/{name}"
    acfg["target_modules"] = sorted(acfg["target_modules"])   # PEFT writes a set: random order
    with open(acfg_path, "w") as f:
        json.dump(acfg, f, indent=2, sort_keys=True)
        f.write("\n")

    _, cls, _ = MODELS[name]
    base = cls.from_pretrained(os.path.join(ROOT, "tests", "fixtures", "models", name),
                               attn_implementation="eager", torch_dtype=torch.float32)
    loaded = PeftModel.from_pretrained(base, adir).eval()
    with torch.no_grad():
        d = maxdiff(loaded(**fwd).logits, logits_lora)
    assert d == 0.0, f"{name}: reloaded PEFT adapter gives logits off by {d}"


# ----------------------------------------------------------------------------- classifier

class LastTokenClassifier(nn.Module):
    """LLMs-from-scratch appendix E style head for decoders: a new Linear(hidden, C, bias)
    on the final-norm hidden state of the last non-pad token (right padding).
    The body attribute is named as in HF's *ForSequenceClassification ("transformer" for
    GPT-2, "model" for Llama) so PEFT names match what those classes would give."""

    def __init__(self, body, body_attr, hidden, n_classes, gen):
        super().__init__()
        self.body_attr = body_attr
        setattr(self, body_attr, body)
        self.score = nn.Linear(hidden, n_classes, bias=True)
        with torch.no_grad():
            self.score.weight.copy_(W_STD * torch.randn(self.score.weight.shape, generator=gen))
            self.score.bias.copy_(BIAS_STD * torch.randn(self.score.bias.shape, generator=gen))

    def forward(self, input_ids, attention_mask, position_ids, labels=None):
        body = getattr(self, self.body_attr)
        h = body(input_ids=input_ids, attention_mask=attention_mask,
                 position_ids=position_ids, use_cache=False).last_hidden_state   # [B,T,H]
        last = attention_mask.sum(-1) - 1                                        # [B]
        pooled = h[torch.arange(h.shape[0]), last]                              # [B,H]
        logits = self.score(pooled)                                              # [B,C]
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return logits, loss


def cls_fixture(name, family, lm_model, seed, targets=None, seq_len=None):
    cfg = lm_model.config
    hidden = cfg.hidden_size
    body_attr = "transformer" if family == "gpt2" else "model"
    body = getattr(lm_model, body_attr)       # GPT2Model / LlamaModel (ends in ln_f / norm)
    gen = seed_all(seed + 11)
    ids, mask, _, pos = make_batch(cfg.vocab_size, gen, seq_len)
    labels = torch.tensor(CLS_LABELS, dtype=torch.int64)
    clf = LastTokenClassifier(body, body_attr, hidden, 2, seed_all(seed + 12)).eval()
    head_w0 = clf.score.weight.detach().clone()
    head_b0 = clf.score.bias.detach().clone()

    with torch.no_grad():
        logits_base, loss_base = clf(ids, mask, pos, labels)

    torch.manual_seed(seed + 13)
    pm = get_peft_model(clf, lora_config(family, modules_to_save=["score"], task_type=None,
                                         targets=targets))
    pm.eval()
    with torch.no_grad():
        logits_init, _ = pm(input_ids=ids, attention_mask=mask, position_ids=pos)
    init_diff = maxdiff(logits_init, logits_base)
    assert init_diff == 0.0, f"{name} cls: PEFT init changed logits by {init_diff}"
    lora_shapes_ok(family, pm, hidden)
    randomize_lora_b(pm, seed_all(seed + 14))

    params = trainable(pm)
    names = [n for n, _ in params]
    assert "base_model.model.score.weight" in names and "base_model.model.score.bias" in names
    ren = {"base_model.model.score.weight": "score.weight",
           "base_model.model.score.bias": "score.bias"}
    params = sorted([(ren.get(n, n), p) for n, p in params], key=lambda t: t[0])
    assert torch.equal(dict(params)["score.weight"], head_w0)
    assert torch.equal(dict(params)["score.bias"], head_b0)

    t = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels,
         "last_index": (mask.sum(-1) - 1), "logits_base": logits_base,
         "loss_base": loss_base.reshape(1)}
    for n, p in params:
        t[n] = p.detach().clone()

    logits, loss = pm(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels)
    loss.backward()
    check_frozen_grads(pm)
    for n, p in params:
        assert p.grad is not None and float(p.grad.abs().max()) > 0, f"{n}: no gradient"
        t[n + ".grad"] = p.grad.detach().clone()
    t["logits"] = logits.detach()
    t["loss"] = loss.detach().reshape(1)

    def step_loss():
        return pm(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels)[1]
    losses = adamw_run(pm, params, step_loss)
    assert abs(float(losses[0]) - float(loss)) < 1e-6
    t["adamw_losses"] = losses
    for n, p in params:
        t[n + ".after5"] = p.detach().clone()

    meta = common_meta(family, targets=targets, loss_desc="mean over the batch of CE(score(h_last), labels); h_last = "
                       "final-norm hidden state at index attention_mask.sum(-1)-1")
    meta.update({
        "model": f"tests/fixtures/models/{name} (body only; its LM head is unused)",
        "head": f"score = Linear({hidden}, 2, bias=True), new, init weight N(0,{W_STD}) "
                f"bias N(0,{BIAS_STD}); fully trainable (PEFT modules_to_save=['score'])",
        "cls_labels": json.dumps(CLS_LABELS),
        "max_abs_diff_peft_init_vs_base": repr(init_diff),
        "grads": "'<name>.grad' at the initial weights, incl. score.weight/score.bias",
        "after5": "'<name>.after5' after 5 AdamW steps (LoRA A/B and the head, one "
                  "optimizer, same hyperparameters incl. weight decay on the head bias)",
    })
    return t, meta


# ----------------------------------------------------------------------------- stories260K

def stories260k(path_out):
    src = "/work/shared/data/stories260K"
    ref_path = os.path.join(src, "reference_values.json")
    if not os.path.exists(os.path.join(src, "hf", "model.safetensors")):
        print("stories260K: not found, skipped")
        return
    import sentencepiece as spm
    with open(ref_path) as f:
        ref = json.load(f)
    model = LlamaForCausalLM.from_pretrained(os.path.join(src, "hf"), attn_implementation="eager",
                                             torch_dtype=torch.float32).eval()
    sp = spm.SentencePieceProcessor(model_file=os.path.join(src, "hf", "tokenizer.model"))
    text_ids = sp.encode(ref["text"])
    bos = ref["bos_id"]
    with torch.no_grad():
        logits0 = model(torch.tensor([[bos]]), use_cache=False).logits[0, 0]
        ids = torch.tensor([[bos] + text_ids])
        lg = model(ids, use_cache=False).logits[0]
        nll = F.cross_entropy(lg[:-1], ids[0, 1:])          # mean over the text tokens
        # greedy decode, 40 tokens, full recompute each step
        seq = [bos]
        for _ in range(40):
            seq.append(int(model(torch.tensor([seq]), use_cache=False).logits[0, -1].argmax()))
    ref_logits = torch.tensor(ref["logits_after_bos_pos0"])
    out = {
        "generator": "tests/ref/make_model_fixtures.py",
        "versions": versions(),
        "model": "shared/data/stories260K/hf (LlamaForCausalLM, eager attention, float32)",
        "tokenizer": "sentencepiece on shared/data/stories260K/hf/tokenizer.model, encode(text)",
        "bos_id": bos,
        "logits_after_bos_pos0": [round(float(x), 6) for x in logits0],
        "max_abs_diff_vs_reference_values_logits": round(maxdiff(logits0, ref_logits), 8),
        "top5_after_bos": [int(i) for i in torch.topk(logits0, 5).indices],
        "top5_matches_reference": [int(i) for i in torch.topk(logits0, 5).indices]
        == ref["top5_after_bos"],
        "text": ref["text"],
        "text_ids_sentencepiece": text_ids,
        "text_ids_match_reference": text_ids == ref["text_ids_with_dummy_prefix_no_bos"],
        "mean_nll_nats_text_given_bos": round(float(nll), 6),
        "mean_nll_reference_value": ref["mean_nll_nats_text_given_bos"],
        "greedy_ids_first_40": seq[1:],
        "greedy_matches_reference": seq[1:] == ref["greedy_ids_first_40"],
    }
    with open(path_out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"stories260K: logits diff {out['max_abs_diff_vs_reference_values_logits']:.2e}, "
          f"nll {out['mean_nll_nats_text_given_bos']} (ref {ref['mean_nll_nats_text_given_bos']}), "
          f"ids match {out['text_ids_match_reference']}, greedy match {out['greedy_matches_reference']}")


# ----------------------------------------------------------------------------- main

def write_st(path, tensors, meta):
    """Write a .safetensors file with a byte-stable header (safetensors' own writer emits
    __metadata__ in HashMap order, which changes from run to run): keys sorted, data laid
    out in sorted-key order, header padded with spaces to a multiple of 8 as upstream does.
    Read back with safetensors.safe_open to prove it is a valid file."""
    import struct
    from safetensors import safe_open
    dt = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, off = {"__metadata__": dict(sorted(meta.items()))}, [], 0
    for k in sorted(tensors):
        v = tensors[k].detach().contiguous()
        assert v.dtype in dt, (k, v.dtype)
        raw = v.numpy().tobytes()
        header[k] = {"dtype": dt[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(blobs))
    with safe_open(path, "pt") as f:
        assert f.metadata() == meta
        for k in tensors:
            assert torch.equal(f.get_tensor(k), tensors[k].detach()), k


def generate():
    parity = os.path.join(ROOT, "tests", "fixtures", "parity")
    if os.path.isdir(parity):      # everything in parity/ is written by this script
        shutil.rmtree(parity)
    os.makedirs(parity)
    for i, name in enumerate(MODELS):
        seed = SEED + 100 * i
        family, model, mdir = build_and_save(name, seed)
        t, meta = lm_fixture(name, family, model, seed)
        write_st(os.path.join(parity, f"{name}_lm.safetensors"), t, meta)
        print(f"{name}: loss_base {float(t['loss_base']):.5f} loss {float(t['loss']):.5f} "
              f"adamw {[round(float(x), 5) for x in t['adamw_losses']]}")
        if name in ("tiny_gpt2", "tiny_llama"):
            # reload the untouched base: lm_fixture's PEFT injection modified `model`
            _, cls_, _ = MODELS[name]
            base = cls_.from_pretrained(mdir, attn_implementation="eager",
                                        torch_dtype=torch.float32).eval()
            t, meta = cls_fixture(name, family, base, seed)
            write_st(os.path.join(parity, f"{name}_cls.safetensors"), t, meta)
            print(f"{name} cls: logits {t['logits'].tolist()} loss {float(t['loss']):.5f} "
                  f"adamw {[round(float(x), 5) for x in t['adamw_losses']]}")
    stories260k(os.path.join(parity, "stories260K_nll.json"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="print the fixture listing and exit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()
    if not args.list:
        generate()
    list_fixtures()


def list_fixtures():
    from safetensors import safe_open
    total = 0
    for sub in ("models", "parity"):
        base = os.path.join(ROOT, "tests", "fixtures", sub)
        for dp, _, fns in sorted(os.walk(base)):
            for fn in sorted(fns):
                p = os.path.join(dp, fn)
                total += os.path.getsize(p)
                print(f"{os.path.relpath(p, ROOT)}  ({os.path.getsize(p)} bytes)")
                if fn.endswith(".safetensors"):
                    with safe_open(p, "pt") as f:
                        for k in sorted(f.keys()):
                            s = f.get_slice(k)
                            print(f"    {k:70s} {s.get_dtype():4s} {list(s.get_shape())}")
    print(f"total fixture bytes: {total}")


if __name__ == "__main__":
    main()
