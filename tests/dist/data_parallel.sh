#!/bin/bash
# Data-parallel training (`mpirun -np N lorac train`) against one process:
#  1. a decoder classifier (tiny GPT-2 fixture; gradient accumulation and
#     evaluation every 3 steps) at 2 and 3 ranks (3 ranks share batches of 8
#     unevenly: 3 + 3 + 2);
#  2. LM runs on stories260K (a Llama): plain text, and instruction data with
#     the loss masked to the response (uneven loss terms across ranks), with
#     warm-up, cosine decay and clipping, at 2 ranks;
#  3. --resume with another rank count: 2 ranks stopped at step 4, continued
#     by 1 and by 3 ranks, give the uninterrupted run;
#  4. usage errors under mpirun (a batch smaller than the ranks, an --out that
#     holds an adapter, a command other than train): one error line from
#     rank 0, exit 2.
# "The same" is same_run.py's tolerance: every loss and evaluation within
# 1e-5 (relative, above 1), every adapter tensor within 5e-4 of its largest
# value. What differs is only the order in which float gradients are summed
# (the ranks' shares add up in rank order), which AdamW then carries on.
source "$(dirname "$0")/lib/mpi.bash"

tiny_sms_fixture
cls=(--model "$tiny" --tokenizer "$T/vocab.txt" --data "$T/sms.tsv" --max-len 16 --batch 8 --grad-accum 2 --seed 5
    --lr 5e-3 --epochs 4 --eval-every 3 --threads 1)
for n in 1 2 3; do
    ranks "$n" "$BIN" train "${cls[@]}" --out "$T/cls$n" >/dev/null 2>"$T/cls$n.err" || { bad "classifier, $n ranks"; cat "$T/cls$n.err" >&2; }
done
same "$T/cls1" "$T/cls2" "GPT-2 classifier, 2 ranks vs 1"
same "$T/cls1" "$T/cls3" "GPT-2 classifier, 3 ranks vs 1"
if grep -q "data parallel: 2 ranks" "$T/cls2.err"; then ok; else bad "no data-parallel summary line"; fi

S=$DATA/stories260K/hf
if [ -d "$S" ]; then
    for i in $(seq 1 6); do
        printf 'Once upon a time there was a little cat. The cat liked to play in the sun every day.\n\n'
        printf 'Tom had a red ball. He threw it high and his dog ran after it.\n\n'
    done >"$T/notes.txt"
    lm=(--model "$S" --task lm --data "$T/notes.txt" --max-len 32 --batch 4 --seed 3 --lr 1e-2 --r 4 --alpha 8 --epochs 3
        --eval-every 2 --threads 1)
    ins=(--model "$S" --task instruct --data "$DATA/instruction_data/instruction-data.json" --max-len 200 --seed 7
        --max-examples 36 --max-eval 8 --batch 6 --lr 2e-3 --r 4 --alpha 8 --eval-every 3 --clip 1.0 --warmup 2
        --schedule cosine --threads 1)
    for n in 1 2; do
        ranks "$n" "$BIN" train "${lm[@]}" --out "$T/lm$n" >/dev/null 2>"$T/lm$n.err" || { bad "LM, $n ranks"; cat "$T/lm$n.err" >&2; }
        ranks "$n" "$BIN" train "${ins[@]}" --out "$T/ins$n" >/dev/null 2>"$T/ins$n.err" || { bad "instruct, $n ranks"; cat "$T/ins$n.err" >&2; }
    done
    same "$T/lm1" "$T/lm2" "stories260K LM, 2 ranks vs 1"
    same "$T/ins1" "$T/ins2" "stories260K instruct, 2 ranks vs 1"
fi

# --resume with a different rank count (constant rate: the run may be continued past its --max-steps)
for n in 1 3; do
    rm -rf "$T/part"
    ranks 2 "$BIN" train "${cls[@]}" --max-steps 4 --save-every 2 --out "$T/part" >/dev/null 2>"$T/part.err" || { bad "2-rank run to step 4"; cat "$T/part.err" >&2; }
    ranks "$n" "$BIN" train "${cls[@]}" --save-every 2 --resume "$T/part" >/dev/null 2>"$T/resume$n.err" || { bad "resume with $n ranks"; cat "$T/resume$n.err" >&2; }
    same "$T/cls1" "$T/part" "2 ranks to step 4, resumed by $n rank(s), vs one uninterrupted process"
done

# usage errors: rank 0 says it once, every rank exits 2
ranks 2 "$BIN" train "${cls[@]}" --batch 1 >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 2 ] && [ "$(grep -c '^lorac train: ' "$T/err")" -eq 1 ] && grep -q "rank 0 of 2.*--batch 1 is smaller than the 2 ranks" "$T/err"; then ok; else
    bad "--batch 1 on 2 ranks: exit $rc"; cat "$T/err" >&2; fi
ranks 2 "$BIN" train "${cls[@]}" --out "$T/cls1" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 2 ] && [ "$(grep -c '^lorac train: ' "$T/err")" -eq 1 ] && grep -q "rank 0 of 2.*already holds an adapter" "$T/err"; then ok; else
    bad "--out over an adapter on 2 ranks: exit $rc"; tail -n 5 "$T/err" >&2; fi
ranks 2 "$BIN" info --model "$tiny" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 2 ] && [ "$(grep -c '^lorac info: ' "$T/err")" -eq 1 ] && grep -q "only 'lorac train' runs data-parallel" "$T/err"; then ok; else
    bad "info under mpirun: exit $rc"; cat "$T/err" >&2; fi
summary data_parallel
