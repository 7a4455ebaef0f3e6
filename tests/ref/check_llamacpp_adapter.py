#!/usr/bin/env python3
"""llama.cpp loads a GGUF LoRA written by `lorac export`; its greedy text against `lorac generate`.

Run by hand in the llama-cpp-python venv (bench/peers/setup-llamacpp), from anywhere:

    .venv-llamacpp/bin/python tests/ref/check_llamacpp_adapter.py [--steps 20] [--max-new 24]

What it does (work files under out/llamacpp, git-ignored):
 1. trains a short LoRA with `lorac train` on SmolLM2-135M-Instruct (the Q4_1 GGUF
    scripts/fetch-models puts in .cache/models): --task instruct on LLMs-from-scratch's
    instruction data (../shared/data), r 8, alpha 16, lr 1e-3, --steps optimizer
    steps (skipped when --adapter DIR names a run to reuse);
 2. `lorac export --format gguf` writes it as a llama.cpp LoRA (f32 tensors);
 3. `lorac merge` folds it into an fp32 Hugging Face checkpoint (the tokenizer files
    for it are saved from the GGUF by transformers in --peer-python, when there is one);
 4. for each prompt (plain text and explicit ChatML turns; no chat template is applied
    by either side) checks that lorac and llama.cpp tokenize it to the same ids (BOS as
    the GGUF says, special-token strings parsed), then greedy-generates --max-new tokens:
    llama.cpp through llama_cpp.Llama(model_path=, lora_path=) with and without the
    adapter, and `lorac generate --ids` with the base, with --adapter and with the
    merged model. Both stop at the GGUF's EOS.

Printed per prompt: equal or the first differing position, the texts, and where
lorac and llama.cpp diverge llama.cpp's own top-1 margin there (its logit of its
token minus its logit of lorac's token: a small margin is a near tie that the two
numerics may break either way). A teacher-forced pass also feeds lorac's tokens to
llama.cpp (one batch) and counts the positions where llama.cpp's argmax is lorac's
token, with the largest margin among those where it is not.

The numerics differ legitimately: both sides multiply the Q4_1 weights by activations
quantized to 8 bits and add the LoRA in f32 beside them, but with their own roundings
and orders of summation. So exact text equality is not required: the check fails
(exit 1) when a prompt tokenizes differently, when the adapter leaves llama.cpp's text
unchanged on every prompt (not applied), when the merged model's text differs from the
unmerged adapter's in lorac (both on lorac's fp32-activation road, LORAC_QDOT=f32: the
merged checkpoint is fp32), or when llama.cpp, fed lorac's tokens, prefers another
token by more than --tol logits anywhere (a disagreement that is not a near tie).
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import llama_cpp

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = os.path.join(ROOT, ".cache", "models", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
DATA = os.path.join(ROOT, "..", "shared", "data", "instruction_data", "instruction-data.json")
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(user):
    """One user turn in SmolLM2's ChatML with its default system message, then the assistant's header."""
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


PROMPTS = [
    "The capital of France is",
    "Once upon a time, a little robot",
    chatml("Edit the following sentence for grammar.\n\nShe go to school every days."),
    chatml("Convert 7 kilometers to meters."),
    chatml("What is the opposite of 'ancient'?"),
    chatml("Rewrite the sentence in passive voice.\n\nThe chef cooked the meal."),
]


def run(cmd, what, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"check_llamacpp_adapter: {what} failed (exit {r.returncode}): {' '.join(cmd)}\n{r.stderr.strip()[-2000:]}")
    return r.stdout


def lorac_ids(lorac, model, text, tokenizer=None):
    cmd = [lorac, "tokenize", "--model", model, "--text", text, "--add-special"]
    if tokenizer:
        cmd[2:4] = ["--tokenizer", tokenizer]
    return [int(x) for x in run(cmd, "lorac tokenize").split()]


def lorac_generate(args, model, prompt, extra, env=None):
    out = run([args.lorac, "generate", "--model", model, "--prompt", prompt, "--max-new", str(args.max_new),
               "--temperature", "0", "--ids", "--threads", str(args.threads)] + extra, "lorac generate", env)
    return [int(x) for x in out.split()]


# The merged checkpoint is an fp32 Hugging Face directory, so lorac runs it with fp32 activations, while the
# GGUF base with the adapter unmerged takes the int8-activation road by default (as llama.cpp does): two
# roundings that can flip a near-tie. Merged against unmerged is compared on one road, the fp32 one, where
# the only difference left is (W + s B A) x against W x + s B (A x).
F32_ROAD = dict(os.environ, LORAC_QDOT="f32")


class Peer:
    """llama.cpp through llama-cpp-python: greedy decoding token by token, and a teacher-forced batch."""

    def __init__(self, model, lora, threads):
        self.llm = llama_cpp.Llama(model_path=model, lora_path=lora, n_ctx=1024, n_batch=512, n_threads=threads,
                                   n_threads_batch=threads, n_gpu_layers=0, logits_all=True, seed=0, verbose=False)
        self.eos = self.llm.token_eos()

    def greedy(self, ids, n):
        """Greedy tokens after ids (stops at EOS, which is not returned) and each step's logits."""
        self.llm.reset()
        self.llm.eval(ids)
        out, rows = [], []
        for _ in range(n):
            row = np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float64)
            t = int(np.argmax(row))
            rows.append(row)
            if t == self.eos:
                break
            out.append(t)
            self.llm.eval([t])
        return out, rows

    def forced(self, ids, toks):
        """Logits after each prefix ids + toks[:i], i = 0 .. len(toks) - 1, in one batch."""
        self.llm.reset()
        self.llm.eval(ids + toks)
        return np.array(self.llm.scores[len(ids) - 1:len(ids) + len(toks)], dtype=np.float64)

    def text(self, toks):
        return self.llm.detokenize(toks).decode("utf-8", "replace")


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def margin(row, best, other):
    return float(row[best] - row[other])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=MODEL, help="base GGUF (default: SmolLM2-135M-Instruct Q4_1)")
    ap.add_argument("--lorac", default=os.path.join(ROOT, "build", "lorac"))
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "llamacpp"), help="work directory")
    ap.add_argument("--adapter", help="reuse this lorac adapter directory instead of training one")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps of the training run (default 20)")
    ap.add_argument("--max-new", type=int, default=24, help="tokens to generate per prompt (default 24)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1.0,
                    help="largest llama.cpp margin (logits) allowed where it disagrees with lorac's token (default 1)")
    ap.add_argument("--peer-python", default=os.path.join(ROOT, ".venv-peer", "bin", "python"),
                    help="a Python with transformers, to save the GGUF's tokenizer for the merged checkpoint")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    lorac, M = args.lorac, args.model
    print("llama-cpp-python", llama_cpp.__version__, "|", llama_cpp.llama_print_system_info().decode().strip())
    print("base:", M)

    adapter = args.adapter
    if not adapter:
        adapter = os.path.join(args.work, "run")
        print(f"training: lorac train, {args.steps} steps ...", flush=True)
        run([lorac, "train", "--model", M, "--task", "instruct", "--data", DATA, "--max-examples", str(4 * args.steps),
             "--max-eval", "8", "--eval-splits", "val", "--r", "8", "--alpha", "16", "--lr", "1e-3", "--batch", "4",
             "--max-steps", str(args.steps), "--max-len", "128", "--threads", str(args.threads), "--out", adapter,
             "--overwrite"], "lorac train")
    gguf = os.path.join(args.work, "adapter.gguf")
    print(run([lorac, "export", "--model", M, "--adapter", adapter, "--format", "gguf", "--out", gguf, "--overwrite"],
              "lorac export").strip())

    merged, tokdir = os.path.join(args.work, "merged"), os.path.join(args.work, "tokenizer")
    if not os.path.exists(os.path.join(tokdir, "tokenizer.json")) and os.path.exists(args.peer_python):
        run([args.peer_python, "-c", "import sys; from transformers import AutoTokenizer; "
             "AutoTokenizer.from_pretrained(sys.argv[1], gguf_file=sys.argv[2]).save_pretrained(sys.argv[3])",
             os.path.dirname(M), os.path.basename(M), tokdir], "saving the GGUF's tokenizer with transformers")
    if os.path.exists(os.path.join(tokdir, "tokenizer.json")):
        run([lorac, "merge", "--model", M, "--adapter", adapter, "--out", merged, "--tokenizer", tokdir,
             "--overwrite", "--threads", str(args.threads)], "lorac merge")
    else:
        merged = None
        print(f"(no merged check: {args.peer_python} is missing; it saves the tokenizer files a merged checkpoint needs)")

    base_peer, lora_peer = Peer(M, None, args.threads), Peer(M, gguf, args.threads)
    bad, applied = [], 0
    for k, p in enumerate(PROMPTS):
        ids = lorac_ids(lorac, M, p)
        pids = lora_peer.llm.tokenize(p.encode(), add_bos=True, special=True)
        print(f"\n=== prompt {k}: {p!r}\n  prompt ids ({len(ids)}): "
              f"{'equal' if ids == pids else f'DIFFER lorac {ids} llama.cpp {pids}'}")
        if ids != pids:
            bad.append(f"prompt {k}: tokenization")
            continue
        if merged and lorac_ids(lorac, M, p, tokdir) != ids:
            bad.append(f"prompt {k}: the merged checkpoint's tokenizer gives other ids")
        res = {}
        for name, peer in (("base", base_peer), ("adapter", lora_peer)):
            ll, rows = peer.greedy(ids, args.max_new)
            lo = lorac_generate(args, M, p, ["--adapter", adapter] if name == "adapter" else [])
            d = first_diff(ll, lo)
            res[name] = ll
            if d is None:
                print(f"  {name:8s}: equal ({len(ll)} tokens) {peer.text(ll)!r}")
            else:
                where = f"first difference at token {d}"
                if d < len(rows):  # a token that is past the end of either list is that side's EOS
                    r, lt = rows[d], lo[d] if d < len(lo) else peer.eos
                    top2 = np.argsort(r)[-2:][::-1]
                    where += (f"; llama.cpp there: its token {ll[d] if d < len(ll) else peer.eos} by "
                              f"{margin(r, top2[0], lt):.3f} over lorac's {lt} (top-1 margin "
                              f"{margin(r, top2[0], top2[1]):.3f}; EOS is {peer.eos})")
                print(f"  {name:8s}: {where}\n    llama.cpp: {peer.text(ll)!r}\n    lorac:     {peer.text(lo)!r}")
            # teacher-forced: llama.cpp's argmax after each of lorac's prefixes
            L = peer.forced(ids, lo)
            agree = sum(int(np.argmax(L[i]) == lo[i]) for i in range(len(lo)))
            # lorac's choices, with its EOS after the last token when it stopped there
            chosen = lo + ([peer.eos] if len(lo) < args.max_new else [])
            worst = max(margin(L[i], int(np.argmax(L[i])), chosen[i]) for i in range(len(chosen))) if chosen else 0.0
            ends = "" if len(lo) == args.max_new else f"; after lorac's last token llama.cpp's argmax " \
                   f"{'is' if int(np.argmax(L[len(lo)])) == peer.eos else 'is NOT'} EOS"
            print(f"    teacher-forced on lorac's tokens: llama.cpp agrees at {agree}/{len(lo)}, largest margin "
                  f"against lorac's choice (its EOS included) {worst:.3f}{ends}")
            if worst > args.tol:
                bad.append(f"prompt {k} {name}: llama.cpp prefers another token by {worst:.3f} > --tol {args.tol}")
        if res["adapter"] != res["base"]:
            applied += 1
        print(f"  llama.cpp adapter vs base: {'differ' if res['adapter'] != res['base'] else 'SAME'}")
        if merged:
            un = lorac_generate(args, M, p, ["--adapter", adapter], F32_ROAD)
            me = lorac_generate(args, merged, p, [], F32_ROAD)
            d = first_diff(un, me)
            print(f"  lorac merged vs unmerged: {'equal' if d is None else f'DIFFER at token {d}'}")
            if d is not None:
                bad.append(f"prompt {k}: lorac merged differs from unmerged at token {d}")
    print(f"\nllama.cpp's text changed by the adapter on {applied}/{len(PROMPTS)} prompts")
    if applied == 0:
        bad.append("the adapter changed no llama.cpp text: not applied?")
    for b in bad:
        print("FAIL:", b)
    print("result:", "ok" if not bad else f"{len(bad)} failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
