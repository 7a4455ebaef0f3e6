#!/bin/bash
# The library as an application sees it: `cmake --install` into a temporary
# prefix, the examples/ programs built against the *installed* files with
# `cc $(pkg-config --cflags --libs lorac)` and with a CMake project using
# find_package(lorac), then run: train a LoRA classifier, classify with it
# and generate, on the tiny GPT-2 fixture and (when fetched) on SmolLM2's
# GGUF with a few training steps. Also: liblorac.so exports exactly the
# functions lorac.h declares (nm -D), nothing else, the CLI links the shared
# library, and no file of the CLI includes an internal header or needs more
# than include/ to compile.
source "$(dirname "$0")/lib/common.bash"

B=$(dirname "$BIN")
P=$T/prefix
export LC_ALL=C

# ---- install
if cmake --install "$B" --prefix "$P" >"$T/install.log" 2>&1; then ok; else bad "cmake --install: $(tail -3 "$T/install.log")"; fi
L=$(dirname "$(find "$P" -name liblorac.so.0.1.0 | head -1)")
for f in "$P/include/lorac.h" "$P/include/lorac/core.h" "$P/include/lorac/train.h" "$L/liblorac.so.0.1.0" "$L/liblorac.a" "$P/bin/lorac" "$L/pkgconfig/lorac.pc" \
         "$L/cmake/lorac/loracConfig.cmake" "$L/cmake/lorac/loracTargets.cmake"; do
    if [ -e "$f" ]; then ok; else bad "not installed: $f"; fi
done
if [ "$(readlink "$L/liblorac.so.0")" = liblorac.so.0.1.0 ] && [ "$(readlink "$L/liblorac.so")" = liblorac.so.0 ]; then ok
else bad "soname links: $(ls -l "$L"/liblorac.so*)"; fi
if objdump -p "$L/liblorac.so.0.1.0" | grep -q "SONAME *liblorac.so.0$"; then ok; else bad "SONAME is not liblorac.so.0"; fi
# which liblorac a program loads, as a canonical path
uses() { readlink -f "$(ldd "$1" | awk '/liblorac.so.0 =>/ { print $3 }')"; }
LIB=$(readlink -f "$L/liblorac.so.0.1.0")
# the installed CLI runs on the installed library (its RUNPATH)
if "$P/bin/lorac" --version | grep -q "^lorac 0.1.0$" && [ "$(uses "$P/bin/lorac")" = "$LIB" ]; then ok
else bad "installed lorac: $(ldd "$P/bin/lorac" | grep lorac)"; fi
if ldd "$BIN" | grep -q "liblorac.so.0 =>"; then ok; else bad "build/lorac does not link liblorac.so"; fi

# ---- exports: LORAC_0 = the functions lorac.h declares with LORAC_API, nothing else public
nm -D --defined-only "$L/liblorac.so.0.1.0" | awk '$2 == "T" { print $3 }' >"$T/syms"
grep '@@LORAC_0$' "$T/syms" | sed 's/@@LORAC_0$//' | sort >"$T/public"
grep -v '@@LORAC_0$' "$T/syms" >"$T/other"
cat "$P/include/lorac.h" "$P/include/lorac_serve.h" "$P"/include/lorac/*.h | tr '\n' ' ' | grep -o 'LORAC_API [^;{]*(' | grep -o 'lorac_[a-z0-9_]*($' | tr -d '(' | sort >"$T/declared"
if [ -s "$T/declared" ] && diff "$T/declared" "$T/public" >"$T/diff"; then ok; else bad "exports differ from lorac.h: $(cat "$T/diff")"; fi
if [ ! -s "$T/other" ]; then ok; else bad "symbols outside the version nodes: $(head -3 "$T/other")"; fi
# one version node: LORAC_0 (the private node the CLI once needed is gone), and no internal name in it
if [ "$(grep -c '^LORAC_[A-Z0-9_]* {' "$SRC/src/api/lorac.map")" -eq 1 ] && grep -q '^LORAC_0 {' "$SRC/src/api/lorac.map"; then ok
else bad "src/api/lorac.map: version nodes $(grep '^LORAC_[A-Z0-9_]* {' "$SRC/src/api/lorac.map" | tr '\n' ' ')"; fi
if ! grep -q 'lorac_lora_targets@\|lorac_fail@\|lorac_model_quantize@' "$T/syms"; then ok
else bad "internal symbols exported: $(grep 'lorac_lora_targets@\|lorac_fail@\|lorac_model_quantize@' "$T/syms" | head -3)"; fi

# ---- the CLI is lorac.h's first client (issue 15): a file in tools/ includes
# lorac.h, lorac_serve.h, the CLI's own headers (tools/lorac/*.h) and system
# ones, never an internal header under src/. Each file's own #include lines:
# a quoted name must be one of those, an angle one must not name a src/
# directory; and every .c compiles with only include/ and its own directory
# on the include path.
fail0=$fail
internal='core\|ops\|quant\|io\|models\|lora\|train\|api\|serve\|dist'
for f in "$SRC"/tools/*/*.[ch]; do
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        case "$inc" in lorac.h | lorac_serve.h) continue ;; esac
        if [ "${inc#*/}" = "$inc" ] && [ -f "$(dirname "$f")/$inc" ]; then continue; fi
        bad "${f#"$SRC"/} includes the internal header \"$inc\"; hint: give include/lorac.h the call instead"
    done
    if grep -q "^[[:space:]]*#[[:space:]]*include[[:space:]]*<\($internal\)/" "$f"; then
        bad "${f#"$SRC"/} includes an internal header: $(grep "^[[:space:]]*#[[:space:]]*include[[:space:]]*<\($internal\)/" "$f" | head -1)"
    fi
    if [ "${f%.c}" != "$f" ]; then
        if cc -std=c11 -fsyntax-only -I"$SRC/include" -I"$(dirname "$f")" "$f" 2>"$T/inc.log"; then :
        else bad "${f#"$SRC"/} does not compile on include/ alone: $(grep -m1 error "$T/inc.log")"; fi
    fi
done
[ "$fail" -eq "$fail0" ] && ok

# ---- lorac.h's parts as installed: the same set as the source tree's, each compiles alone (C11 and C++)
if [ "$(cd "$P/include/lorac" && ls)" = "$(cd "$SRC/include/lorac" && ls)" ]; then ok
else bad "installed include/lorac/ differs: $(ls "$P/include/lorac" | tr '\n' ' ')"; fi
for h in lorac.h lorac_serve.h $(cd "$P/include" && ls lorac/*.h); do
    printf '#include <%s>\nint main(void) { return 0; }\n' "$h" >"$T/h.c"
    if cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$P/include" "$T/h.c" 2>"$T/h.log"; then ok
    else bad "<$h> alone: $(head -2 "$T/h.log")"; fi
    if command -v c++ >/dev/null; then
        cp "$T/h.c" "$T/h.cpp"
        if c++ -Wall -Wextra -Werror -fsyntax-only -I"$P/include" "$T/h.cpp" 2>"$T/h.log"; then ok
        else bad "<$h> alone in C++: $(head -2 "$T/h.log")"; fi
    fi
done

# ---- build the examples: pkg-config, then CMake's find_package. A library
# built with the sanitizers (scripts/test's ASan pass) needs them in the
# programs too; its SmolLM2 part is skipped there (minutes, not seconds).
SAN=""
if ldd "$L/liblorac.so.0.1.0" | grep -q libasan; then SAN="-fsanitize=address,undefined"; fi
export PKG_CONFIG_PATH=$L/pkgconfig
mkdir -p "$T/pc"
for ex in classify generate train; do
    # shellcheck disable=SC2046
    if cc -std=c11 -Wall -Wextra -Werror $SAN "$SRC/examples/$ex.c" $(pkg-config --cflags --libs lorac) -Wl,-rpath,"$L" \
        -o "$T/pc/$ex" 2>"$T/cc.log"; then ok; else bad "cc $ex.c with pkg-config: $(head -3 "$T/cc.log")"; fi
done
if grep -rq '"core/\|"models/\|"lora/\|"io/\|"train/' "$SRC"/examples/*.c; then bad "an example includes an internal header"; else ok; fi
if cmake -S "$SRC/examples" -B "$T/cm" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_FLAGS="$SAN" >"$T/cm.log" 2>&1 &&
    cmake --build "$T/cm" >>"$T/cm.log" 2>&1; then ok; else bad "find_package(lorac) project: $(tail -5 "$T/cm.log")"; fi
for ex in classify generate train; do
    if [ -x "$T/cm/$ex" ] && [ "$(uses "$T/cm/$ex")" = "$LIB" ]; then ok; else bad "cmake-built $ex: $(ldd "$T/cm/$ex" | grep lorac)"; fi
done

# ---- run them on the tiny GPT-2 fixture: train (CMake build), classify and generate (pkg-config build)
tiny_sms_fixture
if TOKENIZER=$T/vocab.txt "$T/cm/train" "$tiny" "$T/sms.tsv" "$T/ad" 20 >"$T/train.out" 2>"$T/train.err" &&
    grep -q "^trained 14 steps" "$T/train.out" && [ -s "$T/ad/adapter_model.safetensors" ]; then ok
else bad "train on the tiny fixture: $(cat "$T/train.out" "$T/train.err" | tail -3)"; fi
# the adapter the example wrote is an ordinary one: lorac eval reads it
expect 0 "" -- "$BIN" eval --model "$tiny" --tokenizer "$T/vocab.txt" --adapter "$T/ad" --data "$T/sms.tsv"
TOKENIZER=$T/vocab.txt "$T/pc/classify" "$tiny" "$T/ad" "win a prize now" "see you at five" >"$T/cls.out" 2>"$T/cls.err"
if [ $? -eq 0 ] && [ "$(cut -f1 "$T/cls.out" | tr '\n' ' ')" = "spam ham " ]; then ok
else bad "classify on the tiny fixture: $(cat "$T/cls.out" "$T/cls.err")"; fi
if TOKENIZER=$T/vocab.txt "$T/pc/generate" "$tiny" - "see you" 4 >"$T/gen.out" 2>"$T/gen.err" &&
    grep -q "generated [0-4] tokens" "$T/gen.err"; then ok; else bad "generate on the tiny fixture: $(cat "$T/gen.err")"; fi
# errors: one line naming the path, exit 1
"$T/pc/classify" "$T/missing" "$T/ad" x >"$T/out" 2>"$T/err"
if [ $? -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "missing" "$T/err"; then ok; else bad "classify with a bad path: $(cat "$T/err")"; fi

# ---- SmolLM2 (GGUF): two LoRA steps on 20 SMS rows, classify, generate
M=${LORAC_CACHE:-$SRC/.cache}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
SMS=$DATA/sms_spam/SMSSpamCollection
if [ -f "$M" ] && [ -f "$SMS" ] && [ -z "$SAN" ]; then
    { grep -m 10 '^ham' "$SMS"; grep -m 10 '^spam' "$SMS"; } >"$T/sms20.tsv"
    if "$T/pc/train" "$M" "$T/sms20.tsv" "$T/smol" 2 >"$T/st.out" 2>"$T/st.err" && grep -q "^trained 2 steps" "$T/st.out"; then ok
    else bad "train on SmolLM2: $(cat "$T/st.out" "$T/st.err" | tail -3)"; fi
    "$T/cm/classify" "$M" "$T/smol" "WINNER! Claim your free prize now" "see you at lunch" >"$T/sc.out" 2>"$T/sc.err"
    if [ $? -eq 0 ] && [ "$(wc -l <"$T/sc.out")" -eq 2 ] && ! cut -f1 "$T/sc.out" | grep -vq '^ham$\|^spam$'; then ok
    else bad "classify on SmolLM2: $(cat "$T/sc.out" "$T/sc.err")"; fi
    "$T/cm/generate" "$M" - "The capital of France is" 6 >"$T/sg.out" 2>"$T/sg.err"
    if [ $? -eq 0 ] && grep -q "Paris" "$T/sg.out" && grep -q "^prompt [0-9]* tokens .*generated [1-6] tokens" "$T/sg.err"; then ok
    else bad "generate on SmolLM2: $(cat "$T/sg.out" "$T/sg.err")"; fi
    # the API's greedy text is the CLI's
    "$BIN" generate --model "$M" --prompt "The capital of France is" --max-new 6 >"$T/cli.out" 2>/dev/null
    if [ "$(cat "$T/sg.out")" = "The capital of France is$(cat "$T/cli.out")" ]; then ok; else bad "API text '$(cat "$T/sg.out")' != prompt + CLI text '$(cat "$T/cli.out")'"; fi
else
    echo "examples: SmolLM2 part skipped (model or SMS data missing: scripts/fetch-models; or a sanitizer build)"
fi
summary examples
