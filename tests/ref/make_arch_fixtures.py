#!/usr/bin/env python3
"""Write the parity fixtures for the newer decoder architectures (issue 14, part 2):
Qwen2, Qwen3, Llama 3 RoPE scaling, Mistral sliding window, Gemma 3 (text), Gemma 2, Phi-3.

Reference implementation: PyTorch + transformers + PEFT, the conventions of
make_model_fixtures.py (whose helpers this script imports: same LoRA config, weight init,
right-padded batch, loss, gradients, 5 AdamW steps, sorted-header safetensors writer);
see tests/ref/README.md. Run by hand, never by the C test suite. Needs transformers 5
(Gemma 3, Qwen 3), e.g. the peer venv:

    /work/main/.venv-peer/bin/python tests/ref/make_arch_fixtures.py            # tiny models
    /work/main/.venv-peer/bin/python tests/ref/make_arch_fixtures.py --check-determinism
    /work/main/.venv-peer/bin/python tests/ref/make_arch_fixtures.py --gguf     # + real GGUFs
    /work/main/.venv-peer/bin/python tests/ref/make_arch_fixtures.py --list

Writes (relative to the repository root) and touches nothing else:
    tests/fixtures/models/tiny_<arch>/{config.json,model.safetensors}
        config.json in the key layout of the Hub checkpoints (rope_theta / rope_scaling /
        rope_local_base_freq, torch_dtype), not transformers 5's rope_parameters; the
        script checks that transformers reads it back to the very same model
    tests/fixtures/parity/tiny_<arch>_lm.safetensors      causal LM + LoRA + grads + AdamW
    tests/fixtures/parity/tiny_{qwen2,gemma3}_cls.safetensors   last-token classifier + LoRA
  with --gguf (needs .cache/models, scripts/fetch-models):
    tests/fixtures/parity/{qwen25,gemma3}_gguf_logits.safetensors

Unlike make_model_fixtures.py it does NOT clear tests/fixtures/parity/.
Everything is seeded, float32, single-threaded and deterministic: two runs give
byte-identical files (--check-determinism runs twice and compares).
"""
import argparse
import copy
import json
import math
import os
import sys

import torch

import transformers
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM,
                          Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402
from make_model_fixtures import (SEED, build_and_save, cls_fixture, lm_fixture,  # noqa: E402
                                 maxdiff, write_st)

ROOT = mmf.ROOT
GENERATOR = "tests/ref/make_arch_fixtures.py"
T_ARCH = 10          # > 2 * sliding window, so row 1 (8 real tokens) also slides
WINDOW = 4
LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
COMMON = dict(vocab_size=100, hidden_size=24, intermediate_size=32, num_attention_heads=4,
              num_key_value_heads=2, attention_dropout=0.0, max_position_embeddings=64,
              pad_token_id=None, bos_token_id=1, eos_token_id=2)


def cfg(cls, **kw):
    return cls(**dict(COMMON, **kw))


ARCHS = {
    # name: class, config factory, LoRA targets, LoRA layers per block, merged example,
    # cls fixture?, keys overridden in config.json
    "tiny_qwen2": dict(
        cls=Qwen2ForCausalLM, targets=LLAMA_STYLE, cls_fixture=True,
        cfg=lambda: cfg(Qwen2Config, num_hidden_layers=2, rms_norm_eps=1e-6,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                        tie_word_embeddings=True, use_sliding_window=False,
                        max_window_layers=2, hidden_act="silu")),
    "tiny_qwen3": dict(
        cls=Qwen3ForCausalLM, targets=LLAMA_STYLE,
        cfg=lambda: cfg(Qwen3Config, num_hidden_layers=2, head_dim=8, rms_norm_eps=1e-6,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                        tie_word_embeddings=False, attention_bias=False,
                        use_sliding_window=False, max_window_layers=2, hidden_act="silu")),
    "tiny_llama3": dict(
        cls=LlamaForCausalLM, targets=LLAMA_STYLE,
        cfg=lambda: cfg(LlamaConfig, num_hidden_layers=2, rms_norm_eps=1e-5,
                        max_position_embeddings=8192,
                        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0,
                                         "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0,
                                         "original_max_position_embeddings": 1024},
                        tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                        hidden_act="silu")),
    "tiny_mistral": dict(
        cls=MistralForCausalLM, targets=LLAMA_STYLE,
        cfg=lambda: cfg(MistralConfig, num_hidden_layers=2, rms_norm_eps=1e-5,
                        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                        sliding_window=WINDOW, tie_word_embeddings=False,
                        hidden_act="silu")),
    "tiny_gemma3": dict(
        cls=Gemma3ForCausalLM, targets=LLAMA_STYLE, cls_fixture=True,
        # transformers 5 writes its default 6, which would make all 3 layers sliding;
        # 3 agrees with layer_types (layer l is full iff (l+1) % 3 == 0), as on the Hub
        hub_extra={"_sliding_window_pattern": 3},
        cfg=lambda: cfg(Gemma3TextConfig, num_hidden_layers=3, num_key_value_heads=1,
                        head_dim=8, query_pre_attn_scalar=12, rms_norm_eps=1e-6,
                        sliding_window=WINDOW,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                        rope_parameters={
                            "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                        final_logit_softcapping=None, attn_logit_softcapping=None,
                        hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                        attention_bias=False, pad_token_id=0, bos_token_id=2, eos_token_id=1,
                        use_bidirectional_attention=False)),
    "tiny_gemma2": dict(
        cls=Gemma2ForCausalLM, targets=LLAMA_STYLE,
        cfg=lambda: cfg(Gemma2Config, num_hidden_layers=2, head_dim=8,
                        query_pre_attn_scalar=12, rms_norm_eps=1e-6, sliding_window=WINDOW,
                        layer_types=["sliding_attention", "full_attention"],
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                        # caps near the tiny model's own scales (scores ~3, logits ~2 std), far
                        # below Gemma 2's real 50 / 30, so that both bend values and gradients
                        final_logit_softcapping=4.0, attn_logit_softcapping=5.0,
                        hidden_activation="gelu_pytorch_tanh",
                        tie_word_embeddings=True, attention_bias=False, pad_token_id=0,
                        bos_token_id=2, eos_token_id=1)),
    "tiny_phi3": dict(
        cls=Phi3ForCausalLM, targets=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
        merged_key="model.layers.0.self_attn.qkv_proj.weight",
        cfg=lambda: cfg(Phi3Config, num_hidden_layers=2, rms_norm_eps=1e-5,
                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                        original_max_position_embeddings=64, sliding_window=None,
                        tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0,
                        hidden_act="silu")),
}


# ----------------------------------------------------------------------------- config.json

def hub_layout(out, extra=None):
    """Rewrite transformers 5's config.json into the layout of the Hub checkpoints lorac
    targets (written by transformers 4.x): rope_parameters -> rope_theta + rope_scaling
    (+ Gemma 3's rope_local_base_freq), dtype -> torch_dtype. Keys sorted as HF writes."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        c = json.load(f)
    rp = c.pop("rope_parameters")
    if "full_attention" in rp:            # Gemma 3: one RoPE per layer type
        full, local = dict(rp["full_attention"]), rp["sliding_attention"]
        c["rope_theta"] = full.pop("rope_theta")
        c["rope_local_base_freq"] = local["rope_theta"]
        assert local.get("rope_type", "default") == "default"
        rp = full
    else:
        rp = dict(rp)
        c["rope_theta"] = rp.pop("rope_theta")
    if rp.get("partial_rotary_factor", 1.0) == 1.0:
        rp.pop("partial_rotary_factor", None)
    c["rope_scaling"] = None if rp == {"rope_type": "default"} else rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    c.update(extra or {})
    with open(path, "w") as f:
        json.dump(dict(sorted(c.items())), f, indent=2)
        f.write("\n")


# ----------------------------------------------------------------------------- checks

def batch_logits(model, seed):
    """Base logits on the LM fixture's own batch (same seed as lm_fixture uses)."""
    ids, mask, _, pos = mmf.make_batch(model.config.vocab_size, mmf.seed_all(seed + 1), T_ARCH)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=pos,
                     use_cache=False).logits, mask


def variant(model, edit):
    """The same weights under an edited config (eager attention)."""
    c = copy.deepcopy(model.config)
    edit(c)
    c._attn_implementation = "eager"
    m = type(model)(c).eval()
    missing, unexpected = m.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all("lm_head" in k for k in missing), (missing, unexpected)
    if c.tie_word_embeddings:
        m.tie_weights()
    return m


def real_diff(a, b, mask):
    """Max |a-b| over the logits of real (mask == 1) positions."""
    return float((a - b).abs()[mask.bool()].max())


def arch_checks(name, model, seed):
    """Prove the feature each fixture is about changes the output (so a C implementation
    that ignores it fails), and that config.json reads back to the configured model."""
    spec = ARCHS[name]
    out = {}
    lg, mask = batch_logits(model, seed)
    # config.json (Hub layout) -> the same model as transformers 5's own config
    c0 = spec["cfg"]()
    c0._attn_implementation = "eager"
    ref = spec["cls"](c0).eval()
    ref.load_state_dict(model.state_dict(), strict=False)
    if c0.tie_word_embeddings:
        ref.tie_weights()
    d = maxdiff(batch_logits(ref, seed)[0], lg)
    assert d == 0.0, f"{name}: Hub-layout config.json changes the logits by {d}"
    out["hub_config_roundtrip_max_abs_diff"] = d
    sd = model.state_dict()
    inner = model.model
    if name == "tiny_llama3":
        hd = model.config.head_dim
        rp = model.config.rope_parameters
        plain = 1.0 / (rp["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        inv = inner.rotary_emb.inv_freq
        ratio = (plain / inv).tolist()
        out["inv_freq_unscaled"] = plain.tolist()
        out["inv_freq_llama3"] = inv.tolist()
        out["inv_freq_ratio"] = ratio
        # one kept (high frequency), one smoothed, the rest divided by factor 8
        assert abs(ratio[0] - 1) < 1e-6 and 1.5 < ratio[1] < 7.5, ratio
        assert all(abs(r - 8) < 1e-4 for r in ratio[2:]), ratio
        m2 = variant(model, lambda c: c.__setattr__(
            "rope_parameters", {"rope_type": "default", "rope_theta": rp["rope_theta"]}))
        out["max_abs_diff_vs_no_rope_scaling"] = real_diff(batch_logits(m2, seed)[0], lg, mask)
    if name in ("tiny_mistral", "tiny_gemma3", "tiny_gemma2"):
        def nowin(c):
            c.sliding_window = None if name == "tiny_mistral" else 4096
        m2 = variant(model, nowin)
        out["max_abs_diff_vs_no_sliding_window"] = real_diff(batch_logits(m2, seed)[0], lg, mask)
    if name == "tiny_gemma3":
        es = float(inner.embed_tokens.embed_scale)
        assert es == math.sqrt(model.config.hidden_size) or \
            es == float(torch.tensor(math.sqrt(model.config.hidden_size))), es
        out["embed_scale"] = es
        x = torch.randn(3, model.config.hidden_size, generator=torch.Generator().manual_seed(7))
        n = inner.norm
        want = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + n.eps) * (1.0 + n.weight)
        assert maxdiff(n(x), want) < 1e-6, "Gemma3RMSNorm is not x/rms * (1 + w)"
        out["rmsnorm"] = "x * rsqrt(mean(x^2) + eps) * (1 + w) (checked)"

        def one_theta(c):
            c.rope_parameters = {k: dict(v, rope_theta=1000000.0)
                                 for k, v in c.rope_parameters.items()}
        m2 = variant(model, one_theta)
        out["max_abs_diff_vs_local_rope_theta_1e6"] = real_diff(batch_logits(m2, seed)[0], lg, mask)
        m2 = variant(model, lambda c: c.__setattr__("query_pre_attn_scalar", c.head_dim))
        out["max_abs_diff_vs_query_pre_attn_scalar_head_dim"] = real_diff(
            batch_logits(m2, seed)[0], lg, mask)
    if name == "tiny_gemma2":
        assert float(lg.abs().max()) < model.config.final_logit_softcapping
        for key in ("final_logit_softcapping", "attn_logit_softcapping"):
            m2 = variant(model, lambda c: c.__setattr__(key, None))
            out[f"max_abs_diff_vs_no_{key}"] = real_diff(batch_logits(m2, seed)[0], lg, mask)
    if name == "tiny_qwen2":
        for p in ("q", "k", "v"):
            assert f"model.layers.0.self_attn.{p}_proj.bias" in sd
        assert "model.layers.0.self_attn.o_proj.bias" not in sd
    if name == "tiny_qwen3":
        assert tuple(sd["model.layers.0.self_attn.q_norm.weight"].shape) == (8,)
        assert tuple(sd["model.layers.0.self_attn.q_proj.weight"].shape) == (32, 24)
    if name == "tiny_phi3":
        assert tuple(sd["model.layers.0.self_attn.qkv_proj.weight"].shape) == (48, 24)
        assert tuple(sd["model.layers.0.mlp.gate_up_proj.weight"].shape) == (64, 24)
    for k, v in out.items():
        if k.startswith("max_abs_diff_vs"):
            assert v > 1e-3, f"{name}: {k} = {v}: the feature does not matter on this batch"
    return out


# ----------------------------------------------------------------------------- tiny models

def arch_meta(name, model, checks):
    c = model.config
    win = getattr(c, "sliding_window", None)
    types = getattr(c, "layer_types", None)
    att = ("eager (attn_implementation='eager'); query i attends key j iff j <= i and "
           "attention_mask[b, j] == 1")
    if win and (types is None or "sliding_attention" in types):
        att += (f"; sliding window {win}: additionally j > i - {win} (i.e. the last {win} "
                "positions including i)")
        if types:
            att += f", only in layers with layer_types[l] == 'sliding_attention' ({types})"
    with open(os.path.join(ROOT, "tests", "fixtures", "models", name, "config.json")) as f:
        cj = f.read()
    return {
        "generator": GENERATOR,
        "architecture": type(model).__name__,
        "attention": att,
        "adamw_update": f"torch {torch.__version__} AdamW (foreach=False), t=1..5: "
                        "p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; "
                        "p -= (lr/(1-b1^t)) * m / (sqrt(v)/sqrt(1-b2^t) + eps)",
        "config_json": cj,
        "arch_checks": json.dumps(checks, sort_keys=True),
    }


def generate_tiny():
    parity = os.path.join(ROOT, "tests", "fixtures", "parity")
    os.makedirs(parity, exist_ok=True)
    reg = {n: ("arch", s["cls"], s["cfg"]) for n, s in ARCHS.items()}
    written = []
    for i, (name, spec) in enumerate(ARCHS.items()):
        seed = SEED + 1000 + 100 * i
        _, model, mdir = build_and_save(
            name, seed, models=reg,
            post_save=lambda out: hub_layout(out, spec.get("hub_extra")))
        written += [os.path.join(mdir, f) for f in sorted(os.listdir(mdir))]
        checks = arch_checks(name, model, seed)
        per_layer = len(spec["targets"])
        t, meta = lm_fixture(name, "arch", model, seed, targets=spec["targets"],
                             seq_len=T_ARCH, per_layer=per_layer,
                             merged_key=spec.get("merged_key"), adapter=False)
        meta.update(arch_meta(name, model, checks))
        path = os.path.join(parity, f"{name}_lm.safetensors")
        write_st(path, t, meta)
        written.append(path)
        print(f"{name}: loss_base {float(t['loss_base']):.5f} loss {float(t['loss']):.5f} "
              f"adamw {[round(float(x), 5) for x in t['adamw_losses']]} checks {checks}")
        if spec.get("cls_fixture"):
            base = spec["cls"].from_pretrained(mdir, attn_implementation="eager",
                                               dtype=torch.float32).eval()
            t, meta = cls_fixture(name, "arch", base, seed, targets=spec["targets"],
                                  seq_len=T_ARCH)
            meta.update(arch_meta(name, base, checks))
            meta["model"] = f"tests/fixtures/models/{name} (body only; its LM head is unused)"
            path = os.path.join(parity, f"{name}_cls.safetensors")
            write_st(path, t, meta)
            written.append(path)
            print(f"{name} cls: logits {t['logits'].tolist()} loss {float(t['loss']):.5f}")
    return written


# ----------------------------------------------------------------------------- real GGUFs

GGUFS = {
    # output: (cache dir, file, text)
    "qwen25_gguf_logits": ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    "gemma3_gguf_logits": ("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf"),
}
GGUF_TEXT = "The quick brown fox jumps over the lazy dog near the river."
TOPK = 20


def generate_gguf():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    written = []
    for out, (sub, fn) in GGUFS.items():
        d = os.path.join(ROOT, ".cache", "models", sub)
        if not os.path.exists(os.path.join(d, fn)):
            print(f"{out}: {d}/{fn} not found, skipped (scripts/fetch-models)")
            continue
        tok = AutoTokenizer.from_pretrained(d, gguf_file=fn)
        ids = tok(GGUF_TEXT)["input_ids"]
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=fn, dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        x = torch.tensor([ids], dtype=torch.int64)
        with torch.no_grad():
            lg = model(input_ids=x, use_cache=False).logits[0]            # [T, V]
        top = torch.topk(lg, TOPK, dim=-1)
        t = {"input_ids": x[0], "logits_last": lg[-1].contiguous(),
             "topk_ids": top.indices.to(torch.int64), "topk_values": top.values.contiguous()}
        meta = {
            "generator": GENERATOR,
            "versions": json.dumps(mmf.versions()),
            "model": f".cache/models/{sub}/{fn}",
            "loader": "AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=float32, "
                      "attn_implementation='eager'): transformers dequantizes every tensor to "
                      "fp32 (and undoes llama.cpp's q/k permutation where it applies)",
            "architecture": type(model).__name__,
            "text": GGUF_TEXT,
            "tokenizer": f"AutoTokenizer.from_pretrained(dir, gguf_file=...)(text): "
                         f"{json.dumps(tok.convert_ids_to_tokens(ids))}",
            "bos": f"{tok.bos_token!r} id {tok.bos_token_id}; "
                   f"{'first id is BOS' if ids and ids[0] == tok.bos_token_id else 'no BOS added'}",
            "input_ids": "I64 [T], one sequence, no padding, positions 0..T-1",
            "logits_last": "F32 [V], logits at the last position",
            "topk": f"topk_ids I64 [T,{TOPK}] / topk_values F32 [T,{TOPK}]: torch.topk of "
                    "the logits at every position (descending)",
        }
        path = os.path.join(ROOT, "tests", "fixtures", "parity", f"{out}.safetensors")
        write_st(path, t, meta)
        written.append(path)
        print(f"{out}: {type(model).__name__}, ids {ids}, top-5 last "
              f"{top.indices[-1, :5].tolist()} {[round(v, 3) for v in top.values[-1, :5].tolist()]}")
        del model
    return written


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="print the listing and exit")
    ap.add_argument("--gguf", action="store_true", help="also the real-GGUF logits (slow)")
    ap.add_argument("--gguf-only", action="store_true", help="only the real-GGUF logits")
    ap.add_argument("--check-determinism", action="store_true",
                    help="generate twice and compare every written file byte for byte")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_default_dtype(torch.float32)
    transformers.logging.set_verbosity_error()
    if args.list:
        return listing()

    def run():
        w = [] if args.gguf_only else generate_tiny()
        if args.gguf or args.gguf_only:
            w += generate_gguf()
        return w
    written = run()
    if args.check_determinism:
        first = {p: open(p, "rb").read() for p in written}
        again = run()
        assert sorted(again) == sorted(written)
        bad = [p for p in written if open(p, "rb").read() != first[p]]
        assert not bad, f"not deterministic: {bad}"
        print(f"determinism: {len(written)} files byte-identical over two runs")
    listing(written)


def listing(paths=None):
    from safetensors import safe_open
    if paths is None:
        paths = []
        for name in ARCHS:
            mdir = os.path.join(ROOT, "tests", "fixtures", "models", name)
            if os.path.isdir(mdir):
                paths += [os.path.join(mdir, f) for f in sorted(os.listdir(mdir))]
            for kind in ("lm", "cls"):
                paths.append(os.path.join(ROOT, "tests", "fixtures", "parity", f"{name}_{kind}.safetensors"))
        paths += [os.path.join(ROOT, "tests", "fixtures", "parity", f"{o}.safetensors") for o in GGUFS]
    total = 0
    for p in paths:
        if not os.path.exists(p):
            continue
        total += os.path.getsize(p)
        print(f"{os.path.relpath(p, ROOT)}  ({os.path.getsize(p)} bytes)")
        if p.endswith(".safetensors") and "/parity/" in p:
            with safe_open(p, "pt") as f:
                n = len(list(f.keys()))
            print(f"    {n} tensors")
    print(f"total bytes: {total}")


if __name__ == "__main__":
    main()
