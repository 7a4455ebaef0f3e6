/* test_qmatmul.c - quantized linear kernels (src/quant/qmatmul.h).
 *
 *  1. the SIMD dequantizers equal the scalar ones bit for bit, every format;
 *  2. the scalar reference equals a plain fp32 BLAS matmul over the
 *     dequantized weight (op_linear_fwd / op_linear_bwd_x) within
 *     1e-5 * sum_k |x_k w_k| per element (+ the bias / beta / dx terms);
 *  3. each tiled path (generic C, AVX2, AVX-512 where this CPU has them)
 *     equals the reference within TOL_FAST * the same scale, forward and
 *     backward-to-inputs, over odd shapes: N in {1, 3, 17, 64} (and 2,
 *     4..8 on the smaller shapes: the GEMV road's every row count), out and in
 *     not multiples of 16 where the format allows it (Q4/Q5/Q8/IQ4_NL:
 *     in % 32 == 0, K-quants and IQ4_XS: in % 256 == 0, NF4 and F32: any),
 *     every GGML format lorac reads; the worst ratio seen is
 *     printed;
 *  4. the result does not depend on the thread count (bit for bit), and
 *     the default road (LORAC_QISA_AUTO: the whole-matrix oneDNN product
 *     when lorac has it, else the best tiled path) is within TOL_FAST of the
 *     reference too; for a BF16 weight on a CPU with native bf16 products
 *     it rounds the activations to bf16 first, so within TOL_BF16;
 *  5. the GGUF fixture tensors (tests/fixtures/gguf/types.gguf, dequantized
 *     by gguf.quants in types_ref.safetensors) through the qweight API;
 *  6. bad input: byte / block counts that disagree with the shape, rows
 *     that are not whole blocks, bad N or pointers: an error with a
 *     message, never a read past the end;
 *  7. the small-N (GEMV) road, N <= QMM_GEMV_MAX_N, which 3 and 4 already
 *     hold to TOL_FAST for N = 1..8 at every ISA: its dequantized values
 *     are bit for bit the scalar dequantizer's (x rows that are unit
 *     vectors pick single weights out exactly, fused kernels included), the
 *     old tiled road agrees with it, and op_gemm at M = 1..8 and its fp32
 *     GEMV kernel (ops/gemm.h, op_gemv_nt) are within TOL_FAST of a
 *     double-precision product at every SIMD level, over K with vector
 *     tails, padded strides, alpha and beta. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "io/gguf.h"
#include "ops/gemm.h"
#include "ops/isa.h"
#include "ops/ops.h"
#include "quant/ggml_blocks.h"
#include "quant/qmatmul.h"
#include "quant/qmatmul_impl.h"
#include "testutil.h"

#define TOL_REF 1e-5  /* reference vs fp32 BLAS over the dequantized weight */
#define TOL_FAST 2e-6 /* tiled fp32 paths vs the double-accumulating reference */
#define TOL_BF16 4e-3 /* x rounded to bf16 (relative error <= 2^-9) and fp32 accumulation */

static lorac_rng g_rng;
static double g_worst_fast, g_worst_ref, g_worst_auto;

static float *randn(size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = lorac_rng_normal(&g_rng) * scale;
    return x;
}


/* A weight of format f and shape [rows, cols]; *store keeps the bytes alive. */
static void make_weight(lorac_qweight *w, lorac_qformat f, int64_t rows, int64_t cols, void **store) {
    *store = NULL;
    if (f == LORAC_QF_NF4) {
        float *W = randn((size_t)(rows * cols), 0.05f);
        CHECK_OK(lorac_qweight_quantize_nf4(w, W, rows, cols));
        free(W);
    } else if (f == LORAC_QF_F32) {
        float *W = randn((size_t)(rows * cols), 0.05f);
        CHECK_OK(lorac_qweight_view(w, f, W, sizeof(float) * (size_t)(rows * cols), rows, cols));
        *store = W;
    } else if (f == LORAC_QF_BF16) {
        float *W = randn((size_t)(rows * cols), 0.05f);
        CHECK_OK(lorac_qweight_from_f32_bf16(w, W, rows, cols));
        free(W);
    } else {
        size_t nb = 0;
        uint8_t *p = test_random_ggml_blocks(&g_rng, f, rows, cols, &nb);
        CHECK_OK(lorac_qweight_view(w, f, p, nb, rows, cols));
        *store = p;
    }
}

/* |got - want| <= tol * scale + 1e-30 everywhere; records the worst ratio. */
static int close_scaled(const char *what, const float *got, const float *want, const double *scale, size_t n,
                        double tol, double *worst) {
    size_t bad = n;
    double wr = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]), r = d / (scale[i] + 1e-30);
        if (r > wr) wr = r;
        if (!(d <= tol * scale[i] + 1e-30) && bad == n) bad = i;
    }
    if (wr > *worst) *worst = wr;
    if (bad < n)
        fprintf(stderr, "%s: element %zu = %.9g, want %.9g (scale %.3g, ratio %.3g > %.1g)\n", what, bad, got[bad],
                want[bad], scale[bad], fabs((double)got[bad] - want[bad]) / scale[bad], tol);
    return bad == n;
}

static const lorac_qisa g_fast[] = {LORAC_QISA_GENERIC, LORAC_QISA_AVX2, LORAC_QISA_AVX512};

/* 1. SIMD dequantization == scalar, on whole rows and on aligned segments. */
static void check_dequant(const lorac_qweight *w, const char *tag) {
    const int64_t cols = w->cols;
    float *a = malloc(sizeof(float) * (size_t)cols), *b = malloc(sizeof(float) * (size_t)cols);
    const int bs = w->fmt == LORAC_QF_NF4 || w->fmt == LORAC_QF_F32 ? 1 : lorac_qformat_row_block(w->fmt);
    const lorac_qkern *ks[] = {qmm_kern_avx2(), qmm_kern_avx512()};
    for (int k = 0; k < 2; k++) {
        if (!ks[k]) continue;
        for (int64_t r = 0; r < w->rows; r += (w->rows > 8 ? 7 : 1)) {
            qmm_dequant_scalar(w, r, 0, cols, a);
            ks[k]->dequant(w, r, 0, cols, b);
            CHECK(memcmp(a, b, sizeof(float) * (size_t)cols) == 0, "%s %s: row %lld dequantization differs", tag,
                  k ? "avx512" : "avx2", (long long)r);
            /* a segment starting one block in (or at column 3 / 64 for NF4) */
            const int64_t c0 = bs > 1 ? (cols > bs ? bs : 0) : (cols > 70 ? 64 : 3 % cols);
            qmm_dequant_scalar(w, r, c0, cols, a);
            ks[k]->dequant(w, r, c0, cols, b);
            CHECK(memcmp(a, b, sizeof(float) * (size_t)(cols - c0)) == 0, "%s %s: row %lld segment differs", tag,
                  k ? "avx512" : "avx2", (long long)r);
        }
    }
    free(a);
    free(b);
}

/* 2-4 for one weight and one N. */
static void check_linear(const lorac_qweight *w, int64_t N, const char *tag) {
    const int64_t in = w->cols, out = w->rows;
    char what[160];
    float *Wd = malloc(sizeof(float) * (size_t)(in * out));
    CHECK_OK(lorac_qweight_dequantize(w, Wd));
    float *x = randn((size_t)(N * in), 1.0f), *dy = randn((size_t)(N * out), 1.0f);
    float *bias = randn((size_t)out, 0.5f), *y0 = randn((size_t)(N * out), 1.0f), *dx0 = randn((size_t)(N * in), 1.0f);
    float *yr = malloc(sizeof(float) * (size_t)(N * out)), *yf = malloc(sizeof(float) * (size_t)(N * out));
    float *yb = malloc(sizeof(float) * (size_t)(N * out));
    float *dxr = malloc(sizeof(float) * (size_t)(N * in)), *dxf = malloc(sizeof(float) * (size_t)(N * in));
    float *dxb = malloc(sizeof(float) * (size_t)(N * in));
    double *sy = malloc(sizeof(double) * (size_t)(N * out)), *sx = malloc(sizeof(double) * (size_t)(N * in));
    for (int pass = 0; pass < 2; pass++) { /* pass 0: beta 0 + bias; pass 1: beta 1, no bias */
        const float beta = pass ? 1.0f : 0.0f;
        const float *b = pass ? NULL : bias;
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < out; o++) {
                double s = b ? fabs(b[o]) : fabs(y0[n * out + o]);
                for (int64_t k = 0; k < in; k++) s += fabs((double)x[n * in + k] * Wd[o * in + k]);
                sy[n * out + o] = s;
            }
        memcpy(yr, y0, sizeof(float) * (size_t)(N * out));
        CHECK_OK(lorac_qlinear_fwd_isa(LORAC_QISA_REF, yr, x, w, b, N, beta));
        memcpy(yb, y0, sizeof(float) * (size_t)(N * out));
        op_linear_fwd(yb, x, Wd, b, (int)N, (int)in, (int)out, 0, beta);
        snprintf(what, sizeof what, "%s N=%lld fwd ref vs BLAS (beta %g)", tag, (long long)N, beta);
        CHECK(close_scaled(what, yr, yb, sy, (size_t)(N * out), TOL_REF, &g_worst_ref), "%s", what);
        for (size_t i = 0; i < sizeof g_fast / sizeof g_fast[0]; i++) {
            if (!lorac_qisa_supported(g_fast[i])) continue;
            memcpy(yf, y0, sizeof(float) * (size_t)(N * out));
            CHECK_OK(lorac_qlinear_fwd_isa(g_fast[i], yf, x, w, b, N, beta));
            snprintf(what, sizeof what, "%s N=%lld fwd %s (beta %g)", tag, (long long)N, lorac_qisa_name(g_fast[i]),
                     beta);
            CHECK(close_scaled(what, yf, yr, sy, (size_t)(N * out), TOL_FAST, &g_worst_fast), "%s", what);
        }
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < in; k++) {
            double s = fabs(dx0[n * in + k]);
            for (int64_t o = 0; o < out; o++) s += fabs((double)dy[n * out + o] * Wd[o * in + k]);
            sx[n * in + k] = s;
        }
    memcpy(dxr, dx0, sizeof(float) * (size_t)(N * in));
    CHECK_OK(lorac_qlinear_bwd_x_isa(LORAC_QISA_REF, dxr, dy, w, N));
    memcpy(dxb, dx0, sizeof(float) * (size_t)(N * in));
    op_linear_bwd_x(dxb, dy, Wd, (int)N, (int)in, (int)out, 0);
    snprintf(what, sizeof what, "%s N=%lld bwd ref vs BLAS", tag, (long long)N);
    CHECK(close_scaled(what, dxr, dxb, sx, (size_t)(N * in), TOL_REF, &g_worst_ref), "%s", what);
    for (size_t i = 0; i < sizeof g_fast / sizeof g_fast[0]; i++) {
        if (!lorac_qisa_supported(g_fast[i])) continue;
        memcpy(dxf, dx0, sizeof(float) * (size_t)(N * in));
        CHECK_OK(lorac_qlinear_bwd_x_isa(g_fast[i], dxf, dy, w, N));
        snprintf(what, sizeof what, "%s N=%lld bwd %s", tag, (long long)N, lorac_qisa_name(g_fast[i]));
        CHECK(close_scaled(what, dxf, dxr, sx, (size_t)(N * in), TOL_FAST, &g_worst_fast), "%s", what);
    }
    /* the default road (AUTO), forward with beta 1 and backward */
    const double tol_auto = w->fmt == LORAC_QF_BF16 && op_gemm_bf16_native() ? TOL_BF16 : TOL_FAST;
    memcpy(yf, y0, sizeof(float) * (size_t)(N * out));
    CHECK_OK(lorac_qlinear_fwd(yf, x, w, NULL, N, 1.0f));
    snprintf(what, sizeof what, "%s N=%lld fwd auto (%s)", tag, (long long)N, op_gemm_backend());
    CHECK(close_scaled(what, yf, yr, sy, (size_t)(N * out), tol_auto, &g_worst_auto), "%s", what);
    memcpy(dxf, dx0, sizeof(float) * (size_t)(N * in));
    CHECK_OK(lorac_qlinear_bwd_x(dxf, dy, w, N));
    snprintf(what, sizeof what, "%s N=%lld bwd auto (%s)", tag, (long long)N, op_gemm_backend());
    CHECK(close_scaled(what, dxf, dxr, sx, (size_t)(N * in), tol_auto, &g_worst_auto), "%s", what);
    free(Wd), free(x), free(dy), free(bias), free(y0), free(dx0), free(yr), free(yf), free(yb);
    free(dxr), free(dxf), free(dxb), free(sy), free(sx);
}

static void test_formats(void) {
    static const struct {
        lorac_qformat f;
        int64_t shapes[4][2]; /* [out, in] */
    } cases[] = {
        {LORAC_QF_F32, {{5, 7}, {67, 100}, {130, 333}, {17, 64}}},
        {LORAC_QF_NF4, {{5, 7}, {67, 100}, {130, 333}, {70, 320}}},
        {LORAC_QF_Q4_0, {{5, 32}, {67, 96}, {130, 288}, {3, 320}}},
        {LORAC_QF_Q4_1, {{5, 32}, {67, 96}, {130, 288}, {3, 320}}},
        {LORAC_QF_Q8_0, {{5, 32}, {67, 96}, {130, 288}, {3, 320}}},
        {LORAC_QF_Q4_K, {{3, 256}, {67, 256}, {130, 512}, {5, 768}}},
        {LORAC_QF_Q6_K, {{3, 256}, {67, 256}, {130, 512}, {5, 768}}},
        {LORAC_QF_Q5_0, {{5, 32}, {67, 96}, {130, 288}, {3, 320}}},
        {LORAC_QF_Q5_1, {{5, 32}, {67, 96}, {130, 288}, {3, 320}}},
        {LORAC_QF_IQ4_NL, {{5, 32}, {67, 96}, {130, 288}, {3, 320}}},
        {LORAC_QF_Q2_K, {{3, 256}, {67, 256}, {130, 512}, {5, 768}}},
        {LORAC_QF_Q3_K, {{3, 256}, {67, 256}, {130, 512}, {5, 768}}},
        {LORAC_QF_Q5_K, {{3, 256}, {67, 256}, {130, 512}, {5, 768}}},
        {LORAC_QF_IQ4_XS, {{3, 256}, {67, 256}, {130, 512}, {5, 768}}},
        {LORAC_QF_BF16, {{5, 7}, {67, 100}, {130, 333}, {17, 64}}},
    };
    static const int64_t Ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 17, 64};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int s = 0; s < 4; s++) {
            lorac_qweight w;
            void *store;
            const int64_t out = cases[c].shapes[s][0], in = cases[c].shapes[s][1];
            make_weight(&w, cases[c].f, out, in, &store);
            char tag[64];
            snprintf(tag, sizeof tag, "%s [%lld,%lld]", lorac_qformat_name(cases[c].f), (long long)out, (long long)in);
            check_dequant(&w, tag);
            for (size_t n = 0; n < sizeof Ns / sizeof Ns[0]; n++) /* N = 2, 4..8 on the two smaller shapes */
                if (s < 2 || Ns[n] == 1 || Ns[n] == 3 || Ns[n] > QMM_GEMV_MAX_N) check_linear(&w, Ns[n], tag);
            lorac_qweight_free(&w);
            free(store);
        }
}

/* A larger case: several row chunks and tasks per thread; the result must
 * not depend on the thread count. */
static void test_threads(void) {
    static const lorac_qformat fs[] = {LORAC_QF_NF4,  LORAC_QF_Q4_K, LORAC_QF_Q8_0,
                                       LORAC_QF_BF16, LORAC_QF_Q5_0, LORAC_QF_IQ4_XS};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        lorac_qweight w;
        void *store;
        const int64_t out = 200, in = lorac_qformat_row_block(fs[i]) == 256 ? 768 : 640;
        make_weight(&w, fs[i], out, in, &store);
        char tag[64];
        snprintf(tag, sizeof tag, "%s [%lld,%lld] threads", lorac_qformat_name(fs[i]), (long long)out, (long long)in);
        check_linear(&w, 203, tag);
        for (int64_t N = 1; N <= 203; N += N == 1 ? 4 : 197) { /* the GEMV road (1, 5) and the tiles (203) */
        float *x = randn((size_t)(N * in), 1.0f), *dy = randn((size_t)(N * out), 1.0f);
        float *y1 = malloc(sizeof(float) * (size_t)(N * out)), *y2 = malloc(sizeof(float) * (size_t)(N * out));
        float *d1 = calloc((size_t)(N * in), sizeof(float)), *d2 = calloc((size_t)(N * in), sizeof(float));
        const int nth = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK_OK(lorac_qlinear_fwd(y1, x, &w, NULL, N, 0.0f));
        CHECK_OK(lorac_qlinear_bwd_x(d1, dy, &w, N));
        omp_set_num_threads(nth > 1 ? nth : 3);
        CHECK_OK(lorac_qlinear_fwd(y2, x, &w, NULL, N, 0.0f));
        CHECK_OK(lorac_qlinear_bwd_x(d2, dy, &w, N));
        omp_set_num_threads(nth);
        CHECK(memcmp(y1, y2, sizeof(float) * (size_t)(N * out)) == 0, "%s N=%lld: fwd depends on the thread count", tag,
              (long long)N);
        CHECK(memcmp(d1, d2, sizeof(float) * (size_t)(N * in)) == 0, "%s: bwd depends on the thread count", tag);
        free(x), free(dy), free(y1), free(y2), free(d1), free(d2);
        }
        lorac_qweight_free(&w);
        free(store);
    }
}

/* 5. The GGUF fixture tensors through the qweight API. */
static void test_gguf_fixture(void) {
    lorac_gguf *g = NULL;
    lorac_st *ref = NULL;
    CHECK_OK(lorac_gguf_open(test_src_path("tests/fixtures/gguf/types.gguf"), &g));
    CHECK_OK(lorac_st_open(test_src_path("tests/fixtures/gguf/types_ref.safetensors"), &ref));
    static const char *names[] = {"q4_0", "q4_0_rand", "q4_1", "q4_1_rand", "q8_0", "q4_k", "q4_k_wide", "q6_k",
                                  "q6_k_wide"};
    for (size_t i = 0; g && ref && i < sizeof names / sizeof names[0]; i++) {
        const lorac_tensor_desc *t = lorac_gguf_find_tensor(g, names[i]);
        CHECK(t && t->ndim == 2, "%s in types.gguf", names[i]);
        if (!t) continue;
        lorac_qweight w;
        CHECK_OK(lorac_qweight_view(&w, lorac_qformat_of_dtype(t->dtype), t->data, t->nbytes, t->shape[0],
                                    t->shape[1]));
        size_t n = 0;
        float *want = test_st_f32(ref, names[i], &n);
        float *got = malloc(sizeof(float) * n);
        CHECK_OK(lorac_qweight_dequantize(&w, got));
        CHECK(n == (size_t)(w.rows * w.cols) && memcmp(got, want, sizeof(float) * n) == 0,
              "%s: dequantized differs from gguf.quants", names[i]);
        check_dequant(&w, names[i]);
        check_linear(&w, 5, names[i]);
        free(got);
        free(want);
    }
    lorac_st_close(ref);
    lorac_gguf_close(g);
}

/* 7a. Unit-vector rows of x pick weights out: y[n, o] = W[o, k_n] exactly
 * (one nonzero product, every other term +0), at every ISA, so the GEMV
 * road's dequantization (fused or through L1) is the scalar one bit for bit
 * (but for the sign of a zero weight: -0 + 0 is +0). */
static void test_gemv_exact(void) {
    for (int f = LORAC_QF_F32; f < LORAC_QF_COUNT; f++) {
        const int64_t out = 37, in = lorac_qformat_row_block((lorac_qformat)f) == 256 ? 512 : 96;
        const int64_t N = QMM_GEMV_MAX_N;
        lorac_qweight w;
        void *store;
        make_weight(&w, (lorac_qformat)f, out, in, &store);
        float *Wd = malloc(sizeof(float) * (size_t)(out * in)), *x = calloc((size_t)(N * in), sizeof(float));
        float *y = malloc(sizeof(float) * (size_t)(N * out));
        CHECK_OK(lorac_qweight_dequantize(&w, Wd));
        int64_t ks[QMM_GEMV_MAX_N];
        for (int64_t n = 0; n < N; n++) {
            ks[n] = n == 0 ? 0 : n == 1 ? in - 1 : (int64_t)(lorac_rng_u64(&g_rng) % (uint64_t)in);
            x[n * in + ks[n]] = 1.0f;
        }
        for (size_t i = 0; i < sizeof g_fast / sizeof g_fast[0]; i++) {
            if (!lorac_qisa_supported(g_fast[i])) continue;
            for (int64_t nn = 1; nn <= N; nn += 3) { /* 1, 4, 7 rows */
                CHECK_OK(lorac_qlinear_fwd_isa(g_fast[i], y, x, &w, NULL, nn, 0.0f));
                int bad = 0;
                for (int64_t n = 0; n < nn; n++)
                    for (int64_t o = 0; o < out; o++) bad += y[n * out + o] != Wd[o * in + ks[n]];
                CHECK(!bad, "%s %s N=%lld: %d weights picked out by unit vectors differ from the scalar dequantizer",
                      lorac_qformat_name((lorac_qformat)f), lorac_qisa_name(g_fast[i]), (long long)nn, bad);
            }
        }
        free(Wd), free(x), free(y);
        lorac_qweight_free(&w);
        free(store);
    }
}

/* 7b. The tiled road (the old small-N one) and the GEMV road agree. */
static void test_gemv_vs_tiles(void) {
    static const lorac_qformat fs[] = {LORAC_QF_Q4_1, LORAC_QF_Q5_0, LORAC_QF_Q6_K, LORAC_QF_NF4};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) {
        const int64_t out = 150, in = lorac_qformat_row_block(fs[i]) == 256 ? 768 : 608, N = 6;
        lorac_qweight w;
        void *store;
        make_weight(&w, fs[i], out, in, &store);
        float *Wd = malloc(sizeof(float) * (size_t)(out * in)), *x = randn((size_t)(N * in), 1.0f);
        float *y1 = malloc(sizeof(float) * (size_t)(N * out)), *y2 = malloc(sizeof(float) * (size_t)(N * out));
        double *sc = malloc(sizeof(double) * (size_t)(N * out));
        CHECK_OK(lorac_qweight_dequantize(&w, Wd));
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < out; o++) {
                double t = 0;
                for (int64_t k = 0; k < in; k++) t += fabs((double)x[n * in + k] * Wd[o * in + k]);
                sc[n * out + o] = 2 * t; /* each side within TOL_FAST of the exact sum */
            }
        CHECK_OK(qmm_fwd_tiles_isa(LORAC_QISA_AUTO, y1, x, &w, NULL, N, 0.0f));
        CHECK_OK(lorac_qlinear_fwd(y2, x, &w, NULL, N, 0.0f));
        char what[64];
        snprintf(what, sizeof what, "%s tiles vs GEMV", lorac_qformat_name(fs[i]));
        CHECK(close_scaled(what, y2, y1, sc, (size_t)(N * out), TOL_FAST, &g_worst_fast), "%s", what);
        free(Wd), free(x), free(y1), free(y2), free(sc);
        lorac_qweight_free(&w);
        free(store);
    }
}

/* 7c. op_gemm at small M and its GEMV kernel op_gemv_nt (which op_gemm runs
 * for one row against a large B) at every SIMD level. */
static void test_gemv_f32(void) {
    static const int Ks[] = {1, 7, 16, 33, 300, 577};
    const lorac_isa was = lorac_isa_active();
    for (int lv = LORAC_ISA_SCALAR; lv <= (int)lorac_isa_best(); lv++) {
        lorac_isa_force((lorac_isa)lv);
        for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
            for (int M = 1; M <= OP_GEMV_MAX_M; M++) {
                const int K = Ks[ki], N = 45 + 300 * (M == 2), lda = K + 3, ldb = K + 1, ldc = N + 2;
                float *A = randn((size_t)M * lda, 1.0f), *B = randn((size_t)N * ldb, 1.0f);
                float *C = randn((size_t)M * ldc, 1.0f), *C0 = malloc(sizeof(float) * (size_t)M * ldc);
                double *want = malloc(sizeof(double) * (size_t)M * ldc), *sc = malloc(sizeof(double) * (size_t)M * ldc);
                float *got = malloc(sizeof(float) * (size_t)M * ldc), *wantf = malloc(sizeof(float) * (size_t)M * ldc);
                memcpy(C0, C, sizeof(float) * (size_t)M * ldc);
                const float alpha = 0.5f, beta = M % 2 ? 0.25f : 0.0f;
                for (int road = 0; road < 2; road++) {
                memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
                if (road)
                    op_gemm(0, 1, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                else
                    op_gemv_nt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                size_t n = 0;
                for (int m = 0; m < M; m++)
                    for (int j = 0; j < N; j++, n++) {
                        double t = 0, a = 0;
                        for (int k = 0; k < K; k++) {
                            t += (double)A[m * lda + k] * B[j * ldb + k];
                            a += fabs((double)A[m * lda + k] * B[j * ldb + k]);
                        }
                        wantf[n] = (float)(alpha * t + (beta != 0.0f ? beta * (double)C0[m * ldc + j] : 0.0));
                        got[n] = C[m * ldc + j];
                        sc[n] = alpha * a + fabs(beta * (double)C0[m * ldc + j]);
                    }
                char what[96];
                snprintf(what, sizeof what, "%s %s M=%d N=%d K=%d", road ? "op_gemm" : "op_gemv_nt",
                         lorac_isa_name((lorac_isa)lv), M, N, K);
                CHECK(close_scaled(what, got, wantf, sc, n, TOL_FAST, &g_worst_fast), "%s", what);
                /* the padding of C is left alone */
                for (int m = 0; m < M; m++)
                    CHECK(C[m * ldc + N] == C0[m * ldc + N] && C[m * ldc + N + 1] == C0[m * ldc + N + 1],
                          "%s: wrote past the row", what);
                }
                free(A), free(B), free(C), free(C0), free(want), free(sc), free(got), free(wantf);
            }
    }
    lorac_isa_force(was);
}

/* 6. Bad input. */
static void test_errors(void) {
    size_t nb = 0;
    uint8_t *p = test_random_ggml_blocks(&g_rng, LORAC_QF_Q4_K, 4, 512, &nb); /* 8 blocks of 144 B */
    lorac_qweight w;
    /* one block short: the bytes are exactly what was allocated, a read past would be a bug */
    uint8_t *shortp = malloc(nb - 144);
    memcpy(shortp, p, nb - 144);
    lorac_status st = lorac_qweight_view(&w, LORAC_QF_Q4_K, shortp, nb - 144, 4, 512);
    CHECK(st == LORAC_ERR_SHAPE && strstr(lorac_last_error(), "7 blocks") && strstr(lorac_last_error(), "8 blocks"),
          "short by one block: %s", lorac_last_error());
    CHECK(lorac_qweight_view(&w, LORAC_QF_Q4_K, p, nb + 1, 4, 512) == LORAC_ERR_SHAPE, "a stray byte: %s",
          lorac_last_error());
    CHECK(lorac_qweight_view(&w, LORAC_QF_Q4_K, p, nb, 4, 384) == LORAC_ERR_SHAPE &&
              strstr(lorac_last_error(), "256-element blocks"),
          "384 inputs is not whole Q4_K blocks: %s", lorac_last_error());
    CHECK(lorac_qweight_view(&w, LORAC_QF_Q4_0, p, 18 * 3, 1, 100) == LORAC_ERR_SHAPE, "Q4_0 with 100 inputs: %s",
          lorac_last_error());
    CHECK(lorac_qweight_view(&w, LORAC_QF_NF4, p, nb, 4, 512) == LORAC_ERR_ARG, "NF4 is not a view");
    CHECK(lorac_qweight_view(&w, (lorac_qformat)42, p, nb, 4, 512) == LORAC_ERR_ARG, "unknown format");
    CHECK(lorac_qweight_view(&w, LORAC_QF_Q4_K, NULL, nb, 4, 512) == LORAC_ERR_ARG, "no data");
    CHECK(lorac_qweight_view(&w, LORAC_QF_Q4_K, p, nb, 0, 512) == LORAC_ERR_SHAPE, "zero rows");

    /* a handle whose fields were changed after validation is re-checked by every call */
    CHECK_OK(lorac_qweight_view(&w, LORAC_QF_Q4_K, p, nb, 4, 512));
    float x[4 * 512] = {0}, y[4 * 4] = {0}, dx[4 * 512] = {0};
    lorac_qweight bad = w;
    bad.data = shortp;
    bad.nbytes = nb - 144;
    for (int isa = LORAC_QISA_AUTO; isa <= LORAC_QISA_AVX512; isa++) {
        CHECK(lorac_qlinear_fwd_isa((lorac_qisa)isa, y, x, &bad, NULL, 4, 0.0f) == LORAC_ERR_SHAPE, "fwd %s: %s",
              lorac_qisa_name((lorac_qisa)isa), lorac_last_error());
        CHECK(lorac_qlinear_bwd_x_isa((lorac_qisa)isa, dx, y, &bad, 4) == LORAC_ERR_SHAPE, "bwd %s: %s",
              lorac_qisa_name((lorac_qisa)isa), lorac_last_error());
    }
    bad = w;
    bad.rows = 5; /* 5 rows need 10 blocks; there are 8 */
    CHECK(lorac_qlinear_fwd(y, x, &bad, NULL, 1, 0.0f) == LORAC_ERR_SHAPE, "rows vs blocks: %s", lorac_last_error());
    CHECK(lorac_qlinear_fwd(y, x, &w, NULL, -1, 0.0f) == LORAC_ERR_ARG, "N < 0");
    CHECK(lorac_qlinear_fwd(y, NULL, &w, NULL, 2, 0.0f) == LORAC_ERR_ARG, "NULL x");
    CHECK(lorac_qlinear_bwd_x(NULL, y, &w, 2) == LORAC_ERR_ARG, "NULL dx");
    CHECK(lorac_qlinear_fwd(y, x, NULL, NULL, 2, 0.0f) == LORAC_ERR_ARG, "NULL weight");
    CHECK_OK(lorac_qlinear_fwd(NULL, NULL, &w, NULL, 0, 0.0f)); /* N == 0 does nothing */
    CHECK(lorac_qlinear_fwd_isa((lorac_qisa)99, y, x, &w, NULL, 1, 0.0f) == LORAC_ERR_UNSUPPORTED, "bad isa");

    /* NF4 with block counts that disagree with the shape */
    float *W = randn(300, 1.0f);
    lorac_qweight q;
    CHECK_OK(lorac_qweight_quantize_nf4(&q, W, 3, 100));
    bad = q;
    bad.nf4.nblocks = 4;
    CHECK(lorac_qlinear_fwd(y, x, &bad, NULL, 1, 0.0f) == LORAC_ERR_SHAPE && strstr(lorac_last_error(), "blocks"),
          "NF4 block count: %s", lorac_last_error());
    bad = q;
    bad.rows = 4;
    CHECK(lorac_qlinear_bwd_x(dx, y, &bad, 1) == LORAC_ERR_SHAPE, "NF4 rows vs data: %s", lorac_last_error());
    CHECK(lorac_qweight_nbytes(&q) == 150 + 5 + 4 + 4, "NF4 nbytes %zu", lorac_qweight_nbytes(&q));
    float row[100];
    CHECK(lorac_qweight_dequant_row(&q, 3, row) == LORAC_ERR_ARG, "row out of range");
    lorac_qweight_free(&q);
    free(W);
    free(p);
    free(shortp);
}

int main(void) {
    lorac_rng_seed(&g_rng, 20240601);
    /* the fp32-activation roads throughout; test_qdot.c tests the int8 one */
    lorac_qact_force(LORAC_QACT_F32);
    printf("qmatmul: best ISA here = %s (avx2 %d, avx512 %d), %d threads\n", lorac_qisa_name(lorac_qisa_best()),
           lorac_qisa_supported(LORAC_QISA_AVX2), lorac_qisa_supported(LORAC_QISA_AVX512), omp_get_max_threads());
    test_formats();
    test_threads();
    test_gemv_exact();
    test_gemv_vs_tiles();
    test_gemv_f32();
    test_gguf_fixture();
    test_errors();
    printf("worst |fast - ref| / sum|x w| = %.3g (tolerance %.0e); worst |ref - BLAS| / sum|x w| = %.3g (%.0e); "
           "worst |auto - ref| / sum|x w| = %.3g (%s backend, bf16 native %d)\n",
           g_worst_fast, TOL_FAST, g_worst_ref, TOL_REF, g_worst_auto, op_gemm_backend(), op_gemm_bf16_native());
    return test_summary("test_qmatmul");
}
