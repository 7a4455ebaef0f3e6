/* test_qdot.c - the int8-activation GEMV road (qmatmul.h LORAC_QACT_Q8;
 * src/quant/qdot.c, qdot_x86.c).
 *
 *  1. the activation quantizer: |q| <= 127, |x - x~| <= dx / 2 per element
 *     (dx = max |x| / 127 of its group of 32), per-16 sums of x~ exact,
 *     all-zero groups zero, a NaN / inf in x a NaN in y;
 *  2. for every GGML block format and every ISA (scalar reference, AVX2,
 *     AVX-512 VNNI where the CPU has them), N = 1..8 rows, odd row counts
 *     and row lengths that leave partial 8-block chunks: the kernel equals
 *     x~ W^T (double, over the dequantized W) within the rounding of its own
 *     decomposition, |err| <= (G + 4) 2^-24 T, where T is the sum of the
 *     magnitudes of the products it adds, dx (|a| |u q| + |c'| |q|) per
 *     element (group form w = a u - c', u the levels as the kernel holds
 *     them), and G the groups of 32 per row (the longest chain of fp32
 *     additions in one lane); the scalar reference sums in double, so its
 *     own error is far below that. The group form itself must give the
 *     dequantizer's weights bit for bit;
 *  3. against the exact fp32-activation road (LORAC_QACT_F32): within
 *     sum_k |w_k| |x_k - x~_k| (what rounding x can change) + the bound of
 *     2. + the fp32 road's own 2e-6 sum |x w| (test_qmatmul.c);
 *  4. the result does not depend on the thread count (bit for bit), and
 *     lorac_qlinear_fwd (LORAC_QISA_AUTO) takes this road for N <= 8 and
 *     not under lorac_qact_force(LORAC_QACT_F32);
 *  5. the many-row road (lorac_qlinear_fwd_infer, N > 8): for every format
 *     and ISA, N in {9, 17, 33, 100}, odd shapes, with a bias and beta != 0,
 *     each row of y equals bit for bit that row of x alone (N = 1) and the
 *     rows taken 5 at a time, on 1 and on 2 threads; the training forward
 *     (lorac_qlinear_fwd) at N > 8 stays the fp32 tiles, and under
 *     LORAC_QACT_F32 the inference forward is the training one. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/util.h"
#include "ops/isa.h"
#include "quant/ggml_blocks_impl.h"
#include "quant/qmatmul.h"
#include "quant/qmatmul_impl.h"
#include "testutil.h"

#define EPS32 (1.0 / 16777216.0) /* 2^-24, fp32's unit roundoff */
#define TOL_F32 2e-6             /* the fp32 road vs the double reference (test_qmatmul.c) */

static lorac_rng g_rng;
static double g_worst_kernel, g_worst_vs_f32, g_dq_share;


/* x rows of mixed scales (groups spanning 1e-3 .. 10), one all-zero group. */
static float *random_x(int64_t N, int64_t in) {
    float *x = malloc(sizeof(float) * (size_t)(N * in));
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < in / 32; g++) {
            const float s = powf(10.0f, 4.0f * lorac_rng_uniform(&g_rng) - 3.0f);
            for (int k = 0; k < 32; k++)
                x[n * in + 32 * g + k] = (n == 0 && g == 1) ? 0.0f : lorac_rng_normal(&g_rng) * s;
        }
    return x;
}

static void test_quantizer(void) {
    const int64_t N = 3, in = 96;
    float *x = random_x(N, in);
    void *mem = malloc(qmm_xq8_bytes(N, in));
    qmm_xq8 xq;
    qmm_xq8_quantize(&xq, mem, x, in, N, in);
    int bad = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < in / 32; g++) {
            float amax = 0.0f;
            for (int k = 0; k < 32; k++) amax = fmaxf(amax, fabsf(x[n * in + 32 * g + k]));
            const float dx = xq.d[n * xq.ld32 + g];
            bad += fabsf(dx - amax / 127.0f) > 0.0f;
            for (int h = 0; h < 2; h++) {
                double sum = 0;
                for (int k = 16 * h; k < 16 * h + 16; k++) {
                    const int q = xq.q[n * xq.ldq + 32 * g + k];
                    const double xt = (double)dx * q, e = fabs(x[n * in + 32 * g + k] - xt);
                    bad += q < -127 || q > 127 || e > 0.5 * dx * (1 + 1e-6);
                    sum += q;
                }
                bad += xq.s[n * xq.ld16 + 2 * g + h] != dx * (float)sum;
            }
        }
    CHECK(bad == 0, "%d quantized activations off", bad);
    CHECK(xq.d[1] == 0.0f && xq.s[2] == 0.0f && xq.s[3] == 0.0f, "the all-zero group: dx %g", xq.d[1]);
    /* the AVX2 quantizer equals the scalar one byte for byte: ties of the
     * rounding (amax 127: x / dx = x, halves go to even), a NaN and an inf
     * group, the all-zero one */
    for (int k = 0; k < 32; k++) x[32 * 2 + k] = k == 0 ? 127.0f : (float)(k - 16) + 0.5f;
    x[in + 40] = NAN, x[2 * in + 70] = -INFINITY;
    const size_t bytes = qmm_xq8_bytes(N, in);
    void *ms = malloc(bytes);
    memset(ms, 0x55, bytes); /* padding included */
    const lorac_isa was = lorac_isa_force(LORAC_ISA_SCALAR);
    qmm_xq8_quantize(&xq, ms, x, in, N, in);
    lorac_isa_force(was);
    memset(mem, 0x55, bytes);
    qmm_xq8_quantize(&xq, mem, x, in, N, in);
    CHECK(!memcmp(mem, ms, bytes), "the %s activation quantizer differs from the scalar one", lorac_isa_name(was));
    CHECK(xq.q[64 + 3] == -12 && xq.q[64 + 4] == -12 && xq.q[64 + 5] == -10, "ties to even: %d %d %d",
          xq.q[64 + 3], xq.q[64 + 4], xq.q[64 + 5]);
    free(ms);
    free(mem);
    free(x);
}

/* The levels the SIMD kernels shift up to make them unsigned (u = v + z,
 * w = a u - (c + a z)): Q4_0 by 8, Q5_0 by 16, Q6_K by 32; the others are
 * unsigned already or go signed through _mm256_sign_epi8. */
static int shift_of(lorac_qformat f) {
    return f == LORAC_QF_Q4_0 ? 8 : f == LORAC_QF_Q5_0 ? 16 : f == LORAC_QF_Q6_K ? 32 : 0;
}

/* Per element of y[N, rows]: x~ W^T in double over the group form (which
 * must give the dequantizer's weights bit for bit: fl(fl(a v) - c) = w),
 * the rounding bound of part 2 and sum_k |w_k| |x_k - x~_k|. T adds every
 * product without cancellation: dx (|a| sum (|v| + z) |q| + (|c| + z |a|) sum |q|). */
static void exact_and_bound(lorac_qformat f, const lorac_qweight *W, const qmm_xq8 *xq, int64_t N, double *exact,
                            double *bound, double *dqerr, const float *x) {
    const int64_t rows = W->rows, in = W->cols, bs = lorac_qformat_row_block(f);
    const double z = shift_of(f);
    float *w = malloc(sizeof(float) * (size_t)in);
    ggml_groups G;
    int bad_w = 0;
    for (int64_t r = 0; r < rows; r++) {
        CHECK_OK(lorac_qweight_dequant_row(W, r, w));
        for (int64_t n = 0; n < N; n++) {
            const int8_t *q = xq->q + n * xq->ldq;
            double e = 0, T = 0, dq = 0;
            for (int64_t i = 0; i < in / bs; i++) {
                qmm_q8_unpack(f, qmm_row_blocks(W, r) + (size_t)i * qmm_block_bytes(f), &G);
                for (int64_t t = 0; t < bs; t++) {
                    const int64_t k = i * bs + t;
                    const float a = G.a[t / G.g], c = G.c[t / G.g];
                    const double dx = xq->d[n * xq->ld32 + k / 32], xt = dx * q[k];
                    bad_w += n == 0 && a * (float)G.v[t] - c != w[k];
                    e += ((double)a * G.v[t] - c) * xt;
                    T += dx * (fabs(a) * (abs(G.v[t]) + z) + fabs(c) + z * fabs(a)) * abs(q[k]);
                    dq += fabs((double)w[k]) * fabs((double)x[n * in + k] - xt);
                }
            }
            exact[n * rows + r] = e;
            bound[n * rows + r] = (double)(in / 32 + 4) * EPS32 * T + 1e-30;
            dqerr[n * rows + r] = dq;
        }
    }
    CHECK(bad_w == 0, "%s: %d weights of the group form differ from the dequantizer's", lorac_qformat_name(f), bad_w);
    free(w);
}

static const lorac_qisa g_isas[] = {LORAC_QISA_GENERIC, LORAC_QISA_AVX2, LORAC_QISA_AVX512};

static void check_format(lorac_qformat f, int64_t rows, int64_t in, int64_t N) {
    size_t nbytes;
    uint8_t *blocks = test_random_ggml_blocks(&g_rng, f, rows, in, &nbytes);
    lorac_qweight W;
    CHECK_OK(lorac_qweight_view(&W, f, blocks, nbytes, rows, in));
    float *x = random_x(N, in);
    void *mem = malloc(qmm_xq8_bytes(N, in));
    qmm_xq8 xq;
    qmm_xq8_quantize(&xq, mem, x, in, N, in);
    const size_t ny = (size_t)(N * rows);
    double *exact = malloc(sizeof(double) * ny), *bound = malloc(sizeof(double) * ny),
           *dqerr = malloc(sizeof(double) * ny), *sxw = malloc(sizeof(double) * ny);
    exact_and_bound(f, &W, &xq, N, exact, bound, dqerr, x);
    float *wrow = malloc(sizeof(float) * (size_t)in);
    for (int64_t r = 0; r < rows; r++) {
        CHECK_OK(lorac_qweight_dequant_row(&W, r, wrow));
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < in; k++) s += fabs((double)wrow[k] * x[n * in + k]);
            sxw[n * rows + r] = s;
        }
    }
    float *yf = malloc(sizeof(float) * ny), *yq = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    lorac_qact_force(LORAC_QACT_F32);
    CHECK_OK(lorac_qlinear_fwd_isa(LORAC_QISA_REF, yf, x, &W, NULL, N, 0.0f));
    lorac_qact_force(LORAC_QACT_Q8);
    for (size_t ii = 0; ii < sizeof g_isas / sizeof *g_isas; ii++) {
        const lorac_qisa isa = g_isas[ii];
        if (!lorac_qisa_supported(isa)) continue;
        CHECK(qmm_q8dot_for(isa, f) != NULL, "%s has no %s q8 kernel", lorac_qformat_name(f), lorac_qisa_name(isa));
        CHECK_OK(lorac_qlinear_fwd_isa(isa, yq, x, &W, NULL, N, 0.0f));
        int bad_k = 0, bad_f = 0;
        for (size_t i = 0; i < ny; i++) {
            const double ek = fabs(yq[i] - exact[i]), ok = bound[i] + 0.5 * EPS32 * fabs(exact[i]); /* + y's rounding */
            if (ek > ok) {
                if (!bad_k++)
                    fprintf(stderr, "%s %s N=%lld [%lld x %lld] y[%zu] = %.9g, x~ W^T = %.9g, bound %.3g\n",
                            lorac_qformat_name(f), lorac_qisa_name(isa), (long long)N, (long long)rows, (long long)in,
                            i, yq[i], exact[i], ok);
            }
            if (ek / ok > g_worst_kernel) g_worst_kernel = ek / ok;
            const double ef = fabs((double)yq[i] - yf[i]), of = dqerr[i] + ok + TOL_F32 * sxw[i];
            if (ef > of && !bad_f++)
                fprintf(stderr, "%s %s N=%lld: y[%zu] = %.9g vs fp32 road %.9g, bound %.3g\n", lorac_qformat_name(f),
                        lorac_qisa_name(isa), (long long)N, i, yq[i], yf[i], of);
            if (ef / of > g_worst_vs_f32) g_worst_vs_f32 = ef / of;
            if (sxw[i] > 0 && dqerr[i] / sxw[i] > g_dq_share) g_dq_share = dqerr[i] / sxw[i];
        }
        CHECK(bad_k == 0, "%s %s N=%lld: %d elements off x~ W^T", lorac_qformat_name(f), lorac_qisa_name(isa),
              (long long)N, bad_k);
        CHECK(bad_f == 0, "%s %s N=%lld: %d elements off the fp32 road", lorac_qformat_name(f), lorac_qisa_name(isa),
              (long long)N, bad_f);
        /* thread count: each y element is one thread's */
        const int nth = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK_OK(lorac_qlinear_fwd_isa(isa, y1, x, &W, NULL, N, 0.0f));
        omp_set_num_threads(nth);
        CHECK(!memcmp(y1, yq, sizeof(float) * ny), "%s %s N=%lld: 1 thread differs", lorac_qformat_name(f),
              lorac_qisa_name(isa), (long long)N);
    }
    free(yf), free(yq), free(y1), free(wrow), free(sxw), free(dqerr), free(bound), free(exact), free(mem), free(x);
    lorac_qweight_free(&W);
    free(blocks);
}

static void test_formats(void) {
    for (lorac_qformat f = LORAC_QF_Q4_0; f <= LORAC_QF_IQ4_XS; f++) {
        CHECK(qmm_q8_format(f), "%s", lorac_qformat_name(f));
        const int bs = lorac_qformat_row_block(f);
        /* rows: odd; in: one block, a partial 8-block chunk (9 blocks of 32), Qwen's 896 / 3 super-blocks */
        const int64_t ins32[] = {32, 288, 896}, ins256[] = {256, 768};
        const int64_t *ins = bs == 32 ? ins32 : ins256;
        const int nin = bs == 32 ? 3 : 2;
        for (int a = 0; a < nin; a++)
            for (int64_t N = 1; N <= QMM_GEMV_MAX_N; N++)
                if (N <= 3 || N == 5 || N == 8 || ins[a] <= 288) check_format(f, 37, ins[a], N);
    }
}

/* The default road picks the q8 kernels for N <= 8 unless LORAC_QACT_F32;
 * non-finite activations give non-finite outputs. */
static void test_switch(void) {
    const int64_t rows = 16, in = 64;
    size_t nbytes;
    uint8_t *blocks = test_random_ggml_blocks(&g_rng, LORAC_QF_Q4_0, rows, in, &nbytes);
    lorac_qweight W;
    CHECK_OK(lorac_qweight_view(&W, LORAC_QF_Q4_0, blocks, nbytes, rows, in));
    float *x = random_x(1, in), y[16], yq[16], yf[16];
    lorac_qact_force(LORAC_QACT_Q8);
    CHECK_OK(lorac_qlinear_fwd(y, x, &W, NULL, 1, 0.0f));
    CHECK_OK(lorac_qlinear_fwd_isa(lorac_qisa_best(), yq, x, &W, NULL, 1, 0.0f));
    CHECK(!memcmp(y, yq, sizeof y), "auto != best ISA on the q8 road");
    lorac_qact_force(LORAC_QACT_F32);
    CHECK(lorac_qact_active() == LORAC_QACT_F32, "force");
    CHECK_OK(lorac_qlinear_fwd(yf, x, &W, NULL, 1, 0.0f));
    CHECK(memcmp(y, yf, sizeof y) != 0, "LORAC_QACT_F32 gave the q8 result");
    lorac_qact_force(LORAC_QACT_Q8);
    x[5] = NAN;
    CHECK_OK(lorac_qlinear_fwd(y, x, &W, NULL, 1, 0.0f));
    int nan = 0;
    for (int i = 0; i < 16; i++) nan += isnan(y[i]);
    CHECK(nan == 16, "NaN in x: %d of 16 outputs NaN", nan);
    free(x);
    lorac_qweight_free(&W);
    free(blocks);
}

/* Part 5: y = beta y0 + x W^T + b for N rows, on the inference road at once,
 * row by row, and in chunks of 5 rows (each chunk starting at a row that
 * is no multiple of 8), on 1 and 2 threads: all bit for bit the same. */
static void check_many_rows(lorac_qformat f, lorac_qisa isa, int64_t rows, int64_t in, int64_t N) {
    size_t nbytes;
    uint8_t *blocks = test_random_ggml_blocks(&g_rng, f, rows, in, &nbytes);
    lorac_qweight W;
    CHECK_OK(lorac_qweight_view(&W, f, blocks, nbytes, rows, in));
    float *x = random_x(N, in), *bias = malloc(sizeof(float) * (size_t)rows);
    const size_t ny = (size_t)(N * rows);
    float *y0 = malloc(sizeof(float) * ny), *ya = malloc(sizeof(float) * ny), *yr = malloc(sizeof(float) * ny),
          *yc = malloc(sizeof(float) * ny), *y1 = malloc(sizeof(float) * ny);
    for (int64_t r = 0; r < rows; r++) bias[r] = lorac_rng_normal(&g_rng);
    for (size_t i = 0; i < ny; i++) y0[i] = lorac_rng_normal(&g_rng);
    const float beta = 0.75f;
    memcpy(ya, y0, sizeof(float) * ny), memcpy(yr, y0, sizeof(float) * ny), memcpy(yc, y0, sizeof(float) * ny);
    memcpy(y1, y0, sizeof(float) * ny);
    CHECK_OK(lorac_qlinear_fwd_infer_isa(isa, ya, x, &W, bias, N, beta));
    for (int64_t n = 0; n < N; n++)
        CHECK_OK(lorac_qlinear_fwd_isa(isa, yr + n * rows, x + n * in, &W, bias, 1, beta));
    for (int64_t n = 0; n < N; n += 5)
        CHECK_OK(lorac_qlinear_fwd_isa(isa, yc + n * rows, x + n * in, &W, bias, N - n < 5 ? N - n : 5, beta));
    const int nth = omp_get_max_threads();
    omp_set_num_threads(nth > 1 ? 1 : 2);
    CHECK_OK(lorac_qlinear_fwd_infer_isa(isa, y1, x, &W, bias, N, beta));
    omp_set_num_threads(nth);
    int64_t bad_r = 0, bad_c = 0;
    for (size_t i = 0; i < ny; i++) bad_r += memcmp(&ya[i], &yr[i], sizeof(float)) != 0;
    for (size_t i = 0; i < ny; i++) bad_c += memcmp(&ya[i], &yc[i], sizeof(float)) != 0;
    CHECK(bad_r == 0, "%s %s N=%lld [%lld x %lld]: %lld elements differ from the rows alone", lorac_qformat_name(f),
          lorac_qisa_name(isa), (long long)N, (long long)rows, (long long)in, (long long)bad_r);
    CHECK(bad_c == 0, "%s %s N=%lld: %lld elements differ from chunks of 5 rows", lorac_qformat_name(f),
          lorac_qisa_name(isa), (long long)N, (long long)bad_c);
    CHECK(!memcmp(ya, y1, sizeof(float) * ny), "%s %s N=%lld: the thread count changes y", lorac_qformat_name(f),
          lorac_qisa_name(isa), (long long)N);
    /* training keeps the fp32 tiles at N > 8; LORAC_QACT_F32 makes inference take them too */
    memcpy(yr, y0, sizeof(float) * ny), memcpy(yc, y0, sizeof(float) * ny);
    CHECK_OK(lorac_qlinear_fwd_isa(isa, yr, x, &W, bias, N, beta));
    CHECK_OK(qmm_fwd_tiles_isa(isa, yc, x, &W, bias, N, beta));
    CHECK(!memcmp(yr, yc, sizeof(float) * ny), "%s %s N=%lld: training's forward left the tiles",
          lorac_qformat_name(f), lorac_qisa_name(isa), (long long)N);
    CHECK(memcmp(ya, yc, sizeof(float) * ny) != 0, "%s %s N=%lld: the inference road gave the fp32 result",
          lorac_qformat_name(f), lorac_qisa_name(isa), (long long)N);
    lorac_qact_force(LORAC_QACT_F32);
    memcpy(yr, y0, sizeof(float) * ny);
    CHECK_OK(lorac_qlinear_fwd_infer_isa(isa, yr, x, &W, bias, N, beta));
    CHECK(!memcmp(yr, yc, sizeof(float) * ny), "%s %s N=%lld: LORAC_QACT_F32 inference is not the fp32 road",
          lorac_qformat_name(f), lorac_qisa_name(isa), (long long)N);
    lorac_qact_force(LORAC_QACT_Q8);
    free(y0), free(ya), free(yr), free(yc), free(y1), free(bias), free(x);
    lorac_qweight_free(&W);
    free(blocks);
}

static void test_many_rows(void) {
    const int64_t Ns[] = {9, 17, 33, 100};
    lorac_qact_force(LORAC_QACT_Q8);
    for (lorac_qformat f = LORAC_QF_Q4_0; f <= LORAC_QF_IQ4_XS; f++)
        for (size_t ii = 0; ii < sizeof g_isas / sizeof *g_isas; ii++) {
            if (!lorac_qisa_supported(g_isas[ii])) continue;
            const int64_t in = lorac_qformat_row_block(f) == 32 ? 288 : 512; /* 9 blocks of 32 / 2 super-blocks */
            for (int a = 0; a < 4; a++) /* 67 and 131 rows: one and two 64-row tiles plus a ragged one */
                check_many_rows(f, g_isas[ii], a < 2 ? 67 : 131, in, Ns[a]);
        }
}

int main(void) {
    lorac_rng_seed(&g_rng, 20251204);
    printf("qdot: best ISA %s; q8 kernels: avx2 %d, vnni %d\n", lorac_qisa_name(lorac_qisa_best()),
           qmm_q8dot_avx2(LORAC_QF_Q4_0) != NULL, qmm_q8dot_vnni(LORAC_QF_Q4_0) != NULL);
    test_quantizer();
    test_formats();
    test_switch();
    test_many_rows();
    printf("worst |kernel - x~ W^T| / bound = %.3g; worst |q8 - fp32 road| / bound = %.3g; "
           "activation rounding sum|w||x - x~| / sum|x w| up to %.3g\n",
           g_worst_kernel, g_worst_vs_f32, g_dq_share);
    return test_summary("test_qdot");
}
