#!/usr/bin/env python3
"""transformers' fast tokenizer on the text bench_tokenize.c measures, the
same way: the whole file as one text, then one call per line (no special
tokens added), best of REPEATS, one thread (RAYON_NUM_THREADS=1 is set
before tokenizers loads; encode() on one text is single-threaded anyway).

    HF_HUB_OFFLINE=1 /work/main/.venv-peer/bin/python bench/bench_tokenize_hf.py \\
        .cache/models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        ../shared/data/sms_spam/SMSSpamCollection

Also checks that lorac's ids equal these (pass LORAC_BIN=build/lorac to
compare the whole-text ids via `lorac tokenize --text -`)."""
import os
import subprocess
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main():
    tok_path, text_path = sys.argv[1], sys.argv[2]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    from transformers import AutoTokenizer

    t0 = time.perf_counter()
    if tok_path.endswith(".gguf"):
        tok = AutoTokenizer.from_pretrained(os.path.dirname(tok_path), gguf_file=os.path.basename(tok_path))
    else:
        tok = AutoTokenizer.from_pretrained(tok_path)
    load = time.perf_counter() - t0
    fast = tok.backend_tokenizer
    raw = open(text_path, "rb").read()
    text = raw.decode("utf-8", "replace")
    print(f"transformers fast tokenizer {type(tok).__name__}, loaded (converted) in {load:.2f} s; {len(raw)} bytes")
    lines = text.split("\n")
    for label, parts in (("whole", [text]), ("per line", lines)):
        best = 1e30
        for _ in range(reps):
            t0 = time.perf_counter()
            n = sum(len(fast.encode(p, add_special_tokens=False).ids) for p in parts)
            best = min(best, time.perf_counter() - t0)
        print(f"HF    {label:10s} {n:8d} tokens in {best:.4f} s: {n / best:10.0f} tokens/s, "
              f"{len(raw) / best / 1e6:6.2f} MB/s (best of {reps})")
    lorac = os.environ.get("LORAC_BIN")
    if lorac:
        out = subprocess.run([lorac, "tokenize", "--tokenizer", tok_path, "--text", "-"], input=raw,
                             capture_output=True, check=True).stdout.decode()
        ours = [int(x) for x in out.split()]
        hf = fast.encode(text, add_special_tokens=False).ids
        print("lorac ids == HF ids:", ours == hf, f"({len(ours)} vs {len(hf)} tokens)")


if __name__ == "__main__":
    main()
