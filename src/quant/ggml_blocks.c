/* ggml_blocks.c - the GGML block formats' sizes and scalar reference
 * dequantizers.
 *
 * Each function reads one block at a time through byte offsets (the mapping
 * gives no alignment guarantee) and writes its elements in row order. The
 * arithmetic is done in fp32 in the same order as ggml-quants.c so results
 * match ggml (and the `gguf` Python package) bit for bit. Q4_0, Q4_1, Q8_0,
 * Q4_K and Q6_K are decoded here directly; the seven grouped formats (Q5_0,
 * Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS) are unpacked by ggml_grouped.c into
 * levels and per-group scales (ggml_blocks_impl.h). The quantizers are in
 * ggml_quant.c. */
#include "quant/ggml_blocks.h"

#include "quant/ggml_blocks_impl.h"

/* Element counts and byte sizes, indexed by lorac_dtype. */
static const struct {
    int block;
    size_t bytes;
} g_layout[LORAC_DTYPE_COUNT] = {
    [LORAC_F32] = {1, 4},  [LORAC_F16] = {1, 2},  [LORAC_BF16] = {1, 2},
    [LORAC_F64] = {1, 8},  [LORAC_I8] = {1, 1},   [LORAC_U8] = {1, 1},
    [LORAC_I16] = {1, 2},  [LORAC_I32] = {1, 4},  [LORAC_I64] = {1, 8},
    [LORAC_BOOL] = {1, 1}, [LORAC_Q4_0] = {QK_SMALL, 2 + 16},
    [LORAC_Q4_1] = {QK_SMALL, 2 + 2 + 16},        [LORAC_Q8_0] = {QK_SMALL, 2 + 32},
    [LORAC_Q4_K] = {QK_K, 2 + 2 + 12 + 128},      [LORAC_Q6_K] = {QK_K, 128 + 64 + 16 + 2},
    [LORAC_Q5_0] = {QK_SMALL, 2 + 4 + 16},        [LORAC_Q5_1] = {QK_SMALL, 2 + 2 + 4 + 16},
    [LORAC_Q2_K] = {QK_K, 16 + 64 + 2 + 2},       [LORAC_Q3_K] = {QK_K, 32 + 64 + 12 + 2},
    [LORAC_Q5_K] = {QK_K, 2 + 2 + 12 + 32 + 128}, [LORAC_IQ4_NL] = {QK_SMALL, 2 + 16},
    [LORAC_IQ4_XS] = {QK_K, 2 + 2 + 4 + 128},
};

int lorac_block_size(lorac_dtype t) { return (unsigned)t < LORAC_DTYPE_COUNT ? g_layout[t].block : 0; }

size_t lorac_block_bytes(lorac_dtype t) { return (unsigned)t < LORAC_DTYPE_COUNT ? g_layout[t].bytes : 0; }

int lorac_is_block_type(lorac_dtype t) { return t >= LORAC_Q4_0 && t <= LORAC_IQ4_XS; }

/* Q4_0: d, then 16 bytes; byte j = element j (low nibble), j+16 (high).
 * Value = (nibble - 8) * d. */
static void dequant_q4_0(const uint8_t *b, float *y) {
    const float d = ggml_half_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK_SMALL / 2; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + QK_SMALL / 2] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1: d, m, then 16 bytes as in Q4_0. Value = nibble * d + m. */
static void dequant_q4_1(const uint8_t *b, float *y) {
    const float d = ggml_half_at(b), m = ggml_half_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK_SMALL / 2; j++) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + QK_SMALL / 2] = (float)(qs[j] >> 4) * d + m;
    }
}

/* Q8_0: d, then 32 signed bytes. Value = q * d. */
static void dequant_q8_0(const uint8_t *b, float *y) {
    const float d = ggml_half_at(b);
    for (int j = 0; j < QK_SMALL; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q4_K super-block: 4 chunks of 64 elements, each from 32 bytes of qs; the
 * low nibbles are the chunk's first 32 elements (sub-block 2c), the high
 * nibbles the next 32 (sub-block 2c+1). Value = d*sc * nibble - dmin*min. */
static void dequant_q4_k(const uint8_t *b, float *y) {
    const float d = ggml_half_at(b), dmin = ggml_half_at(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, mn;
        ggml_k4_scale_min(2 * c, scales, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        ggml_k4_scale_min(2 * c + 1, scales, &sc, &mn);
        const float d2 = d * sc, m2 = dmin * mn;
        for (int l = 0; l < 32; l++) y[l] = d1 * (float)(q[l] & 0x0F) - m1;
        for (int l = 0; l < 32; l++) y[32 + l] = d2 * (float)(q[l] >> 4) - m2;
        y += 64;
        q += 32;
    }
}

/* Q6_K super-block: two halves of 128 elements. In a half, ql holds 64 bytes
 * (low nibbles: elements 0..63, high nibbles: 64..127) and qh 32 bytes whose
 * 2-bit fields 0,1,2,3 are the top bits of elements l, l+32, l+64, l+96.
 * The 6-bit value is offset by 32; element e of the super-block is scaled
 * by d * scales[e / 16]. */
static void dequant_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = ggml_half_at(b + 208);
    for (int half = 0; half < 2; half++) {
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
        y += 128;
        ql += 64;
        qh += 32;
        sc += 8;
    }
}

lorac_status ggml_check_row(const char *fn, lorac_dtype t, int64_t n) {
    if (!lorac_is_block_type(t))
        return lorac_fail(LORAC_ERR_ARG, "%s: %s is not a GGML block format", fn, lorac_dtype_name(t));
    if (n < 0 || n % g_layout[t].block != 0)
        return lorac_fail(LORAC_ERR_ARG, "%s: %lld elements is not a whole number of %s blocks of %d", fn, (long long)n,
                          lorac_dtype_name(t), g_layout[t].block);
    return LORAC_OK;
}

lorac_status lorac_dequant_row(lorac_dtype t, const void *src, float *dst, int64_t n) {
    LORAC_TRY(ggml_check_row("lorac_dequant_row", t, n));
    const int bs = g_layout[t].block;
    const size_t bb = g_layout[t].bytes;
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / bs; i++, b += bb, dst += bs) {
        switch (t) {
        case LORAC_Q4_0: dequant_q4_0(b, dst); break;
        case LORAC_Q4_1: dequant_q4_1(b, dst); break;
        case LORAC_Q8_0: dequant_q8_0(b, dst); break;
        case LORAC_Q4_K: dequant_q4_k(b, dst); break;
        case LORAC_Q6_K: dequant_q6_k(b, dst); break;
        default: { /* the grouped formats */
            ggml_groups q;
            ggml_groups_decode(t, b, &q);
            ggml_groups_apply(&q, bs, dst);
            break;
        }
        }
    }
    return LORAC_OK;
}
