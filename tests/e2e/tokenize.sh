#!/bin/bash
# End-to-end checks of `lorac tokenize`: ids on one line as Hugging Face's
# encode(text, add_special_tokens=False) gives them, --text - from standard
# input, --decode back to the text, and one clear error line with exit code
# 2 (usage) or 1 (a missing or bad file). The reference ids come from
# tests/fixtures/tokenizer/*.json (tests/ref/make_tokenizer_regex_fixtures.py).
source "$(dirname "$0")/lib/common.bash"
FX=$SRC/tests/fixtures/tokenizer
L3=$FX/llama3_regex_tokenizer.json

# want ARGS... -- EXPECTED: stdout must be exactly EXPECTED (one line)
want() {
    local args=() exp
    while [ "$1" != "--" ]; do args+=("$1"); shift; done
    exp=$2
    local got
    got=$("$BIN" tokenize "${args[@]}" 2>"$T/err")
    if [ $? -eq 0 ] && [ "$got" = "$exp" ]; then ok; else bad "tokenize ${args[*]}: '$got' (want '$exp') $(cat "$T/err")"; fi
}

expect 0 "" -- "$BIN" tokenize --help
if "$BIN" --help | grep -q "^  tokenize "; then ok; else bad "lorac --help does not list tokenize"; fi
expect 2 "unknown option '--bogus'" -- "$BIN" tokenize --tokenizer "$L3" --text hi --bogus
expect 2 "exactly one of --text" -- "$BIN" tokenize --tokenizer "$L3"
expect 2 "exactly one of --text" -- "$BIN" tokenize --tokenizer "$L3" --text a --decode 1
expect 2 "model or --tokenizer is required" -- "$BIN" tokenize --text hi
expect 2 "is not a token id" -- "$BIN" tokenize --tokenizer "$L3" --decode "12 x3"
expect 2 "out of range" -- "$BIN" tokenize --tokenizer "$L3" --decode "999999"
expect 1 "no such file" -- "$BIN" tokenize --tokenizer "$T/missing.json" --text hi
expect 1 "missing.gguf" -- "$BIN" tokenize --model "$T/missing.gguf" --text hi
printf '{"model": {"type": "BPE"' >"$T/broken.json"
expect 1 "broken.json" -- "$BIN" tokenize --tokenizer "$T/broken.json" --text hi

# every case of the Llama 3 fixture whose text can be an argument (valid
# UTF-8, no NUL, no newline: $(...) would eat a trailing one), via --text
: >"$T/cases"
have_py=1
command -v python3 >/dev/null || { have_py=0; echo "tokenize: no python3 to read the fixture's cases: skipped"; }
[ "$have_py" = 0 ] || python3 - "$FX/llama3_regex.json" "$T" <<'PY' || bad "could not read the fixture"
import json, os, sys
cases = json.load(open(sys.argv[1]))["cases"]
with open(os.path.join(sys.argv[2], "cases"), "w") as f:
    for i, c in enumerate(cases):
        raw = bytes.fromhex(c["hex"])
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not raw or b"\0" in raw or b"\n" in raw:
            continue
        open(os.path.join(sys.argv[2], f"case{i}.txt"), "wb").write(raw)
        f.write(f"case{i}.txt\t" + " ".join(map(str, c["ids"])) + "\n")
PY
n=0
while IFS=$'\t' read -r file ids; do
    want --tokenizer "$L3" --text "$(cat "$T/$file")" -- "$ids"
    n=$((n + 1))
done <"$T/cases"
if [ "$n" -ge 30 ] || [ "$have_py" = 0 ]; then ok; else bad "only $n fixture cases ran"; fi

# standard input keeps every byte, newlines included; a special-token string
# in the text becomes its id (<|eot_id|> is 4)
printf 'line one\n\n  two<|eot_id|>\n' >"$T/in.txt"
got=$("$BIN" tokenize --tokenizer "$L3" --text - <"$T/in.txt")
back=$("$BIN" tokenize --tokenizer "$L3" --decode "$got"; printf x)
if echo "$got" | grep -q " 4 " && [ "$back" = "$(cat "$T/in.txt"; printf '\nx')" ]; then ok; else
    bad "--text - : ids '$got', decoded '$back'"; fi
# decode gives the text back; --add-special puts the BOS in front
ids=$("$BIN" tokenize --tokenizer "$L3" --text "Hello world, it's 2024")
want --tokenizer "$L3" --decode "$ids" -- "Hello world, it's 2024"
want --tokenizer "$L3" --decode "$(echo "$ids" | tr ' ' ',')" -- "Hello world, it's 2024"
want --tokenizer "$L3" --text "Hello world, it's 2024" --add-special -- "0 $ids"
want --tokenizer "$L3" --decode "0 $ids 4" --skip-special -- "Hello world, it's 2024"
want --tokenizer "$L3" --text "" -- ""
# a tokenizer-only GGUF
want --tokenizer "$FX/tok512_vocab.gguf" --decode "$("$BIN" tokenize --tokenizer "$FX/tok512_vocab.gguf" --text "Once upon a time")" -- "Once upon a time"

# Qwen2.5 GGUF from the model cache: the ids transformers gives
Q=${LORAC_CACHE:-$SRC/.cache}/models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
if [ -f "$Q" ]; then
    want --model "$Q" --text "Hello world, I'm 12345 <|im_start|> <start_of_turn>user" -- \
        "9707 1879 11 358 2776 220 16 17 18 19 20 220 151644 366 2468 3575 37274 29 872"
else
    echo "tokenize: Qwen2.5 GGUF not in the model cache: skipped"
fi
summary "e2e tokenize"
