#!/usr/bin/env python3
"""Write reference token ids for tests/unit/test_tokenizer_wordpiece.c.

Run by hand (not by ctest), from the repository root:

    HF_HUB_OFFLINE=1 .venv-tok/bin/python tests/ref/make_wordpiece_fixtures.py

(written with tokenizers 0.22.2, transformers 4.57.6; see
make_tokenizer_fixtures.py for the environment.)

Tokenizer: bert-base-uncased's WordPiece vocabulary as shipped with
all-MiniLM-L6-v2 ($LORAC_DATA/bert_uncased_tokenizer: vocab.txt,
tokenizer.json, tokenizer_config.json).

References:
  ids         BertTokenizerFast(vocab.txt), add_special_tokens False / True.
              The same ids must come from tokenizers.Tokenizer.from_file(
              tokenizer.json) with truncation and padding switched off (the
              file asks for both, lorac ignores them); the script stops if
              they differ.
  ids_cased   BertTokenizerFast(vocab.txt, do_lower_case=False).
  decode      BertTokenizerFast.decode (tokenizers' WordPiece decoder, then
              transformers' clean_up_tokenization_spaces=True), of the ids
              with special tokens, skip_special_tokens False / True.
  imdb        the first 2,000 reviews of $LORAC_DATA/imdb/imdb_test.tsv.gz
              (column "text"): 64-bit FNV-1a over every id (4 bytes, little
              endian) of every review encoded with special tokens, and the
              same hash over the review bytes (to tell a reading difference
              from a tokenizing one).

Strings: those of strings.json (hex, so invalid UTF-8 survives; it reaches
HF through bytes.decode("utf-8", "replace")) plus the BERT-specific ones
below. Output: tests/fixtures/tokenizer/wordpiece_bert.json.
"""

import gzip
import json
import os
import struct

from tokenizers import Tokenizer
from transformers import BertTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("LORAC_DATA", os.path.join(ROOT, "..", "shared", "data"))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
BERT = os.path.join(DATA, "bert_uncased_tokenizer")

EXTRA = [
    ("bert_accents", "Café Naïve RÉSUMÉ façade Ångström"),
    ("bert_cjk", "我爱北京天安门 and 東京 mixed中文text"),
    ("bert_cjk_ext", "a\U0002b81fb a\U0002b820b 〇"),
    ("bert_punct_runs", "Hello!!!...? (yes) -- [ok] {x} ~`^|"),
    ("bert_dont", "don't can't I'm you're it's"),
    ("bert_long_word", "a" * 100 + " " + "b" * 101 + " " + "é" * 101 + " ok"),
    ("bert_control", "tab\there\x0bvt\x0cff\x85nel\u200bzw\ue000pua\x00nul\ufffdrep end"),
    ("bert_special_literal", "[CLS] text [SEP] [MASK] [PAD] [UNK] [cls] x[SEP]y"),
    ("bert_numbers", "3.14159 1,000,000 42nd 2024-01-01 $5.99"),
    ("bert_emoji", "I love it 😀👍 🇫🇷!"),
    ("bert_unused", "[unused0] ##ing ## #"),
    ("bert_greek_turkish", "ΣΊΣΥΦΟΣ İstanbul ß Straße"),
    ("bert_spaces_unicode", "a\u00a0b\u3000c\u2028d\u2009e"),
    ("bert_symbols", "a+b=c < > @home #tag 50% ©®™ €£¥ ½ → ∑"),
    ("bert_unicode_punct", "«quote» ¿qué? ¡sí! “smart” ‘single’ — – … ·"),
]


def fnv1a(h, data):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


FNV0 = 0xCBF29CE484222325


def main():
    with open(os.path.join(FIX, "strings.json")) as f:
        strings = [(it["name"], bytes.fromhex(it["hex"])) for it in json.load(f)["strings"]]
    strings += [(n, s.encode("utf-8")) for n, s in EXTRA]

    fast = BertTokenizerFast(os.path.join(BERT, "vocab.txt"))
    cased = BertTokenizerFast(os.path.join(BERT, "vocab.txt"), do_lower_case=False)
    raw = Tokenizer.from_file(os.path.join(BERT, "tokenizer.json"))
    raw.no_truncation()
    raw.no_padding()

    cases = []
    for name, b in strings:
        text = b.decode("utf-8", "replace")
        ids = fast(text, add_special_tokens=False)["input_ids"]
        ids_sp = fast(text, add_special_tokens=True)["input_ids"]
        assert raw.encode(text, add_special_tokens=False).ids == ids, name
        assert raw.encode(text, add_special_tokens=True).ids == ids_sp, name
        dec = fast.decode(ids_sp, skip_special_tokens=False)
        dec_skip = fast.decode(ids_sp, skip_special_tokens=True)
        tk_dec = raw.decode(ids_sp, skip_special_tokens=True)
        if tk_dec != dec_skip:
            print(f"  {name}: tokenizers decode {tk_dec!r} vs transformers {dec_skip!r}")
        cases.append({
            "name": name,
            "ids": ids,
            "ids_special": ids_sp,
            "ids_cased": cased(text, add_special_tokens=False)["input_ids"],
            "decode": dec.encode("utf-8").hex(),
            "decode_skip": dec_skip.encode("utf-8").hex(),
        })

    # IMDb: the first 2,000 rows' "text" column (TSV, no quoting).
    with gzip.open(os.path.join(DATA, "imdb", "imdb_test.tsv.gz"), "rt", encoding="utf-8", newline="\n") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = header.index("text")
        texts = [f.readline().rstrip("\n").split("\t")[col] for _ in range(2000)]
    h_ids, h_text, n_ids = FNV0, FNV0, 0
    for enc, t in zip(fast(texts, add_special_tokens=True)["input_ids"], texts):
        h_text = fnv1a(h_text, t.encode("utf-8"))
        n_ids += len(enc)
        h_ids = fnv1a(h_ids, b"".join(struct.pack("<i", i) for i in enc))

    out = {
        "comment": "Written by tests/ref/make_wordpiece_fixtures.py (BertTokenizerFast on bert_uncased_tokenizer).",
        "extra_strings": [{"name": n, "hex": s.encode("utf-8").hex()} for n, s in EXTRA],
        "cases": cases,
        "imdb": {"n": len(texts), "n_ids": n_ids, "fnv1a_ids": f"{h_ids:016x}", "fnv1a_text": f"{h_text:016x}"},
    }
    path = os.path.join(FIX, "wordpiece_bert.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print("wrote", path, len(cases), "cases,", n_ids, "imdb ids")


if __name__ == "__main__":
    main()
