/* ggml_grouped.c - the bit layouts of the grouped GGML formats (Q5_0, Q5_1,
 * Q2_K, Q3_K, Q5_K, IQ4_NL, IQ4_XS; see ggml_blocks_impl.h): for each, the
 * unpacking of one block into levels + per-group scale and offset, and the
 * packing of a quantizer's codes back into the same bytes, side by side so
 * that each pair reads as one description of the layout.
 *
 * Element order inside a block (e = the element's index in the row):
 *   Q5_0/Q5_1/IQ4_NL (32): byte j of qs holds e = j (low nibble) and
 *       e = j + 16 (high nibble); Q5's fifth bit of e is bit e of the u32 qh.
 *   Q2_K (256): e = 128h + 32s + l sits in bits 2s..2s+1 of qs[32h + l].
 *   Q3_K (256): its low 2 bits as Q2_K's; its third bit is bit e / 32 of
 *       hmask[e % 32] (set: v = q, clear: v = q - 4).
 *   Q5_K (256): e = 64c + 32k + l is nibble k of qs[32c + l]; its fifth bit
 *       is bit e / 32 of qh[e % 32].
 *   IQ4_XS (256): group s (32 elements) is qs[16s .. 16s+16): low nibbles
 *       then high nibbles. */
#include "quant/ggml_blocks_impl.h"

#include <string.h>

const int8_t ggml_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

int ggml_is_grouped(lorac_dtype t) { return t >= LORAC_Q5_0 && t <= LORAC_IQ4_XS; }

void ggml_k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    /* pairs 0..3: the low 6 bits of bytes 0..3 (scale) and 4..7 (min); pairs
     * 4..7: low 4 bits from bytes 8..11 (scale low nibble, min high nibble),
     * top 2 bits from the tops of bytes 0..3 / 4..7 */
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *mn = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

void ggml_k4_pack_scale_min(const uint8_t ls[8], const uint8_t lm[8], uint8_t s[12]) {
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (uint8_t)((ls[j] & 0x0F) | ((lm[j] & 0x0F) << 4));
            s[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            s[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* ---- 32-element blocks: nibbles (+ a fifth bit) ---- */

/* the 32 stored values of a nibble block: qs[16] nibbles, plus bit e of qh (if qh5) as 16 */
static void nibbles_decode(const uint8_t *qs, const uint8_t *qh5, uint8_t q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = qs[j] & 0x0F;
        q[j + 16] = qs[j] >> 4;
    }
    if (qh5) /* bit e of the little-endian u32 is bit e % 8 of byte e / 8 */
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 8; k++) q[8 * i + k] |= (uint8_t)(((qh5[i] >> k) & 1) << 4);
}

static void nibbles_encode(const uint8_t q[32], uint8_t *qs, uint8_t *qh5) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | (q[j + 16] & 0x0F) << 4);
        qh |= (uint32_t)(q[j] >> 4 & 1) << j | (uint32_t)(q[j + 16] >> 4 & 1) << (j + 16);
    }
    if (qh5)
        for (int i = 0; i < 4; i++) qh5[i] = (uint8_t)(qh >> (8 * i));
}

/* ---- 256-element K blocks: 2-bit planes and single-bit planes ---- */

/* bits 2s..2s+1 of qs[32h + l] for e = 128h + 32s + l (Q2_K, Q3_K) */
static void crumbs_decode(const uint8_t *qs, uint8_t q[256]) {
    for (int h = 0; h < 2; h++) /* nested loops with constant shifts: the compiler vectorises them */
        for (int s = 0; s < 4; s++)
            for (int l = 0; l < 32; l++) q[128 * h + 32 * s + l] = (qs[32 * h + l] >> (2 * s)) & 3;
}

static void crumbs_encode(const uint8_t q[256], uint8_t *qs) {
    memset(qs, 0, 64);
    for (int e = 0; e < 256; e++) qs[32 * (e / 128) + e % 32] |= (uint8_t)((q[e] & 3) << (2 * (e / 32 % 4)));
}

/* bit `bit` of every q (e in 0..255) <-> bit e / 32 of plane[e % 32] (Q3_K's hmask, Q5_K's qh) */
static void plane_decode(const uint8_t *plane, int bit, uint8_t q[256]) {
    for (int i = 0; i < 8; i++)
        for (int l = 0; l < 32; l++) q[32 * i + l] |= (uint8_t)(((plane[l] >> i) & 1) << bit);
}

static void plane_encode(const uint8_t q[256], int bit, uint8_t *plane) {
    memset(plane, 0, 32);
    for (int e = 0; e < 256; e++) plane[e % 32] |= (uint8_t)(((q[e] >> bit) & 1) << (e / 32));
}

/* nibble k of qs[32c + l] for e = 64c + 32k + l (Q5_K's low 4 bits, as Q4_K's) */
static void k4_nibbles_decode(const uint8_t *qs, uint8_t q[256]) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = qs[32 * c + l] & 0x0F;
            q[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
}

static void k4_nibbles_encode(const uint8_t q[256], uint8_t *qs) {
    memset(qs, 0, 128);
    for (int e = 0; e < 256; e++) qs[32 * (e / 64) + e % 32] |= (uint8_t)((q[e] & 0x0F) << (4 * (e / 32 % 2)));
}

/* Q3_K's sixteen 6-bit scales in 12 bytes: the low nibble of scale s is
 * nibble s / 8 of byte s % 8, its top 2 bits are bits 2(s / 4).. of byte
 * 8 + s % 4. */
static uint8_t q3k_scale(const uint8_t *s, int k) {
    return (uint8_t)(((s[k % 8] >> (4 * (k / 8))) & 0x0F) | ((s[8 + k % 4] >> (2 * (k / 4))) & 3) << 4);
}

static void q3k_pack_scales(const uint8_t sc[16], uint8_t *s) {
    memset(s, 0, 12);
    for (int k = 0; k < 16; k++) {
        s[k % 8] |= (uint8_t)((sc[k] & 0x0F) << (4 * (k / 8)));
        s[8 + k % 4] |= (uint8_t)((sc[k] >> 4 & 3) << (2 * (k / 4)));
    }
}

/* IQ4_XS's eight 6-bit scales: low nibble = nibble s % 2 of scales_l[s / 2],
 * top 2 bits = bits 2s.. of the u16 scales_h. */
static uint8_t iq4xs_scale(const uint8_t *b, int s) {
    const unsigned sh = (unsigned)b[2] | (unsigned)b[3] << 8;
    return (uint8_t)(((b[4 + s / 2] >> (4 * (s % 2))) & 0x0F) | ((sh >> (2 * s)) & 3) << 4);
}

/* ---- decode / encode per format ---- */

void ggml_groups_decode(lorac_dtype t, const uint8_t *b, ggml_groups *q) {
    uint8_t u[QK_K];
    memset(q->c, 0, sizeof q->c);
    switch (t) {
    case LORAC_Q5_0: /* f16 d; u32 qh; qs[16] */
        q->g = 32;
        q->a[0] = ggml_half_at(b);
        nibbles_decode(b + 6, b + 2, u);
        for (int e = 0; e < 32; e++) q->v[e] = (int8_t)(u[e] - 16);
        break;
    case LORAC_Q5_1: /* f16 d, m; u32 qh; qs[16] */
        q->g = 32;
        q->a[0] = ggml_half_at(b);
        q->c[0] = -ggml_half_at(b + 2);
        nibbles_decode(b + 8, b + 4, u);
        for (int e = 0; e < 32; e++) q->v[e] = (int8_t)u[e];
        break;
    case LORAC_IQ4_NL: /* f16 d; qs[16] */
        q->g = 32;
        q->a[0] = ggml_half_at(b);
        nibbles_decode(b + 2, NULL, u);
        for (int e = 0; e < 32; e++) q->v[e] = ggml_iq4_levels[u[e]];
        break;
    case LORAC_Q2_K: { /* scales[16] (min << 4 | scale); qs[64]; f16 d, dmin */
        const float d = ggml_half_at(b + 80), dmin = ggml_half_at(b + 82);
        q->g = 16;
        for (int k = 0; k < 16; k++) {
            q->a[k] = d * (float)(b[k] & 0x0F);
            q->c[k] = dmin * (float)(b[k] >> 4);
        }
        crumbs_decode(b + 16, u);
        for (int e = 0; e < 256; e++) q->v[e] = (int8_t)u[e];
        break;
    }
    case LORAC_Q3_K: { /* hmask[32]; qs[64]; scales[12]; f16 d */
        const float d = ggml_half_at(b + 108);
        q->g = 16;
        for (int k = 0; k < 16; k++) q->a[k] = d * (float)((int)q3k_scale(b + 96, k) - 32);
        crumbs_decode(b + 32, u);
        plane_decode(b, 2, u);
        for (int e = 0; e < 256; e++) q->v[e] = (int8_t)(u[e] - 4);
        break;
    }
    case LORAC_Q5_K: { /* f16 d, dmin; scales[12]; qh[32]; qs[128] */
        const float d = ggml_half_at(b), dmin = ggml_half_at(b + 2);
        q->g = 32;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, mn;
            ggml_k4_scale_min(j, b + 4, &sc, &mn);
            q->a[j] = d * (float)sc;
            q->c[j] = dmin * (float)mn;
        }
        k4_nibbles_decode(b + 48, u);
        plane_decode(b + 16, 4, u);
        for (int e = 0; e < 256; e++) q->v[e] = (int8_t)u[e];
        break;
    }
    case LORAC_IQ4_XS: { /* f16 d; u16 scales_h; scales_l[4]; qs[128] */
        const float d = ggml_half_at(b);
        q->g = 32;
        for (int s = 0; s < 8; s++) {
            q->a[s] = d * (float)((int)iq4xs_scale(b, s) - 32);
            nibbles_decode(b + 8 + 16 * s, NULL, u + 32 * s);
        }
        for (int e = 0; e < 256; e++) q->v[e] = ggml_iq4_levels[u[e]];
        break;
    }
    default: LORAC_ASSERT(0 && "not a grouped GGML format");
    }
}

void ggml_groups_apply(const ggml_groups *q, int n, float *x) {
    for (int e = 0; e < n; e++) x[e] = q->a[e / q->g] * (float)q->v[e] - q->c[e / q->g];
}

void ggml_groups_encode(lorac_dtype t, const ggml_codes *k, uint8_t *b) {
    switch (t) {
    case LORAC_Q5_0:
        ggml_put_half(b, k->d);
        nibbles_encode(k->q, b + 6, b + 2);
        break;
    case LORAC_Q5_1:
        ggml_put_half(b, k->d);
        ggml_put_half(b + 2, k->dmin);
        nibbles_encode(k->q, b + 8, b + 4);
        break;
    case LORAC_IQ4_NL:
    case LORAC_Q4_0: /* the same layout: f16 d; qs[16] */
        ggml_put_half(b, k->d);
        nibbles_encode(k->q, b + 2, NULL);
        break;
    case LORAC_Q4_1: /* f16 d, m; qs[16] */
        ggml_put_half(b, k->d);
        ggml_put_half(b + 2, k->dmin);
        nibbles_encode(k->q, b + 4, NULL);
        break;
    case LORAC_Q2_K:
        for (int j = 0; j < 16; j++) b[j] = (uint8_t)((k->sc[j] & 0x0F) | (k->mn[j] & 0x0F) << 4);
        crumbs_encode(k->q, b + 16);
        ggml_put_half(b + 80, k->d);
        ggml_put_half(b + 82, k->dmin);
        break;
    case LORAC_Q3_K:
        plane_encode(k->q, 2, b);
        crumbs_encode(k->q, b + 32);
        q3k_pack_scales(k->sc, b + 96);
        ggml_put_half(b + 108, k->d);
        break;
    case LORAC_Q4_K: /* f16 d, dmin; scales[12]; qs[128] */
    case LORAC_Q5_K: /* f16 d, dmin; scales[12]; qh[32]; qs[128] */
        ggml_put_half(b, k->d);
        ggml_put_half(b + 2, k->dmin);
        ggml_k4_pack_scale_min(k->sc, k->mn, b + 4);
        if (t == LORAC_Q5_K) plane_encode(k->q, 4, b + 16);
        k4_nibbles_encode(k->q, t == LORAC_Q5_K ? b + 48 : b + 16);
        break;
    case LORAC_IQ4_XS: {
        unsigned sh = 0;
        ggml_put_half(b, k->d);
        memset(b + 4, 0, 4);
        for (int s = 0; s < 8; s++) {
            sh |= (unsigned)(k->sc[s] >> 4 & 3) << (2 * s);
            b[4 + s / 2] |= (uint8_t)((k->sc[s] & 0x0F) << (4 * (s % 2)));
            nibbles_encode(k->q + 32 * s, b + 8 + 16 * s, NULL);
        }
        b[2] = (uint8_t)(sh & 0xFF);
        b[3] = (uint8_t)(sh >> 8);
        break;
    }
    default: LORAC_ASSERT(0 && "not a grouped GGML format");
    }
}
