/* test_gguf_grouped.c - the grouped GGML formats (Q5_0, Q5_1, Q2_K, Q3_K,
 * Q5_K, IQ4_NL, IQ4_XS; src/quant/ggml_grouped.c):
 *
 * a. Reading and dequantizing: tests/fixtures/gguf/grouped.gguf holds random
 *    blocks of every format; the GGUF reader gives each its dtype, and
 *    lorac_to_f32 equals gguf-py's dequantization (grouped_ref.safetensors)
 *    bit for bit. Both from tests/ref/make_gguf_grouped_fixtures.py.
 * b. The real files: Q5_0 tensors of Qwen2.5-Coder-0.5B-Instruct and Gemma 3
 *    270M (Q4_K_M) dequantize as gguf-py does, a few rows bit for bit and the
 *    whole tensor by the CRC-32 of its float32 bytes. Skipped when the models
 *    are not in .cache.
 * c. lorac's quantizers (Q5_0 / Q5_1 are checked bit for bit against gguf-py
 *    in test_gguf_quant.c): the round trip puts every value within half a
 *    step of the block's own grid (for the IQ4 formats: within half the gap
 *    between the two levels around it, or at the outer level when beyond
 *    it), the levels cover each sub-block's values, and the RMS error is that
 *    of the format's bits per weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/rng.h"
#include "core/util.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "quant/ggml_blocks.h"
#include "quant/ggml_blocks_impl.h"
#include "testutil.h"

static const struct {
    const char *name;
    lorac_dtype t;
    double max_rel_rms; /* round trip bound on Gaussian weights (seen: 0.046 0.034 0.317 0.146 0.035 0.077 0.079) */
} g_types[] = {
    {"q5_0", LORAC_Q5_0, 0.06},  {"q5_1", LORAC_Q5_1, 0.05},     {"q2_k", LORAC_Q2_K, 0.40},
    {"q3_k", LORAC_Q3_K, 0.20},  {"q5_k", LORAC_Q5_K, 0.05},     {"iq4_nl", LORAC_IQ4_NL, 0.10},
    {"iq4_xs", LORAC_IQ4_XS, 0.10},
};
#define NTYPES (int)(sizeof g_types / sizeof g_types[0])

/* Index of the first element whose bits differ, or -1. */
static int64_t first_diff(const float *a, const void *ref, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], (const char *)ref + 4 * i, 4)) return i;
    return -1;
}

static void test_fixture(void) {
    lorac_gguf *g = NULL;
    lorac_st *ref = NULL;
    CHECK_OK(lorac_gguf_open(test_src_path("tests/fixtures/gguf/grouped.gguf"), &g));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/gguf/grouped_ref.safetensors"), &ref));
    for (int k = 0; g && ref && k < NTYPES; k++) {
        const lorac_tensor_desc *t = lorac_gguf_find_tensor(g, g_types[k].name), *r = test_st_need(ref, g_types[k].name);
        CHECK(t && t->dtype == g_types[k].t && t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 256,
              "%s: dtype %s", g_types[k].name, t ? lorac_dtype_name(t->dtype) : "(missing)");
        if (!t) continue;
        CHECK(t->nbytes == 1024 / (size_t)lorac_block_size(t->dtype) * lorac_block_bytes(t->dtype), "%s: %zu bytes",
              t->name, t->nbytes);
        float x[1024];
        CHECK_OK(lorac_to_f32(x, t->data, t->dtype, 1024));
        const int64_t bad = first_diff(x, r->data, 1024);
        CHECK(bad < 0, "%s: element %lld is %.9g, gguf-py says %.9g", t->name, (long long)bad, bad < 0 ? 0 : x[bad],
              bad < 0 ? 0 : (double)((const float *)r->data)[bad]);
    }
    lorac_st_close(ref);
    lorac_gguf_close(g);
}

/* The Q5_0 tensors of one real file against real_q5_0_ref.safetensors. */
static void check_real(const lorac_st *ref, const char *tag, const char *rel, const char *const *tensors, int nt) {
    const char *path = test_cache_path(rel);
    if (!lorac_file_exists(path)) {
        printf("test_gguf_grouped: real %s GGUF skipped (%s absent)\n", tag, path);
        return;
    }
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    for (int k = 0; g && k < nt; k++) {
        const lorac_tensor_desc *t = lorac_gguf_find_tensor(g, tensors[k]);
        CHECK(t && t->dtype == LORAC_Q5_0 && t->ndim == 2, "%s %s: not a Q5_0 matrix", tag, tensors[k]);
        if (!t) continue;
        const int64_t rows = t->shape[0], cols = t->shape[1];
        float *x = malloc(sizeof(float) * (size_t)t->numel);
        CHECK_OK(lorac_to_f32(x, t->data, t->dtype, t->numel));
        char key[160];
        snprintf(key, sizeof key, "%s.%s.crc32", tag, tensors[k]);
        int *crc = test_st_ints(ref, key);
        const unsigned long got = crc32(crc32(0L, Z_NULL, 0), (const Bytef *)x, (uInt)(sizeof(float) * (size_t)t->numel));
        CHECK((unsigned long)(unsigned)crc[0] == got, "%s %s: CRC-32 of the dequantized tensor %08lx, gguf-py's %08x",
              tag, tensors[k], got, (unsigned)crc[0]);
        free(crc);
        int nrows = 0;
        for (int64_t r = 0; r < rows; r++) { /* the stored rows, where there are some */
            snprintf(key, sizeof key, "%s.%s.row%lld", tag, tensors[k], (long long)r);
            const lorac_tensor_desc *rr = lorac_st_find(ref, key);
            if (!rr) continue;
            nrows++;
            const int64_t bad = rr->numel == cols ? first_diff(x + r * cols, rr->data, cols) : 0;
            CHECK(bad < 0, "%s: element %lld differs from gguf-py", key, (long long)bad);
        }
        printf("%s %s: Q5_0 [%lld, %lld], CRC-32 %08lx and %d rows as gguf-py\n", tag, tensors[k], (long long)rows,
               (long long)cols, got, nrows);
        free(x);
    }
    lorac_gguf_close(g);
}

static void test_real(void) {
    lorac_st *ref = NULL;
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/gguf/real_q5_0_ref.safetensors"), &ref));
    if (!ref) return;
    static const char *const qwen[] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.23.ffn_up.weight"};
    static const char *const gemma[] = {"blk.0.attn_q.weight", "blk.0.attn_k.weight"};
    check_real(ref, "qwen", "models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", qwen, 3);
    check_real(ref, "gemma", "models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf", gemma, 2);
    lorac_st_close(ref);
}

/* How far a decoded value may be from x, given the block's unpacked grid
 * x = a * v - c: half the gap between the two levels around x, or the
 * distance to the outer level when x lies beyond it (Q5_0's levels, for
 * example, run from -16 to 15 steps: a value of the sign opposite to the
 * block's largest one may lie past the last level). Q5_0 and Q5_1 choose
 * their levels on the fp32 scale and min and store them rounded to f16 (as
 * gguf-py does, bit for bit), which moves the grid by up to 2^-11 of each:
 * that much more is allowed for them. */
static double allowed(lorac_dtype t, const ggml_groups *q, int e, float x) {
    static const int8_t uniform[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                       16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
    const int iq4 = t == LORAC_IQ4_NL || t == LORAC_IQ4_XS;
    const int lo = t == LORAC_Q5_0 ? -16 : t == LORAC_Q3_K ? -4 : 0;
    const int n = iq4 ? 16 : t == LORAC_Q2_K ? 4 : t == LORAC_Q3_K ? 8 : 32;
    const float a = q->a[e / q->g], c = q->c[e / q->g];
    if (a == 0.0f) return fabs((double)x + c);
    const double u = ((double)x + c) / a, aa = fabs(a);
    const double f16 = t == LORAC_Q5_0 || t == LORAC_Q5_1 ? (32 * aa + fabs(c)) / 2048 : 0;
    double lev[32];
    for (int i = 0; i < n; i++) lev[i] = iq4 ? ggml_iq4_levels[i] : uniform[i] + lo;
    if (u <= lev[0]) return (lev[0] - u) * aa + f16;
    if (u >= lev[n - 1]) return (u - lev[n - 1]) * aa + f16;
    int j = 0;
    while (u >= lev[j + 1]) j++;
    return 0.5 * (lev[j + 1] - lev[j]) * aa + f16;
}

static void test_round_trip(void) {
    enum { N = 256 * 64 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint8_t *q = malloc(N * 2);
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) x[i] = (float)(0.02 * lorac_rng_normal(&rng) * (i % 256 == 17 ? 8 : 1));
    for (int i = 256 * 10; i < 256 * 11; i++) x[i] = 0.0f;              /* a zero super-block */
    for (int i = 256 * 11; i < 256 * 12; i++) x[i] = 0.125f;            /* a constant one */
    for (int i = 256 * 12; i < 256 * 13; i++) x[i] = (float)fabs(x[i]); /* all positive */
    for (int k = 0; k < NTYPES; k++) {
        const lorac_dtype t = g_types[k].t;
        const int bs = lorac_block_size(t);
        const size_t bb = lorac_block_bytes(t);
        CHECK_OK(lorac_quant_row(t, x, q, N));
        CHECK_OK(lorac_dequant_row(t, q, y, N));
        double se = 0, sx = 0;
        int far = 0, nonzero = 0;
        for (int b = 0; b < N / bs; b++) {
            ggml_groups gq;
            ggml_groups_decode(t, q + (size_t)b * bb, &gq);
            for (int e = 0; e < bs; e++) {
                const int i = b * bs + e;
                const double err = fabs((double)y[i] - x[i]);
                far += err > allowed(t, &gq, e, x[i]) * (1 + 1e-5) + 1e-12;
                se += err * err;
                sx += (double)x[i] * x[i];
            }
        }
        for (int i = 256 * 10; i < 256 * 11; i++) nonzero += y[i] != 0.0f;
        const double rel = sqrt(se / sx);
        CHECK(far == 0, "%s: %d of %d values are not on the nearest level", lorac_dtype_name(t), far, N);
        CHECK(nonzero == 0, "%s: %d values of a zero block decode non-zero", lorac_dtype_name(t), nonzero);
        CHECK(rel < g_types[k].max_rel_rms, "%s: RMS error %.4f of the RMS value (bound %.2f)", lorac_dtype_name(t), rel,
              g_types[k].max_rel_rms);
        printf("%s round trip: RMS error %.4f of the RMS value\n", lorac_dtype_name(t), rel);
    }
    free(x);
    free(y);
    free(q);
}

int main(void) {
    test_fixture();
    test_real();
    test_round_trip();
    return test_summary("test_gguf_grouped");
}
