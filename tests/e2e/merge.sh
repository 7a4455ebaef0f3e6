#!/bin/bash
# End-to-end check of `lorac merge`: train a tiny LM adapter on stories260K,
# merge it into the base, and check that greedy generation from the merged
# checkpoint equals generation from base + adapter, token for token. Also:
# the usage errors, and that an existing --out is not overwritten. On the
# SmolLM2 Q4_1 GGUF (when fetched): --requantize writes a GGUF whose
# adapted tensors are re-quantized and whose other bytes are the base's, and
# the error report is there (text and --json).
source "$(dirname "$0")/lib/common.bash"

expect 0 "" -- "$BIN" merge --help
expect 2 "adapter is required" -- "$BIN" merge --model x --out "$T/o"
expect 2 "out is required" -- "$BIN" merge --model x --adapter y
expect 1 "adapter_config.json" -- "$BIN" merge --model "$LORAC_SRC/tests/fixtures/models/tiny_gpt2" --adapter "$T/none" --out "$T/o"
expect 2 "needs a .gguf base" -- "$BIN" merge --model "$LORAC_SRC/tests/fixtures/models/tiny_gpt2" --adapter y --out "$T/o.gguf" --requantize same
expect 2 "the .gguf file to write" -- "$BIN" merge --model x.gguf --adapter y --out "$T/o" --requantize same
expect 2 "the base model itself" -- "$BIN" merge --model x.gguf --adapter y --out x.gguf --requantize same
expect 2 "expected same" -- "$BIN" merge --model x.gguf --adapter y --out "$T/o.gguf" --requantize q5
expect 2 "not a .gguf file" -- "$BIN" merge --model x.gguf --adapter y --out "$T/o.gguf" --requantize nf4
expect 2 "expected nearest or stochastic" -- "$BIN" merge --model x.gguf --adapter y --out "$T/o.gguf" --rounding up

S=$DATA/stories260K/hf
if [ -d "$S" ]; then
    for i in $(seq 1 24); do # one example per paragraph
        printf 'Once upon a time there was a little cat named Tom. Tom liked to play with a red ball every day.\n\n'
    done >"$T/notes.txt"
    "$BIN" train --model "$S" --task lm --data "$T/notes.txt" --max-steps 8 --batch 4 --lr 1e-2 --r 4 --alpha 8 \
        --seed 3 --out "$T/run" >"$T/train.out" 2>"$T/train.err"
    if [ $? -eq 0 ] && [ -s "$T/run/adapter_model.safetensors" ]; then ok; else bad "train"; cat "$T/train.err" >&2; fi

    "$BIN" merge --model "$S" --adapter "$T/run" --out "$T/merged" >/dev/null 2>"$T/merge.err"
    if [ $? -eq 0 ] && [ -s "$T/merged/model.safetensors" ] && [ -s "$T/merged/config.json" ] && [ -s "$T/merged/tokenizer.model" ]; then
        ok
    else
        bad "merge"; cat "$T/merge.err" >&2
    fi
    expect 2 "already exists" -- "$BIN" merge --model "$S" --adapter "$T/run" --out "$T/merged"
    expect 0 "" -- "$BIN" merge --model "$S" --adapter "$T/run" --out "$T/merged" --overwrite

    gen="--prompt Once --max-new 40"
    "$BIN" generate --model "$S" --adapter "$T/run" $gen >"$T/gen_adapter.txt" 2>"$T/gen1.err" || bad "generate with adapter"
    "$BIN" generate --model "$T/merged" $gen >"$T/gen_merged.txt" 2>"$T/gen2.err" || bad "generate from merged"
    "$BIN" generate --model "$S" $gen >"$T/gen_base.txt" 2>/dev/null
    if [ -s "$T/gen_adapter.txt" ] && cmp -s "$T/gen_adapter.txt" "$T/gen_merged.txt"; then
        ok
    else
        bad "merged model generates '$(cat "$T/gen_merged.txt")', base + adapter '$(cat "$T/gen_adapter.txt")'"
    fi
    # the adapter should matter, else the comparison above proves little
    if cmp -s "$T/gen_base.txt" "$T/gen_adapter.txt"; then bad "the trained adapter does not change the generation"; else ok; fi
fi
G=${LORAC_CACHE:-$SRC/.cache}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$G" ]; then
    for i in 1 2 3 4 5 6; do printf 'Tom liked to play with a red ball every day.\n\n'; done >"$T/short.txt"
    "$BIN" train --model "$G" --method qlora --task lm --data "$T/short.txt" --max-steps 2 --batch 2 --max-len 32 --lr 1e-2 \
        --r 4 --alpha 8 --target q_proj,v_proj --layers 0,1 --seed 3 --out "$T/srun" >/dev/null 2>"$T/strain.err" \
        || { bad "qlora train on SmolLM2"; cat "$T/strain.err" >&2; }
    "$BIN" merge --model "$G" --adapter "$T/srun" --out "$T/smerged.gguf" --requantize same >"$T/rq.out" 2>"$T/rq.err"
    if [ $? -eq 0 ] && [ -s "$T/smerged.gguf" ] && grep -q "re-quantized to Q4_1 (stochastic rounding) (written)" "$T/rq.out" &&
        grep -q "4 tensors re-quantized" "$T/rq.err"; then
        ok
    else
        bad "merge --requantize"; cat "$T/rq.out" "$T/rq.err" >&2
    fi
    # same size as the base (every tensor keeps its type and offset), and it loads and generates
    if [ "$(stat -c %s "$G")" = "$(stat -c %s "$T/smerged.gguf")" ]; then ok; else bad "re-quantized GGUF size differs from the base"; fi
    expect 0 "" -- "$BIN" generate --model "$T/smerged.gguf" --prompt Once --max-new 4
    expect 2 "already exists" -- "$BIN" merge --model "$G" --adapter "$T/srun" --out "$T/smerged.gguf" --requantize same
    # --data: the test loss with the adapter unmerged equals the fp32 merge's (with fp32 activations: the
    # default int8 road of the kept blocks rounds x, which the fp32 merge's forward does not)
    LORAC_QDOT=f32 "$BIN" merge --model "$G" --method qlora --adapter "$T/srun" --out "$T/sfp32" --json --task lm --data "$T/short.txt" \
        >"$T/rq.json" 2>/dev/null
    if [ $? -eq 0 ] && python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
t = j['test']
assert j['written'] == 'fp32' and j['requantized']['tensors'] == 4 and 0 <= j['requantized']['delta_kept'] <= 1.5, j
assert abs(t['adapter_loss'] - t['fp32_loss']) < 1e-3 and t['requantized_loss'] > 0, t
" "$T/rq.json"; then
        ok
    else
        bad "merge --json"; cat "$T/rq.json" >&2
    fi
fi
summary e2e_merge
