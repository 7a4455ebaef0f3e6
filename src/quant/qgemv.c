/* qgemv.c - the small-N road of the quantized forward (qmatmul.h): for
 * N <= QMM_GEMV_MAX_N rows of x (a decoding step: one token, or a few
 * sequences decoding together), y = beta y + x W^T + b is N dot products
 * per row of W, and W is read once from memory.
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

/* ---- int8 activations (qdot.c): x quantized once, before the threads
 * split the rows, then each row of W dotted with it in integers. ---- */

typedef struct qgemv_q8_ctx {
    const lorac_qweight *W;
    const qmm_xq8 *xq;
    qmm_q8dot_fn dot;
} qgemv_q8_ctx;

static void qgemv_q8_row(const void *ctx, int64_t r, const float *x, int64_t ldx, int N, double *acc) {
    (void)x, (void)ldx;
    const qgemv_q8_ctx *c = ctx;
    c->dot(qmm_row_blocks(c->W, r), c->W->cols / lorac_qformat_row_block(c->W->fmt), c->xq, N, acc);
}

lorac_status qmm_gemv_fwd_q8(qmm_q8dot_fn dot, float *y, const float *x, const lorac_qweight *W, const float *b,
                             int64_t N, float beta) {
    const size_t bytes = qmm_xq8_bytes(N, W->cols);
    _Alignas(64) unsigned char stack[16384];
    void *mem = bytes <= sizeof stack ? stack : aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!mem) return lorac_fail(LORAC_ERR_NOMEM, "quantized linear: out of memory for %zu bytes of int8 activations",
                                bytes);
    qmm_xq8 xq;
    qmm_xq8_quantize(&xq, mem, x, W->cols, N, W->cols);
    const qgemv_q8_ctx c = {W, &xq, dot};
    op_gemv_rows((int)N, W->rows, W->cols, 1.0f, x, W->cols, qgemv_q8_row, &c, b, beta, y, W->rows);
    if (mem != stack) free(mem);
    return LORAC_OK;
}
