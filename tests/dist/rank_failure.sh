#!/bin/bash
# A rank that dies: 2 ranks train with a checkpoint every 20 steps; after the
# first checkpoint rank 1 is killed (SIGKILL). Then:
#  - the job ends within 60 s (not a hang), with a non-zero exit;
#  - rank 0 says so in exactly one line;
#  - the newest checkpoint is intact: --resume (2 ranks again) continues,
#    and the run's losses and adapter are the uninterrupted run's.
# The same with --dist-timeout when the launcher does not end rank 0: a rank
# that stops answering (SIGSTOP) makes the others give up after the timeout
# with one line naming what they waited for.
source "$(dirname "$0")/lib/mpi.bash"

tiny_sms_fixture
cls=(--model "$tiny" --tokenizer "$T/vocab.txt" --data "$T/sms.tsv" --max-len 16 --batch 8 --seed 5 --lr 5e-3
    --epochs 300 --eval-every 100 --threads 1 --save-every 20)
"$BIN" train "${cls[@]}" --out "$T/ref" >/dev/null 2>"$T/ref.err" || { bad "reference run"; tail -n 5 "$T/ref.err" >&2; }

# rank_pid DIR RANK: the pid of that rank of the run writing to DIR
rank_pid() {
    local p
    for p in $(pgrep -f -- "--out $1"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return 0; }
    done
    return 1
}
# wait_ckpt DIR PID: until DIR/checkpoints/latest exists (or PID ended; 60 s at most)
wait_ckpt() {
    local i
    for i in $(seq 1 6000); do
        [ -e "$1/checkpoints/latest" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

for how in KILL STOP; do
    extra=()
    [ "$how" = STOP ] && extra=(--dist-timeout 10)
    rm -rf "$T/run"
    ranks 2 "$BIN" train "${cls[@]}" "${extra[@]}" --out "$T/run" >/dev/null 2>"$T/run.err" &
    mp=$!
    if ! wait_ckpt "$T/run" "$mp"; then bad "$how: no checkpoint before the run ended"; wait "$mp"; continue; fi
    victim=$(rank_pid "$T/run" 1)
    [ -n "$victim" ] || { bad "$how: rank 1 not found"; wait "$mp"; continue; }
    t0=$(date +%s)
    kill -"$how" "$victim"
    # a stopped rank never ends by itself; mpirun ends it once rank 0 gives up
    for i in $(seq 1 600); do kill -0 "$mp" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$mp" 2>/dev/null; then bad "$how: the job still runs 60 s after rank 1 was stopped"; kill -9 "$mp" "$victim"; fi
    wait "$mp"
    rc=$?
    took=$(($(date +%s) - t0))
    lines=$(grep -c '^lorac train: rank 0 of 2' "$T/run.err")
    echo "   $how rank 1: exit $rc after ${took} s; rank 0 said: $(grep '^lorac train: rank 0 of 2' "$T/run.err")"
    if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ]; then ok; else bad "$how: exit $rc, $lines lines from rank 0"; grep -v '^step\|^epoch' "$T/run.err" | tail -n 8 >&2; fi
    if [ "$how" = STOP ]; then
        if grep -q "no answer from the other ranks within 10 s" "$T/run.err"; then ok; else bad "STOP: no timeout line"; fi
    fi
    ranks 2 "$BIN" train "${cls[@]}" --resume "$T/run" >/dev/null 2>"$T/resume.err" || { bad "$how: resume"; tail -n 5 "$T/resume.err" >&2; }
    if grep -q "resumed at step" "$T/resume.err"; then ok; else bad "$how: the resumed run did not start from a checkpoint"; fi
    same "$T/ref" "$T/run" "killed ($how) at a checkpoint and resumed, vs uninterrupted"
done
summary rank_failure
