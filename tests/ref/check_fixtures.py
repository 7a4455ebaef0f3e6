#!/usr/bin/env python3
"""Independent second reference: recompute every number in tests/fixtures/parity/*.safetensors
from the fixture files alone (config.json + model.safetensors + the parity tensors) with plain
torch ops written from the math in DESIGN.md -- no transformers, no PEFT -- and a hand-written
AdamW. This is the computation lorac's C code has to do; if this passes, the fixtures mean
what tests/ref/README.md says they mean.

    .venv-ref/bin/python tests/ref/check_fixtures.py      (needs only torch + safetensors)
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
NEG = torch.finfo(torch.float32).min


def load(path):
    with safe_open(path, "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def lora_delta(x, lora, key):
    """s * (x A^T) B^T for module `key` (HF module path), or 0 when not targeted."""
    a = lora.get(f"base_model.model.{key}.lora_A.weight")
    if a is None:
        return 0.0
    b = lora[f"base_model.model.{key}.lora_B.weight"]
    return lora["__scale__"] * ((x @ a.t()) @ b.t())


def attention(q, k, v, mask):
    """q [B,H,T,D], k/v [B,Hkv,T,D] (GQA: each kv head serves H/Hkv query heads)."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    T = q.shape[2]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = causal[None, None] & mask.bool()[:, None, None, :]
    att = att + torch.where(allowed, 0.0, NEG)
    return att.softmax(-1) @ v


def gpt2_hidden(w, cfg, lora, ids, mask, pos):
    H, nh = cfg["n_embd"], cfg["n_head"]
    eps = cfg["layer_norm_epsilon"]
    Bsz, T = ids.shape
    p = "transformer."
    x = w[p + "wte.weight"][ids] + w[p + "wpe.weight"][pos]

    def conv1d(h, key):               # Conv1D: W is [in, out]
        return h @ w[p + key + ".weight"] + w[p + key + ".bias"] + lora_delta(h, lora, p + key)

    def heads(t):
        return t.view(Bsz, T, nh, H // nh).transpose(1, 2)
    for l in range(cfg["n_layer"]):
        L = f"h.{l}."
        h = F.layer_norm(x, (H,), w[p + L + "ln_1.weight"], w[p + L + "ln_1.bias"], eps)
        q, k, v = conv1d(h, L + "attn.c_attn").split(H, dim=-1)
        y = attention(heads(q), heads(k), heads(v), mask).transpose(1, 2).reshape(Bsz, T, H)
        x = x + conv1d(y, L + "attn.c_proj")
        h = F.layer_norm(x, (H,), w[p + L + "ln_2.weight"], w[p + L + "ln_2.bias"], eps)
        h = F.gelu(conv1d(h, L + "mlp.c_fc"), approximate="tanh")       # gelu_new
        x = x + conv1d(h, L + "mlp.c_proj")
    x = F.layer_norm(x, (H,), w[p + "ln_f.weight"], w[p + "ln_f.bias"], eps)
    return x, w[p + "wte.weight"]    # tied head


def rms(x, g, eps):
    return g * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def llama_hidden(w, cfg, lora, ids, mask, pos):
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = cfg["head_dim"], cfg["rms_norm_eps"]
    Bsz, T = ids.shape
    p = "model."
    x = w[p + "embed_tokens.weight"][ids]
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[..., None].float() * inv                            # [B,T,hd/2]
    cos, sin = torch.cat([ang, ang], -1).cos()[:, None], torch.cat([ang, ang], -1).sin()[:, None]

    def rope(t):                                                  # rotate-half convention
        t1, t2 = t[..., : hd // 2], t[..., hd // 2:]
        return t * cos + torch.cat([-t2, t1], -1) * sin

    def lin(h, key):                                              # nn.Linear: W is [out, in]
        return h @ w[p + key + ".weight"].t() + lora_delta(h, lora, p + key)
    for l in range(cfg["num_hidden_layers"]):
        L = f"layers.{l}."
        h = rms(x, w[p + L + "input_layernorm.weight"], eps)
        q = lin(h, L + "self_attn.q_proj").view(Bsz, T, nh, hd).transpose(1, 2)
        k = lin(h, L + "self_attn.k_proj").view(Bsz, T, nkv, hd).transpose(1, 2)
        v = lin(h, L + "self_attn.v_proj").view(Bsz, T, nkv, hd).transpose(1, 2)
        y = attention(rope(q), rope(k), v, mask).transpose(1, 2).reshape(Bsz, T, nh * hd)
        x = x + lin(y, L + "self_attn.o_proj")
        h = rms(x, w[p + L + "post_attention_layernorm.weight"], eps)
        h = F.silu(lin(h, L + "mlp.gate_proj")) * lin(h, L + "mlp.up_proj")
        x = x + lin(h, L + "mlp.down_proj")
    x = rms(x, w[p + "norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) \
        else w["lm_head.weight"]
    return x, head


def adamw(params, grad_fn, hp, steps):
    """Hand-written AdamW, the update torch 1.13 does (decoupled decay first)."""
    lr, (b1, b2), eps, wd = hp["lr"], hp["betas"], hp["eps"], hp["weight_decay"]
    m = {k: torch.zeros_like(v) for k, v in params.items()}
    s = {k: torch.zeros_like(v) for k, v in params.items()}
    losses = []
    for t in range(1, steps + 1):
        loss, g = grad_fn(params)
        losses.append(float(loss))
        for k in params:
            p = params[k] * (1 - lr * wd)
            m[k] = b1 * m[k] + (1 - b1) * g[k]
            s[k] = b2 * s[k] + (1 - b2) * g[k] * g[k]
            denom = s[k].sqrt() / math.sqrt(1 - b2 ** t) + eps
            params[k] = p - (lr / (1 - b1 ** t)) * m[k] / denom
    return torch.tensor(losses), params


class Checker:
    def __init__(self):
        self.fails, self.n = 0, 0

    def close(self, what, got, want, tol):
        self.n += 1
        d = float((got.detach() - want).abs().max())
        ok = d <= tol
        self.fails += not ok
        if not ok or os.environ.get("VERBOSE"):
            print(f"  {'ok  ' if ok else 'FAIL'} {what}: max abs diff {d:.3g} (tol {tol:g})")
        return d


def check(name, kind, ck):
    mdir = os.path.join(FIX, "models", name)
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    w, _ = load(os.path.join(mdir, "model.safetensors"))
    t, meta = load(os.path.join(FIX, "parity", f"{name}_{kind}.safetensors"))
    fam = cfg["model_type"]
    body = gpt2_hidden if fam == "gpt2" else llama_hidden
    ids, mask, pos, labels = t["input_ids"], t["attention_mask"], t["position_ids"], t["labels"]
    hp = json.loads(meta["optimizer_hparams"])
    pnames = sorted(k for k in t if k.endswith(".weight") or k.endswith(".bias"))
    pnames = [k for k in pnames if "lora_" in k or k.startswith("score.")]
    valid = mask.bool()

    def run(params, lora_on=True):
        lora = {k: v for k, v in params.items() if "lora_" in k} if lora_on else {}
        lora["__scale__"] = float(meta["lora_alpha"]) / float(meta["r"])
        h, head = body(w, cfg, lora, ids, mask, pos)
        if kind == "lm":
            logits = h @ head.t()
            V = logits.shape[-1]
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        else:
            last = mask.sum(-1) - 1
            logits = h[torch.arange(h.shape[0]), last] @ params["score.weight"].t() \
                + params["score.bias"]
            loss = F.cross_entropy(logits, labels)
        return logits, loss

    def grad_fn(params):
        ps = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        _, loss = run(ps)
        g = torch.autograd.grad(loss, [ps[k] for k in ps])
        return loss.detach(), dict(zip(ps, g))

    params = {k: t[k] for k in pnames}
    with torch.no_grad():
        lb, loss_b = run(params, lora_on=False)
        ll, loss = run(params)
    if kind == "lm":
        ck.close(f"{name} lm logits_base (valid positions)", lb[valid], t["logits_base"][valid], 2e-5)
        ck.close(f"{name} lm logits_base (all positions)", lb, t["logits_base"], 2e-5)
        ck.close(f"{name} lm logits_lora (all positions)", ll, t["logits_lora"], 2e-5)
        mk = [k for k in t if k.endswith(".merged")][0]
        base_w = w[mk[: -len(".merged")]]
        key = "base_model.model." + mk[: -len(".weight.merged")]
        delta = float(meta["scaling"]) * (t[key + ".lora_B.weight"] @ t[key + ".lora_A.weight"])
        ck.close(f"{name} {mk}", base_w + (delta.t() if fam == "gpt2" else delta), t[mk], 1e-6)
    else:
        assert torch.equal(t["last_index"], mask.sum(-1) - 1)
        ck.close(f"{name} cls logits_base", lb, t["logits_base"], 2e-5)
        ck.close(f"{name} cls logits", ll, t["logits"], 2e-5)
    ck.close(f"{name} {kind} loss_base", loss_b.reshape(1), t["loss_base"], 2e-5)
    ck.close(f"{name} {kind} loss", loss.reshape(1), t["loss"], 2e-5)
    _, g = grad_fn(params)
    for k in pnames:
        ck.close(f"{name} {kind} {k}.grad", g[k], t[k + ".grad"], 2e-5 * max(1.0, float(t[k + ".grad"].abs().max())))
    losses, after = adamw(dict(params), grad_fn, hp, int(hp["steps"]))
    ck.close(f"{name} {kind} adamw_losses", losses, t["adamw_losses"], 1e-4)
    for k in pnames:
        ck.close(f"{name} {kind} {k}.after5", after[k], t[k + ".after5"], 1e-4)
    # the PEFT adapter directory holds the same initial LoRA tensors
    adir = os.path.join(FIX, "parity", f"{name}_peft_adapter")
    if kind == "lm" and os.path.isdir(adir):
        a, _ = load(os.path.join(adir, "adapter_model.safetensors"))
        assert sorted(a) == sorted(k for k in pnames), f"{name}: adapter keys differ"
        for k in a:
            ck.close(f"{name} adapter {k}", a[k], t[k], 0.0)


def main():
    torch.set_num_threads(1)
    ck = Checker()
    for name, kind in [("tiny_gpt2", "lm"), ("tiny_gpt2", "cls"), ("tiny_llama", "lm"),
                       ("tiny_llama", "cls"), ("tiny_llama_tied", "lm")]:
        before = ck.fails
        check(name, kind, ck)
        print(f"{name}_{kind}: {'ok' if ck.fails == before else 'FAILED'}")
    print(f"{ck.n} comparisons, {ck.fails} failed")
    sys.exit(1 if ck.fails else 0)


if __name__ == "__main__":
    main()
