/* qmatmul_avx512.c - AVX-512 pieces of the quantized linear kernels (see
 * qmatmul_impl.h): SIMD dequantization of every format, a 16x16 transpose
 * and the 6x64 fp32 FMA micro-kernel. Compiled with per-function target
 * attributes, so the library needs no -mavx512 flag and only calls these
 * after __builtin_cpu_supports says the CPU has them.
 *
 * The dequantizers do the scalar code's fp32 operations in the scalar
 * code's order (separate multiply and add, never a fused one), so their
 * output is bit-identical to ggml_blocks.c / nf4.c. */
#include "quant/qmatmul_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#include "core/util.h"
#include "quant/ggml_blocks_impl.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))

static inline float half_at(const uint8_t *p) { return lorac_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* 16 bytes of nibble pairs -> their 32 values (high nibble first) scaled by a. */
T512 static inline void nf4_32(const uint8_t *codes, __m512 tbl, __m512 va, float *dst) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i b = _mm_loadu_si128((const __m128i *)codes);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4), lo = _mm_and_si128(b, m4);
    const __m128i e0 = _mm_unpacklo_epi8(hi, lo), e1 = _mm_unpackhi_epi8(hi, lo);
    _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(e0), tbl), va));
    _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(e1), tbl), va));
}

T512 static void dequant_nf4(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst) {
    const lorac_nf4 *q = &w->nf4;
    const __m512 tbl = _mm512_loadu_ps(lorac_nf4_code);
    int64_t i = r * w->cols + c0;
    const int64_t end = r * w->cols + c1;
    while (i < end) {
        if (i % LORAC_NF4_BLOCK == 0 && end - i >= LORAC_NF4_BLOCK) {
            const __m512 va = _mm512_set1_ps(lorac_nf4_block_absmax(q, i / LORAC_NF4_BLOCK));
            nf4_32(q->codes + i / 2, tbl, va, dst);
            nf4_32(q->codes + i / 2 + 16, tbl, va, dst + 32);
            i += LORAC_NF4_BLOCK;
            dst += LORAC_NF4_BLOCK;
        } else { /* up to the next block boundary (or the end), element by element */
            int64_t stop = (i / LORAC_NF4_BLOCK + 1) * LORAC_NF4_BLOCK;
            if (stop > end) stop = end;
            const float a = lorac_nf4_block_absmax(q, i / LORAC_NF4_BLOCK);
            for (; i < stop; i++) {
                const uint8_t byte = q->codes[i / 2];
                *dst++ = lorac_nf4_code[i % 2 ? byte & 0x0F : byte >> 4] * a;
            }
        }
    }
}

/* 16 unsigned bytes (low nibbles or values) -> 16 floats */
T512 static inline __m512 u8_ps(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }

T512 static void dequant_q4_0(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m512i eight = _mm512_set1_epi32(8);
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        const __m512 d = _mm512_set1_ps(half_at(b));
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
        const __m512i lo = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(q, m4)), eight);
        const __m512i hi = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4)), eight);
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
    }
}

T512 static void dequant_q4_1(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++, b += 20, y += 32) {
        const __m512 d = _mm512_set1_ps(half_at(b)), m = _mm512_set1_ps(half_at(b + 2));
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
        _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(u8_ps(_mm_and_si128(q, m4)), d), m));
        _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(u8_ps(_mm_and_si128(_mm_srli_epi16(q, 4), m4)), d), m));
    }
}

T512 static void dequant_q8_0(const uint8_t *b, int64_t nb, float *y) {
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        const __m512 d = _mm512_set1_ps(half_at(b));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(b + 2)), q1 = _mm_loadu_si128((const __m128i *)(b + 18));
        _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d));
        _mm512_storeu_ps(y + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d));
    }
}

T512 static void dequant_q4_k(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = half_at(b), dmin = half_at(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32, y += 64) {
            uint8_t sc, mn;
            ggml_k4_scale_min(2 * c, scales, &sc, &mn);
            const __m512 d1 = _mm512_set1_ps(d * sc), m1 = _mm512_set1_ps(dmin * mn);
            ggml_k4_scale_min(2 * c + 1, scales, &sc, &mn);
            const __m512 d2 = _mm512_set1_ps(d * sc), m2 = _mm512_set1_ps(dmin * mn);
            for (int h = 0; h < 2; h++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(q + 16 * h));
                const __m512 lo = u8_ps(_mm_and_si128(v, m4)), hi = u8_ps(_mm_and_si128(_mm_srli_epi16(v, 4), m4));
                _mm512_storeu_ps(y + 16 * h, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
                _mm512_storeu_ps(y + 32 + 16 * h, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
            }
        }
    }
}

/* 16 six-bit values (as bytes 0..63) minus 32, times s */
T512 static inline __m512 q6_ps(__m128i q, float s) {
    const __m512i v = _mm512_sub_epi32(_mm512_cvtepu8_epi32(q), _mm512_set1_epi32(32));
    return _mm512_mul_ps(_mm512_set1_ps(s), _mm512_cvtepi32_ps(v));
}

T512 static void dequant_q6_k(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F), m3 = _mm_set1_epi8(0x03), mc = _mm_set1_epi8(0x0C),
                  m30 = _mm_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = half_at(b + 208);
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int g = 0; g < 2; g++) { /* l = 16g .. 16g+15, scale index is = g */
                const __m128i a = _mm_loadu_si128((const __m128i *)(ql + 16 * g));
                const __m128i c = _mm_loadu_si128((const __m128i *)(ql + 32 + 16 * g));
                const __m128i h = _mm_loadu_si128((const __m128i *)(qh + 16 * g));
                const __m128i q1 = _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(h, m3), 4));
                const __m128i q2 = _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(h, mc), 2));
                const __m128i q3 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_and_si128(h, m30));
                const __m128i q4 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4),
                                                _mm_and_si128(_mm_srli_epi16(h, 2), m30));
                /* scalar: d * (float)sc[is] * (float)q = (d * sc) * q */
                _mm512_storeu_ps(y + 16 * g, q6_ps(q1, d * (float)sc[g]));
                _mm512_storeu_ps(y + 32 + 16 * g, q6_ps(q2, d * (float)sc[g + 2]));
                _mm512_storeu_ps(y + 64 + 16 * g, q6_ps(q3, d * (float)sc[g + 4]));
                _mm512_storeu_ps(y + 96 + 16 * g, q6_ps(q4, d * (float)sc[g + 6]));
            }
        }
    }
}

/* The grouped formats (ggml_blocks_impl.h): each block's bits unpacked to
 * int8 levels in plain C, then a * v - c sixteen at a time. */
T512 static void dequant_grouped(lorac_dtype t, const uint8_t *b, int64_t nb, float *y) {
    const int bs = lorac_block_size(t);
    const size_t bb = lorac_block_bytes(t);
    ggml_groups q;
    for (int64_t i = 0; i < nb; i++, b += bb, y += bs) {
        ggml_groups_decode(t, b, &q);
        for (int e = 0; e < bs; e += 16) {
            const __m512 a = _mm512_set1_ps(q.a[e / q.g]), c = _mm512_set1_ps(q.c[e / q.g]);
            const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(q.v + e))));
            _mm512_storeu_ps(y + e, _mm512_sub_ps(_mm512_mul_ps(a, v), c));
        }
    }
}

T512 static void dequant(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst) {
    if (w->fmt == LORAC_QF_NF4) {
        dequant_nf4(w, r, c0, c1, dst);
        return;
    }
    if (w->fmt == LORAC_QF_F32) {
        memcpy(dst, (const float *)w->data + r * w->cols + c0, sizeof(float) * (size_t)(c1 - c0));
        return;
    }
    const int bs = lorac_qformat_row_block(w->fmt);
    const uint8_t *b = qmm_row_blocks(w, r) + (size_t)(c0 / bs) * qmm_block_bytes(w->fmt);
    const int64_t nb = (c1 - c0) / bs;
    switch (w->fmt) {
    case LORAC_QF_Q4_0: dequant_q4_0(b, nb, dst); break;
    case LORAC_QF_Q4_1: dequant_q4_1(b, nb, dst); break;
    case LORAC_QF_Q8_0: dequant_q8_0(b, nb, dst); break;
    case LORAC_QF_Q4_K: dequant_q4_k(b, nb, dst); break;
    case LORAC_QF_Q6_K: dequant_q6_k(b, nb, dst); break;
    default:
        if (ggml_is_grouped(qmm_dtype(w->fmt)))
            dequant_grouped(qmm_dtype(w->fmt), b, nb, dst);
        else
            qmm_dequant_scalar(w, r, c0, c1, dst);
        break;
    }
}

/* dst[k*ldd + i] = src[i*lds + k], 16 rows, kc columns: 16x16 blocks in registers. */
T512 static void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t kc) {
    int64_t k = 0;
    for (; k + 16 <= kc; k += 16) {
        __m512 r[16], t[16], u[16];
        for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * lds + k);
        for (int i = 0; i < 8; i++) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int i = 0; i < 4; i++) {
            const __m512d a0 = _mm512_castps_pd(t[4 * i]), a1 = _mm512_castps_pd(t[4 * i + 1]);
            const __m512d a2 = _mm512_castps_pd(t[4 * i + 2]), a3 = _mm512_castps_pd(t[4 * i + 3]);
            u[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
            u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
            u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
            u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
        }
        /* u[4i+c], 128-bit lane L = column 4L+c of rows 4i..4i+3 */
        for (int c = 0; c < 4; c++) {
            const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
            const __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                         w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
            _mm512_storeu_ps(dst + (k + c) * ldd, _mm512_shuffle_f32x4(v0, w0, 0x88));
            _mm512_storeu_ps(dst + (k + 4 + c) * ldd, _mm512_shuffle_f32x4(v1, w1, 0x88));
            _mm512_storeu_ps(dst + (k + 8 + c) * ldd, _mm512_shuffle_f32x4(v0, w0, 0xDD));
            _mm512_storeu_ps(dst + (k + 12 + c) * ldd, _mm512_shuffle_f32x4(v1, w1, 0xDD));
        }
    }
    for (; k < kc; k++)
        for (int i = 0; i < 16; i++) dst[k * ldd + i] = src[i * lds + k];
}

/* c[6][64] = a[6][kc] . b[kc][64 of ldb]: 24 zmm accumulators, per k four
 * panel loads and six broadcasts feed 24 FMAs. */
T512 static void kernel(int64_t kc, const float *const *a, const float *b, int64_t ldb, float *c) {
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00,
           c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00, c40 = c00,
           c41 = c00, c42 = c00, c43 = c00, c50 = c00, c51 = c00, c52 = c00, c53 = c00;
    for (int64_t k = 0; k < kc; k++, b += ldb) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                     b3 = _mm512_loadu_ps(b + 48);
        __m512 x;
#define ROW(i)                                                                                                         \
    x = _mm512_set1_ps(a##i[k]);                                                                                       \
    c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0);                                                                         \
    c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1);                                                                         \
    c##i##2 = _mm512_fmadd_ps(x, b2, c##i##2);                                                                         \
    c##i##3 = _mm512_fmadd_ps(x, b3, c##i##3);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
#define STORE(i)                                                                                                       \
    _mm512_storeu_ps(c + 64 * i, c##i##0);                                                                             \
    _mm512_storeu_ps(c + 64 * i + 16, c##i##1);                                                                        \
    _mm512_storeu_ps(c + 64 * i + 32, c##i##2);                                                                        \
    _mm512_storeu_ps(c + 64 * i + 48, c##i##3);
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
}

/* ---- the GEMV road's fused row kernels (qmatmul_impl.h, qmm_rowdot_fn) ----
 * One macro per format: DEQ(p, w0, w1) sets w0 / w1 to the block at p's
 * elements 0..15 / 16..31 with the scalar dequantizer's operations. The
 * row loop is written once (ROWDOT) and instantiated per format for
 * N = 1..8 rows of x (constants after inlining: 2N accumulators). */

#define INL inline __attribute__((always_inline))

T512 static INL float h16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

T512 static INL double hsum_pd(__m512 v) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

#define ROWDOT(NAME, BB, DEQ)                                                                                          \
    T512 static INL void NAME##_n(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, const int R,         \
                                  double *acc) {                                                                   \
        const __m128i m4 = _mm_set1_epi8(0x0F);                                                                    \
        (void)m4;                                                                                                  \
        for (int64_t i0 = 0; i0 < nb; i0 += 8) {                                                                   \
            __m512 s[QMM_GEMV_MAX_N], t[QMM_GEMV_MAX_N];                                                           \
            for (int r = 0; r < R; r++) s[r] = t[r] = _mm512_setzero_ps();                                         \
            const int64_t i1 = i0 + 8 < nb ? i0 + 8 : nb;                                                          \
            for (int64_t i = i0; i < i1; i++) {                                                                    \
                const uint8_t *p = b + i * (BB);                                                                   \
                __m512 w0, w1;                                                                                     \
                DEQ(p, w0, w1);                                                                                    \
                const float *xk = x + i * 32;                                                                      \
                for (int r = 0; r < R; r++) {                                                                      \
                    s[r] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xk + r * ldx), s[r]);                               \
                    t[r] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xk + r * ldx + 16), t[r]);                          \
                }                                                                                                  \
            }                                                                                                      \
            for (int r = 0; r < R; r++) acc[r] += hsum_pd(_mm512_add_ps(s[r], t[r]));                              \
        }                                                                                                          \
    }                                                                                                              \
    T512 static void NAME(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, int N, double *acc) {        \
        switch (N) {                                                                                               \
        case 1: NAME##_n(b, nb, x, ldx, 1, acc); break;                                                            \
        case 2: NAME##_n(b, nb, x, ldx, 2, acc); break;                                                            \
        case 3: NAME##_n(b, nb, x, ldx, 3, acc); break;                                                            \
        case 4: NAME##_n(b, nb, x, ldx, 4, acc); break;                                                            \
        case 5: NAME##_n(b, nb, x, ldx, 5, acc); break;                                                            \
        case 6: NAME##_n(b, nb, x, ldx, 6, acc); break;                                                            \
        case 7: NAME##_n(b, nb, x, ldx, 7, acc); break;                                                            \
        default: NAME##_n(b, nb, x, ldx, 8, acc); break;                                                           \
        }                                                                                                          \
    }

/* 16 low / high nibbles of q as int32 */
#define LO4(q) _mm512_cvtepu8_epi32(_mm_and_si128(q, m4))
#define HI4(q) _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4))

/* Q4_0: (nibble - 8) * d */
#define DEQ_Q4_0(p, w0, w1)                                                                                            \
    do {                                                                                                               \
        const __m512 d = _mm512_set1_ps(h16(p));                                                                       \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 2));                                                 \
        const __m512i e = _mm512_set1_epi32(8);                                                                        \
        w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(LO4(q), e)), d);                                        \
        w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(HI4(q), e)), d);                                        \
    } while (0)
/* Q4_1: nibble * d + m */
#define DEQ_Q4_1(p, w0, w1)                                                                                            \
    do {                                                                                                               \
        const __m512 d = _mm512_set1_ps(h16(p)), m = _mm512_set1_ps(h16((p) + 2));                                     \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 4));                                                 \
        w0 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(LO4(q)), d), m);                                           \
        w1 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(HI4(q)), d), m);                                           \
    } while (0)
/* Q8_0: q * d */
#define DEQ_Q8_0(p, w0, w1)                                                                                            \
    do {                                                                                                               \
        const __m512 d = _mm512_set1_ps(h16(p));                                                                       \
        w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((p) + 2)))), d);  \
        w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)((p) + 18)))), d); \
    } while (0)
/* Q5_0 / Q5_1: the nibble plus 16 where bit e of the u32 qh is set;
 * Q5_0: (q - 16) * d (ggml_blocks_impl.h: a * v - 0 is a * v), Q5_1: q * d + m */
#define Q5_LEVELS(p, qoff, v0, v1)                                                                                     \
    uint32_t qh_;                                                                                                      \
    memcpy(&qh_, (p) + (qoff) - 4, 4);                                                                                 \
    const __m128i q = _mm_loadu_si128((const __m128i *)((p) + (qoff)));                                                \
    const __m512i sixteen = _mm512_set1_epi32(16);                                                                     \
    const __m512i v0 = _mm512_mask_add_epi32(LO4(q), (__mmask16)(qh_ & 0xFFFF), LO4(q), sixteen);                      \
    const __m512i v1 = _mm512_mask_add_epi32(HI4(q), (__mmask16)(qh_ >> 16), HI4(q), sixteen)
#define DEQ_Q5_0(p, w0, w1)                                                                                            \
    do {                                                                                                               \
        const __m512 d = _mm512_set1_ps(h16(p));                                                                       \
        Q5_LEVELS(p, 6, v0, v1);                                                                                       \
        w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v0, sixteen)), d);                                      \
        w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v1, sixteen)), d);                                      \
    } while (0)
#define DEQ_Q5_1(p, w0, w1)                                                                                            \
    do {                                                                                                               \
        const __m512 d = _mm512_set1_ps(h16(p)), m = _mm512_set1_ps(h16((p) + 2));                                     \
        Q5_LEVELS(p, 8, v0, v1);                                                                                       \
        w0 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v0), d), m);                                               \
        w1 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v1), d), m);                                               \
    } while (0)
/* IQ4_NL: kvalues[nibble] * d, the 16 levels as floats in one register */
#define DEQ_IQ4_NL(p, w0, w1)                                                                                          \
    do {                                                                                                               \
        const __m512 lv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)ggml_iq4_levels))); \
        const __m512 d = _mm512_set1_ps(h16(p));                                                                       \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 2));                                                 \
        w0 = _mm512_mul_ps(_mm512_permutexvar_ps(LO4(q), lv), d);                                                      \
        w1 = _mm512_mul_ps(_mm512_permutexvar_ps(HI4(q), lv), d);                                                      \
    } while (0)

ROWDOT(rowdot_q4_0, 18, DEQ_Q4_0)
ROWDOT(rowdot_q4_1, 20, DEQ_Q4_1)
ROWDOT(rowdot_q8_0, 34, DEQ_Q8_0)
ROWDOT(rowdot_q5_0, 22, DEQ_Q5_0)
ROWDOT(rowdot_q5_1, 24, DEQ_Q5_1)
ROWDOT(rowdot_iq4_nl, 18, DEQ_IQ4_NL)

/* The K-quants: one 256-element super-block per step (= one chunk of lane
 * sums). BODY(p, FMA) dequantizes the block at p sixteen weights at a time
 * and calls FMA(w, off, acc) for the weights at element offset off, acc
 * being s or t (two accumulator sets for two FMA chains). */
#define KROWDOT(NAME, BB, BODY)                                                                                        \
    T512 static INL void NAME##_n(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, const int R,         \
                                  double *acc) {                                                                   \
        const __m128i m4 = _mm_set1_epi8(0x0F);                                                                    \
        (void)m4;                                                                                                  \
        for (int64_t i = 0; i < nb; i++) {                                                                         \
            __m512 s[QMM_GEMV_MAX_N], t[QMM_GEMV_MAX_N];                                                           \
            for (int r = 0; r < R; r++) s[r] = t[r] = _mm512_setzero_ps();                                         \
            const uint8_t *p = b + i * (BB);                                                                       \
            const float *xk = x + i * 256;                                                                         \
            BODY(p, KFMA);                                                                                         \
            for (int r = 0; r < R; r++) acc[r] += hsum_pd(_mm512_add_ps(s[r], t[r]));                              \
        }                                                                                                          \
    }                                                                                                              \
    T512 static void NAME(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, int N, double *acc) {        \
        switch (N) {                                                                                               \
        case 1: NAME##_n(b, nb, x, ldx, 1, acc); break;                                                        \
        case 2: NAME##_n(b, nb, x, ldx, 2, acc); break;                                                        \
        case 3: NAME##_n(b, nb, x, ldx, 3, acc); break;                                                        \
        case 4: NAME##_n(b, nb, x, ldx, 4, acc); break;                                                        \
        case 5: NAME##_n(b, nb, x, ldx, 5, acc); break;                                                        \
        case 6: NAME##_n(b, nb, x, ldx, 6, acc); break;                                                        \
        case 7: NAME##_n(b, nb, x, ldx, 7, acc); break;                                                        \
        default: NAME##_n(b, nb, x, ldx, 8, acc); break;                                                       \
        }                                                                                                          \
    }
#define KFMA(w, off, a)                                                                                                \
    do {                                                                                                               \
        const __m512 w_ = (w);                                                                                         \
        for (int r = 0; r < R; r++) a[r] = _mm512_fmadd_ps(w_, _mm512_loadu_ps(xk + r * ldx + (off)), a[r]);          \
    } while (0)

/* Q4_K (as dequant_q4_k): per 64 elements c, sub-blocks 2c / 2c+1 scale the low / high nibbles: d*sc*q - dmin*mn */
#define BODY_Q4_K(p, FMA)                                                                                              \
    do {                                                                                                               \
        const float d = h16(p), dmin = h16((p) + 2);                                                                   \
        for (int c = 0; c < 4; c++) {                                                                                  \
            uint8_t sc, mn;                                                                                            \
            ggml_k4_scale_min(2 * c, (p) + 4, &sc, &mn);                                                               \
            const __m512 d1 = _mm512_set1_ps(d * sc), m1 = _mm512_set1_ps(dmin * mn);                                  \
            ggml_k4_scale_min(2 * c + 1, (p) + 4, &sc, &mn);                                                           \
            const __m512 d2 = _mm512_set1_ps(d * sc), m2 = _mm512_set1_ps(dmin * mn);                                  \
            for (int h = 0; h < 2; h++) {                                                                              \
                const __m128i v = _mm_loadu_si128((const __m128i *)((p) + 16 + 32 * c + 16 * h));                      \
                FMA(_mm512_sub_ps(_mm512_mul_ps(d1, u8_ps(_mm_and_si128(v, m4))), m1), 64 * c + 16 * h, s);            \
                FMA(_mm512_sub_ps(_mm512_mul_ps(d2, u8_ps(_mm_and_si128(_mm_srli_epi16(v, 4), m4))), m2),              \
                    64 * c + 32 + 16 * h, t);                                                                          \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

/* Q6_K (as dequant_q6_k): (d * sc) * (q - 32) */
#define BODY_Q6_K(p, FMA)                                                                                              \
    do {                                                                                                               \
        const __m128i m3 = _mm_set1_epi8(0x03), mc = _mm_set1_epi8(0x0C), m30 = _mm_set1_epi8(0x30);                   \
        const float d = h16((p) + 208);                                                                                \
        for (int half = 0; half < 2; half++) {                                                                         \
            const uint8_t *ql = (p) + 64 * half, *qh = (p) + 128 + 32 * half;                                          \
            const int8_t *sc = (const int8_t *)((p) + 192 + 8 * half);                                                 \
            for (int g = 0; g < 2; g++) {                                                                              \
                const __m128i a = _mm_loadu_si128((const __m128i *)(ql + 16 * g));                                     \
                const __m128i c = _mm_loadu_si128((const __m128i *)(ql + 32 + 16 * g));                                \
                const __m128i h = _mm_loadu_si128((const __m128i *)(qh + 16 * g));                                     \
                const __m128i q1 = _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(h, m3), 4));        \
                const __m128i q2 = _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(h, mc), 2));        \
                const __m128i q3 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_and_si128(h, m30));       \
                const __m128i q4 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4),                               \
                                                _mm_and_si128(_mm_srli_epi16(h, 2), m30));                             \
                const int o = 128 * half + 16 * g;                                                                     \
                FMA(q6_ps(q1, d * (float)sc[g]), o, s);                                                                \
                FMA(q6_ps(q2, d * (float)sc[g + 2]), o + 32, t);                                                       \
                FMA(q6_ps(q3, d * (float)sc[g + 4]), o + 64, s);                                                       \
                FMA(q6_ps(q4, d * (float)sc[g + 6]), o + 96, t);                                                       \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

KROWDOT(rowdot_q4_k, 144, BODY_Q4_K)
KROWDOT(rowdot_q6_k, 210, BODY_Q6_K)

static qmm_rowdot_fn rowdot(lorac_qformat f) {
    switch (f) {
    case LORAC_QF_Q4_K: return rowdot_q4_k;
    case LORAC_QF_Q6_K: return rowdot_q6_k;
    case LORAC_QF_Q4_0: return rowdot_q4_0;
    case LORAC_QF_Q4_1: return rowdot_q4_1;
    case LORAC_QF_Q8_0: return rowdot_q8_0;
    case LORAC_QF_Q5_0: return rowdot_q5_0;
    case LORAC_QF_Q5_1: return rowdot_q5_1;
    case LORAC_QF_IQ4_NL: return rowdot_iq4_nl;
    default: return NULL;
    }
}

static const lorac_qkern g_kern = {dequant, kernel, transpose16, rowdot};

const lorac_qkern *qmm_kern_avx512(void) {
    __builtin_cpu_init(); /* idempotent and cheap */
    const int ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok ? &g_kern : NULL;
}

#else

const lorac_qkern *qmm_kern_avx512(void) { return NULL; }

#endif
