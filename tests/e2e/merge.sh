#!/bin/bash
# End-to-end check of `lorac merge`: train a tiny LM adapter on stories260K,
# merge it into the base, and check that greedy generation from the merged
# checkpoint equals generation from base + adapter, token for token. Also:
# the usage errors, and that an existing --out is not overwritten.
source "$(dirname "$0")/lib/common.bash"

expect 0 "" -- "$BIN" merge --help
expect 2 "adapter is required" -- "$BIN" merge --model x --out "$T/o"
expect 2 "out is required" -- "$BIN" merge --model x --adapter y
expect 1 "adapter_config.json" -- "$BIN" merge --model "$LORAC_SRC/tests/fixtures/models/tiny_gpt2" --adapter "$T/none" --out "$T/o"

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
    expect 2 "already holds a model.safetensors" -- "$BIN" merge --model "$S" --adapter "$T/run" --out "$T/merged"
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
summary e2e_merge
