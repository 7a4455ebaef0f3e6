/* harness.h - the fuzz entry points, one per reader of hostile input.
 *
 * Each lorac_fuzz_<name>(data, size) feeds one input to a reader the way a
 * user's file would reach it (written to a per-process temporary directory
 * under the file name the reader expects) and, when the reader accepts it,
 * uses what it returned (tensor data converted, tokens encoded and decoded,
 * rows counted) so that a bad descriptor shows up as a sanitizer report. It
 * returns 0 whatever the reader said: an error status is a correct answer to
 * a bad file, a crash, leak or sanitizer report is not.
 *
 * The same functions serve two callers: the libFuzzer binaries fuzz/fuzz_*.c
 * built by scripts/fuzz (clang, -fsanitize=fuzzer,address,undefined) and
 * tests/unit/test_fuzz_regressions.c, which replays every file under
 * tests/fuzz-regressions/<name>/ with the normal compiler (and under the
 * suite's ASan build).
 *
 * Inputs that stand for several files (a sharded safetensors set, vocab.json
 * + merges.txt, a tokenizer with its config, an adapter directory) are the
 * files' bytes joined by LORAC_FUZZ_SEP; harness_*.c says which part is which. */
#ifndef LORAC_FUZZ_HARNESS_H
#define LORAC_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Every harness: X(name). The libFuzzer binary of `name` is fuzz_<name>, its
 * regression inputs live in tests/fuzz-regressions/<name>/. */
#define LORAC_FUZZ_HARNESSES(X) \
    X(safetensors)              \
    X(gguf)                     \
    X(config_json)              \
    X(tokenizer_json)           \
    X(vocab_merges)             \
    X(spm_model)                \
    X(adapter_config)           \
    X(dataset)                  \
    X(cli_args)                 \
    X(serve_request)

#define LORAC_FUZZ_DECLARE(name) int lorac_fuzz_##name(const uint8_t *data, size_t size);
LORAC_FUZZ_HARNESSES(LORAC_FUZZ_DECLARE)
#undef LORAC_FUZZ_DECLARE

/* ---- helpers shared by the harnesses (harness_common.c) ---- */

/* Separator between the files of a multi-file input. */
#define LORAC_FUZZ_SEP "\n--lorac-fuzz-next-file--\n"

typedef struct fuzz_part {
    const uint8_t *p;
    size_t n;
} fuzz_part;

/* Cut data at each LORAC_FUZZ_SEP into at most max parts (the last part
 * keeps any further separators). Returns the number of parts (>= 1). */
int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max);

/* Start a new input: remove every file written for the previous one, so
 * nothing leaks from one input into the next. */
void fuzz_reset(void);

/* Write n bytes to <dir>/<name> (name may hold one subdirectory,
 * "sub/file"); returns the full path (static storage, one of 8 slots). The
 * directory is private to this process and removed at exit. */
const char *fuzz_write(const char *name, const void *data, size_t n);

/* The per-process directory, or <dir>/<sub> (static storage, one of 8 slots). */
const char *fuzz_path(const char *sub);

/* Directory of the repository's test fixtures ($LORAC_SRC/tests/fixtures, or
 * the source tree this file was compiled from). */
const char *fuzz_fixture(const char *rel);

#endif
