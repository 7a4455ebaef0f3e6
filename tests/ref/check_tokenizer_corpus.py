#!/usr/bin/env python3
"""lorac's token ids against Hugging Face's on a real corpus, for the tokenizers
of the GGUF files scripts/fetch-models fetches: read from the GGUF itself and
from the tokenizer.json transformers writes for it.

Run by hand:

    HF_HUB_OFFLINE=1 .venv-peer/bin/python tests/ref/check_tokenizer_corpus.py [--reviews 2000]

Takes the first N reviews of ../shared/data/imdb/imdb_train.tsv.gz (text
column), joined by newlines into one text, and tokenizes it without special
tokens: transformers' fast tokenizer converted from the GGUF (the reference),
`lorac tokenize --tokenizer FILE.gguf --text -` and `lorac tokenize
--tokenizer DIR/tokenizer.json --text -` (DIR: the reference's
save_pretrained). Prints the count and a sha256 of the ids of each, and the
first difference if any. Exit status 1 if any differ.
"""
import argparse
import csv
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from transformers import AutoTokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = [
    ".cache/models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ".cache/models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf",
]


def reviews(n):
    path = os.path.join(ROOT, "..", "shared", "data", "imdb", "imdb_train.tsv.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows)
        col = header.index("text") if "text" in header else 0
        out = []
        for r in rows:
            out.append(r[col])
            if len(out) == n:
                break
    return out


def lorac_ids(lorac, tok_path, text):
    r = subprocess.run([lorac, "tokenize", "--tokenizer", tok_path, "--text", "-"], input=text.encode(),
                       capture_output=True)
    if r.returncode:
        sys.exit(f"lorac tokenize {tok_path}: {r.stderr.decode().strip()}")
    return [int(x) for x in r.stdout.split()]


def digest(ids):
    return hashlib.sha256(" ".join(map(str, ids)).encode()).hexdigest()[:16]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=2000)
    ap.add_argument("--lorac", default=os.path.join(ROOT, "build", "lorac"))
    args = ap.parse_args()
    text = "\n".join(reviews(args.reviews))
    print(f"{args.reviews} IMDb reviews, {len(text.encode())} bytes, joined by newlines")
    bad = 0
    for rel in MODELS:
        path = os.path.join(ROOT, rel)
        ref_tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
        ref = ref_tok.encode(text, add_special_tokens=False)
        with tempfile.TemporaryDirectory() as d:
            ref_tok.save_pretrained(d)
            runs = {"gguf": lorac_ids(args.lorac, path, text),
                    "tokenizer.json": lorac_ids(args.lorac, os.path.join(d, "tokenizer.json"), text)}
        print(f"{os.path.basename(path)}: transformers {len(ref)} ids, sha256 {digest(ref)}")
        for name, ids in runs.items():
            same = ids == ref
            bad += not same
            line = f"  lorac from {name:15s} {len(ids)} ids, sha256 {digest(ids)}  equal: {same}"
            if not same:
                k = next((i for i, (a, b) in enumerate(zip(ids, ref)) if a != b), min(len(ids), len(ref)))
                line += f"; first difference at id {k}: lorac {ids[k:k + 5]} HF {ref[k:k + 5]}"
            print(line, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
