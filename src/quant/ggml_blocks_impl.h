/* ggml_blocks_impl.h - internals shared by the GGML block code
 * (ggml_blocks.c: layouts and dequantizers; ggml_grouped.c: the bit layouts
 * of the "grouped" formats; ggml_quant.c: the quantizers) and by the SIMD
 * dequantizers of qmatmul_avx2.c / qmatmul_avx512.c. Not library API.
 *
 * The grouped formats. Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, IQ4_NL and IQ4_XS all
 * decode the same way once their bits are unpacked: every element is a
 * small integer v (its level), and each group of g consecutive elements
 * shares a scale a and an offset c:
 *
 *     x[e] = a[e / g] * v[e] - c[e / g]        (one fp32 product, then one
 *                                                fp32 difference, never fused)
 *
 * Per format (d, dmin, m: the block's f16 fields; sc, mn, ls: its integer
 * sub-block codes; q: the element's stored bits):
 *   Q5_0    g 32  v = q - 16          a = d             c = 0
 *   Q5_1    g 32  v = q               a = d             c = -m
 *   Q2_K    g 16  v = q (0..3)        a = d * sc        c = dmin * mn   (sc, mn 4-bit)
 *   Q3_K    g 16  v = q - 4 (-4..3)   a = d * (sc - 32) c = 0           (sc 6-bit)
 *   Q5_K    g 32  v = q (0..31)       a = d * sc        c = dmin * mn   (sc, mn 6-bit)
 *   IQ4_NL  g 32  v = kvalues[q]      a = d             c = 0
 *   IQ4_XS  g 32  v = kvalues[q]      a = d * (ls - 32) c = 0           (ls 6-bit)
 * ggml-quants.c and gguf-py compute a and c first, in fp32, and then
 * a * v - c (or a * v, or a * v + m), which this form reproduces bit for bit:
 * subtracting +0 leaves any x (even -0) unchanged, and x - (-m) is x + m.
 * The IQ4 formats' 16 levels, kvalues, are non-uniform (denser near zero). */
#ifndef LORAC_QUANT_GGML_BLOCKS_IMPL_H
#define LORAC_QUANT_GGML_BLOCKS_IMPL_H

#include <stdint.h>

#include "core/util.h"
#include "io/tensorfile.h"
#include "quant/ggml_blocks.h"

#define QK_SMALL 32 /* elements per Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 / IQ4_NL block */
#define QK_K 256    /* elements per K-quant (and IQ4_XS) super-block */

/* Little-endian IEEE half at p, widened to fp32; and stored from fp32. */
static inline float ggml_half_at(const uint8_t *p) { return lorac_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }
static inline void ggml_put_half(uint8_t *p, float x) {
    const uint16_t h = lorac_f32_to_f16(x);
    p[0] = (uint8_t)(h & 0xFF);
    p[1] = (uint8_t)(h >> 8);
}

/* t is a block format and n a whole number of its blocks (fn names the caller in the message). */
lorac_status ggml_check_row(const char *fn, lorac_dtype t, int64_t n);

/* The IQ4 formats' 16 levels, ascending (ggml's kvalues_iq4nl). */
extern const int8_t ggml_iq4_levels[16];

/* Q4_K / Q5_K sub-block j's 6-bit scale and min (j < 8) from the 12 packed
 * bytes s, and the packing back (ggml's get_scale_min_k4). */
void ggml_k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *mn);
void ggml_k4_pack_scale_min(const uint8_t ls[8], const uint8_t lm[8], uint8_t s[12]);

/* ---- the grouped formats ---- */

/* One block, unpacked: x[e] = a[e / g] * v[e] - c[e / g]. */
typedef struct ggml_groups {
    int g;         /* elements per group: 16 or 32 */
    int8_t v[QK_K];
    float a[QK_K / 16], c[QK_K / 16];
} ggml_groups;

/* One block, as the quantizer chose it, ready to pack: the stored bits of
 * every element (q, unsigned: Q5_0 and Q3_K store v + 16 / v + 4, the IQ4
 * formats the index into ggml_iq4_levels), the groups' integer codes (sc:
 * Q2_K/Q5_K scale, Q3_K/IQ4_XS scale + 32; mn: Q2_K/Q5_K min) and the f16
 * fields (d; dmin, or m for Q5_1). */
typedef struct ggml_codes {
    uint8_t q[QK_K];
    uint8_t sc[QK_K / 16], mn[QK_K / 16];
    float d, dmin;
} ggml_codes;

/* 1 for the seven grouped formats above. */
int ggml_is_grouped(lorac_dtype t);
/* Unpack one block of grouped format t (bit-exact with gguf-py / ggml). */
void ggml_groups_decode(lorac_dtype t, const uint8_t *b, ggml_groups *q);
/* x[0 .. g * groups) from an unpacked block (the scalar form of the SIMD
 * loops in qmatmul_avx2.c / qmatmul_avx512.c). */
void ggml_groups_apply(const ggml_groups *q, int n, float *x);
/* Pack one block of grouped format t from its codes (the inverse of
 * decode); also Q4_0, Q4_1 (as Q5_0 / Q5_1 without the fifth bit; Q4_0's q
 * is v + 8) and Q4_K (as Q5_K without qh). */
void ggml_groups_encode(lorac_dtype t, const ggml_codes *k, uint8_t *b);

#endif
