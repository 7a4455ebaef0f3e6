/* ggml_blocks.c - scalar reference dequantizers for the GGML block formats.
 *
 * Each function reads one block at a time through byte offsets (the mapping
 * gives no alignment guarantee) and writes its elements in row order. The
 * arithmetic is done in fp32 in the same order as ggml-quants.c so results
 * match ggml (and the `gguf` Python package) bit for bit. */
#include "quant/ggml_blocks.h"

#include "core/util.h"

#define QK_SMALL 32 /* elements per Q4_0 / Q4_1 / Q8_0 block */
#define QK_K 256    /* elements per K-quant super-block */

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
};

int lorac_block_size(lorac_dtype t) { return (unsigned)t < LORAC_DTYPE_COUNT ? g_layout[t].block : 0; }

size_t lorac_block_bytes(lorac_dtype t) { return (unsigned)t < LORAC_DTYPE_COUNT ? g_layout[t].bytes : 0; }

int lorac_is_block_type(lorac_dtype t) { return t >= LORAC_Q4_0 && t <= LORAC_Q6_K; }

/* Little-endian IEEE half at p, widened to fp32. */
static float half_at(const uint8_t *p) { return lorac_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* Q4_0: d, then 16 bytes; byte j = element j (low nibble), j+16 (high).
 * Value = (nibble - 8) * d. */
static void dequant_q4_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < QK_SMALL / 2; j++) {
        y[j] = (float)((qs[j] & 0x0F) - 8) * d;
        y[j + QK_SMALL / 2] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1: d, m, then 16 bytes as in Q4_0. Value = nibble * d + m. */
static void dequant_q4_1(const uint8_t *b, float *y) {
    const float d = half_at(b), m = half_at(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < QK_SMALL / 2; j++) {
        y[j] = (float)(qs[j] & 0x0F) * d + m;
        y[j + QK_SMALL / 2] = (float)(qs[j] >> 4) * d + m;
    }
}

/* Q8_0: d, then 32 signed bytes. Value = q * d. */
static void dequant_q8_0(const uint8_t *b, float *y) {
    const float d = half_at(b);
    for (int j = 0; j < QK_SMALL; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q4_K sub-block scale and min: 8 pairs of 6-bit numbers packed in 12 bytes.
 * Pairs 0..3 are the low 6 bits of bytes 0..3 (scale) and 4..7 (min);
 * pairs 4..7 take their low 4 bits from bytes 8..11 (scale: low nibble,
 * min: high nibble) and their top 2 bits from the top of bytes 0..3 / 4..7. */
static void q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Q4_K super-block: 4 chunks of 64 elements, each from 32 bytes of qs; the
 * low nibbles are the chunk's first 32 elements (sub-block 2c), the high
 * nibbles the next 32 (sub-block 2c+1). Value = d*sc * nibble - dmin*min. */
static void dequant_q4_k(const uint8_t *b, float *y) {
    const float d = half_at(b), dmin = half_at(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++) {
        uint8_t sc, mn;
        q4k_scale_min(2 * c, scales, &sc, &mn);
        const float d1 = d * sc, m1 = dmin * mn;
        q4k_scale_min(2 * c + 1, scales, &sc, &mn);
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
    const float d = half_at(b + 208);
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

lorac_status lorac_dequant_row(lorac_dtype t, const void *src, float *dst, int64_t n) {
    if (!lorac_is_block_type(t))
        return lorac_fail(LORAC_ERR_ARG, "lorac_dequant_row: %s is not a GGML block format", lorac_dtype_name(t));
    const int bs = g_layout[t].block;
    const size_t bb = g_layout[t].bytes;
    if (n < 0 || n % bs != 0)
        return lorac_fail(LORAC_ERR_ARG, "lorac_dequant_row: %lld elements is not a whole number of %s blocks of %d",
                          (long long)n, lorac_dtype_name(t), bs);
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / bs; i++, b += bb, dst += bs) {
        switch (t) {
        case LORAC_Q4_0: dequant_q4_0(b, dst); break;
        case LORAC_Q4_1: dequant_q4_1(b, dst); break;
        case LORAC_Q8_0: dequant_q8_0(b, dst); break;
        case LORAC_Q4_K: dequant_q4_k(b, dst); break;
        case LORAC_Q6_K: dequant_q6_k(b, dst); break;
        default: break; /* unreachable: checked above */
        }
    }
    return LORAC_OK;
}
