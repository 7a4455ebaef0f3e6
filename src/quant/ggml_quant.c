/* ggml_quant.c - the GGML block quantizers: lorac_quant_row and
 * lorac_quant_row_rng (contract in ggml_blocks.h).
 *
 * Every quantizer does two things: it chooses the block's scales (and mins),
 * then puts each value on one of the levels those scales give, either the
 * nearest (lorac_quant_row) or, with a generator, the level below or above
 * at random so that the result is unbiased (stochastic rounding). The bits
 * are then packed by ggml_groups_encode (ggml_grouped.c), except Q8_0's and
 * Q6_K's, which are packed here.
 *
 * Four families share the scale choice:
 *   one absmax scale per 32   Q4_0, Q5_0 (as gguf-py, bit for bit), IQ4_NL
 *   a min and a scale per 32  Q4_1, Q5_1 (as gguf-py, bit for bit)
 *   K with mins               Q2_K, Q4_K, Q5_K: sub-block scales and mins as
 *                             small integers times two f16 super-block scales
 *   K symmetric               Q3_K, Q6_K, IQ4_XS: signed sub-block scales
 *                             times one f16 super-block scale
 * The K and IQ4 ones are lorac's own one-pass choices, not llama.cpp's
 * iterative searches (make_qkx2_quants, make_qx_quants, the IQ4 scale
 * refinement): valid blocks with an error a little above llama.cpp's. */
#include "quant/ggml_blocks.h"

#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "quant/ggml_blocks_impl.h"

static int nearest_int(float x) { return (int)lrintf(x); }
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
/* x as the f16 field that will store it reads back */
static float f16_round(float x) { return lorac_f16_to_f32(lorac_f32_to_f16(x)); }

/* The level for v (in units of the step): the nearest one, or with rng the
 * one below or above with probability 1 - frac(v) / frac(v) (stochastic
 * rounding: unbiased, E = v; a value on a level stays there). */
static int level(float v, lorac_rng *rng) { return rng ? (int)floorf(v + lorac_rng_uniform(rng)) : nearest_int(v); }

/* The index of the IQ4 level for u (in units of the block's scale): the
 * nearest, or with rng one of the two around u, unbiased as level() is.
 * Values beyond the outer levels (-127, 113) go to them. */
static int iq4_level(float u, lorac_rng *rng) {
    const int8_t *k = ggml_iq4_levels;
    if (u <= k[0]) return 0;
    if (u >= k[15]) return 15;
    int j = 0;
    while (u >= k[j + 1]) j++; /* k[j] <= u < k[j + 1] */
    const float t = (u - (float)k[j]) / (float)(k[j + 1] - k[j]);
    return j + (rng ? lorac_rng_uniform(rng) < t : t >= 0.5f);
}

/* The element of largest |x| among n (the first one on a tie), with its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

/* ---- 32-element blocks ------------------------------------------------------ */

/* Q8_0: d = amax / 127, q = roundf(x / d) in -127..127. */
static void quant_q8_0(const float *x, uint8_t *b, lorac_rng *rng) {
    float amax = 0;
    for (int j = 0; j < QK_SMALL; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127, id = d != 0.0f ? 1.0f / d : 0.0f;
    ggml_put_half(b, d);
    for (int j = 0; j < QK_SMALL; j++) {
        const int q = rng ? level(x[j] * id, rng) : (int)roundf(x[j] * id); /* roundf: ties away from 0, as ggml */
        b[2 + j] = (uint8_t)(int8_t)clampi(q, -127, 127);
    }
}

/* Q4_0 (half = 8) and Q5_0 (half = 16): d = max / -half with max the element
 * of largest |x|, which so lands on level 0; q = trunc(x / d + half + 0.5) in
 * 0 .. 2 half - 1, stored as v + half. */
static void quant_absmax32(lorac_dtype t, int half, const float *x, uint8_t *b, lorac_rng *rng) {
    ggml_codes k;
    k.d = signed_absmax(x, QK_SMALL) / -half;
    const float id = k.d != 0.0f ? 1.0f / k.d : 0.0f;
    for (int j = 0; j < QK_SMALL; j++) {
        /* in double, then rounded to fp32 and truncated, as gguf-py does (ggml's own float version depends on FMA
           contraction) */
        const int q = rng ? level(x[j] * id + (float)half, rng)
                          : (int)truncf((float)((double)x[j] * (double)id + (half + 0.5)));
        k.q[j] = (uint8_t)clampi(q, 0, 2 * half - 1);
    }
    ggml_groups_encode(t, &k, b);
}

/* Q4_1 (qmax = 15) and Q5_1 (31): d = (max - min) / qmax, m = min,
 * q = trunc((x - min) / d + 0.5) in 0..qmax. */
static void quant_minmax32(lorac_dtype t, int qmax, const float *x, uint8_t *b, lorac_rng *rng) {
    float mn = x[0], mx = x[0];
    for (int j = 1; j < QK_SMALL; j++) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    ggml_codes k;
    k.d = (mx - mn) / qmax;
    k.dmin = mn;
    const float id = k.d != 0.0f ? 1.0f / k.d : 0.0f;
    for (int j = 0; j < QK_SMALL; j++) {
        const float v = (x[j] - mn) * id;
        k.q[j] = (uint8_t)clampi(rng ? level(v, rng) : (int)truncf(v + 0.5f), 0, qmax);
    }
    ggml_groups_encode(t, &k, b);
}

/* IQ4_NL: d = max / -127 (the element of largest |x| on the outermost level,
 * -127), every value to its IQ4 level. */
static void quant_iq4_nl(const float *x, uint8_t *b, lorac_rng *rng) {
    ggml_codes k;
    k.d = f16_round(signed_absmax(x, QK_SMALL) / -127);
    for (int j = 0; j < QK_SMALL; j++) k.q[j] = (uint8_t)(k.d != 0.0f ? iq4_level(x[j] / k.d, rng) : 8);
    ggml_groups_encode(LORAC_IQ4_NL, &k, b);
}

/* ---- K formats with mins: Q2_K, Q4_K, Q5_K --------------------------------- */

/* A super-block of ng sub-blocks of g values, x = d*sc*q - dmin*mn with q in
 * 0..qmax and sc, mn in 0..smax. The stored (f16) dmin and d are chosen
 * first, so that the largest sub-block min / step is smax of them; each mn,
 * then each sc, is the nearest step, one more when that would leave the
 * sub-block's lowest or highest value outside its qmax + 1 levels. The
 * levels start at or below 0 (the offset -dmin*mn is never positive). */
static void quant_k_min(lorac_dtype t, int ng, int g, int qmax, int smax, const float *x, uint8_t *b, lorac_rng *rng) {
    ggml_codes k;
    float hi[16], minv[16], need[16], max_min = 0, max_need = 0;
    for (int j = 0; j < ng; j++) {
        float lo = 0;
        hi[j] = 0;
        for (int l = 0; l < g; l++) {
            lo = fminf(lo, x[g * j + l]);
            hi[j] = fmaxf(hi[j], x[g * j + l]);
        }
        minv[j] = -lo;
        max_min = fmaxf(max_min, minv[j]);
    }
    k.dmin = f16_round(max_min / smax);
    for (int j = 0; j < ng; j++) {
        int c = k.dmin > 0 ? nearest_int(minv[j] / k.dmin) : 0;
        if (k.dmin * (float)c < minv[j]) c++;
        k.mn[j] = (uint8_t)(c < smax ? c : smax);
        need[j] = (hi[j] + k.dmin * k.mn[j]) / qmax; /* the step that reaches hi from the offset */
        max_need = fmaxf(max_need, need[j]);
    }
    k.d = f16_round(max_need / smax);
    for (int j = 0; j < ng; j++) {
        int a = k.d > 0 ? nearest_int(need[j] / k.d) : 0;
        if (k.d * (float)a < need[j]) a++;
        k.sc[j] = (uint8_t)(a < smax ? a : smax);
        const float dq = k.d * k.sc[j], dm = k.dmin * k.mn[j];
        for (int l = 0; l < g; l++)
            k.q[g * j + l] = (uint8_t)clampi(dq != 0.0f ? level((x[g * j + l] + dm) / dq, rng) : 0, 0, qmax);
    }
    ggml_groups_encode(t, &k, b);
}

/* ---- symmetric K formats: Q3_K, Q6_K, IQ4_XS ------------------------------- */

/* The scales of ng sub-blocks of g values, x = d*sc*level, sc in -sneg ..
 * sneg-1: each sub-block's own scale puts its largest |x| on level -qneg
 * (the most negative level); the one of largest magnitude goes to -sneg,
 * which fixes the stored f16 d; each sc is then the nearest step, one
 * further out when the sub-block's largest value would not fit. Returns d. */
static float quant_k_sym_scales(const float *x, int ng, int g, float qneg, int sneg, int sc[16]) {
    float scale[16], max_scale = 0;
    for (int j = 0; j < ng; j++) {
        scale[j] = signed_absmax(x + g * j, g) / -qneg;
        if (fabsf(scale[j]) > fabsf(max_scale)) max_scale = scale[j];
    }
    const float iscale = max_scale != 0.0f ? (float)-sneg / max_scale : 0;
    const float d = f16_round(iscale != 0.0f ? 1 / iscale : 0);
    for (int j = 0; j < ng; j++) {
        int v = nearest_int(iscale * scale[j]);
        if (fabsf(d * (float)v) < fabsf(scale[j])) v += v < 0 || (v == 0 && iscale * scale[j] < 0) ? -1 : 1;
        sc[j] = clampi(v, -sneg, sneg - 1);
    }
    return d;
}

/* Q3_K: 16 sub-blocks of 16, levels -4..3, 6-bit signed scales. */
static void quant_q3_k(const float *x, uint8_t *b, lorac_rng *rng) {
    ggml_codes k;
    int sc[16];
    k.d = quant_k_sym_scales(x, 16, 16, 4, 32, sc);
    for (int j = 0; j < 16; j++) {
        k.sc[j] = (uint8_t)(sc[j] + 32);
        const float dq = k.d * (float)sc[j];
        for (int l = 0; l < 16; l++)
            k.q[16 * j + l] = (uint8_t)(clampi(dq != 0.0f ? level(x[16 * j + l] / dq, rng) : 0, -4, 3) + 4);
    }
    ggml_groups_encode(LORAC_Q3_K, &k, b);
}

/* IQ4_XS: 8 sub-blocks of 32 on the IQ4 levels, 6-bit signed scales. */
static void quant_iq4_xs(const float *x, uint8_t *b, lorac_rng *rng) {
    ggml_codes k;
    int sc[16];
    k.d = quant_k_sym_scales(x, 8, 32, 127, 32, sc);
    for (int j = 0; j < 8; j++) {
        k.sc[j] = (uint8_t)(sc[j] + 32);
        const float dq = k.d * (float)sc[j];
        for (int l = 0; l < 32; l++) k.q[32 * j + l] = (uint8_t)(dq != 0.0f ? iq4_level(x[32 * j + l] / dq, rng) : 8);
    }
    ggml_groups_encode(LORAC_IQ4_XS, &k, b);
}

/* Q6_K: 16 sub-blocks of 16, levels -32..31, int8 scales. Layout: ql[128]
 * (low 4 bits), qh[64] (top 2 bits), scales[16], f16 d; see ggml_blocks.c. */
static void quant_q6_k(const float *x, uint8_t *b, lorac_rng *rng) {
    int scv[16];
    const float d = quant_k_sym_scales(x, 16, 16, 32, 128, scv);
    uint8_t *ql = b, *qh = b + 128, L[256];
    int8_t *sc = (int8_t *)(b + 192);
    ggml_put_half(b + 208, d);
    for (int j = 0; j < 16; j++) {
        sc[j] = (int8_t)scv[j];
        const float dq = d * sc[j];
        for (int l = 0; l < 16; l++)
            L[16 * j + l] = (uint8_t)(clampi(dq != 0.0f ? level(x[16 * j + l] / dq, rng) : 0, -32, 31) + 32);
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

/* ---- entry points ----------------------------------------------------------- */

lorac_status lorac_quant_row(lorac_dtype t, const float *src, void *dst, int64_t n) {
    return lorac_quant_row_rng(t, src, dst, n, NULL);
}

lorac_status lorac_quant_row_rng(lorac_dtype t, const float *src, void *dst, int64_t n, lorac_rng *rng) {
    LORAC_TRY(ggml_check_row("lorac_quant_row", t, n));
    const int bs = lorac_block_size(t);
    const size_t bb = lorac_block_bytes(t);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return lorac_fail(LORAC_ERR_NUMERIC, "lorac_quant_row: element %lld is %g; hint: only finite weights quantize",
                              (long long)i, (double)src[i]);
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / bs; i++, b += bb, src += bs) {
        switch (t) {
        case LORAC_Q8_0: quant_q8_0(src, b, rng); break;
        case LORAC_Q4_0: quant_absmax32(t, 8, src, b, rng); break;
        case LORAC_Q5_0: quant_absmax32(t, 16, src, b, rng); break;
        case LORAC_Q4_1: quant_minmax32(t, 15, src, b, rng); break;
        case LORAC_Q5_1: quant_minmax32(t, 31, src, b, rng); break;
        case LORAC_IQ4_NL: quant_iq4_nl(src, b, rng); break;
        case LORAC_Q2_K: quant_k_min(t, 16, 16, 3, 15, src, b, rng); break;
        case LORAC_Q4_K: quant_k_min(t, 8, 32, 15, 63, src, b, rng); break;
        case LORAC_Q5_K: quant_k_min(t, 8, 32, 31, 63, src, b, rng); break;
        case LORAC_Q3_K: quant_q3_k(src, b, rng); break;
        case LORAC_Q6_K: quant_q6_k(src, b, rng); break;
        case LORAC_IQ4_XS: quant_iq4_xs(src, b, rng); break;
        default: break; /* unreachable: checked above */
        }
    }
    return LORAC_OK;
}
