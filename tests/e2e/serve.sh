#!/bin/bash
# End-to-end checks of lorac serve on stories260K (a real Llama tokenizer and
# model small enough for seconds) with three adapters trained here for a few
# steps (an instruction one, a plain-text one, a classifier):
#  - every greedy answer (completion, chat, stream, several at once over
#    different adapters, an adapter loaded at run time) equals
#    `lorac generate` with that adapter alone;
#  - hostile requests (malformed JSON, huge body, unknown adapter, negative /
#    huge max_tokens, wrong types, invalid UTF-8, empty messages, a huge body
#    sent chunked, a body cut short, a client leaving mid-stream or while its
#    answer is generated) get a 4xx JSON error in OpenAI's shape, or their
#    slot back, and the server keeps serving;
#  - /metrics is valid Prometheus text with the process's resident memory;
#  - SIGTERM while a request runs: the request completes, the server exits 0.
source "$(dirname "$0")/lib/common.bash"
S=$DATA/stories260K/hf
CHAT=$SRC/tests/fixtures/data/chat.jsonl
command -v curl >/dev/null || { echo "serve: curl not found (apt-get install curl)"; exit 1; }

# ---- three small adapters
for i in $(seq 1 12); do echo "The little dog ran to the park and played with a red ball all day."; done >"$T/dog.txt"
tiny_sms_fixture
TR="--max-steps 2 --batch 2 --max-len 128 --eval-splits val --threads 2"
"$BIN" train --model "$S" --task instruct --data "$CHAT" --val "$CHAT" --lr 5e-3 $TR --out "$T/inst" >"$T/t1" 2>&1 &&
"$BIN" train --model "$S" --task lm --data "$T/dog.txt" --val "$T/dog.txt" --lr 3e-2 $TR --out "$T/dog" >"$T/t2" 2>&1 &&
"$BIN" train --model "$S" --data "$T/sms.tsv" --labels ham,spam $TR --out "$T/cls" >"$T/t3" 2>&1
if [ $? -ne 0 ]; then bad "training the adapters"; tail -n 3 "$T"/t? >&2; summary serve; exit; fi

# ---- start on a free port
"$BIN" serve --model "$S" --adapter inst="$T/inst" --adapter dog="$T/dog" --adapter cls="$T/cls" --port 0 --threads 2 \
    --max-body 4096 --max-tokens 64 --max-seqs 4 >"$T/srv.out" 2>"$T/srv.err" &
PID=$!
for _ in $(seq 1 300); do grep -q "listening on" "$T/srv.err" && break; sleep 0.1; done
PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T/srv.err")
if [ -z "$PORT" ]; then bad "the server did not start"; cat "$T/srv.err" >&2; kill "$PID"; summary serve; exit; fi
U=http://127.0.0.1:$PORT

# post PATH BODY: the status in $T/code, the body in $T/body
post() { curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$2" "$U$1" >"$T/code"; }
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {"d": d}), end="")' "$T/body" "$1"; }
# ref OUT [generate args]: lorac generate's text (its trailing newline dropped)
ref() { local out=$1; shift; "$BIN" generate --model "$S" --threads 2 "$@" 2>/dev/null | head -c -1 >"$out"; }
same() { # WHAT FILE TEXT
    if [ "$(cat "$2")" == "$3" ] && [ -s "$2" ]; then ok; else bad "$1: served '$3' but lorac generate '$(cat "$2")'"; fi
}

P="Once upon a time"
ref "$T/r_base" --prompt "$P" --max-new 24
ref "$T/r_dog" --adapter "$T/dog" --prompt "$P" --max-new 24
ref "$T/r_inst" --adapter "$T/inst" --prompt "$P" --max-new 24
ref "$T/r_chat" --adapter "$T/inst" --chat --prompt "Tell me a story." --max-new 24

comp() { echo "{\"model\": \"$1\", \"prompt\": \"$P\", \"max_tokens\": 24, \"temperature\": 0${2:-}}"; }
for m in base dog inst; do
    post /v1/completions "$(comp $m)"
    if [ "$(cat "$T/code")" = 200 ]; then same "completion $m" "$T/r_$m" "$(jget 'd["choices"][0]["text"]')"; else
        bad "completion $m: HTTP $(cat "$T/code") $(cat "$T/body")"; fi
done
post /v1/chat/completions '{"model": "inst", "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 24, "temperature": 0}'
same "chat inst" "$T/r_chat" "$(jget 'd["choices"][0]["message"]["content"]')"
[ "$(jget 'd["object"]')" = chat.completion ] && ok || bad "chat object: $(cat "$T/body")"

# streaming: the deltas joined equal lorac generate; the stream ends with [DONE]
curl -sN -H 'Content-Type: application/json' -d "$(comp dog ', "stream": true')" "$U/v1/completions" >"$T/sse"
txt=$(python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "data: [DONE]", lines[-1]
chunks = [json.loads(l[6:]) for l in lines[:-1]]
assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
print("".join(c["choices"][0]["text"] for c in chunks), end="")' "$T/sse")
same "stream dog" "$T/r_dog" "$txt"
curl -sN -H 'Content-Type: application/json' "$U/v1/chat/completions" \
    -d '{"model": "inst", "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 24, "temperature": 0, "stream": true}' >"$T/sse2"
txt=$(python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert lines[-1] == "data: [DONE]"
chunks = [json.loads(l[6:]) for l in lines[:-1]]
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[0]["object"] == "chat.completion.chunk"
print("".join(c["choices"][0]["delta"].get("content", "") for c in chunks), end="")' "$T/sse2")
same "chat stream inst" "$T/r_chat" "$txt"

# several at once over different adapters: batched together, each equal to its reference
pids=()
for k in 1 2 3; do for m in base dog inst; do
    curl -s -H 'Content-Type: application/json' -d "$(comp $m)" "$U/v1/completions" >"$T/par_${m}_$k" &
    pids+=($!)
done; done
wait "${pids[@]}"
for k in 1 2 3; do for m in base dog inst; do
    cp "$T/par_${m}_$k" "$T/body"
    same "concurrent $m #$k" "$T/r_$m" "$(jget 'd["choices"][0]["text"]' 2>/dev/null)"
done; done

# classification
post /v1/classify '{"model": "cls", "input": ["win a prize now", "see you at five"]}'
if [ "$(cat "$T/code")" = 200 ] && [ "$(jget 'len(d["data"])')" = 2 ] &&
    [ "$(jget 'sorted(d["data"][0]["probabilities"])')" = "['ham', 'spam']" ] &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert all(abs(sum(x["probabilities"].values())-1) < 1e-6 for x in d["data"])' "$T/body"
then ok; else bad "classify: $(cat "$T/code") $(cat "$T/body")"; fi

# hostile requests: status, OpenAI's error shape, the field named
bad_req() { # NAME PATH BODY STATUS [PARAM]
    post "$2" "$3"
    local code; code=$(cat "$T/code")
    if [ "$code" = "$4" ] && [ -n "$(jget 'd["error"]["message"]')" ] && [ -n "$(jget 'd["error"]["type"]')" ] &&
        { [ -z "${5:-}" ] || [ "$(jget 'd["error"]["param"]')" = "$5" ]; }; then ok; else
        bad "$1: HTTP $code (want $4) $(cat "$T/body")"; fi
}
bad_req malformed /v1/completions '{"model": "base", "prompt": ' 400
bad_req not_object /v1/completions '[1, 2]' 400
bad_req unknown_adapter /v1/completions '{"model": "nope", "prompt": "x"}' 404 model
bad_req negative_max /v1/completions '{"model": "base", "prompt": "x", "max_tokens": -5}' 400 max_tokens
bad_req huge_max /v1/completions '{"model": "base", "prompt": "x", "max_tokens": 1000000}' 400 max_tokens
bad_req wrong_type /v1/completions '{"model": "base", "prompt": 12}' 400 prompt
bad_req wrong_temp /v1/completions '{"model": "base", "prompt": "x", "temperature": "hot"}' 400 temperature
bad_req empty_messages /v1/chat/completions '{"model": "base", "messages": []}' 400 messages
bad_req bad_role /v1/chat/completions '{"model": "base", "messages": [{"role": "bot", "content": "x"}]}' 400 messages
bad_req no_head /v1/classify '{"model": "dog", "input": "x"}' 400 model
bad_req n_two /v1/completions '{"model": "base", "prompt": "x", "n": 2}' 400 n
bad_req long_prompt /v1/completions "{\"model\": \"base\", \"prompt\": \"$(printf 'a b %.0s' $(seq 1 600))\", \"max_tokens\": 64}" 400
bad_req bad_adapter_dir /v1/adapters '{"name": "x", "path": "/nonexistent"}' 400 path
bad_req wrong_method /v1/models '' 405
bad_req no_endpoint /v2/nothing '{}' 404
printf '{"model": "base", "prompt": "\xff\xfe"}' >"$T/badutf8"
post /v1/completions "@$T/badutf8"
[ "$(cat "$T/code")" = 400 ] && [ "$(jget 'd["error"]["code"]')" = invalid_utf8 ] && ok || bad "invalid UTF-8: $(cat "$T/body")"
head -c 8000 /dev/zero | tr '\0' 'a' | sed 's/^/{"model": "base", "prompt": "/; s/$/"}/' >"$T/huge"
post /v1/completions "@$T/huge"
[ "$(cat "$T/code")" = 413 ] && [ "$(jget 'd["error"]["code"]')" = body_too_large ] && ok || bad "huge body: $(cat "$T/code")"

# a client leaving mid-stream frees its slot; the server goes on. stories260K decodes thousands of
# tokens a second, so the whole answer (64 tokens, the server's --max-tokens) may be generated and written
# into the socket's buffers before the client's close reaches the server: then no disconnect is counted
# (by the metric's definition the answer was complete), and the check is that the request ended
# (answered, or 499) and the state is clean. Slower builds (ASan) see the disconnect.
metric() { curl -s "$U/metrics" | sed -n "s/^$1 //p"; }
before=$(metric lorac_client_disconnects_total)
done_reqs() { curl -s "$U/metrics" | awk '/^lorac_requests_total\{endpoint="\/v1\/completions"/ { n += $2 } END { print n + 0 }'; }
answered=$(done_reqs)
curl -sN -H 'Content-Type: application/json' "$U/v1/completions" \
    -d '{"model": "dog", "prompt": "x", "max_tokens": 64, "temperature": 1, "stream": true}' | head -c 200 >/dev/null
sleep 1
after=$(metric lorac_client_disconnects_total)
answered2=$(done_reqs)
echo "client leaving mid-stream: disconnects $before -> $after, /v1/completions requests ended $answered -> $answered2"
if { [ "${after:-0}" -gt "${before:-0}" ] || [ "${answered2:-0}" -gt "${answered:-0}" ]; } &&
    [ "$(metric lorac_running_sequences)" = 0 ]; then ok; else
    bad "client leaving mid-stream: disconnects $before -> $after, answered $answered -> $answered2, running $(metric lorac_running_sequences)"; fi

# a client leaving while its (non-streaming) answer is generated: counted, its slot freed
# (on a fast machine the answer may come first: then only the clean state is checked)
before=$(metric lorac_client_disconnects_total)
curl -s --max-time 0.3 -H 'Content-Type: application/json' "$U/v1/completions" \
    -d '{"model": "inst", "prompt": "x", "max_tokens": 64, "temperature": 1}' >/dev/null
left=$?
sleep 1
after=$(metric lorac_client_disconnects_total)
if { [ "$left" != 28 ] || [ "${after:-0}" -gt "${before:-0}" ]; } && [ "$(metric lorac_running_sequences)" = 0 ] &&
    [ "$(metric lorac_queued_requests)" = 0 ]; then ok; else
    bad "non-streaming client leaving (curl exit $left): disconnects $before -> $after, running $(metric lorac_running_sequences)"; fi

# a huge body sent chunked (no Content-Length to refuse up front): 413, and one far past the
# limit, whose connection is closed; a body cut short by a client that closes the connection
head -c 20000 /dev/zero | tr '\0' 'a' | sed 's/^/{"model": "base", "prompt": "/; s/$/"}/' >"$T/huge2"
code=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
    --data-binary "@$T/huge2" "$U/v1/completions")
[ "$code" = 413 ] && [ "$(jget 'd["error"]["code"]')" = body_too_large ] && ok || bad "huge chunked body: $code $(cat "$T/body")"
head -c 200000 /dev/zero | tr '\0' 'a' >"$T/huge3"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Transfer-Encoding: chunked' --data-binary "@$T/huge3" "$U/v1/completions")
[ "$code" = 000 ] || [ "$code" = 413 ] && ok || bad "a body 50x the limit: HTTP $code (want the connection closed or 413)"
python3 - "$PORT" <<'PY' && ok || bad "a body cut short"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
          b'{"model": "base", "prompt": "cut')
s.close()
PY

# /metrics is Prometheus text: every family has one HELP and one TYPE line before its samples,
# every sample a float value; the process's resident memory and malloc's figures are there
# (A failed check is printed whole with curl's exit status and retried twice; three failures fail the test.)
metrics_ok() {
curl -s "$U/metrics" >"$T/metrics"
local rc=$?
python3 - "$T/metrics" <<'PY' && return 0
import re, sys
help_, type_, seen = {}, {}, {}
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
for i, line in enumerate(open(sys.argv[1]).read().split("\n")[:-1], 1):
    if line.startswith("# HELP "):
        n = line.split()[2]
        assert n not in help_ and n not in seen, f"line {i}: second HELP for {n}, or HELP after its samples"
        help_[n] = 1
    elif line.startswith("# TYPE "):
        _, _, n, t = line.split(" ", 3)
        assert t in ("counter", "gauge", "summary", "histogram", "untyped"), f"line {i}: type {t}"
        assert n not in type_ and n not in seen, f"line {i}: second TYPE for {n}, or TYPE after its samples"
        type_[n] = t
    else:
        m = re.fullmatch(rf"({name_re})(\{{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\"(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\}})? (\S+)", line)
        assert m, f"line {i}: not a sample: {line!r}"
        float(m.group(4))
        fam = m.group(1)
        if fam not in type_ and re.sub(r"_(sum|count)$", "", fam) in type_:
            fam = re.sub(r"_(sum|count)$", "", fam)
        assert fam in type_ and fam in help_, f"line {i}: {m.group(1)} has no HELP / TYPE"
        seen[fam] = float(m.group(4)) if fam == m.group(1) else seen.get(fam, 0)
assert seen.get("process_resident_memory_bytes", 0) > 1e6, "no resident memory figure"
assert "lorac_malloc_in_use_bytes" in seen, "no malloc figure"  # (0 under ASan, whose allocator glibc's mallinfo2 does not see)
PY
echo "serve: /metrics check failed (curl exit $rc); the text:" >&2
cat "$T/metrics" >&2
return 1
}
if metrics_ok || metrics_ok || metrics_ok; then ok; else bad "/metrics is not valid Prometheus text (3 tries)"; fi

# adapters loaded and unloaded at run time
post /v1/adapters "{\"name\": \"dog2\", \"path\": \"$T/dog\"}"
[ "$(cat "$T/code")" = 200 ] && ok || bad "load: $(cat "$T/body")"
post /v1/adapters "{\"name\": \"dog2\", \"path\": \"$T/dog\"}"
[ "$(cat "$T/code")" = 409 ] && ok || bad "load twice: $(cat "$T/code")"
curl -s "$U/v1/models" >"$T/body"
[ "$(jget '[m["id"] for m in d["data"]]')" = "['base', 'inst', 'dog', 'cls', 'dog2']" ] && ok || bad "models: $(cat "$T/body")"
post /v1/completions "$(comp dog2)"
same "completion dog2 (loaded at run time)" "$T/r_dog" "$(jget 'd["choices"][0]["text"]')"
code=$(curl -s -o "$T/body" -w '%{http_code}' -X DELETE "$U/v1/adapters/dog2")
[ "$code" = 200 ] && ok || bad "unload: $code $(cat "$T/body")"
bad_req unloaded /v1/completions "$(comp dog2)" 404 model
code=$(curl -s -o "$T/body" -w '%{http_code}' -X DELETE "$U/v1/adapters/dog2")
[ "$code" = 404 ] && ok || bad "unload twice: $code"

# still serving, and the answers unchanged
[ "$(curl -s "$U/health")" = '{"status":"ok"}' ] && ok || bad "health"
post /v1/completions "$(comp inst)"
same "completion inst after the hostile requests" "$T/r_inst" "$(jget 'd["choices"][0]["text"]')"

# SIGTERM with a request in flight: it completes, then exit 0
curl -s -H 'Content-Type: application/json' -d '{"model": "base", "prompt": "x", "max_tokens": 64, "temperature": 1}' \
    -o "$T/last" -w '%{http_code}' "$U/v1/completions" >"$T/last_code" &
CURL=$!
sleep 0.3
kill -TERM "$PID"
wait "$CURL"
wait "$PID"
rc=$?
if [ "$rc" = 0 ]; then ok; else bad "exit $rc after SIGTERM"; tail -n 2 "$T/srv.err" >&2; fi
[ "$(cat "$T/last_code")" = 200 ] && ok || bad "the request in flight at SIGTERM: HTTP $(cat "$T/last_code")"

# ---- a .gguf base served over its own blocks (--base auto, as lorac generate
# decodes it): the greedy answer equals lorac generate's; --base is checked
"$BIN" serve --model "$S" --base nf4 --port 0 >/dev/null 2>"$T/b.err"
[ $? -eq 2 ] && grep -q -- "--base 'nf4'" "$T/b.err" && ok || bad "serve --base nf4: $(cat "$T/b.err")"
"$BIN" serve --model "$S" --base gguf --port 0 >/dev/null 2>"$T/b.err"
[ $? -ne 0 ] && grep -q "not one" "$T/b.err" && ok || bad "serve --base gguf on a directory: $(cat "$T/b.err")"
M=${LORAC_CACHE:-$SRC/.cache}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$M" ]; then
    "$BIN" serve --model "$M" --port 0 --threads 2 --max-seqs 2 >/dev/null 2>"$T/g.err" &
    PID=$!
    for _ in $(seq 1 1200); do grep -q "listening on" "$T/g.err" && break; sleep 0.1; done # (ASan, loaded CI: slow)
    grep -q "listening on" "$T/g.err" || bad "the SmolLM2 server did not start in 120 s: $(tail -n 2 "$T/g.err")"
    U=http://127.0.0.1:$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$T/g.err")
    "$BIN" generate --model "$M" --threads 2 --prompt "$P" --max-new 12 2>/dev/null | head -c -1 >"$T/r_smol"
    post /v1/completions "{\"model\": \"base\", \"prompt\": \"$P\", \"max_tokens\": 12, \"temperature\": 0}"
    same "SmolLM2 GGUF over its blocks" "$T/r_smol" "$(jget 'd["choices"][0]["text"]')"
    kill -TERM "$PID"
    wait "$PID" && ok || bad "SmolLM2 server exit"
else
    echo "serve: $M not fetched; the .gguf part is skipped"
fi
summary serve
