/* qmatmul.c - quantized linear layers: the scalar reference, the tiled
 * driver shared by every SIMD flavour, the whole-matrix road and the entry
 * points (see qmatmul.h; the weight handles are in qweight.c).
 *
 * Tiled forward (y = x W^T): a task owns 64 output columns j0.. of y and a
 * chunk of its rows. For each K-slice of QMM_KC inputs it dequantizes the 64
 * W rows' slice and transposes it into panel[k][64] (64 KiB), then for each
 * 6 rows of x the micro-kernel computes the 6x64 block of partial sums,
 * which is added into y. Tiled backward (dx += dy W): a task owns a column
 * slice j0.. of dx (256 wide, or 64 when that gives the threads more to do)
 * and a chunk of rows; per QMM_KCB rows of W it dequantizes W[o0.., j0..]
 * straight into panel[o][256] (already the layout the kernel wants) and the
 * same micro-kernel accumulates dy[:, o0..] * panel into dx. */
#include "quant/qmatmul.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "quant/ggml_blocks.h"
#include "quant/qmatmul_impl.h"
#include "ops/gemm.h"
#include "ops/isa.h"
#include "ops/ops.h"
#include <pthread.h>

/* ---- generic (plain C) kernel pieces ------------------------------------- */

static void kernel_generic(int64_t kc, const float *const *a, const float *b, int64_t ldb, float *c) {
    float acc[QMM_MR][QMM_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++) {
        const float *bk = b + k * ldb;
        for (int i = 0; i < QMM_MR; i++) {
            const float ai = a[i][k];
            for (int j = 0; j < QMM_NR; j++) acc[i][j] += ai * bk[j];
        }
    }
    memcpy(c, acc, sizeof acc);
}

static void transpose16_generic(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t kc) {
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < 16; i++) dst[k * ldd + i] = src[i * lds + k];
}

const lorac_qkern qmm_kern_generic = {qmm_dequant_scalar, kernel_generic, transpose16_generic, NULL};

/* ---- ISA selection -------------------------------------------------------- */

const char *lorac_qisa_name(lorac_qisa isa) {
    switch (isa) {
    case LORAC_QISA_AUTO: return "auto";
    case LORAC_QISA_REF: return "ref";
    case LORAC_QISA_GENERIC: return "generic";
    case LORAC_QISA_AVX2: return "avx2";
    case LORAC_QISA_AVX512: return "avx512";
    }
    return "?";
}

static const lorac_qkern *kern_of(lorac_qisa isa) {
    switch (isa) {
    case LORAC_QISA_GENERIC: return &qmm_kern_generic;
    case LORAC_QISA_AVX2: return qmm_kern_avx2();
    case LORAC_QISA_AVX512: return qmm_kern_avx512();
    default: return NULL;
    }
}

int lorac_qisa_supported(lorac_qisa isa) {
    if (isa == LORAC_QISA_AUTO || isa == LORAC_QISA_REF || isa == LORAC_QISA_GENERIC) return 1;
    return kern_of(isa) != NULL;
}

/* The best tile kernel this CPU runs, at most the SIMD level LORAC_ISA allows
 * (ops/isa.h; "scalar" means the plain-C tiles). Each kernel's numerics are
 * its own whoever picks it. */
lorac_qisa lorac_qisa_best(void) {
    const lorac_isa cap = lorac_isa_active();
    if (cap >= LORAC_ISA_AVX512 && qmm_kern_avx512()) return LORAC_QISA_AVX512;
    if (cap >= LORAC_ISA_AVX2 && qmm_kern_avx2()) return LORAC_QISA_AVX2;
    return LORAC_QISA_GENERIC;
}

/* ---- argument checks ------------------------------------------------------ */

static lorac_status check_args(const char *fn, const void *out, const void *in, const lorac_qweight *W, int64_t N) {
    LORAC_TRY(lorac_qweight_validate(W));
    if (N < 0) return lorac_fail(LORAC_ERR_ARG, "%s: N = %lld rows", fn, (long long)N);
    if (N > 0 && (!out || !in)) return lorac_fail(LORAC_ERR_ARG, "%s: NULL activation pointer", fn);
    size_t t;
    if (!lorac_mul_ok((size_t)N, (size_t)(W->rows > W->cols ? W->rows : W->cols), &t) ||
        !lorac_mul_ok(t, sizeof(float), &t))
        return lorac_fail(LORAC_ERR_ARG, "%s: %lld rows x [%lld, %lld] overflows", fn, (long long)N,
                          (long long)W->rows, (long long)W->cols);
    return LORAC_OK;
}

/* ---- scalar reference --------------------------------------------------- */

static lorac_status fwd_ref(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N, float beta) {
    const int64_t in = W->cols, out = W->rows;
    float *wr = NULL;
    LORAC_TRY(lorac_alloc((void **)&wr, (size_t)in, sizeof(float), "dequantized row"));
    for (int64_t o = 0; o < out; o++) {
        qmm_dequant_scalar(W, o, 0, in, wr);
        for (int64_t n = 0; n < N; n++) {
            const float *xn = x + n * in;
            double acc = 0.0;
            for (int64_t k = 0; k < in; k++) acc += (double)xn[k] * (double)wr[k];
            if (b) acc += b[o];
            if (beta != 0.0f) acc += (double)beta * y[n * out + o];
            y[n * out + o] = (float)acc;
        }
    }
    free(wr);
    return LORAC_OK;
}

static lorac_status bwd_ref(float *dx, const float *dy, const lorac_qweight *W, int64_t N) {
    const int64_t in = W->cols, out = W->rows;
    float *wr = NULL;
    double *acc = NULL;
    LORAC_TRY(lorac_alloc((void **)&wr, (size_t)in, sizeof(float), "dequantized row"));
    lorac_status st = lorac_alloc((void **)&acc, (size_t)(N * in), sizeof(double), "reference accumulator");
    if (st) {
        free(wr);
        return st;
    }
    for (int64_t o = 0; o < out; o++) {
        qmm_dequant_scalar(W, o, 0, in, wr);
        for (int64_t n = 0; n < N; n++) {
            const double g = dy[n * out + o];
            double *an = acc + n * in;
            for (int64_t k = 0; k < in; k++) an[k] += g * (double)wr[k];
        }
    }
    for (int64_t i = 0; i < N * in; i++) dx[i] = (float)((double)dx[i] + acc[i]);
    free(wr);
    free(acc);
    return LORAC_OK;
}

/* ---- tiled driver ------------------------------------------------------- */

static const float g_zeros[QMM_KC > QMM_KCB ? QMM_KC : QMM_KCB];

/* Split N rows into chunks (multiples of QMM_MR) so that ntiles * nchunks
 * gives every thread several tasks; small N is not split. */
static int64_t row_chunk(int64_t N, int64_t ntiles, int nth) {
    const int64_t want = 4 * (int64_t)nth;
    int64_t nchunks = ntiles >= want ? 1 : (want + ntiles - 1) / ntiles;
    const int64_t maxchunks = (N + 95) / 96; /* keep >= ~96 rows per chunk */
    if (nchunks > maxchunks) nchunks = maxchunks;
    if (nchunks < 1) nchunks = 1;
    int64_t chunk = (N + nchunks - 1) / nchunks;
    chunk = (chunk + QMM_MR - 1) / QMM_MR * QMM_MR;
    return chunk > 0 ? chunk : QMM_MR;
}

static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

static lorac_status fwd_tiled(const lorac_qkern *K, float *y, const float *x, const lorac_qweight *W, const float *b,
                              int64_t N, float beta) {
    const int64_t in = W->cols, out = W->rows;
    const int64_t ntiles = (out + QMM_NR - 1) / QMM_NR;
    const int nth = omp_get_max_threads();
    const int64_t chunk = row_chunk(N, ntiles, nth);
    const int64_t nchunks = (N + chunk - 1) / chunk;
    const int64_t ntasks = ntiles * nchunks;
    int failed = 0;
#pragma omp parallel if (ntasks > 1 && (double)N * out * in > 1e6)
    {
        float *panel = alloc64(sizeof(float) * QMM_KC * QMM_NR);
        float *tmp = alloc64(sizeof(float) * 16 * QMM_KC);
        float *cb = alloc64(sizeof(float) * QMM_MR * QMM_NR);
        if (!panel || !tmp || !cb) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            if (!panel || !tmp || !cb) continue;
            const int64_t j0 = (t / nchunks) * QMM_NR, nc = out - j0 < QMM_NR ? out - j0 : QMM_NR;
            const int64_t n0 = (t % nchunks) * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
            for (int64_t n = n0; n < n1; n++) {
                float *yn = y + n * out + j0;
                for (int64_t j = 0; j < nc; j++) yn[j] = (beta != 0.0f ? beta * yn[j] : 0.0f) + (b ? b[j0 + j] : 0.0f);
            }
            for (int64_t k0 = 0; k0 < in; k0 += QMM_KC) {
                const int64_t kc = in - k0 < QMM_KC ? in - k0 : QMM_KC;
                /* panel[k][j] = W[j0 + j, k0 + k]; columns past nc are zero */
                for (int64_t g = 0; g < QMM_NR; g += 16) {
                    for (int i = 0; i < 16; i++) {
                        if (g + i < nc)
                            K->dequant(W, j0 + g + i, k0, k0 + kc, tmp + i * QMM_KC);
                        else
                            memset(tmp + i * QMM_KC, 0, sizeof(float) * (size_t)kc);
                    }
                    K->transpose16(tmp, QMM_KC, panel + g, QMM_NR, kc);
                }
                for (int64_t n = n0; n < n1; n += QMM_MR) {
                    const float *a[QMM_MR];
                    for (int i = 0; i < QMM_MR; i++) a[i] = n + i < n1 ? x + (n + i) * in + k0 : g_zeros;
                    K->kernel(kc, a, panel, QMM_NR, cb);
                    for (int i = 0; i < QMM_MR && n + i < n1; i++) {
                        float *yn = y + (n + i) * out + j0;
                        const float *ci = cb + i * QMM_NR;
                        for (int64_t j = 0; j < nc; j++) yn[j] += ci[j];
                    }
                }
            }
        }
        free(panel);
        free(tmp);
        free(cb);
    }
    return failed ? lorac_fail(LORAC_ERR_NOMEM, "quantized linear: out of memory for tile buffers") : LORAC_OK;
}

static lorac_status bwd_tiled(const lorac_qkern *K, float *dx, const float *dy, const lorac_qweight *W, int64_t N) {
    const int64_t in = W->cols, out = W->rows;
    const int nth = omp_get_max_threads();
    /* column slices of 256 (every task re-reads its rows of dy once per
     * slice, so wide is better); 64 when N is too small for row chunks to
     * keep the threads busy and the format allows it (K-quant blocks are
     * 256 wide) */
    int64_t ct = 256;
    if (N < 192 && (in + 255) / 256 < 2 * (int64_t)nth && lorac_qformat_row_block(W->fmt) <= 64) ct = 64;
    const int64_t ntiles = (in + ct - 1) / ct;
    const int64_t chunk = row_chunk(N, ntiles, nth);
    const int64_t nchunks = (N + chunk - 1) / chunk;
    const int64_t ntasks = ntiles * nchunks;
    int failed = 0;
#pragma omp parallel if (ntasks > 1 && (double)N * out * in > 1e6)
    {
        float *panel = alloc64(sizeof(float) * QMM_KCB * 256);
        float *cb = alloc64(sizeof(float) * QMM_MR * QMM_NR);
        if (!panel || !cb) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            if (!panel || !cb) continue;
            const int64_t j0 = (t / nchunks) * ct, nc = in - j0 < ct ? in - j0 : ct;
            const int64_t ncp = (nc + QMM_NR - 1) / QMM_NR * QMM_NR; /* padded to whole kernel widths */
            const int64_t n0 = (t % nchunks) * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
            for (int64_t o0 = 0; o0 < out; o0 += QMM_KCB) {
                const int64_t kc = out - o0 < QMM_KCB ? out - o0 : QMM_KCB;
                for (int64_t r = 0; r < kc; r++) {
                    float *pr = panel + r * 256;
                    K->dequant(W, o0 + r, j0, j0 + nc, pr);
                    if (ncp > nc) memset(pr + nc, 0, sizeof(float) * (size_t)(ncp - nc));
                }
                for (int64_t n = n0; n < n1; n += QMM_MR) {
                    const float *a[QMM_MR];
                    for (int i = 0; i < QMM_MR; i++) a[i] = n + i < n1 ? dy + (n + i) * out + o0 : g_zeros;
                    for (int64_t jj = 0; jj < nc; jj += QMM_NR) {
                        const int64_t w = nc - jj < QMM_NR ? nc - jj : QMM_NR;
                        K->kernel(kc, a, panel + jj, 256, cb);
                        for (int i = 0; i < QMM_MR && n + i < n1; i++) {
                            float *dn = dx + (n + i) * in + j0 + jj;
                            const float *ci = cb + i * QMM_NR;
                            for (int64_t j = 0; j < w; j++) dn[j] += ci[j];
                        }
                    }
                }
            }
        }
        free(panel);
        free(cb);
    }
    return failed ? lorac_fail(LORAC_ERR_NOMEM, "quantized linear: out of memory for tile buffers") : LORAC_OK;
}

/* ---- whole-matrix road (oneDNN backend) --------------------------------- */

/* Scratch for one call: W expanded to fp32, or the activations rounded to
 * bf16. Kept between calls (a step repeats the same sizes) under a lock. */
static struct {
    pthread_mutex_t lock;
    void *w, *x;
    size_t wcap, xcap;
} g_scr = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0};

static void *scratch(void **p, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        free(*p);
        *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
        *cap = *p ? bytes : 0;
    }
    return *p;
}

void lorac_qmatmul_release(void) {
    pthread_mutex_lock(&g_scr.lock);
    free(g_scr.w);
    free(g_scr.x);
    g_scr.w = g_scr.x = NULL;
    g_scr.wcap = g_scr.xcap = 0;
    pthread_mutex_unlock(&g_scr.lock);
}

/* Whether this call takes the whole-matrix road. */
static int whole_road(const lorac_qweight *W, int64_t N) {
    if (N < 16 || strcmp(op_gemm_backend(), "onednn") || omp_in_parallel()) return 0;
    return W->rows <= INT32_MAX && W->cols <= INT32_MAX && N <= INT32_MAX;
}

/* dst[r1 - r0, in] = rows [r0, r1) of W, every row by the fastest dequantizer. */
static void expand(float *dst, const lorac_qweight *W, int64_t r0, int64_t r1) {
    const lorac_qkern *K = kern_of(lorac_qisa_best());
#pragma omp parallel for schedule(static) if ((r1 - r0) * W->cols >= 65536)
    for (int64_t r = r0; r < r1; r++) K->dequant(W, r, 0, W->cols, dst + (r - r0) * W->cols);
}

/* At most this many weights are expanded at once: a Linear of the blocks is
 * one piece, a vocabulary-sized matrix (a tied LM head over a quantized
 * embedding) goes in slices of rows, so the scratch stays small. */
#define WHOLE_MAX_ELEMS ((int64_t)4 << 20)

/* The product on the whole-matrix road: y = beta y + x W^T (fwd) or
 * dx += dy W (bwd; x = dy, y = dx, beta = 1). 1 when done. */
static int whole_gemm(int bwd, float *y, const float *x, const lorac_qweight *W, int64_t N, float beta) {
    const int out = (int)W->rows, in = (int)W->cols, n = (int)N;
    const int kx = bwd ? out : in; /* columns of the activation operand */
    int done = 0;
    pthread_mutex_lock(&g_scr.lock);
    if (W->fmt == LORAC_QF_BF16 && op_gemm_bf16_native()) {
        lorac_bf16 *xb = scratch(&g_scr.x, &g_scr.xcap, sizeof *xb * (size_t)N * (size_t)kx);
        if (xb) {
            op_f32_to_bf16(xb, x, (size_t)N * (size_t)kx);
            if (bwd)
                op_gemm_bf16(0, 0, n, in, out, 1.0f, xb, out, W->data, in, 1.0f, y, in);
            else
                op_gemm_bf16(0, 1, n, out, in, 1.0f, xb, in, W->data, in, beta, y, out);
            done = 1;
        }
    } else {
        int64_t rows = WHOLE_MAX_ELEMS / in;
        if (rows < 64) rows = 64;
        if (rows > out) rows = out;
        float *wf = scratch(&g_scr.w, &g_scr.wcap, sizeof *wf * (size_t)rows * (size_t)in);
        for (int64_t r0 = 0; wf && r0 < out; r0 += rows) {
            const int rc = (int)(r0 + rows <= out ? rows : out - r0);
            expand(wf, W, r0, r0 + rc);
            if (bwd) /* dx += dy[:, r0:r0+rc] W[r0:r0+rc, :] */
                op_gemm(0, 0, n, in, rc, 1.0f, x + r0, out, wf, in, 1.0f, y, in);
            else     /* y[:, r0:r0+rc] = beta y[:, ...] + x W[r0:r0+rc, :]^T */
                op_gemm(0, 1, n, rc, in, 1.0f, x, in, wf, in, beta, y + r0, out);
            done = 1;
        }
    }
    pthread_mutex_unlock(&g_scr.lock);
    return done;
}

/* ---- entry points -------------------------------------------------------- */

/* The forward at every N. infer: no gradient follows (qmatmul.h,
 * lorac_qlinear_fwd_infer): the int8 road at any N where it is active, so a
 * prompt's rows get what decoding steps get. Otherwise (training) the int8
 * road for N <= 8 only, and the exact fp32 roads above that. */
static lorac_status fwd(lorac_qisa isa, int infer, float *y, const float *x, const lorac_qweight *W, const float *b,
                        int64_t N, float beta, const lorac_qepilogue *ep, int *ep_ran) {
    /* ep (NULL: none) runs inside the int8 road's region, which sets *ep_ran */
    LORAC_TRY(check_args("lorac_qlinear_fwd", y, x, W, N));
    if (N == 0) return LORAC_OK;
    if (isa == LORAC_QISA_REF) return fwd_ref(y, x, W, b, N, beta);
    const lorac_qisa use = isa == LORAC_QISA_AUTO ? lorac_qisa_best() : isa;
    const lorac_qkern *K = kern_of(use);
    if (!K) return lorac_fail(LORAC_ERR_UNSUPPORTED, "quantized linear: %s is not available on this CPU/build",
                              lorac_qisa_name(isa));
    if ((infer || N <= QMM_GEMV_MAX_N) && lorac_qact_active() == LORAC_QACT_Q8) {
        const qmm_q8dot_fn q8 = qmm_q8dot_for(use, W->fmt);
        if (q8) {
            if (ep_ran) *ep_ran = ep != NULL;
            return qmm_gemv_fwd_q8(q8, y, x, W, b, N, beta, ep);
        }
    }
    if (isa == LORAC_QISA_AUTO && whole_road(W, N) && whole_gemm(0, y, x, W, N, beta)) {
        if (b) op_add_bias(y, b, N, W->rows);
        return LORAC_OK;
    }
    if (N <= QMM_GEMV_MAX_N) return qmm_gemv_fwd(K, use, y, x, W, b, N, beta);
    return fwd_tiled(K, y, x, W, b, N, beta);
}

lorac_status lorac_qlinear_fwd_isa(lorac_qisa isa, float *y, const float *x, const lorac_qweight *W, const float *b,
                                   int64_t N, float beta) {
    return fwd(isa, 0, y, x, W, b, N, beta, NULL, NULL);
}

lorac_status lorac_qlinear_fwd_infer_isa(lorac_qisa isa, float *y, const float *x, const lorac_qweight *W,
                                         const float *b, int64_t N, float beta) {
    return fwd(isa, 1, y, x, W, b, N, beta, NULL, NULL);
}

lorac_status qmm_fwd_tiles_isa(lorac_qisa isa, float *y, const float *x, const lorac_qweight *W, const float *b,
                               int64_t N, float beta) {
    LORAC_TRY(check_args("lorac_qlinear_fwd", y, x, W, N));
    const lorac_qkern *K = kern_of(isa == LORAC_QISA_AUTO ? lorac_qisa_best() : isa);
    if (!K) return lorac_fail(LORAC_ERR_UNSUPPORTED, "quantized linear: %s is not available", lorac_qisa_name(isa));
    return N ? fwd_tiled(K, y, x, W, b, N, beta) : LORAC_OK;
}

lorac_status lorac_qlinear_bwd_x_isa(lorac_qisa isa, float *dx, const float *dy, const lorac_qweight *W, int64_t N) {
    LORAC_TRY(check_args("lorac_qlinear_bwd_x", dx, dy, W, N));
    if (N == 0) return LORAC_OK;
    if (isa == LORAC_QISA_REF) return bwd_ref(dx, dy, W, N);
    if (isa == LORAC_QISA_AUTO && whole_road(W, N) && whole_gemm(1, dx, dy, W, N, 1.0f)) return LORAC_OK;
    const lorac_qkern *K = kern_of(isa == LORAC_QISA_AUTO ? lorac_qisa_best() : isa);
    if (!K) return lorac_fail(LORAC_ERR_UNSUPPORTED, "quantized linear: %s is not available on this CPU/build",
                              lorac_qisa_name(isa));
    return bwd_tiled(K, dx, dy, W, N);
}

lorac_status lorac_qlinear_fwd(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N, float beta) {
    return lorac_qlinear_fwd_isa(LORAC_QISA_AUTO, y, x, W, b, N, beta);
}

lorac_status lorac_qlinear_fwd_infer(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N,
                                     float beta) {
    return fwd(LORAC_QISA_AUTO, 1, y, x, W, b, N, beta, NULL, NULL);
}

/* The int8 road runs ep inside its region (qgemv.c); every other road
 * reaches the end of fwd with ep not run yet, and it runs here. */
lorac_status lorac_qlinear_fwd_infer_ep(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N,
                                        float beta, const lorac_qepilogue *ep) {
    int ran = 0;
    LORAC_TRY(fwd(LORAC_QISA_AUTO, 1, y, x, W, b, N, beta, ep, &ran));
    if (ep && N > 0 && !ran) {
        ep->pre(ep->ctx, 0, 1);
        ep->rows(ep->ctx, 0, W->rows);
    }
    return LORAC_OK;
}

lorac_status lorac_qlinear_bwd_x(float *dx, const float *dy, const lorac_qweight *W, int64_t N) {
    return lorac_qlinear_bwd_x_isa(LORAC_QISA_AUTO, dx, dy, W, N);
}
