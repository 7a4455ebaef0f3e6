#!/bin/bash
# End-to-end checks of `lorac compare` and the training methods it drives:
# three methods on the tiny GPT-2 fixture (a small WordPiece vocab.txt keeps
# the ids below its vocab of 101) and a small ham/spam file, one epoch each:
# one table row, one compare.jsonl line and one compare.csv row per method,
# distinct trainable counts; the usage errors; and `lorac info` counting
# last-layers:2 as the last Linear plus the head.
source "$(dirname "$0")/lib/common.bash"

tiny_sms_fixture
common=(--model "$tiny" --tokenizer "$T/vocab.txt" --data "$T/sms.tsv" --max-len 16 --epochs 1 --batch 8 --seed 5)

expect 0 "" -- "$BIN" compare --help
if grep -q "last-layers:N" "$T/out" && grep -q "';'" "$T/out"; then ok; else bad "compare --help does not document the --methods syntax"; fi
"$BIN" --help | grep -q "^  compare " && ok || bad "lorac --help does not list compare"
expect 2 "'bogus'" -- "$BIN" compare "${common[@]}" --out "$T/bad" --methods lora,bogus
expect 2 "last-layers:0" -- "$BIN" compare "${common[@]}" --out "$T/bad" --methods 'lora;last-layers:0'
expect 2 "last-layers" -- "$BIN" compare "${common[@]}" --out "$T/bad" --methods last-layers
expect 2 "frob" -- "$BIN" compare "${common[@]}" --out "$T/bad" --methods 'lora:frob=1'
expect 2 "out is required" -- "$BIN" compare "${common[@]}" --methods lora
if [ -e "$T/bad" ]; then bad "a compare stopped by a usage error left its --out behind"; else ok; fi
# train checks --method once the data is loaded (after the labels / examples lines): exit 2, one error
for m in last-layers:0 last-layers:x last-layers; do
    "$BIN" train "${common[@]}" --method "$m" >/dev/null 2>"$T/err"
    if [ $? -eq 2 ] && grep -q "^lorac train: --method '$m': expected last-layers:N" "$T/err"; then ok; else bad "train --method $m"; cat "$T/err" >&2; fi
done
"$BIN" train "${common[@]}" --method last-layers:99 >/dev/null 2>"$T/err"
if [ $? -eq 2 ] && grep -q "last-layers:99: the model has 9 Linear modules" "$T/err"; then ok; else bad "train --method last-layers:99"; cat "$T/err" >&2; fi

# three methods, one with a LoRA override
"$BIN" compare "${common[@]}" --out "$T/cmp" --methods 'lora:r=4:alpha=8;last-layers:2;full' >"$T/table.txt" 2>"$T/cmp.err"
if [ $? -eq 0 ]; then ok; else bad "compare exited non-zero"; cat "$T/cmp.err" >&2; fi
rows=$(grep -c -E '^(lora:r=4:alpha=8|last-layers:2|full) ' "$T/table.txt")
if [ "$rows" = 3 ] && [ "$(wc -l <"$T/table.txt")" = 4 ]; then ok; else bad "table: want a header and 3 rows"; cat "$T/table.txt" >&2; fi
python3 - "$T/cmp/compare.jsonl" <<'PY' && ok || bad "compare.jsonl"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["method"] for r in rows] == ["lora:r=4:alpha=8", "last-layers:2", "full"], rows
t = {r["method"]: r["trainable_params"] for r in rows}
assert all(v > 0 for v in t.values()) and len(set(t.values())) == 3, t
assert t["full"] > t["lora:r=4:alpha=8"], t
for r in rows:
    assert r["status"] == "ok" and 0 <= r["test_acc"] <= 1 and r["peak_rss_mb"] > 0 and r["wall_seconds"] > 0, r
PY
if [ "$(wc -l <"$T/cmp/compare.csv")" = 4 ] && head -1 "$T/cmp/compare.csv" | grep -q '^method,status,trainable_params,'; then
    ok
else
    bad "compare.csv: want a header and 3 rows"; cat "$T/cmp/compare.csv" >&2
fi
# LoRA on a classifier trains the new head in full, as PEFT's SEQ_CLS does, and records it
if grep -q '"modules_to_save":.*"score"' "$T/cmp/lora-r4-alpha8/adapter_config.json" 2>/dev/null; then ok; else bad "LoRA run's adapter lacks modules_to_save score"; fi
# the same adapter directory again needs --overwrite
expect 2 "overwrite" -- "$BIN" compare "${common[@]}" --out "$T/cmp" --methods 'lora:r=4:alpha=8'
# --json: the rows as JSON lines on stdout
"$BIN" compare "${common[@]}" --out "$T/cmp2" --methods 'head,last-layers:1' --json >"$T/rows.jsonl" 2>/dev/null
if [ "$(python3 -c 'import json,sys; print(len([json.loads(l) for l in open(sys.argv[1])]))' "$T/rows.jsonl" 2>/dev/null)" = 2 ]; then
    ok
else
    bad "compare --json"; cat "$T/rows.jsonl" >&2
fi
# a method failing at run time is reported, the others still run, exit 1
"$BIN" compare "${common[@]}" --out "$T/cmp3" --methods "head:val=$T/none.tsv;head" >"$T/t3.txt" 2>"$T/e3.txt"
if [ $? -eq 1 ] && grep -q "FAILED" "$T/t3.txt" && grep -q '^head,ok' "$T/cmp3/compare.csv"; then ok; else bad "a failing method"; cat "$T/e3.txt" >&2; fi

# info: last-layers:2 = the last Linear before the head (lm_head excluded) + the head: GPT-2's Linears
# have biases, a new score head (transformers' init, the default) has none; appendix-e's nn.Linear head has one
"$BIN" modules --model "$tiny" --num-classes 2 >"$T/mods.txt"
want=$(grep -v '^lm_head \|^short names\|(embedding' "$T/mods.txt" | tail -2 | awk '{n += $3 * $5 + ($1 == "score" ? 0 : $5)} END {print n}')
want_b=$(grep -v '^lm_head \|^short names\|(embedding' "$T/mods.txt" | tail -2 | awk '{n += $3 * $5 + $5} END {print n}')
got_b=$("$BIN" info --config "$tiny/config.json" --num-classes 2 --method last-layers:2 --head-init torch | sed -n 's/^trainable params: \([0-9,]*\) .*/\1/p' | tr -d ,)
if [ -n "$want_b" ] && [ "$got_b" = "$want_b" ]; then ok; else bad "info --head-init torch last-layers:2 counts '$got_b', modules say '$want_b'"; fi
expect 2 "head-init" -- "$BIN" info --config "$tiny/config.json" --num-classes 2 --head-init xavier
got=$("$BIN" info --config "$tiny/config.json" --num-classes 2 --method last-layers:2 | sed -n 's/^trainable params: \([0-9,]*\) .*/\1/p' | tr -d ,)
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok; else bad "info last-layers:2 counts '$got', modules say '$want'"; fi
# info keeps PEFT's task_type=None count: LoRA matrices only, no head
got=$("$BIN" info --config "$tiny/config.json" --num-classes 2 | sed -n 's/^trainable params: \([0-9,]*\) .*/\1/p' | tr -d ,)
if [ "$got" = 8192 ]; then ok; else bad "info --num-classes 2 counts '$got', want 2 layers x 8 x (128+64+160+160) = 8192"; fi
summary e2e_compare
