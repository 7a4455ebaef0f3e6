/* qweight.c - the quantized weight handle (qmatmul.h): its formats and their
 * block sizes, views over GGUF blocks, quantizing fp32 rows to NF4 / the GGML
 * formats / bf16, checking a handle, and the scalar dequantizer every road
 * reads exact values from (the tiled and GEMV kernels' SIMD dequantizers
 * must match it bit for bit). The products over these weights are in
 * qmatmul.c (tiles, the whole-matrix road, the entry points), qgemv.c (the
 * small-N and int8-activation roads) and qdot.c. */
#include "quant/qmatmul.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "ops/gemm.h"
#include "quant/ggml_blocks.h"
#include "quant/qmatmul_impl.h"

/* ---- formats ------------------------------------------------------------ */

static const struct {
    const char *name;
    lorac_dtype dtype; /* the GGML dtype, or LORAC_F32 */
    int row_block;
} g_fmt[LORAC_QF_COUNT] = {
    [LORAC_QF_NONE] = {"none", LORAC_DTYPE_COUNT, 0}, [LORAC_QF_F32] = {"F32", LORAC_F32, 1},
    [LORAC_QF_NF4] = {"NF4", LORAC_DTYPE_COUNT, 1},   [LORAC_QF_Q4_0] = {"Q4_0", LORAC_Q4_0, 32},
    [LORAC_QF_Q4_1] = {"Q4_1", LORAC_Q4_1, 32},       [LORAC_QF_Q8_0] = {"Q8_0", LORAC_Q8_0, 32},
    [LORAC_QF_Q4_K] = {"Q4_K", LORAC_Q4_K, 256},      [LORAC_QF_Q6_K] = {"Q6_K", LORAC_Q6_K, 256},
    [LORAC_QF_Q5_0] = {"Q5_0", LORAC_Q5_0, 32},       [LORAC_QF_Q5_1] = {"Q5_1", LORAC_Q5_1, 32},
    [LORAC_QF_Q2_K] = {"Q2_K", LORAC_Q2_K, 256},      [LORAC_QF_Q3_K] = {"Q3_K", LORAC_Q3_K, 256},
    [LORAC_QF_Q5_K] = {"Q5_K", LORAC_Q5_K, 256},      [LORAC_QF_IQ4_NL] = {"IQ4_NL", LORAC_IQ4_NL, 32},
    [LORAC_QF_IQ4_XS] = {"IQ4_XS", LORAC_IQ4_XS, 256},
    [LORAC_QF_BF16] = {"BF16", LORAC_DTYPE_COUNT, 1}, /* made from fp32 by lorac_qweight_from_f32_bf16 */
};

static int fmt_ok(lorac_qformat f) { return f > LORAC_QF_NONE && f < LORAC_QF_COUNT; }
static int fmt_ggml(lorac_qformat f) { return f >= LORAC_QF_Q4_0 && f <= LORAC_QF_IQ4_XS; }

const char *lorac_qformat_name(lorac_qformat f) { return (unsigned)f < LORAC_QF_COUNT ? g_fmt[f].name : "?"; }

int lorac_qformat_row_block(lorac_qformat f) { return fmt_ok(f) ? g_fmt[f].row_block : 0; }

lorac_qformat lorac_qformat_of_dtype(lorac_dtype t) {
    for (int f = LORAC_QF_F32; f < LORAC_QF_COUNT; f++)
        if (f != LORAC_QF_NF4 && g_fmt[f].dtype == t) return (lorac_qformat)f;
    return LORAC_QF_NONE;
}

lorac_dtype qmm_dtype(lorac_qformat f) { return fmt_ggml(f) ? g_fmt[f].dtype : LORAC_DTYPE_COUNT; }

size_t qmm_block_bytes(lorac_qformat f) {
    return fmt_ggml(f) ? lorac_block_bytes(g_fmt[f].dtype) : f == LORAC_QF_BF16 ? 2 : 4;
}

const uint8_t *qmm_row_blocks(const lorac_qweight *w, int64_t r) {
    return (const uint8_t *)w->data + (size_t)r * (size_t)(w->cols / g_fmt[w->fmt].row_block) * qmm_block_bytes(w->fmt);
}

/* Bytes the shape needs for an F32 / GGML matrix; 0 on overflow. */
static size_t need_bytes(lorac_qformat f, int64_t rows, int64_t cols) {
    size_t blocks, total;
    if (!lorac_mul_ok((size_t)rows, (size_t)(cols / g_fmt[f].row_block), &blocks)) return 0;
    if (!lorac_mul_ok(blocks, qmm_block_bytes(f), &total)) return 0;
    return total;
}

lorac_status lorac_qweight_validate(const lorac_qweight *w) {
    if (!w) return lorac_fail(LORAC_ERR_ARG, "quantized weight: NULL");
    if (!fmt_ok(w->fmt)) return lorac_fail(LORAC_ERR_ARG, "quantized weight: unknown format %d", (int)w->fmt);
    const char *fn = g_fmt[w->fmt].name;
    if (w->fmt == LORAC_QF_NF4) {
        if (w->nf4.rows != w->rows || w->nf4.cols != w->cols)
            return lorac_fail(LORAC_ERR_SHAPE, "NF4 weight: shape [%lld, %lld] but its data is [%lld, %lld]",
                              (long long)w->rows, (long long)w->cols, (long long)w->nf4.rows,
                              (long long)w->nf4.cols);
        return lorac_nf4_validate(&w->nf4);
    }
    if (w->rows < 1 || w->cols < 1)
        return lorac_fail(LORAC_ERR_SHAPE, "%s weight: bad shape [%lld, %lld]", fn, (long long)w->rows,
                          (long long)w->cols);
    const int bs = g_fmt[w->fmt].row_block;
    if (w->cols % bs != 0)
        return lorac_fail(LORAC_ERR_SHAPE,
                          "%s weight [%lld, %lld]: %lld inputs per row is not a whole number of %d-element blocks",
                          fn, (long long)w->rows, (long long)w->cols, (long long)w->cols, bs);
    const size_t need = need_bytes(w->fmt, w->rows, w->cols);
    if (!need) return lorac_fail(LORAC_ERR_SHAPE, "%s weight: shape [%lld, %lld] too large", fn, (long long)w->rows,
                                 (long long)w->cols);
    if (w->nbytes != need) {
        const size_t bb = qmm_block_bytes(w->fmt);
        return lorac_fail(LORAC_ERR_SHAPE,
                          "%s weight [%lld, %lld]: %zu bytes (%zu blocks of %zu B%s) but the shape needs %zu (%lld "
                          "blocks)",
                          fn, (long long)w->rows, (long long)w->cols, w->nbytes, w->nbytes / bb, bb,
                          w->nbytes % bb ? " and a partial one" : "", need,
                          (long long)(w->rows * (w->cols / bs)));
    }
    if (!w->data) return lorac_fail(LORAC_ERR_ARG, "%s weight: no data", fn);
    return LORAC_OK;
}

lorac_status lorac_qweight_view(lorac_qweight *w, lorac_qformat fmt, const void *data, size_t nbytes, int64_t rows,
                                int64_t cols) {
    memset(w, 0, sizeof *w);
    if (!fmt_ok(fmt) || fmt == LORAC_QF_NF4)
        return lorac_fail(LORAC_ERR_ARG, "lorac_qweight_view: format %s cannot be viewed (NF4: use "
                          "lorac_qweight_from_nf4)", lorac_qformat_name(fmt));
    lorac_qweight v = {.fmt = fmt, .rows = rows, .cols = cols, .data = data, .nbytes = nbytes};
    LORAC_TRY(lorac_qweight_validate(&v));
    *w = v;
    return LORAC_OK;
}

lorac_status lorac_qweight_from_nf4(lorac_qweight *w, lorac_nf4 *q) {
    memset(w, 0, sizeof *w);
    LORAC_TRY(lorac_nf4_validate(q));
    w->fmt = LORAC_QF_NF4;
    w->rows = q->rows;
    w->cols = q->cols;
    w->nf4 = *q;
    w->owns = 1;
    memset(q, 0, sizeof *q);
    return LORAC_OK;
}

lorac_status lorac_qweight_from_f32_bf16(lorac_qweight *w, const float *W, int64_t rows, int64_t cols) {
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 1) return lorac_fail(LORAC_ERR_SHAPE, "BF16 weight: bad shape [%lld, %lld]", (long long)rows,
                                                (long long)cols);
    lorac_bf16 *d;
    LORAC_TRY(lorac_alloc((void **)&d, (size_t)rows * (size_t)cols, sizeof *d, "bf16 weight"));
    op_f32_to_bf16(d, W, (size_t)rows * (size_t)cols);
    *w = (lorac_qweight){.fmt = LORAC_QF_BF16, .rows = rows, .cols = cols, .data = d,
                         .nbytes = (size_t)rows * (size_t)cols * sizeof *d, .owns = 1};
    return LORAC_OK;
}

lorac_status lorac_qweight_quantize_ggml(lorac_qweight *w, lorac_qformat fmt, const float *W, int64_t rows, int64_t cols) {
    memset(w, 0, sizeof *w);
    if (!fmt_ggml(fmt))
        return lorac_fail(LORAC_ERR_ARG, "lorac_qweight_quantize_ggml: %s is no GGML block format", lorac_qformat_name(fmt));
    const int bs = g_fmt[fmt].row_block;
    if (rows < 1 || cols < 1 || cols % bs)
        return lorac_fail(LORAC_ERR_SHAPE, "%s weight [%lld, %lld]: rows of %lld values are not a whole number of %d-value "
                          "blocks", lorac_qformat_name(fmt), (long long)rows, (long long)cols, (long long)cols, bs);
    const size_t row_bytes = (size_t)(cols / bs) * qmm_block_bytes(fmt);
    uint8_t *d;
    LORAC_TRY(lorac_alloc((void **)&d, (size_t)rows, row_bytes, "quantized weight"));
    lorac_status st = LORAC_OK;
    for (int64_t r = 0; r < rows && st == LORAC_OK; r++)
        st = lorac_quant_row(g_fmt[fmt].dtype, W + r * cols, d + (size_t)r * row_bytes, cols);
    if (st != LORAC_OK) {
        free(d);
        return st;
    }
    *w = (lorac_qweight){.fmt = fmt, .rows = rows, .cols = cols, .data = d, .nbytes = (size_t)rows * row_bytes, .owns = 1};
    return LORAC_OK;
}

lorac_status lorac_qweight_quantize_nf4(lorac_qweight *w, const float *W, int64_t rows, int64_t cols) {
    memset(w, 0, sizeof *w);
    lorac_nf4 q;
    LORAC_TRY(lorac_nf4_quantize(W, rows, cols, &q));
    return lorac_qweight_from_nf4(w, &q);
}

void lorac_qweight_free(lorac_qweight *w) {
    if (!w) return;
    if (w->owns) {
        if (w->fmt == LORAC_QF_NF4)
            lorac_nf4_free(&w->nf4);
        else
            free((void *)w->data);
    }
    memset(w, 0, sizeof *w);
}

size_t lorac_qweight_nbytes(const lorac_qweight *w) {
    return w->fmt == LORAC_QF_NF4 ? lorac_nf4_nbytes(&w->nf4) : w->nbytes;
}

/* ---- scalar dequantization ------------------------------------------------ */

void qmm_dequant_scalar(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst) {
    if (w->fmt == LORAC_QF_NF4) {
        lorac_nf4_dequantize_range(&w->nf4, r * w->cols + c0, r * w->cols + c1, dst);
    } else if (w->fmt == LORAC_QF_F32) {
        memcpy(dst, (const float *)w->data + r * w->cols + c0, sizeof(float) * (size_t)(c1 - c0));
    } else if (w->fmt == LORAC_QF_BF16) {
        op_bf16_to_f32(dst, (const lorac_bf16 *)w->data + r * w->cols + c0, (size_t)(c1 - c0));
    } else {
        const int bs = g_fmt[w->fmt].row_block;
        lorac_dequant_row(g_fmt[w->fmt].dtype, qmm_row_blocks(w, r) + (size_t)(c0 / bs) * qmm_block_bytes(w->fmt),
                          dst, c1 - c0);
    }
}

lorac_status lorac_qweight_dequant_row(const lorac_qweight *w, int64_t r, float *dst) {
    LORAC_TRY(lorac_qweight_validate(w));
    if (r < 0 || r >= w->rows)
        return lorac_fail(LORAC_ERR_ARG, "dequantize row %lld of a %lld-row weight", (long long)r,
                          (long long)w->rows);
    qmm_dequant_scalar(w, r, 0, w->cols, dst);
    return LORAC_OK;
}

lorac_status lorac_qweight_dequantize(const lorac_qweight *w, float *dst) {
    LORAC_TRY(lorac_qweight_validate(w));
    for (int64_t r = 0; r < w->rows; r++) qmm_dequant_scalar(w, r, 0, w->cols, dst + r * w->cols);
    return LORAC_OK;
}
