# common.bash - shared by the e2e scripts (sourced, not a test itself):
# environment from CTest, a temporary directory removed on exit, pass/fail
# counters, and `expect` for exit codes plus one-line errors.
set -u
BIN=${LORAC_BIN:?}
DATA=${LORAC_DATA:?}
SRC=${LORAC_SRC:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect CODE PATTERN -- command...: exit code and one stderr line matching PATTERN
expect() {
    local code=$1 pat=$2
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -ne "$code" ]; then bad "exit $rc (want $code): $*"; cat "$T/err" >&2; return; fi
    if [ "$code" -ne 0 ]; then
        if [ "$(wc -l <"$T/err")" -ne 1 ]; then bad "want one error line: $*"; cat "$T/err" >&2; return; fi
        if ! grep -q -- "$pat" "$T/err"; then bad "error '$(cat "$T/err")' lacks '$pat': $*"; return; fi
    fi
    ok
}

# tiny_sms_fixture: the tiny GPT-2 fixture model ($tiny), a small WordPiece
# vocab ($T/vocab.txt) whose ids stay below its vocab of 101, and an 80-row
# ham/spam file ($T/sms.tsv) - a real classification run in seconds.
tiny_sms_fixture() {
    tiny=$SRC/tests/fixtures/models/tiny_gpt2
    printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' win a prize now free cash claim see you at five ok call me \
        later lunch tomorrow >"$T/vocab.txt"
    for i in $(seq 1 20); do
        printf 'ham\tsee you at five\nspam\twin a prize now\nham\tok call me later\nspam\tclaim free cash now\n'
    done >"$T/sms.tsv"
}

# summary NAME: print "NAME: N passed, M failed" and return non-zero on any failure
summary() {
    echo "$1: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
