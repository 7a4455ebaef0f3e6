/* ggml_blocks.c - scalar reference dequantizers for the GGML block formats.
 *
 * Each function reads one block at a time through byte offsets (the mapping
 * gives no alignment guarantee) and writes its elements in row order. The
 * arithmetic is done in fp32 in the same order as ggml-quants.c so results
 * match ggml (and the `gguf` Python package) bit for bit. */
#include "quant/ggml_blocks.h"

#include "core/rng.h"
#include "core/util.h"

#include <math.h>
#include <string.h>

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

/* t is a block format and n a whole number of its blocks. */
static lorac_status check_row(const char *fn, lorac_dtype t, int64_t n) {
    if (!lorac_is_block_type(t))
        return lorac_fail(LORAC_ERR_ARG, "%s: %s is not a GGML block format", fn, lorac_dtype_name(t));
    if (n < 0 || n % g_layout[t].block != 0)
        return lorac_fail(LORAC_ERR_ARG, "%s: %lld elements is not a whole number of %s blocks of %d", fn, (long long)n,
                          lorac_dtype_name(t), g_layout[t].block);
    return LORAC_OK;
}

lorac_status lorac_dequant_row(lorac_dtype t, const void *src, float *dst, int64_t n) {
    LORAC_TRY(check_row("lorac_dequant_row", t, n));
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
        default: break; /* unreachable: checked above */
        }
    }
    return LORAC_OK;
}

/* ---- quantizers ------------------------------------------------------------ */

static void put_half(uint8_t *p, float x) {
    const uint16_t h = lorac_f32_to_f16(x);
    p[0] = (uint8_t)(h & 0xFF);
    p[1] = (uint8_t)(h >> 8);
}

static int nearest_int(float x) { return (int)lrintf(x); }

/* The level for v (in units of the step): the nearest one, or with rng the
 * one below or above with probability 1 - frac(v) / frac(v) (stochastic
 * rounding: unbiased, E = v; a value on a level stays there). */
static int level(float v, lorac_rng *rng) { return rng ? (int)floorf(v + lorac_rng_uniform(rng)) : nearest_int(v); }

static void quant_q8_0(const float *x, uint8_t *b, lorac_rng *rng) {
    float amax = 0;
    for (int j = 0; j < QK_SMALL; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < QK_SMALL; j++) {
        const int q = rng ? level(x[j] * id, rng) : (int)roundf(x[j] * id); /* roundf: ties away from 0, as ggml */
        b[2 + j] = (uint8_t)(int8_t)(q < -127 ? -127 : q > 127 ? 127 : q);
    }
}

static void quant_q4_0(const float *x, uint8_t *b, lorac_rng *rng) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK_SMALL; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    const float d = max / -8, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < QK_SMALL / 2; j++) {
        /* in double, then rounded to fp32 and truncated, as gguf-py does (ggml's own float version depends
           on FMA contraction) */
        int q0 = (int)truncf((float)((double)x[j] * (double)id + 8.5)),
            q1 = (int)truncf((float)((double)x[j + QK_SMALL / 2] * (double)id + 8.5));
        if (rng) {
            q0 = level(x[j] * id + 8, rng);
            q1 = level(x[j + QK_SMALL / 2] * id + 8, rng);
        }
        q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
        q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
        b[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quant_q4_1(const float *x, uint8_t *b, lorac_rng *rng) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK_SMALL; j++) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    const float d = (mx - mn) / 15, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    put_half(b + 2, mn);
    for (int j = 0; j < QK_SMALL / 2; j++) {
        const float v0 = (x[j] - mn) * id, v1 = (x[j + QK_SMALL / 2] - mn) * id;
        int q0 = rng ? level(v0, rng) : (int)truncf(v0 + 0.5f), q1 = rng ? level(v1, rng) : (int)truncf(v1 + 0.5f);
        q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
        q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
        b[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

/* Q4_K: 8 sub-blocks of 32, value = d*sc*q - dmin*mn, q in 0..15, sc and mn
 * 6-bit. The stored (f16) dmin and d are chosen first; each mn, then each
 * sc, is the nearest step, one more when that would leave the sub-block's
 * lowest or highest value outside the 16 levels. */
static void quant_q4_k(const float *x, uint8_t *b, lorac_rng *rng) {
    float hi[8], minv[8], max_min = 0;
    for (int j = 0; j < 8; j++) {
        float lo = 0; /* the offset is -dmin*mn with mn >= 0: levels start at or below 0 */
        hi[j] = 0;
        for (int l = 0; l < 32; l++) {
            lo = fminf(lo, x[32 * j + l]);
            hi[j] = fmaxf(hi[j], x[32 * j + l]);
        }
        minv[j] = -lo;
        max_min = fmaxf(max_min, minv[j]);
    }
    put_half(b + 2, max_min / 63);
    const float dmin = half_at(b + 2);
    uint8_t ls[8], lm[8], *sc = b + 4, *q = b + 16;
    float need[8], max_need = 0;
    for (int j = 0; j < 8; j++) {
        int c = dmin > 0 ? nearest_int(minv[j] / dmin) : 0;
        if (dmin * (float)c < minv[j]) c++;
        lm[j] = (uint8_t)(c < 63 ? c : 63);
        need[j] = (hi[j] + dmin * lm[j]) / 15; /* the step that reaches hi from the offset */
        max_need = fmaxf(max_need, need[j]);
    }
    put_half(b, max_need / 63);
    const float d = half_at(b);
    memset(sc, 0, 12);
    for (int j = 0; j < 8; j++) {
        int a = d > 0 ? nearest_int(need[j] / d) : 0;
        if (d * (float)a < need[j]) a++;
        ls[j] = (uint8_t)(a < 63 ? a : 63);
        if (j < 4) {
            sc[j] = ls[j];
            sc[j + 4] = lm[j];
        } else {
            sc[j + 4] = (uint8_t)((ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4));
            sc[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            sc[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
    uint8_t L[256];
    for (int j = 0; j < 8; j++) {
        const float dq = d * ls[j], dm = dmin * lm[j];
        for (int l = 0; l < 32; l++) {
            const int v = dq != 0.0f ? level((x[32 * j + l] + dm) / dq, rng) : 0;
            L[32 * j + l] = (uint8_t)(v < 0 ? 0 : v > 15 ? 15 : v);
        }
    }
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) q[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

/* Q6_K: 16 sub-blocks of 16, value = d*sc*(q - 32), q in 0..63, sc int8
 * against the stored f16 d (the largest sub-block at -128). */
static void quant_q6_k(const float *x, uint8_t *b, lorac_rng *rng) {
    float scale[16], max_scale = 0, amax_scale = 0;
    for (int j = 0; j < 16; j++) {
        float amax = 0, m = 0;
        for (int l = 0; l < 16; l++)
            if (fabsf(x[16 * j + l]) > amax) {
                amax = fabsf(x[16 * j + l]);
                m = x[16 * j + l];
            }
        scale[j] = m / -32; /* the largest value lands on level -32 */
        if (fabsf(scale[j]) > amax_scale) {
            amax_scale = fabsf(scale[j]);
            max_scale = scale[j];
        }
    }
    uint8_t *ql = b, *qh = b + 128;
    int8_t *sc = (int8_t *)(b + 192);
    const float iscale = max_scale != 0.0f ? -128 / max_scale : 0;
    put_half(b + 208, iscale != 0.0f ? 1 / iscale : 0);
    const float d = half_at(b + 208);
    for (int j = 0; j < 16; j++) { /* nearest, one step larger when the sub-block's largest |x| would not fit */
        int v = nearest_int(iscale * scale[j]);
        if (fabsf(d * (float)v) < fabsf(scale[j])) v += v < 0 || (v == 0 && iscale * scale[j] < 0) ? -1 : 1;
        sc[j] = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
    }
    uint8_t L[256];
    for (int j = 0; j < 16; j++) {
        const float dq = d * sc[j];
        for (int l = 0; l < 16; l++) {
            const int v = dq != 0.0f ? level(x[16 * j + l] / dq, rng) : 0;
            L[16 * j + l] = (uint8_t)((v < -32 ? -32 : v > 31 ? 31 : v) + 32);
        }
    }
    memset(qh, 0, 64);
    for (int h = 0; h < 2; h++) {
        const uint8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[64 * h + l] = (uint8_t)((Lh[l] & 0x0F) | ((Lh[l + 64] & 0x0F) << 4));
            ql[64 * h + l + 32] = (uint8_t)((Lh[l + 32] & 0x0F) | ((Lh[l + 96] & 0x0F) << 4));
            qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
        }
    }
}

lorac_status lorac_quant_row(lorac_dtype t, const float *src, void *dst, int64_t n) {
    return lorac_quant_row_rng(t, src, dst, n, NULL);
}

lorac_status lorac_quant_row_rng(lorac_dtype t, const float *src, void *dst, int64_t n, lorac_rng *rng) {
    LORAC_TRY(check_row("lorac_quant_row", t, n));
    const int bs = g_layout[t].block;
    const size_t bb = g_layout[t].bytes;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return lorac_fail(LORAC_ERR_NUMERIC, "lorac_quant_row: element %lld is %g; hint: only finite weights quantize",
                              (long long)i, (double)src[i]);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / bs; i++, b += bb, src += bs) {
        switch (t) {
        case LORAC_Q4_0: quant_q4_0(src, b, rng); break;
        case LORAC_Q4_1: quant_q4_1(src, b, rng); break;
        case LORAC_Q8_0: quant_q8_0(src, b, rng); break;
        case LORAC_Q4_K: quant_q4_k(src, b, rng); break;
        case LORAC_Q6_K: quant_q6_k(src, b, rng); break;
        default: break; /* unreachable: checked above */
        }
    }
    return LORAC_OK;
}
