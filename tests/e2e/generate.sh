#!/bin/bash
# End-to-end checks of `lorac generate` over the KV cache: the text equals the
# reference path that recomputes the whole sequence per token (--no-kv-cache),
# and stderr ends with the stats line scripts parse:
#   generate: prompt 12 tokens 0.034 s 352.9 tok/s; generated 64 tokens 0.512 s 125.0 tok/s
# On stories260K (fp32; --base bf16, kept under 16 rows per call, where bf16
# products round the activations as well; --method qlora, NF4) with an
# adapter trained here, and on the SmolLM2 GGUF when it has been fetched:
# there --base auto (the default: the file's own Q4_1 / Q8_0 blocks, its
# untied head's too) gives the same greedy ids as --base fp32 (dequantized
# at load), and stderr names the base used. The text with the cache equals
# the text without it on the default int8-activation road (the full
# forward's Linears round each row of x as the cache's steps do, at any row
# count) and with fp32 activations (LORAC_QDOT=f32); the comparison with
# --base fp32 runs with fp32 activations, since an fp32 base has no int8
# road. On the default road the greedy ids with the cache are the same with
# LORAC_ISA=avx2 as at the CPU's best level.
source "$(dirname "$0")/lib/common.bash"

stats='^generate: prompt [0-9]+ tokens [0-9]+\.[0-9]{3} s [0-9]+\.[0-9] tok/s; generated [0-9]+ tokens [0-9]+\.[0-9]{3} s [0-9]+\.[0-9] tok/s$'

# same_text NAME ARGS...: generate with and without the cache; same stdout, exit 0, the stats line last on stderr
same_text() {
    local name=$1
    shift
    "$BIN" generate "$@" >"$T/kv.out" 2>"$T/kv.err"
    local rc1=$?
    "$BIN" generate "$@" --no-kv-cache >"$T/ref.out" 2>"$T/ref.err"
    local rc2=$?
    if [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ -s "$T/kv.out" ] && cmp -s "$T/kv.out" "$T/ref.out"; then ok; else
        bad "$name: exit $rc1 / $rc2, text with the cache '$(head -c 200 "$T/kv.out")' vs without '$(head -c 200 "$T/ref.out")'"
        cat "$T/kv.err" "$T/ref.err" >&2
    fi
    if tail -n 1 "$T/kv.err" | grep -Eq "$stats" && tail -n 1 "$T/ref.err" | grep -Eq "$stats"; then ok; else
        bad "$name: no stats line: '$(tail -n 1 "$T/kv.err")'"
    fi
}

expect 2 "takes no value" -- "$BIN" generate --model x --no-kv-cache=1
expect 2 "expected auto, fp32, bf16 or gguf" -- "$BIN" generate --model x --base nf4
expect 2 "is no .gguf" -- "$BIN" generate --model x --base gguf
expect 2 "drop --base" -- "$BIN" generate --model x.gguf --method qlora --base fp32

S=$DATA/stories260K/hf
if [ -d "$S" ]; then
    same_text "stories260K" --model "$S" --prompt "Once upon a time" --max-new 60
    same_text "stories260K ids" --model "$S" --prompt "Lily" --max-new 30 --ids
    same_text "stories260K bf16" --model "$S" --base bf16 --prompt "Once upon a time" --max-new 9
    same_text "stories260K qlora" --model "$S" --method qlora --prompt "Once upon a time" --max-new 40
    # an adapter trained here (causal LM on a few lines), unmerged at generation
    for i in $(seq 1 16); do printf "Once upon a time there was a cat named Tom. Tom liked to play in the sun.\n\n"; done >"$T/lm.txt"
    "$BIN" train --model "$S" --task lm --data "$T/lm.txt" --max-len 32 --epochs 2 --batch 4 --lr 5e-3 --r 4 \
        --alpha 8 --out "$T/run" >"$T/train.out" 2>"$T/train.err"
    if [ -s "$T/run/adapter_model.safetensors" ]; then
        ok
        same_text "stories260K + adapter" --model "$S" --adapter "$T/run" --prompt "Once upon a time" --max-new 40
    else
        bad "train an LM adapter"; cat "$T/train.err" >&2
    fi
    # the stats line counts what was generated
    "$BIN" generate --model "$S" --prompt "Once upon a time" --max-new 7 --ids >"$T/ids.out" 2>"$T/ids.err"
    n=$(wc -w <"$T/ids.out")
    if tail -n 1 "$T/ids.err" | grep -q "generated $n tokens"; then ok; else bad "stats count: $n ids, '$(tail -n 1 "$T/ids.err")'"; fi
fi

M=${LORAC_CACHE:-$SRC/.cache}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$M" ]; then
    "$BIN" generate --model "$M" --prompt "The capital of France is" --max-new 10 --ids >"$T/q8.ids" 2>"$T/q8.err"
    LORAC_ISA=avx2 "$BIN" generate --model "$M" --prompt "The capital of France is" --max-new 10 --ids \
        >"$T/q8avx2.ids" 2>"$T/q8avx2.err"
    if [ -s "$T/q8.ids" ] && cmp -s "$T/q8.ids" "$T/q8avx2.ids"; then ok; else
        bad "SmolLM2, int8 activations: greedy ids '$(cat "$T/q8.ids")' vs LORAC_ISA=avx2 '$(cat "$T/q8avx2.ids")'"
    fi
    P="The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is"
    same_text "SmolLM2 GGUF, int8 activations" --model "$M" --prompt "$P" --max-new 10
    export LORAC_QDOT=f32
    same_text "SmolLM2 GGUF" --model "$M" --prompt "$P" --max-new 10
    if grep -q "^base gguf (--base auto: the .gguf's own blocks): 210 Linears in Q4_1, token embedding in Q8_0, lm_head in Q8_0" \
        "$T/kv.err"; then ok; else bad "SmolLM2: no line naming the kept base: '$(head -n 1 "$T/kv.err")'"; fi
    "$BIN" generate --model "$M" --prompt "The capital of France is" --max-new 10 --ids >"$T/auto.ids" 2>"$T/auto.err"
    "$BIN" generate --model "$M" --prompt "The capital of France is" --max-new 10 --ids --base fp32 >"$T/fp32.ids" 2>"$T/fp32.err"
    if [ -s "$T/auto.ids" ] && cmp -s "$T/auto.ids" "$T/fp32.ids" && grep -q "^base fp32$" "$T/fp32.err"; then ok; else
        bad "SmolLM2: greedy ids over the kept blocks '$(cat "$T/auto.ids")' vs fp32 '$(cat "$T/fp32.ids")'"
    fi
    unset LORAC_QDOT
fi

summary generate
