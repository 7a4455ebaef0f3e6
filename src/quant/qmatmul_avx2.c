/* qmatmul_avx2.c - AVX2+FMA pieces of the quantized linear kernels (see
 * qmatmul_impl.h and qmatmul_avx512.c, which this mirrors 8 lanes wide):
 * SIMD dequantization (bit-identical to the scalar dequantizers), two 8x8
 * transposes per 16 rows, and a 6x16 micro-kernel swept over the 64-wide
 * panel (12 ymm accumulators). */
#include "quant/qmatmul_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#include "core/util.h"
#include "quant/ggml_blocks_impl.h"

#define T256 __attribute__((target("avx2,fma,f16c")))

static inline float half_at(const uint8_t *p) { return lorac_f16_to_f32((uint16_t)(p[0] | (p[1] << 8))); }

/* the low 8 bytes of v as unsigned -> 8 floats; the high 8 bytes likewise */
T256 static inline __m256 lo8_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }
T256 static inline __m256 hi8_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))); }

/* 8 NF4 indices (int32) -> 8 values, via two 8-entry permutes and a blend on bit 3 */
T256 static inline __m256 nf4_lookup(__m256i idx, __m256 tlo, __m256 thi) {
    const __m256 lo = _mm256_permutevar8x32_ps(tlo, idx), hi = _mm256_permutevar8x32_ps(thi, idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

T256 static void nf4_32(const uint8_t *codes, __m256 tlo, __m256 thi, __m256 va, float *dst) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m128i b = _mm_loadu_si128((const __m128i *)codes);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4), lo = _mm_and_si128(b, m4);
    const __m128i e[2] = {_mm_unpacklo_epi8(hi, lo), _mm_unpackhi_epi8(hi, lo)};
    for (int h = 0; h < 2; h++) {
        const __m256i i0 = _mm256_cvtepu8_epi32(e[h]), i1 = _mm256_cvtepu8_epi32(_mm_srli_si128(e[h], 8));
        _mm256_storeu_ps(dst + 16 * h, _mm256_mul_ps(nf4_lookup(i0, tlo, thi), va));
        _mm256_storeu_ps(dst + 16 * h + 8, _mm256_mul_ps(nf4_lookup(i1, tlo, thi), va));
    }
}

T256 static void dequant_nf4(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst) {
    const lorac_nf4 *q = &w->nf4;
    const __m256 tlo = _mm256_loadu_ps(lorac_nf4_code), thi = _mm256_loadu_ps(lorac_nf4_code + 8);
    int64_t i = r * w->cols + c0;
    const int64_t end = r * w->cols + c1;
    while (i < end) {
        if (i % LORAC_NF4_BLOCK == 0 && end - i >= LORAC_NF4_BLOCK) {
            const __m256 va = _mm256_set1_ps(lorac_nf4_block_absmax(q, i / LORAC_NF4_BLOCK));
            nf4_32(q->codes + i / 2, tlo, thi, va, dst);
            nf4_32(q->codes + i / 2 + 16, tlo, thi, va, dst + 32);
            i += LORAC_NF4_BLOCK;
            dst += LORAC_NF4_BLOCK;
        } else {
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

T256 static void dequant_q4_0(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256 eight = _mm256_set1_ps(8.0f);
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        const __m256 d = _mm256_set1_ps(half_at(b));
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + 2));
        const __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
        /* (float)(q - 8) == (float)q - 8 exactly for q in 0..15 */
        _mm256_storeu_ps(y, _mm256_mul_ps(_mm256_sub_ps(lo8_ps(lo), eight), d));
        _mm256_storeu_ps(y + 8, _mm256_mul_ps(_mm256_sub_ps(hi8_ps(lo), eight), d));
        _mm256_storeu_ps(y + 16, _mm256_mul_ps(_mm256_sub_ps(lo8_ps(hi), eight), d));
        _mm256_storeu_ps(y + 24, _mm256_mul_ps(_mm256_sub_ps(hi8_ps(hi), eight), d));
    }
}

T256 static void dequant_q4_1(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++, b += 20, y += 32) {
        const __m256 d = _mm256_set1_ps(half_at(b)), m = _mm256_set1_ps(half_at(b + 2));
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + 4));
        const __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
        _mm256_storeu_ps(y, _mm256_add_ps(_mm256_mul_ps(lo8_ps(lo), d), m));
        _mm256_storeu_ps(y + 8, _mm256_add_ps(_mm256_mul_ps(hi8_ps(lo), d), m));
        _mm256_storeu_ps(y + 16, _mm256_add_ps(_mm256_mul_ps(lo8_ps(hi), d), m));
        _mm256_storeu_ps(y + 24, _mm256_add_ps(_mm256_mul_ps(hi8_ps(hi), d), m));
    }
}

T256 static void dequant_q8_0(const uint8_t *b, int64_t nb, float *y) {
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        const __m256 d = _mm256_set1_ps(half_at(b));
        for (int j = 0; j < 4; j++) {
            const __m128i q = _mm_loadl_epi64((const __m128i *)(b + 2 + 8 * j));
            _mm256_storeu_ps(y + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
        }
    }
}

T256 static void dequant_q4_k(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++, b += 144) {
        const float d = half_at(b), dmin = half_at(b + 2);
        const uint8_t *scales = b + 4, *q = b + 16;
        for (int c = 0; c < 4; c++, q += 32, y += 64) {
            uint8_t sc, mn;
            ggml_k4_scale_min(2 * c, scales, &sc, &mn);
            const __m256 d1 = _mm256_set1_ps(d * sc), m1 = _mm256_set1_ps(dmin * mn);
            ggml_k4_scale_min(2 * c + 1, scales, &sc, &mn);
            const __m256 d2 = _mm256_set1_ps(d * sc), m2 = _mm256_set1_ps(dmin * mn);
            for (int h = 0; h < 2; h++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(q + 16 * h));
                const __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
                _mm256_storeu_ps(y + 16 * h, _mm256_sub_ps(_mm256_mul_ps(d1, lo8_ps(lo)), m1));
                _mm256_storeu_ps(y + 16 * h + 8, _mm256_sub_ps(_mm256_mul_ps(d1, hi8_ps(lo)), m1));
                _mm256_storeu_ps(y + 32 + 16 * h, _mm256_sub_ps(_mm256_mul_ps(d2, lo8_ps(hi)), m2));
                _mm256_storeu_ps(y + 40 + 16 * h, _mm256_sub_ps(_mm256_mul_ps(d2, hi8_ps(hi)), m2));
            }
        }
    }
}

/* 16 six-bit values (bytes 0..63): (q - 32) * s into dst[16] */
T256 static inline void q6_16(__m128i q, float s, float *dst) {
    const __m256i k32 = _mm256_set1_epi32(32);
    const __m256 vs = _mm256_set1_ps(s);
    const __m256i a = _mm256_sub_epi32(_mm256_cvtepu8_epi32(q), k32);
    const __m256i b = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(q, 8)), k32);
    _mm256_storeu_ps(dst, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(a)));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(vs, _mm256_cvtepi32_ps(b)));
}

T256 static void dequant_q6_k(const uint8_t *b, int64_t nb, float *y) {
    const __m128i m4 = _mm_set1_epi8(0x0F), m3 = _mm_set1_epi8(0x03), mc = _mm_set1_epi8(0x0C),
                  m30 = _mm_set1_epi8(0x30);
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = half_at(b + 208);
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int g = 0; g < 2; g++) {
                const __m128i a = _mm_loadu_si128((const __m128i *)(ql + 16 * g));
                const __m128i c = _mm_loadu_si128((const __m128i *)(ql + 32 + 16 * g));
                const __m128i h = _mm_loadu_si128((const __m128i *)(qh + 16 * g));
                const __m128i q1 = _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(h, m3), 4));
                const __m128i q2 = _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(h, mc), 2));
                const __m128i q3 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_and_si128(h, m30));
                const __m128i q4 = _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4),
                                                _mm_and_si128(_mm_srli_epi16(h, 2), m30));
                q6_16(q1, d * (float)sc[g], y + 16 * g);
                q6_16(q2, d * (float)sc[g + 2], y + 32 + 16 * g);
                q6_16(q3, d * (float)sc[g + 4], y + 64 + 16 * g);
                q6_16(q4, d * (float)sc[g + 6], y + 96 + 16 * g);
            }
        }
    }
}

/* The grouped formats (ggml_blocks_impl.h): each block's bits unpacked to
 * int8 levels in plain C, then a * v - c eight at a time. */
T256 static void dequant_grouped(lorac_dtype t, const uint8_t *b, int64_t nb, float *y) {
    const int bs = lorac_block_size(t);
    const size_t bb = lorac_block_bytes(t);
    ggml_groups q;
    for (int64_t i = 0; i < nb; i++, b += bb, y += bs) {
        ggml_groups_decode(t, b, &q);
        for (int e = 0; e < bs; e += 8) {
            const __m256 a = _mm256_set1_ps(q.a[e / q.g]), c = _mm256_set1_ps(q.c[e / q.g]);
            const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q.v + e))));
            _mm256_storeu_ps(y + e, _mm256_sub_ps(_mm256_mul_ps(a, v), c));
        }
    }
}

T256 static void dequant(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst) {
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

/* 8 rows x 8 columns at src (stride lds) -> dst (stride ldd), transposed */
T256 static inline void tr8x8(const float *src, int64_t lds, float *dst, int64_t ldd) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * lds);
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        const __m256d a0 = _mm256_castps_pd(t[4 * i]), a1 = _mm256_castps_pd(t[4 * i + 1]);
        const __m256d a2 = _mm256_castps_pd(t[4 * i + 2]), a3 = _mm256_castps_pd(t[4 * i + 3]);
        u[4 * i + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(a0, a2));
        u[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a0, a2));
        u[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(a1, a3));
        u[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(a1, a3));
    }
    /* u[4i+c], 128-bit lane L = column 4L+c of rows 4i..4i+3 */
    for (int c = 0; c < 4; c++) {
        _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
        _mm256_storeu_ps(dst + (4 + c) * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
    }
}

T256 static void transpose16(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t kc) {
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
        tr8x8(src + k, lds, dst + k * ldd, ldd);
        tr8x8(src + 8 * lds + k, lds, dst + k * ldd + 8, ldd);
    }
    for (; k < kc; k++)
        for (int i = 0; i < 16; i++) dst[k * ldd + i] = src[i * lds + k];
}

/* c[6][64]: four sweeps of a 6x16 block (12 ymm accumulators). */
T256 static void kernel(int64_t kc, const float *const *a, const float *b, int64_t ldb, float *c) {
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (int g = 0; g < 4; g++) {
        const float *bp = b + 16 * g;
        __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
               c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
        for (int64_t k = 0; k < kc; k++, bp += ldb) {
            const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
            __m256 x;
#define ROW(i)                                                                                                         \
    x = _mm256_broadcast_ss(a##i + k);                                                                                 \
    c##i##0 = _mm256_fmadd_ps(x, b0, c##i##0);                                                                         \
    c##i##1 = _mm256_fmadd_ps(x, b1, c##i##1);
            ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
        }
        float *cg = c + 16 * g;
#define STORE(i)                                                                                                       \
    _mm256_storeu_ps(cg + 64 * i, c##i##0);                                                                            \
    _mm256_storeu_ps(cg + 64 * i + 8, c##i##1);
        STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
    }
}

/* ---- the GEMV road's fused row kernels (qmatmul_impl.h, qmm_rowdot_fn) ----
 * As in qmatmul_avx512.c, 8 lanes wide: DEQ(p, w) sets w[0..3] to the
 * block at p's elements 0..7, 8..15, 16..23, 24..31 with the scalar
 * dequantizer's operations; ROWDOT instantiates the row loop per format
 * for N = 1..8 rows of x. */

#define INL inline __attribute__((always_inline))

T256 static INL float h16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

T256 static INL double hsum_pd(__m256 v) {
    const __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    const __m128d e = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    return _mm_cvtsd_f64(_mm_add_sd(e, _mm_unpackhi_pd(e, e)));
}

/* bytes 0..7 / 8..15 of v as int32 */
T256 static INL __m256i lo8_i32(__m128i v) { return _mm256_cvtepu8_epi32(v); }
T256 static INL __m256i hi8_i32(__m128i v) { return _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)); }

#define ROWDOT(NAME, BB, DEQ)                                                                                          \
    T256 static INL void NAME##_n(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, const int R,         \
                                  double *acc) {                                                                   \
        const __m128i m4 = _mm_set1_epi8(0x0F);                                                                    \
        (void)m4;                                                                                                  \
        for (int64_t i0 = 0; i0 < nb; i0 += 8) {                                                                   \
            __m256 s[QMM_GEMV_MAX_N], t[QMM_GEMV_MAX_N];                                                           \
            for (int r = 0; r < R; r++) s[r] = t[r] = _mm256_setzero_ps();                                         \
            const int64_t i1 = i0 + 8 < nb ? i0 + 8 : nb;                                                          \
            for (int64_t i = i0; i < i1; i++) {                                                                    \
                const uint8_t *p = b + i * (BB);                                                                   \
                __m256 w[4];                                                                                       \
                DEQ(p, w);                                                                                         \
                const float *xk = x + i * 32;                                                                      \
                for (int r = 0; r < R; r++) {                                                                      \
                    const float *xr = xk + r * ldx;                                                                \
                    s[r] = _mm256_fmadd_ps(w[0], _mm256_loadu_ps(xr), s[r]);                                       \
                    t[r] = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xr + 8), t[r]);                                   \
                    s[r] = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xr + 16), s[r]);                                  \
                    t[r] = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xr + 24), t[r]);                                  \
                }                                                                                                  \
            }                                                                                                      \
            for (int r = 0; r < R; r++) acc[r] += hsum_pd(_mm256_add_ps(s[r], t[r]));                              \
        }                                                                                                          \
    }                                                                                                              \
    T256 static void NAME(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, int N, double *acc) {        \
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

/* the 32 levels of a nibble block as int32, in element order (lo nibbles, then hi) */
#define NIB4(q, v)                                                                                                     \
    const __m128i lo_ = _mm_and_si128(q, m4), hi_ = _mm_and_si128(_mm_srli_epi16(q, 4), m4);                           \
    const __m256i v[4] = {lo8_i32(lo_), hi8_i32(lo_), lo8_i32(hi_), hi8_i32(hi_)}

/* Q4_0: (nibble - 8) * d */
#define DEQ_Q4_0(p, w)                                                                                                 \
    do {                                                                                                               \
        const __m256 d = _mm256_set1_ps(h16(p));                                                                       \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 2));                                                 \
        NIB4(q, v);                                                                                                    \
        for (int j = 0; j < 4; j++)                                                                                    \
            w[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v[j], _mm256_set1_epi32(8))), d);                 \
    } while (0)
/* Q4_1: nibble * d + m */
#define DEQ_Q4_1(p, w)                                                                                                 \
    do {                                                                                                               \
        const __m256 d = _mm256_set1_ps(h16(p)), m = _mm256_set1_ps(h16((p) + 2));                                     \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 4));                                                 \
        NIB4(q, v);                                                                                                    \
        for (int j = 0; j < 4; j++) w[j] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v[j]), d), m);              \
    } while (0)
/* Q8_0: q * d */
#define DEQ_Q8_0(p, w)                                                                                                 \
    do {                                                                                                               \
        const __m256 d = _mm256_set1_ps(h16(p));                                                                       \
        for (int j = 0; j < 4; j++)                                                                                    \
            w[j] = _mm256_mul_ps(                                                                                      \
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)((p) + 2 + 8 * j)))), d);     \
    } while (0)
/* Q5_0 / Q5_1: + 16 where bit e of the u32 qh is set (e = 8j + lane) */
#define Q5_ADD_BITS(p, qoff, v)                                                                                        \
    uint32_t qh_;                                                                                                      \
    memcpy(&qh_, (p) + (qoff) - 4, 4);                                                                                 \
    for (int j = 0; j < 4; j++) {                                                                                      \
        const __m256i bit = _mm256_srlv_epi32(_mm256_set1_epi32((int)(qh_ >> (8 * j))),                                \
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));                              \
        v[j] = _mm256_add_epi32(v[j], _mm256_slli_epi32(_mm256_and_si256(bit, _mm256_set1_epi32(1)), 4));             \
    }
#define DEQ_Q5_0(p, w)                                                                                                 \
    do {                                                                                                               \
        const __m256 d = _mm256_set1_ps(h16(p));                                                                       \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 6));                                                 \
        NIB4(q, v0);                                                                                                   \
        __m256i v[4] = {v0[0], v0[1], v0[2], v0[3]};                                                                   \
        Q5_ADD_BITS(p, 6, v);                                                                                          \
        for (int j = 0; j < 4; j++)                                                                                    \
            w[j] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v[j], _mm256_set1_epi32(16))), d);                \
    } while (0)
#define DEQ_Q5_1(p, w)                                                                                                 \
    do {                                                                                                               \
        const __m256 d = _mm256_set1_ps(h16(p)), m = _mm256_set1_ps(h16((p) + 2));                                     \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 8));                                                 \
        NIB4(q, v0);                                                                                                   \
        __m256i v[4] = {v0[0], v0[1], v0[2], v0[3]};                                                                   \
        Q5_ADD_BITS(p, 8, v);                                                                                          \
        for (int j = 0; j < 4; j++) w[j] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v[j]), d), m);              \
    } while (0)
/* IQ4_NL: kvalues[nibble] * d (two 8-entry permutes and a blend, as NF4) */
#define DEQ_IQ4_NL(p, w)                                                                                               \
    do {                                                                                                               \
        const __m256 tlo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)ggml_iq4_levels))); \
        const __m256 thi =                                                                                             \
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(ggml_iq4_levels + 8))));         \
        const __m256 d = _mm256_set1_ps(h16(p));                                                                       \
        const __m128i q = _mm_loadu_si128((const __m128i *)((p) + 2));                                                 \
        NIB4(q, v);                                                                                                    \
        for (int j = 0; j < 4; j++) w[j] = _mm256_mul_ps(nf4_lookup(v[j], tlo, thi), d);                              \
    } while (0)

ROWDOT(rowdot_q4_0, 18, DEQ_Q4_0)
ROWDOT(rowdot_q4_1, 20, DEQ_Q4_1)
ROWDOT(rowdot_q8_0, 34, DEQ_Q8_0)
ROWDOT(rowdot_q5_0, 22, DEQ_Q5_0)
ROWDOT(rowdot_q5_1, 24, DEQ_Q5_1)
ROWDOT(rowdot_iq4_nl, 18, DEQ_IQ4_NL)

/* The K-quants, one 256-element super-block per step; BODY(p, FMA) calls
 * FMA(w, off, acc) for each 8 dequantized weights at element offset off. */
#define KROWDOT(NAME, BB, BODY)                                                                                        \
    T256 static INL void NAME##_n(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, const int R,         \
                                  double *acc) {                                                                   \
        const __m128i m4 = _mm_set1_epi8(0x0F);                                                                    \
        for (int64_t i = 0; i < nb; i++) {                                                                         \
            __m256 s[QMM_GEMV_MAX_N], t[QMM_GEMV_MAX_N];                                                           \
            for (int r = 0; r < R; r++) s[r] = t[r] = _mm256_setzero_ps();                                         \
            const uint8_t *p = b + i * (BB);                                                                       \
            const float *xk = x + i * 256;                                                                         \
            BODY(p, KFMA);                                                                                         \
            for (int r = 0; r < R; r++) acc[r] += hsum_pd(_mm256_add_ps(s[r], t[r]));                              \
        }                                                                                                          \
    }                                                                                                              \
    T256 static void NAME(const uint8_t *b, int64_t nb, const float *x, int64_t ldx, int N, double *acc) {        \
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
#define KFMA(w, off, a)                                                                                                \
    do {                                                                                                               \
        const __m256 w_ = (w);                                                                                         \
        for (int r = 0; r < R; r++) a[r] = _mm256_fmadd_ps(w_, _mm256_loadu_ps(xk + r * ldx + (off)), a[r]);          \
    } while (0)

/* Q4_K (as dequant_q4_k): d*sc*q - dmin*mn, sub-blocks 2c / 2c+1 on the low / high nibbles */
#define BODY_Q4_K(p, FMA)                                                                                              \
    do {                                                                                                               \
        const float d = h16(p), dmin = h16((p) + 2);                                                                   \
        for (int c = 0; c < 4; c++) {                                                                                  \
            uint8_t sc, mn;                                                                                            \
            ggml_k4_scale_min(2 * c, (p) + 4, &sc, &mn);                                                               \
            const __m256 d1 = _mm256_set1_ps(d * sc), m1 = _mm256_set1_ps(dmin * mn);                                  \
            ggml_k4_scale_min(2 * c + 1, (p) + 4, &sc, &mn);                                                           \
            const __m256 d2 = _mm256_set1_ps(d * sc), m2 = _mm256_set1_ps(dmin * mn);                                  \
            for (int h = 0; h < 2; h++) {                                                                              \
                const __m128i v = _mm_loadu_si128((const __m128i *)((p) + 16 + 32 * c + 16 * h));                      \
                const __m128i lo = _mm_and_si128(v, m4), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);                 \
                const int o = 64 * c + 16 * h;                                                                         \
                FMA(_mm256_sub_ps(_mm256_mul_ps(d1, lo8_ps(lo)), m1), o, s);                                           \
                FMA(_mm256_sub_ps(_mm256_mul_ps(d1, hi8_ps(lo)), m1), o + 8, t);                                       \
                FMA(_mm256_sub_ps(_mm256_mul_ps(d2, lo8_ps(hi)), m2), o + 32, s);                                      \
                FMA(_mm256_sub_ps(_mm256_mul_ps(d2, hi8_ps(hi)), m2), o + 40, t);                                      \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)

/* 8 six-bit values (bytes 0..7 or 8..15 of q) minus 32, times sc (as q6_16) */
T256 static INL __m256 q6_8(__m128i q, int hi, float sc) {
    const __m256i v = _mm256_cvtepu8_epi32(hi ? _mm_srli_si128(q, 8) : q);
    return _mm256_mul_ps(_mm256_set1_ps(sc), _mm256_cvtepi32_ps(_mm256_sub_epi32(v, _mm256_set1_epi32(32))));
}

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
                const __m128i q[4] = {                                                                                 \
                    _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(h, m3), 4)),                       \
                    _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(h, mc), 2)),                       \
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_and_si128(h, m30)),                      \
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4), _mm_and_si128(_mm_srli_epi16(h, 2), m30))};  \
                for (int j = 0; j < 4; j++) {                                                                          \
                    const float sj = d * (float)sc[g + 2 * j];                                                         \
                    const int o = 128 * half + 32 * j + 16 * g;                                                        \
                    FMA(q6_8(q[j], 0, sj), o, s);                                                                      \
                    FMA(q6_8(q[j], 1, sj), o + 8, t);                                                                  \
                }                                                                                                      \
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

const lorac_qkern *qmm_kern_avx2(void) {
    __builtin_cpu_init(); /* idempotent and cheap */
    const int ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return ok ? &g_kern : NULL;
}

#else

const lorac_qkern *qmm_kern_avx2(void) { return NULL; }

#endif
