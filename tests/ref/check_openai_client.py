#!/usr/bin/env python3
"""check_openai_client.py - the official `openai` Python client (PyPI) against
`lorac serve`: completion, chat completion and streaming (both), the adapter
chosen per request by "model", and every greedy answer compared with
`lorac generate` run alone with that adapter (byte for byte).

    .venv-peer/bin/pip install openai       # once (or any venv with openai)
    .venv-peer/bin/python tests/ref/check_openai_client.py --bin build/lorac \
        --model .cache/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf \
        --adapter alpaca=runs/alpaca --adapter imdb=runs/imdb --adapter sms=runs/smslm

Prints one line per check and a summary; exits 1 on any mismatch. The server
is started on a free port and stopped with SIGTERM (its exit status checked).
"""
import argparse
import re
import signal
import subprocess
import sys
import time

import openai

PROMPT = "The best way to learn a new language is"
CHAT = "Give me one tip for writing clear emails."


def generate(a, adapter_dir, chat):
    cmd = [a.bin, "generate", "--model", a.model, "--max-new", str(a.max_tokens), "--threads", str(a.threads)]
    if adapter_dir:
        cmd += ["--adapter", adapter_dir]
    cmd += ["--chat", "--prompt", CHAT] if chat else ["--prompt", PROMPT]
    out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode("utf-8")
    return out[:-1] if out.endswith("\n") else out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/lorac")
    ap.add_argument("--model", required=True)
    ap.add_argument("--adapter", action="append", default=[], help="NAME=DIR (repeat)")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    adapters = dict(x.split("=", 1) for x in a.adapter)

    cmd = [a.bin, "serve", "--model", a.model, "--port", "0", "--threads", str(a.threads)]
    for n, d in adapters.items():
        cmd += ["--adapter", f"{n}={d}"]
    srv = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    t0 = time.time()
    while port is None and time.time() - t0 < 300:
        line = srv.stderr.readline()
        if not line:
            break
        m = re.search(r"listening on http://[\d.]+:(\d+)", line)
        port = int(m.group(1)) if m else None
    if port is None:
        print("the server did not start", file=sys.stderr)
        srv.kill()
        return 1
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=600)
    print(f"openai {openai.__version__} -> lorac serve on port {port}", flush=True)
    listed = [m.id for m in client.models.list().data]
    print(f"models.list(): {listed}")
    fails = 0 if listed == ["base"] + list(adapters) else 1

    for name in ["base"] + list(adapters):
        ref_c = generate(a, adapters.get(name), chat=False)
        ref_chat = generate(a, adapters.get(name), chat=True)
        got = {}
        r = client.completions.create(model=name, prompt=PROMPT, max_tokens=a.max_tokens, temperature=0)
        got["completion"] = (r.choices[0].text, ref_c)
        r = client.chat.completions.create(model=name, messages=[{"role": "user", "content": CHAT}],
                                           max_tokens=a.max_tokens, temperature=0)
        got["chat"] = (r.choices[0].message.content, ref_chat)
        s = client.completions.create(model=name, prompt=PROMPT, max_tokens=a.max_tokens, temperature=0, stream=True)
        got["completion stream"] = ("".join(c.choices[0].text for c in s), ref_c)
        s = client.chat.completions.create(model=name, messages=[{"role": "user", "content": CHAT}],
                                           max_tokens=a.max_tokens, temperature=0, stream=True)
        got["chat stream"] = ("".join(c.choices[0].delta.content or "" for c in s), ref_chat)
        for what, (served, ref) in got.items():
            same = served == ref
            fails += not same
            print(f"{'OK  ' if same else 'FAIL'} {name:8s} {what:18s} {served!r}" + ("" if same else f"  != generate {ref!r}"),
                  flush=True)
        if name == "base":
            base_c, base_chat = ref_c, ref_chat
        else:
            print(f"     {name:8s} greedy completion {'differs from' if ref_c != base_c else 'equals'} base's, chat "
                  f"{'differs from' if ref_chat != base_chat else 'equals'} base's")
    try:
        client.completions.create(model="no-such-adapter", prompt="x", max_tokens=2)
        print("FAIL an unknown model was accepted")
        fails += 1
    except openai.NotFoundError as e:
        print(f"OK   unknown model -> {type(e).__name__} {e.status_code}: {e.body['message'][:60]}...")
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(timeout=120)
    print(f"SIGTERM -> lorac serve exited {rc}")
    fails += rc != 0
    print(f"check_openai_client: {'all equal' if fails == 0 else f'{fails} failed'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
