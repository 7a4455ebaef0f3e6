#!/bin/bash
# End-to-end checks of checkpoints and exact resume (`lorac train
# --save-every / --resume`, Ctrl-C) on the tiny GPT-2 fixture classifier
# (the small WordPiece vocab of compare.sh keeps ids below its vocab of 101):
#  1. an uninterrupted reference run (LoRA with dropout, warm-up, gradient
#     accumulation, evaluation every 5 steps) with periodic checkpoints:
#     the newest 2 kept, `latest` names the last, a checkpoint is usable as
#     an --adapter;
#  2. the same run killed with SIGKILL after its first checkpoint, then
#     --resume: every step's loss and every evaluation in metrics.jsonl and
#     the final adapter equal the reference, bit for bit, no step twice;
#  3. SIGINT: exit 130, a checkpoint and a message naming it and the resume
#     command; resuming gives the reference again;
#  4. resuming with a different --batch / --seed / --method: exit 2, one
#     error line naming the setting;
#  5. a save that cannot be written (a file too large for RLIMIT_FSIZE, a
#     regular file where the checkpoints directory should be, a full disk -
#     a small tmpfs, as root where mount works - and, when not root, a
#     read-only directory): exit 1, one error line, the previous checkpoint
#     byte for byte intact and still usable;
#  6. full fine-tuning (--method full) checkpoints resume exactly too.
# A kill or Ctrl-C that lands after the run ended is not a failure: the run
# is then stopped with --max-steps instead and resumed the same way.
source "$(dirname "$0")/lib/common.bash"

tiny_sms_fixture
# 56 training examples, batch 2 x 2 accumulated: 14 steps per epoch; 40 epochs = 560 steps
common=(--model "$tiny" --tokenizer "$T/vocab.txt" --data "$T/sms.tsv" --max-len 16 --batch 2 --grad-accum 2
    --seed 5 --lr 5e-3 --dropout 0.1 --warmup 10 --eval-every 5 --epochs 40)

# losses and evaluations of a metrics.jsonl, one per line, timing fields removed
steps() { python3 - "$1" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["type"], r["step"])
    if key in seen: print("DUPLICATE", key)
    seen.add(key)
    print(r["type"], r["epoch"], r["step"], r.get("loss"), r.get("lr"), r.get("val_loss"), r.get("val_acc"))
PY
}
# same_as_ref DIR WHAT: metrics and adapter of DIR equal the reference run's
same_as_ref() {
    if [ -s "$1/metrics.jsonl" ] && cmp -s <(steps "$T/ref/metrics.jsonl") <(steps "$1/metrics.jsonl"); then ok; else
        bad "$2: metrics.jsonl differs from the uninterrupted run"; diff <(steps "$T/ref/metrics.jsonl") <(steps "$1/metrics.jsonl") | head -5 >&2
    fi
    if cmp -s "$T/ref/adapter_model.safetensors" "$1/adapter_model.safetensors"; then ok; else bad "$2: the final adapter differs"; fi
}
# wait_for COND PID: poll (up to 120 s) until COND holds or PID has exited
wait_for() {
    local i
    for i in $(seq 1 12000); do
        eval "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}
train_lines() { [ -f "$1/metrics.jsonl" ] && [ "$(grep -c '"train"' "$1/metrics.jsonl")" -ge "$2" ]; }
tree_sum() { (cd "$1" && find . -type f | sort | xargs sha256sum); }

# 1. the reference: uninterrupted, saving every 100 steps (saving must not change anything)
"$BIN" train "${common[@]}" --save-every 100 --out "$T/ref" >/dev/null 2>"$T/ref.err"
if [ $? -eq 0 ] && [ "$(grep -c '"train"' "$T/ref/metrics.jsonl")" = 560 ]; then ok; else bad "reference run"; cat "$T/ref.err" >&2; fi
ls "$T/ref/checkpoints" >"$T/ls"
if [ "$(cat "$T/ref/checkpoints/latest")" = step-000560 ] && [ "$(grep -c '^step-' "$T/ls")" = 2 ] &&
    [ -d "$T/ref/checkpoints/step-000500" ]; then ok; else bad "want step-000500 and step-000560 kept, latest = 560: $(cat "$T/ls")"; fi
for f in adapter_config.json adapter_model.safetensors trainable.safetensors optimizer.safetensors trainer_state.json; do
    [ -s "$T/ref/checkpoints/step-000500/$f" ] || bad "checkpoint lacks $f"
done
ok
"$BIN" eval --model "$tiny" --tokenizer "$T/vocab.txt" --data "$T/sms.tsv" --max-len 16 --seed 5 \
    --adapter "$T/ref/checkpoints/step-000560" --json >"$T/eval.json" 2>"$T/eval.err"
if [ $? -eq 0 ] && cmp -s "$T/ref/checkpoints/step-000560/adapter_model.safetensors" "$T/ref/adapter_model.safetensors"; then
    ok; else bad "the last checkpoint is not the final adapter / not usable with eval --adapter"; cat "$T/eval.err" >&2; fi

# 2. SIGKILL after the first checkpoint (saving every step: the kill may land inside a save)
"$BIN" train "${common[@]}" --save-every 1 --out "$T/kill" >/dev/null 2>"$T/kill.err" &
pid=$!
wait_for '[ -f "$T/kill/checkpoints/latest" ]' $pid && kill -STOP $pid 2>/dev/null && kill -KILL $pid 2>/dev/null
wait $pid 2>/dev/null
rc=$?
if [ $rc -eq 137 ]; then
    ok
    done_steps=$(grep -c '"train"' "$T/kill/metrics.jsonl")
    [ "$done_steps" -lt 560 ] || bad "killed run has all 560 steps"
else
    echo "note: the run ended (exit $rc) before SIGKILL; stopping it with --max-steps 37 instead"
    rm -rf "$T/kill"
    "$BIN" train "${common[@]}" --save-every 1 --max-steps 37 --out "$T/kill" >/dev/null 2>"$T/kill.err" || bad "--max-steps run"
fi
latest=$(cat "$T/kill/checkpoints/latest" 2>/dev/null)
if [ -n "$latest" ] && [ -s "$T/kill/checkpoints/$latest/trainer_state.json" ]; then ok; else bad "no complete checkpoint after the kill"; fi
"$BIN" train "${common[@]}" --save-every 1 --resume "$T/kill" >/dev/null 2>"$T/kr.err"
if [ $? -eq 0 ] && grep -q "resumed at step" "$T/kr.err"; then ok; else bad "resume after SIGKILL"; tail -3 "$T/kr.err" >&2; fi
same_as_ref "$T/kill" "after SIGKILL + resume"
if ls "$T/kill/checkpoints" | grep -q '\.tmp'; then bad "a .tmp leftover survived the next save"; else ok; fi

# 3. SIGINT (a job of its own, so that the shell does not ignore SIGINT for it)
set -m
"$BIN" train "${common[@]}" --out "$T/int" >/dev/null 2>"$T/int.err" &
pid=$!
set +m
wait_for 'train_lines "$T/int" 5' $pid && kill -STOP $pid 2>/dev/null && kill -INT $pid && kill -CONT $pid
wait $pid 2>/dev/null
rc=$?
if [ $rc -eq 130 ]; then
    ok
    msg=$(grep '^lorac train: interrupted' "$T/int.err")
    saved=$(sed -n 's/.*checkpoint saved to \([^;]*\);.*/\1/p' <<<"$msg")
    if [ -n "$saved" ] && [ -s "$saved/trainer_state.json" ] && [ "$(basename "$saved")" = "$(cat "$T/int/checkpoints/latest")" ] &&
        grep -q -- "resume with: lorac train .*--resume $T/int" <<<"$msg"; then ok; else bad "SIGINT message / checkpoint: '$msg'"; cat "$T/int.err" >&2; fi
    [ ! -e "$T/int/adapter_model.safetensors" ] && ok || bad "an interrupted run wrote the final adapter"
else
    echo "note: the run ended (exit $rc) before SIGINT; stopping it with --max-steps 23 instead"
    rm -rf "$T/int"
    "$BIN" train "${common[@]}" --max-steps 23 --save-every 23 --out "$T/int" >/dev/null 2>"$T/int.err" || bad "--max-steps run"
fi
"$BIN" train "${common[@]}" --resume "$T/int" >/dev/null 2>"$T/ir.err"
if [ $? -eq 0 ]; then ok; else bad "resume after SIGINT"; tail -3 "$T/ir.err" >&2; fi
same_as_ref "$T/int" "after SIGINT + resume"

# 4. settings that differ from the checkpoint's are refused, naming them
ck=$T/ref/checkpoints/step-000500
refuse() { # WHAT PATTERN ARGS...: exit 2 and exactly one "lorac train:" line matching PATTERN
    local what=$1 pat=$2
    shift 2
    "$BIN" train "$@" --resume "$ck" --out "$T/mismatch" >/dev/null 2>"$T/mm.err"
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(grep -c '^lorac train:' "$T/mm.err")" = 1 ] && grep -q "^lorac train: .*$pat" "$T/mm.err"; then ok; else
        bad "resume with another $what: exit $rc, $(grep '^lorac' "$T/mm.err")"; fi
}
without() { local skip=$1; shift; local out=() i; for ((i = 1; i <= $#; i++)); do if [ "${!i}" = "$skip" ]; then i=$((i + 1)); else out+=("${!i}"); fi; done; printf '%s\0' "${out[@]}"; }
mapfile -d '' nobatch < <(without --batch "${common[@]}")
refuse batch "batch differs: the checkpoint has 2, this run 4" "${nobatch[@]}" --batch 4
mapfile -d '' noseed < <(without --seed "${common[@]}")
refuse seed "seed differs" "${noseed[@]}" --seed 6
refuse method "method differs: the checkpoint has lora, this run full" "${common[@]}" --method full
if [ -e "$T/mismatch/adapter_model.safetensors" ]; then bad "a refused resume wrote an adapter"; else ok; fi
expect 1 "no complete checkpoint" -- "$BIN" train "${common[@]}" --resume "$T"
"$BIN" train "${common[@]}" --max-steps 2 --out "$T/ref" >/dev/null 2>"$T/again.err"
if [ $? -eq 2 ] && grep -q "already holds an adapter" "$T/again.err"; then ok; else bad "a new run into a finished --out"; fi
"$BIN" train "${common[@]}" --max-steps 2 --out "$T/kill2" --save-every 1 >/dev/null 2>&1 && rm "$T/kill2/adapter"*
"$BIN" train "${common[@]}" --max-steps 2 --out "$T/kill2" >/dev/null 2>"$T/again.err"
if [ $? -eq 2 ] && grep -q "holds checkpoints of an earlier run; hint: --resume" "$T/again.err"; then ok; else
    bad "a new run into an --out holding checkpoints: $(cat "$T/again.err")"; fi

# 5. saves that fail keep the previous checkpoint
"$BIN" train "${common[@]}" --max-steps 6 --save-every 3 --out "$T/disk" >/dev/null 2>&1 || bad "--max-steps 6 run"
tree_sum "$T/disk/checkpoints" >"$T/disk.sum"
one_error() { # FILE PATTERN: exactly one "lorac train:" line, matching
    [ "$(grep -c '^lorac train:' "$1")" = 1 ] && grep -q "^lorac train: .*$2" "$1"
}
# 5a. the file-size limit: the next checkpoint's files cannot be written (EFBIG)
(trap '' XFSZ; ulimit -f 20; exec "$BIN" train "${common[@]}" --save-every 3 --resume "$T/disk") >/dev/null 2>"$T/fsize.err"
rc=$?
if [ $rc -eq 1 ] && one_error "$T/fsize.err" "checkpoint at step 9 not saved: .*; the previous checkpoint .*step-000006 is intact"; then ok; else
    bad "save over RLIMIT_FSIZE: exit $rc: $(grep '^lorac' "$T/fsize.err")"; fi
if tree_sum "$T/disk/checkpoints" | cmp -s - "$T/disk.sum"; then ok; else bad "a failed save changed the checkpoints"; fi
# 5b. a regular file where the checkpoints directory goes
mkdir -p "$T/blocked" && touch "$T/blocked/checkpoints"
"$BIN" train "${common[@]}" --save-every 3 --resume "$T/disk/checkpoints/step-000006" --out "$T/blocked" >/dev/null 2>"$T/blk.err"
rc=$?
if [ $rc -eq 1 ] && one_error "$T/blk.err" "checkpoint at step 9 not saved: .*not a directory"; then ok; else
    bad "save with a file in the way: exit $rc: $(grep '^lorac' "$T/blk.err")"; fi
if tree_sum "$T/disk/checkpoints" | cmp -s - "$T/disk.sum"; then ok; else bad "a failed save changed the checkpoint resumed from"; fi
# 5c. permissions (root ignores them)
if [ "$(id -u)" != 0 ]; then
    chmod a-w "$T/disk/checkpoints"
    "$BIN" train "${common[@]}" --save-every 3 --resume "$T/disk" >/dev/null 2>"$T/perm.err"
    rc=$?
    chmod u+w "$T/disk/checkpoints"
    if [ $rc -eq 1 ] && one_error "$T/perm.err" "not saved: .*Permission denied.*step-000006 is intact"; then ok; else
        bad "save into a read-only directory: exit $rc: $(grep '^lorac' "$T/perm.err")"; fi
    if tree_sum "$T/disk/checkpoints" | cmp -s - "$T/disk.sum"; then ok; else bad "a failed save changed the checkpoints"; fi
fi
# 5d. a really full disk (ENOSPC): the run so far copied onto a tmpfs with room for the metrics but not for
# another checkpoint (only as root where mount works; skipped elsewhere)
M="$T/fullfs"
mkdir -p "$M"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=$(($(du -sk "$T/disk" | cut -f1) + 16))k tmpfs "$M" 2>/dev/null; then
    trap 'umount "$M" 2>/dev/null; rm -rf "$T"' EXIT
    cp -a "$T/disk/." "$M/"
    tree_sum "$M/checkpoints" >"$T/full.sum"
    "$BIN" train "${common[@]}" --save-every 3 --resume "$M" >/dev/null 2>"$T/full.err"
    rc=$?
    if [ $rc -eq 1 ] && one_error "$T/full.err" "checkpoint at step 9 not saved: .*No space left on device.*step-000006 is intact"; then ok; else
        bad "save on a full disk: exit $rc: $(grep '^lorac' "$T/full.err")"; fi
    if tree_sum "$M/checkpoints" | cmp -s - "$T/full.sum"; then ok; else bad "a save on a full disk changed the checkpoints"; fi
    mkdir -p "$T/fullcopy" && cp -a "$M/." "$T/fullcopy/"
    umount "$M"
    "$BIN" train "${common[@]}" --save-every 100 --resume "$T/fullcopy" >/dev/null 2>"$T/fr2.err" || bad "resume after a full disk"
    same_as_ref "$T/fullcopy" "after a full disk + resume"
else
    echo "note: tmpfs mount not available; the ENOSPC case is covered by RLIMIT_FSIZE above" >&2
fi
# and the intact checkpoint still resumes to the reference
"$BIN" train "${common[@]}" --save-every 100 --resume "$T/disk" >/dev/null 2>"$T/dr.err" || { bad "resume after failed saves"; tail -3 "$T/dr.err" >&2; }
same_as_ref "$T/disk" "after failed saves + resume"

# 6. full fine-tuning: the trainable base weights are checkpointed by name
full=("${common[@]}" --method full --lr 1e-3 --epochs 2)
"$BIN" train "${full[@]}" --out "$T/fref" >/dev/null 2>"$T/fref.err" || bad "full reference run"
"$BIN" train "${full[@]}" --max-steps 9 --save-every 4 --out "$T/fpart" >/dev/null 2>&1 || bad "full --max-steps run"
if [ -s "$T/fpart/checkpoints/step-000009/trainable.safetensors" ] && [ ! -e "$T/fpart/checkpoints/step-000009/adapter_config.json" ]; then
    ok; else bad "full fine-tuning checkpoint layout"; fi
"$BIN" train "${full[@]}" --resume "$T/fpart/checkpoints/step-000008" >/dev/null 2>"$T/fr.err"
if [ $? -eq 0 ] && cmp -s <(steps "$T/fref/metrics.jsonl") <(steps "$T/fpart/metrics.jsonl"); then ok; else
    bad "full fine-tuning: resumed metrics differ"; diff <(steps "$T/fref/metrics.jsonl") <(steps "$T/fpart/metrics.jsonl") | head -5 >&2; fi
python3 - "$T/fref/results.json" "$T/fpart/results.json" <<'PY' && ok || bad "full fine-tuning: results differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
keys = [k for k in a if k.endswith("_acc") or k.endswith("_loss") or k == "steps"]
assert keys and all(a[k] == b[k] for k in keys), [(k, a[k], b[k]) for k in keys if a[k] != b[k]]
PY
summary e2e_resume
