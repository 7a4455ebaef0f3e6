#!/bin/bash
# End-to-end checks of the lorac command line: help, exit codes, one clear
# error line for bad flags / files / data rows, and a small real run on
# stories260K (train -> adapter on disk -> eval with the adapter gives the
# same test accuracy -> generate).
source "$(dirname "$0")/lib/common.bash"

expect 0 "" -- "$BIN" --help
expect 0 "" -- "$BIN" train --help
expect 2 "unknown command" -- "$BIN" frobnicate
expect 2 "unknown option '--bogus'" -- "$BIN" train --bogus
expect 2 "needs a value" -- "$BIN" train --lr
expect 2 "expected a number" -- "$BIN" train --model x --data y --lr abc
expect 2 "model is required" -- "$BIN" info
# --model-dropout config|0: listed by train and compare, anything else a usage error naming it
if "$BIN" train --help | grep -q -- "--model-dropout config|0" && "$BIN" compare --help | grep -q -- "--model-dropout"; then ok
else bad "--model-dropout missing from train / compare --help"; fi
expect 2 "--model-dropout '0.5': expected config" -- "$BIN" train --model x --data y --model-dropout 0.5
expect 2 "expected lora or qlora" -- "$BIN" eval --model x --data y --method full
expect 2 "is for --method qlora" -- "$BIN" generate --model x --prompt a --qembed off
expect 2 "expected on or off" -- "$BIN" eval --model "$SRC/tests/fixtures/models/tiny_gpt2" --data y --method qlora --qembed maybe
expect 1 "no config.json" -- "$BIN" info --model "$T"
expect 1 "no config.json" -- "$BIN" train --model "$T/none" --data "$T/none.tsv" --out "$T/never"
if [ -e "$T/never" ]; then bad "a failed train left its --out directory behind"; else ok; fi

# malformed checkpoints: each gets one line naming the file
tiny=$SRC/tests/fixtures/models/tiny_gpt2
mk() { rm -rf "$T/m"; mkdir -p "$T/m"; cp "$tiny/config.json" "$T/m/"; }
mk; head -c 100 "$tiny/model.safetensors" >"$T/m/model.safetensors"
expect 1 "model.safetensors" -- "$BIN" info --model "$T/m"
mk; printf '\xff\xff\xff\x00\x00\x00\x00\x00{}' >"$T/m/model.safetensors"
expect 1 "model.safetensors" -- "$BIN" info --model "$T/m"
mk; python3 - "$tiny/model.safetensors" "$T/m/model.safetensors" <<'PY' 2>/dev/null || cp "$tiny/model.safetensors" "$T/m/"
import sys, struct, json
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
k = sorted(x for x in h if x != '__metadata__')[0]; h[k]['dtype'] = 'F17'
j = json.dumps(h).encode(); j += b' ' * (-len(j) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(j)) + j + b[8 + n:])
PY
expect 1 "F17" -- "$BIN" info --model "$T/m"
mk; cp "$tiny/model.safetensors" "$T/m/"; sed -i 's/"n_embd": 32/"n_embd": 64/' "$T/m/config.json"
expect 1 "config expects" -- "$BIN" info --model "$T/m"
printf 'GGUF\x03\x00\x00\x00' >"$T/bad.gguf"
expect 1 "bad.gguf" -- "$BIN" info --model "$T/bad.gguf"
printf 'NOPE\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00' >"$T/magic.gguf"
expect 1 "magic.gguf" -- "$BIN" info --model "$T/magic.gguf"

# a real small run on stories260K: SMS spam subset, LoRA on every Linear
S=$DATA/stories260K/hf
if [ -d "$S" ]; then
    printf 'ham\tok\nspam\n' >"$T/badrow.tsv"
    expect 1 "badrow.tsv:2" -- "$BIN" train --model "$S" --data "$T/badrow.tsv"
    common="--model $S --data $DATA/sms_spam/SMSSpamCollection --balance --max-len 48 --seed 7"
    "$BIN" train $common --max-examples 96 --epochs 1 --batch 8 --lr 2e-3 --r 4 --alpha 8 --out "$T/run" --json \
        >"$T/train.json" 2>"$T/train.err"
    if [ $? -eq 0 ] && [ -s "$T/run/adapter_model.safetensors" ] && [ -s "$T/run/adapter_config.json" ] && [ -s "$T/run/metrics.jsonl" ]; then ok; else bad "train run"; cat "$T/train.err" >&2; fi
    test_acc=$(python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["test_acc"])' "$T/train.json" 2>/dev/null)
    "$BIN" eval $common --adapter "$T/run" --json >"$T/eval.json" 2>"$T/eval.err"
    eval_acc=$(python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["test_acc"])' "$T/eval.json" 2>/dev/null)
    if [ -n "$test_acc" ] && [ "$test_acc" = "$eval_acc" ]; then ok; else bad "eval with the saved adapter: test acc '$eval_acc' vs trained '$test_acc'"; cat "$T/eval.err" >&2; fi
    # --eval-splits scores only the splits named: the same test accuracy, no train / val figures
    "$BIN" eval $common --adapter "$T/run" --eval-splits test --json >"$T/evt.json" 2>"$T/evt.err"
    evt=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.6f" % r["test_acc"], "train_acc" in r, "val_acc" in r)' "$T/evt.json" 2>/dev/null)
    if [ "$evt" = "$test_acc False False" ]; then ok; else bad "--eval-splits test: '$evt' (want '$test_acc False False')"; cat "$T/evt.err" >&2; fi
    expect 2 "'tset' is not a split" -- "$BIN" eval $common --adapter "$T/run" --eval-splits val,tset
    # a split that this data does not have (every row is test without --split): an error, not silence
    # (the data summary comes first, so the error is the last line, not the only one)
    "$BIN" eval --model "$S" --task instruct --max-eval 2 --data "$DATA/instruction_data/instruction-data.json" \
        --eval-splits val >/dev/null 2>"$T/nosplit.err"
    if [ $? -eq 2 ] && tail -1 "$T/nosplit.err" | grep -q "no such split has examples"; then ok; else bad "eval --eval-splits val without a val split"; cat "$T/nosplit.err" >&2; fi
    # instruction data cut before every response trains nothing: an error (after the data summary), exit 1
    "$BIN" train --model "$S" --task instruct --data "$DATA/instruction_data/instruction-data.json" --max-len 8 \
        --max-examples 16 --max-steps 1 >/dev/null 2>"$T/cut.err"
    rc=$?
    if [ "$rc" -eq 1 ] && tail -n 1 "$T/cut.err" | grep -q "^lorac train: no training example has a token left to predict" &&
        [ "$(grep -c '^lorac train:' "$T/cut.err")" -eq 1 ]; then ok; else bad "all responses cut: exit $rc"; tail -n 3 "$T/cut.err" >&2; fi
    # without --split, eval scores every row of --data
    head -n 5 "$DATA/sms_spam/SMSSpamCollection" >"$T/five.tsv"
    "$BIN" eval --model "$S" --adapter "$T/run" --data "$T/five.tsv" --max-len 48 --json >"$T/five.json" 2>"$T/five.err"
    n5=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["test_n"])' "$T/five.json" 2>/dev/null)
    if [ "$n5" = 5 ]; then ok; else bad "eval without --split scored '$n5' rows of 5"; cat "$T/five.err" >&2; fi
    # a fixed seed makes a run repeatable: the same losses, step for step
    for k in 1 2; do
        "$BIN" train $common --max-examples 32 --max-steps 3 --r 4 --dropout 0.1 --out "$T/rep$k" >/dev/null 2>&1
    done
    if [ -s "$T/rep1/metrics.jsonl" ] && cmp -s <(grep -o '"loss":[^,]*' "$T/rep1/metrics.jsonl") <(grep -o '"loss":[^,]*' "$T/rep2/metrics.jsonl"); then ok; else bad "two runs with the same seed gave different losses"; fi
    "$BIN" train $common --max-examples 32 --max-steps 3 --r 4 --out "$T/rep1" >/dev/null 2>"$T/err1"
    if grep -q "already holds an adapter" "$T/err1"; then ok; else bad "train overwrote an existing adapter without --overwrite"; fi
    "$BIN" generate --model "$S" --prompt "Once upon a time" --max-new 20 >"$T/gen.txt" 2>"$T/gen.err"
    if [ $? -eq 0 ] && grep -q "Once upon a time\|." "$T/gen.txt"; then ok; else bad "generate"; cat "$T/gen.err" >&2; fi
fi
summary e2e_cli
