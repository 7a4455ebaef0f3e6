/* test_gguf_quant.c - the GGML block quantizers (lorac_quant_row).
 *
 * a. Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: the bytes equal those of llama.cpp's gguf-py
 *    (gguf.quants.quantize) on the rows of tests/fixtures/gguf/quant_ref.safetensors
 *    (made by tests/ref/make_gguf_quant_fixtures.py), bit for bit.
 * b. Q4_K, Q6_K (lorac's own one-pass quantizers): the round trip through
 *    the bit-exact dequantizer is close, element by element, to the input:
 *    within one level of the sub-block's scale (half a level for rounding,
 *    plus the 6/8-bit quantization of the scales and the f16 super-block
 *    scale), and the RMS error is that of a 4-bit / 6-bit grid. (The other
 *    formats' round trips: test_gguf_grouped.c.)
 * c. Stochastic rounding (lorac_quant_row_rng, lorac_nf4_quantize_rng) is
 *    unbiased: many copies of a value between two levels average back to it.
 * d. Bad input: NaN, a non-block dtype, a partial block. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "io/safetensors.h"
#include "quant/ggml_blocks.h"
#include "quant/nf4.h"
#include "quant/qmatmul.h"
#include "testutil.h"

/* Every GGML block format. */
static const lorac_dtype g_block_types[] = {LORAC_Q4_0, LORAC_Q4_1, LORAC_Q5_0, LORAC_Q5_1, LORAC_Q8_0,  LORAC_Q2_K,
                                            LORAC_Q3_K, LORAC_Q4_K, LORAC_Q5_K, LORAC_Q6_K, LORAC_IQ4_NL, LORAC_IQ4_XS};
#define NBLOCK_TYPES (int)(sizeof g_block_types / sizeof g_block_types[0])

static void test_reference(void) {
    lorac_st *st = NULL;
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/gguf/quant_ref.safetensors"), &st));
    if (!st) return;
    const lorac_tensor_desc *src = lorac_st_find(st, "src");
    CHECK(src && src->dtype == LORAC_F32 && src->ndim == 2 && src->shape[1] % 256 == 0, "fixture: no [R, 256k] src");
    if (!src) return;
    const int64_t R = src->shape[0], C = src->shape[1];
    static const struct {
        const char *name;
        lorac_dtype t;
    } types[] = {{"q4_0", LORAC_Q4_0}, {"q4_1", LORAC_Q4_1}, {"q5_0", LORAC_Q5_0}, {"q5_1", LORAC_Q5_1}, {"q8_0", LORAC_Q8_0}};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const lorac_tensor_desc *ref = lorac_st_find(st, types[k].name);
        const size_t row_bytes = (size_t)(C / lorac_block_size(types[k].t)) * lorac_block_bytes(types[k].t);
        CHECK(ref && ref->dtype == LORAC_U8 && ref->nbytes == row_bytes * (size_t)R, "fixture: %s missing or sized wrong",
              types[k].name);
        if (!ref) continue;
        uint8_t *got = malloc(row_bytes);
        int bad_rows = 0, first = -1;
        for (int64_t r = 0; r < R; r++) {
            CHECK_OK(lorac_quant_row(types[k].t, (const float *)src->data + r * C, got, C));
            if (memcmp(got, (const uint8_t *)ref->data + r * row_bytes, row_bytes)) {
                bad_rows++;
                if (first < 0) first = (int)r;
            }
        }
        CHECK(bad_rows == 0, "%s: %d of %lld rows differ from gguf-py (first: row %d)", types[k].name, bad_rows,
              (long long)R, first);
        free(got);
    }
    lorac_st_close(st);
}

/* Round trip of n random values (Gaussian, plus an outlier per 256) through type t. */
static void test_round_trip(lorac_dtype t, double levels, double max_rel_rms) {
    enum { N = 256 * 64 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    uint8_t *q = malloc((size_t)N / (size_t)lorac_block_size(t) * lorac_block_bytes(t));
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) x[i] = (float)(0.02 * lorac_rng_normal(&rng) * (i % 256 == 17 ? 8 : 1));
    for (int i = 256 * 10; i < 256 * 11; i++) x[i] = 0.0f;         /* a zero super-block */
    for (int i = 256 * 11; i < 256 * 12; i++) x[i] = 0.125f;       /* a constant one */
    for (int i = 256 * 12; i < 256 * 13; i++) x[i] = (float)fabs(x[i]); /* all positive */
    CHECK_OK(lorac_quant_row(t, x, q, N));
    CHECK_OK(lorac_dequant_row(t, q, y, N));
    double se = 0, sx = 0;
    int far = 0;
    for (int b = 0; b < N / 16; b++) { /* per 16 values (a Q6_K sub-block; half a Q4_K one) */
        double lo = 0, hi = 0;
        for (int i = 16 * b; i < 16 * b + 16; i++) {
            lo = fmin(lo, x[i]);
            hi = fmax(hi, x[i]);
        }
        /* Q4_K's levels span [min(0, lo), hi] of its 32 values; take the wider 32-value range */
        const int b32 = b / 2 * 2;
        for (int i = 16 * b32; i < 16 * b32 + 32; i++) {
            lo = fmin(lo, x[i]);
            hi = fmax(hi, x[i]);
        }
        const double span = t == LORAC_Q6_K ? 2 * fmax(fabs(lo), fabs(hi)) : hi - fmin(lo, 0.0);
        const double step = span / levels;
        for (int i = 16 * b; i < 16 * b + 16; i++) {
            const double e = fabs((double)y[i] - x[i]);
            far += e > step + 1e-7;
            se += e * e;
            sx += (double)x[i] * x[i];
        }
    }
    const double rel = sqrt(se / sx);
    CHECK(far == 0, "%s: %d of %d values off by more than one level", lorac_dtype_name(t), far, N);
    CHECK(rel < max_rel_rms, "%s: RMS error %.4f of the RMS value (bound %.4f)", lorac_dtype_name(t), rel, max_rel_rms);
    printf("%s round trip: RMS error %.4f of the RMS value\n", lorac_dtype_name(t), rel);
    /* the zero block decodes to zeros, the constant one to within a level */
    int bad = 0;
    for (int i = 256 * 10; i < 256 * 11; i++) bad += y[i] != 0.0f;
    CHECK(bad == 0, "%s: %d values of a zero block decode non-zero", lorac_dtype_name(t), bad);
    free(x);
    free(y);
    free(q);
}

/* A whole matrix through lorac_qweight_quantize_ggml: the rows of lorac_quant_row, and a shape check. */
static void test_qweight(void) {
    enum { R = 5, C = 512 };
    static float w[R * C], y[R * C], z[C];
    static uint8_t row[C * 2];
    for (int i = 0; i < R * C; i++) w[i] = sinf(0.37f * (float)i) * (1 + (float)(i % 7));
    for (int k = 0; k < NBLOCK_TYPES; k++) {
        const lorac_dtype dt = g_block_types[k];
        const lorac_qformat f = lorac_qformat_of_dtype(dt);
        lorac_qweight q;
        CHECK_OK(lorac_qweight_quantize_ggml(&q, f, w, R, C));
        CHECK_OK(lorac_qweight_dequantize(&q, y));
        int bad = 0;
        for (int r = 0; r < R; r++) {
            CHECK_OK(lorac_quant_row(dt, w + r * C, row, C));
            CHECK_OK(lorac_dequant_row(dt, row, z, C));
            bad += memcmp(z, y + r * C, sizeof z) != 0;
        }
        CHECK(bad == 0 && q.owns && q.nbytes == (size_t)R * C / lorac_block_size(dt) * lorac_block_bytes(dt),
              "%s: %d rows differ from lorac_quant_row's", lorac_qformat_name(f), bad);
        lorac_qweight_free(&q);
    }
    lorac_qweight q;
    lorac_status st = lorac_qweight_quantize_ggml(&q, LORAC_QF_Q4_K, w, 4, 640);
    CHECK(st == LORAC_ERR_SHAPE && strstr(lorac_last_error(), "256"), "Q4_K of 640-value rows: %s", lorac_last_error());
    lorac_clear_error();
}

/* Stochastic rounding is unbiased: a value between two levels, repeated
 * (each block holding 0 and 1 to fix its range), averages back to itself
 * after the round trip; nearest rounding lands on one level. NF4 the same. */
static void test_stochastic(void) {
    enum { N = 256 * 64 };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    const float v = 0.137f;
    for (int i = 0; i < N; i++) x[i] = i % 32 == 0 ? 0.0f : i % 32 == 1 ? 1.0f : v;
    const lorac_dtype *ts = g_block_types;
    for (int k = 0; k < NBLOCK_TYPES; k++)
        for (int sto = 0; sto < 2; sto++) {
            lorac_rng rng;
            lorac_rng_seed(&rng, 11);
            CHECK_OK(lorac_quant_row_rng(ts[k], x, q, N, sto ? &rng : NULL));
            CHECK_OK(lorac_dequant_row(ts[k], q, y, N));
            double sum = 0;
            int cnt = 0;
            for (int i = 0; i < N; i++)
                if (i % 32 > 1) {
                    sum += y[i];
                    cnt++;
                }
            const double mean = sum / cnt;
            if (sto)
                CHECK(fabs(mean - v) < 1e-3, "%s stochastic: mean %.5f of %.5f", lorac_dtype_name(ts[k]), mean, (double)v);
            printf("%s %s rounding: mean of %d copies of %.4f -> %.5f\n", lorac_dtype_name(ts[k]), sto ? "stochastic" : "nearest",
                   cnt, (double)v, mean);
        }
    lorac_nf4 a, b;
    lorac_rng rng;
    lorac_rng_seed(&rng, 11);
    for (int i = 0; i < N; i++) x[i] = i % 64 == 0 ? 1.0f : v;
    CHECK_OK(lorac_nf4_quantize_rng(x, 64, N / 64, &rng, &a));
    CHECK_OK(lorac_nf4_quantize(x, 64, N / 64, &b));
    double ma = 0, mb = 0;
    CHECK_OK(lorac_nf4_dequantize(&a, y));
    for (int i = 0; i < N; i++) ma += i % 64 ? y[i] : 0;
    CHECK_OK(lorac_nf4_dequantize(&b, y));
    for (int i = 0; i < N; i++) mb += i % 64 ? y[i] : 0;
    ma /= N - N / 64;
    mb /= N - N / 64;
    CHECK(fabs(ma - v) < 1e-3, "NF4 stochastic: mean %.5f of %.5f", ma, (double)v);
    printf("NF4 stochastic rounding: mean %.5f, nearest %.5f (of %.4f)\n", ma, mb, (double)v);
    lorac_nf4_free(&a);
    lorac_nf4_free(&b);
}

static void test_bad_input(void) {
    float x[256] = {0};
    uint8_t q[256];
    x[5] = NAN;
    lorac_status st = lorac_quant_row(LORAC_Q8_0, x, q, 256);
    CHECK(st == LORAC_ERR_NUMERIC && strstr(lorac_last_error(), "element 5"), "NaN: %s", lorac_last_error());
    lorac_clear_error();
    x[5] = 0;
    st = lorac_quant_row(LORAC_F32, x, q, 256);
    CHECK(st == LORAC_ERR_ARG && strstr(lorac_last_error(), "F32"), "F32: %s", lorac_last_error());
    lorac_clear_error();
    st = lorac_quant_row(LORAC_Q4_K, x, q, 128);
    CHECK(st == LORAC_ERR_ARG && strstr(lorac_last_error(), "256"), "half a Q4_K block: %s", lorac_last_error());
    lorac_clear_error();
}

int main(void) {
    test_reference();
    /* 4-bit: 15 steps over the span (Q4_K's 6-bit scale may shrink it by half a step of 63: one level covers it);
       6-bit: levels -32..31 over [-amax, amax] */
    test_round_trip(LORAC_Q4_K, 15, 0.12);
    test_round_trip(LORAC_Q6_K, 63, 0.03);
    test_round_trip(LORAC_Q4_1, 15, 0.12);
    test_round_trip(LORAC_Q8_0, 127, 0.01);
    test_qweight();
    test_stochastic();
    test_bad_input();
    return test_summary("test_gguf_quant");
}
