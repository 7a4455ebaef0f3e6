/* testutil.h - a tiny test harness: CHECK macros that count failures, and
 * helpers to find the shared data / fetched model cache. A test's main()
 * ends with `return test_summary("name");`, which prints
 * "name: N passed, M failed" and returns non-zero on any failure. */
#ifndef LORAC_TESTUTIL_H
#define LORAC_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int g_test_pass, g_test_fail;

#define CHECK(cond, ...)                                                           \
    do {                                                                           \
        if (cond) {                                                                \
            g_test_pass++;                                                         \
        } else {                                                                   \
            g_test_fail++;                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                          \
            fprintf(stderr, "\n");                                                 \
        }                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                             \
    do {                                                                           \
        lorac_status st__ = (expr);                                                \
        CHECK(st__ == LORAC_OK, "%s -> %s", #expr, lorac_last_error());            \
    } while (0)

/* Max |a-b| / (|b| + atol) style comparison; prints the worst index on failure. */
int test_close(const char *what, const float *a, const float *b, size_t n, double rtol, double atol);
/* max |a - b| / max |b| (a non-finite a counts as an infinite error; max |a - b| when b is all zero). */
double test_rel_err(const float *a, const float *b, size_t n);

/* Paths: $LORAC_DATA (../shared/data), $LORAC_CACHE (.cache), $LORAC_SRC (repo root).
 * Each writes "<root>/<rel>" into a static buffer and returns it. */
const char *test_data_path(const char *rel);
const char *test_cache_path(const char *rel);
const char *test_src_path(const char *rel);
/* A fresh temporary directory for this test (mkdtemp). */
const char *test_tmpdir(void);

int test_summary(const char *name);

/* API tests: expr returns status `want`, and lorac_last_error() is one line
 * mentioning `what` (the file using it includes lorac.h and string.h). */
#define CHECK_ERR(expr, want, what)                                                                               \
    do {                                                                                                          \
        lorac_status s__ = (expr);                                                                                \
        CHECK(s__ == (want) && strstr(lorac_last_error(), what) != NULL && !strchr(lorac_last_error(), '\n'),   \
              "%s -> %d (%s), want %d mentioning '%s'", #expr, (int)s__, lorac_last_error(), (int)(want), what);  \
    } while (0)

/* The API tests' tiny classification data in dir: a 20-word WordPiece vocab
 * (vocab.txt) and 80 ham / spam rows (sms.tsv); their paths into vocab and
 * sms (n bytes each). */
void test_write_sms_fixture(const char *dir, char *vocab, char *sms, size_t n);

/* rows x cols of GGML blocks of format f (malloc'd, *nbytes long): random
 * bytes exercise every bit of the packed codes and K-quant scales; the f16
 * scales are made finite and modest. */
struct lorac_rng;
uint8_t *test_random_ggml_blocks(struct lorac_rng *rng, int f, int64_t rows, int64_t cols, size_t *nbytes);

/* ---- fixture readers (exit(2) on a broken fixture: that is a test bug) ---- */
#include <cjson/cJSON.h>
#include "io/safetensors.h"
/* The tensor `name` of a fixture file; exits if absent. */
const lorac_tensor_desc *test_st_need(const lorac_st *st, const char *name);
/* A malloc'd fp32 copy of tensor `name` (any float dtype); *n gets its size (n may be NULL). */
float *test_st_f32(const lorac_st *st, const char *name, size_t *n);
/* A malloc'd int copy of an I64 tensor (safetensors data may be unaligned: read by memcpy). */
int *test_st_ints(const lorac_st *st, const char *name);
/* Parse a JSON file (NULL if unreadable or invalid). */
cJSON *test_read_json(const char *path);
/* Decode a hex string into malloc'd bytes (NUL-terminated), length in *n. */
char *test_unhex(const char *hex, size_t *n);

/* A random classification set for trainer tests: n examples of 3..8 ids in
 * [1, vocab), label = first id % 2, max_len 8. Free with lorac_tokenized_free. */
#include "train/batch.h"
lorac_tokenized test_random_tokenized(int n, int vocab, uint64_t seed);

/* ---- gradients of a model (tests comparing two backward passes) ---- */
struct lorac_model;
typedef struct test_grads {
    float *buf; /* every trainable gradient, in lorac_for_each_trainable's order */
    size_t n, cap;
} test_grads;
/* Zero every trainable gradient of m. */
void test_zero_grads(struct lorac_model *m);
/* Copy every trainable gradient of m into g (grown as needed; free g->buf). */
void test_collect_grads(struct lorac_model *m, test_grads *g);

#endif
