/* qgemv.c - the small-N road of the quantized forward (qmatmul.h): for
 * N <= QMM_GEMV_MAX_N rows of x (a decoding step: one token, or a few
 * sequences decoding together), y = beta y + x W^T + b is N dot products
 * per row of W, and W is read once from memory. The int8-activation form
 * of it (the end of this file) also serves inference at any N (a prompt).
 *
 * Each OpenMP thread takes a band of W rows (ops/gemm.h, op_gemv_rows). A
 * row is walked in chunks of OP_GEMV_KC (256, a multiple of every block):
 * the chunk's blocks are dequantized by the ISA's dequantizer into a 1 KiB
 * buffer that stays in L1 (bit-identical values, as on the tiled road), and
 * the ISA's dot kernel multiplies it with the chunk of each of the N rows
 * of x (op_dot_rows_for: fp32 FMA lanes, the lanes' totals added in double).
 * F32 rows are read in place; BF16 rows are widened (exactly) in the buffer.
 *
 * Numerics: the dequantized values are exact, the sums are fp32 over at
 * most 16 products per lane then double, so the result is within the same
 * bound as the tiles (|fast - ref| <= 2e-6 * sum_k |x_k w_k|, test_qmatmul.c)
 * and does not depend on the thread count (each y element is one thread's). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/gemm.h"
#include "quant/qmatmul_impl.h"

typedef struct qgemv_ctx {
    const lorac_qkern *K;
    const lorac_qweight *W;
    op_dot_rows_fn dot;
    qmm_rowdot_fn fused; /* NULL: dequantize + dot */
} qgemv_ctx;

static void qgemv_row(const void *ctx, int64_t r, const float *x, int64_t ldx, int N, double *acc) {
    const qgemv_ctx *c = ctx;
    const lorac_qweight *W = c->W;
    if (c->fused) {
        c->fused(qmm_row_blocks(W, r), W->cols / lorac_qformat_row_block(W->fmt), x, ldx, N, acc);
        return;
    }
    const int64_t in = W->cols;
    float buf[OP_GEMV_KC] __attribute__((aligned(64)));
    for (int64_t k0 = 0; k0 < in; k0 += OP_GEMV_KC) {
        const int64_t kc = in - k0 < OP_GEMV_KC ? in - k0 : OP_GEMV_KC;
        const float *w = buf;
        if (W->fmt == LORAC_QF_F32) {
            w = (const float *)W->data + r * in + k0;
        } else if (W->fmt == LORAC_QF_BF16) { /* a bf16 is the top half of its fp32 */
            const uint16_t *h = (const uint16_t *)W->data + r * in + k0;
            uint32_t *u = (uint32_t *)(void *)buf;
            for (int64_t k = 0; k < kc; k++) u[k] = (uint32_t)h[k] << 16;
        } else {
            c->K->dequant(W, r, k0, k0 + kc, buf);
        }
        c->dot(kc, w, x + k0, ldx, N, acc);
    }
}

lorac_status qmm_gemv_fwd(const lorac_qkern *K, lorac_qisa isa, float *y, const float *x, const lorac_qweight *W,
                          const float *b, int64_t N, float beta) {
    const lorac_isa level = isa == LORAC_QISA_AVX512 ? LORAC_ISA_AVX512
                            : isa == LORAC_QISA_AVX2 ? LORAC_ISA_AVX2
                                                     : LORAC_ISA_SCALAR;
    const qgemv_ctx c = {K, W, op_dot_rows_for(level), K->rowdot ? K->rowdot(W->fmt) : NULL};
    op_gemv_rows((int)N, W->rows, W->cols, 1.0f, x, W->cols, qgemv_row, &c, b, beta, y, W->rows);
    return LORAC_OK;
}

/* ---- int8 activations (qdot.c) at any N: x quantized once, before the
 * threads split W, then each row of W dotted with it in integers.
 *
 * A decoding step (N <= QMM_GEMV_MAX_N) reads W once: each thread takes
 * bands of Q8_BAND rows and forms a row's N dot products from its blocks.
 * A prompt (N > QMM_GEMV_MAX_N) would read W N / 8 times if it ran that in
 * chunks of 8 rows of x; instead each task takes a tile of Q8_TILE W rows
 * (at most 64 x 2.7 KB = 175 KB of Q4_K blocks for Qwen2.5-0.5B's
 * 4864-wide down projection: it stays in L2) and passes every chunk of 8
 * rows of x over it, so W comes from memory once and is decoded once per
 * chunk from cache. The kernels are bound by their arithmetic there, not
 * by memory: tiles of 16 to 128 rows timed within 2% (bench_qmatmul decode
 * 120, Qwen2.5 shapes, one thread).
 *
 * Every y element is one kernel call over one chunk's rows plus the same
 * epilogue (op_gemv_rows' formula: acc, + b, + beta y, rounded once), and a
 * kernel treats each of its rows on its own (qdot_x86.inc: one accumulator
 * per row, the same operations whatever N), so a row of x gets the same y,
 * bit for bit, whatever N is, whichever chunk it falls in and however many
 * threads run: a prompt's rows equal those of N separate decode steps.
 * test_qdot.c checks that. ---- */

#define Q8_BAND 16 /* W rows per task for N <= 8 (op_gemv_rows' band) */
#define Q8_TILE 64 /* W rows per task for a prompt */
#define Q8_PAR_MACS (1 << 16) /* below this, one thread (op_gemv_rows' threshold) */

/* The rows n0 .. of x as a qmm_xq8 of their own. */
static qmm_xq8 xq8_rows(const qmm_xq8 *xq, int64_t n0) {
    qmm_xq8 v = *xq;
    v.q += n0 * v.ldq;
    v.d += n0 * v.ld32;
    v.s32 += n0 * v.ld32;
    v.s += n0 * v.ld16;
    return v;
}

/* y[n, r] = beta y[n, r] + x~[n] . W[r] + b[r] for W rows [r0, r1), every n < N. */
static void q8_tile(qmm_q8dot_fn dot, const qmm_xq8 *xq, const lorac_qweight *W, int64_t r0, int64_t r1,
                    const float *b, int64_t N, float beta, float *y) {
    const int64_t nb = W->cols / lorac_qformat_row_block(W->fmt);
    for (int64_t n0 = 0; n0 < N; n0 += QMM_GEMV_MAX_N) {
        const int nc = (int)(N - n0 < QMM_GEMV_MAX_N ? N - n0 : QMM_GEMV_MAX_N);
        const qmm_xq8 xc = xq8_rows(xq, n0);
        for (int64_t r = r0; r < r1; r++) {
            double acc[QMM_GEMV_MAX_N] = {0};
            dot(qmm_row_blocks(W, r), nb, &xc, nc, acc);
            for (int n = 0; n < nc; n++) {
                float *c = y + (n0 + n) * W->rows + r;
                double v = acc[n];
                if (b) v += b[r];
                if (beta != 0.0f) v += (double)beta * *c;
                *c = (float)v;
            }
        }
    }
}

lorac_status qmm_gemv_fwd_q8(qmm_q8dot_fn dot, float *y, const float *x, const lorac_qweight *W, const float *b,
                             int64_t N, float beta, const lorac_qepilogue *ep) {
    const size_t bytes = qmm_xq8_bytes(N, W->cols);
    _Alignas(64) unsigned char stack[16384];
    void *mem = bytes <= sizeof stack ? stack : aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!mem) return lorac_fail(LORAC_ERR_NOMEM, "quantized linear: out of memory for %zu bytes of int8 activations",
                                bytes);
    qmm_xq8 xq;
    qmm_xq8_quantize(&xq, mem, x, W->cols, N, W->cols);
    const int64_t tile = N <= QMM_GEMV_MAX_N ? Q8_BAND : Q8_TILE, ntiles = (W->rows + tile - 1) / tile;
    /* One region for the base and a caller's epilogue (a decoding step's
     * adapter term): its pre-work split over the threads, a barrier, then
     * each tile's rows finished by the thread that computed them. */
#pragma omp parallel if (ntiles > 1 && (double)N * W->rows * W->cols >= Q8_PAR_MACS && !omp_in_parallel())
    {
        if (ep) {
            ep->pre(ep->ctx, omp_get_thread_num(), omp_get_num_threads());
#pragma omp barrier
        }
#pragma omp for schedule(static)
        for (int64_t t = 0; t < ntiles; t++) {
            const int64_t r0 = t * tile, r1 = (t + 1) * tile < W->rows ? (t + 1) * tile : W->rows;
            q8_tile(dot, &xq, W, r0, r1, b, N, beta, y);
            if (ep) ep->rows(ep->ctx, r0, r1);
        }
    }
    if (mem != stack) free(mem);
    return LORAC_OK;
}
