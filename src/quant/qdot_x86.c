/* qdot_x86.c - the x86 int8-activation row kernels (qdot.c has the math and
 * the scalar reference). One body, qdot_x86.inc, built twice:
 *
 *   AVX2 + FMA  u8 x s8 products by vpmaddubsw (pairs summed to int16: at
 *               most 2 * 128 * 127 = 32512, never saturating for these
 *               levels: |v| <= 128, unsigned u <= 63), then vpmaddwd by
 *               ones (quads summed to int32). Haswell, Zen 1-3 and on.
 *   AVX-512     the same 32-byte groups with VNNI's vpdpbusd, which sums
 *   VNNI        the four u8 x s8 products of each lane straight into int32
 *               (one instruction for the two above). Ice Lake, Zen 4.
 *               Written 256 bits wide (AVX512-VL): a group of 32 weights is
 *               one ymm, and Zen 4 runs a 512-bit op as two 256-bit ones. */
#include "quant/qmatmul_impl.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <string.h>

#include "quant/ggml_blocks_impl.h"

#define INL inline __attribute__((always_inline))

/* ---- AVX2 ---- */
#define QD_T __attribute__((target("avx2,fma,f16c")))
#define QD(name) name##_avx2
#define QD_DOT(u, x) _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1))
#include "quant/qdot_x86.inc"
#undef QD_T
#undef QD
#undef QD_DOT

/* ---- AVX-512 VNNI ---- */
#define QD_T __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define QD(name) name##_vnni
#define QD_DOT(u, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x)
#include "quant/qdot_x86.inc"

/* ---- the activation quantizer (qdot.c's xq8_row_scalar, 32 at a time) ---- */
__attribute__((target("avx2,fma"))) static void xq8_row_avx2(const float *x, int64_t ng, int8_t *q, float *d,
                                                              float *s32, float *s) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), big = _mm256_set1_ps(3.4e38f);
    for (int64_t g = 0; g < ng; g++) {
        const float *xg = x + 32 * g;
        __m256 v[4], m = _mm256_setzero_ps();
        int finite = 1;
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(xg + 8 * j);
            const __m256 a = _mm256_and_ps(v[j], absmask);
            finite &= _mm256_movemask_ps(_mm256_cmp_ps(a, big, _CMP_LE_OQ)) == 0xFF; /* false for inf, NaN */
            m = _mm256_max_ps(m, a);
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        const float amax = _mm_cvtss_f32(_mm_max_ss(h, _mm_shuffle_ps(h, h, 1)));
        const float id = qmm_xq8_group_scale(amax, finite, g, q, d, s32, s);
        if (id == 0.0f) continue;
        const __m256 idv = _mm256_set1_ps(id);
        __m256i l[4]; /* round to nearest even, as lrintf in the default rounding mode */
        for (int j = 0; j < 4; j++) l[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], idv));
        /* int32 -> int8 (no saturation: |l| <= 127); packs interleave 128-bit lanes, the permute undoes it */
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(l[0], l[1]), _mm256_packs_epi32(l[2], l[3]));
        _mm256_storeu_si256((__m256i *)(q + 32 * g), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        int sum[2]; /* per 16 elements, exact integers as in the scalar code */
        for (int hh = 0; hh < 2; hh++) {
            const __m256i t = _mm256_add_epi32(l[2 * hh], l[2 * hh + 1]);
            __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
            u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4E));
            sum[hh] = _mm_cvtsi128_si32(_mm_add_epi32(u, _mm_shuffle_epi32(u, 0xB1)));
            s[2 * g + hh] = d[g] * (float)sum[hh];
        }
        s32[g] = d[g] * (float)(sum[0] + sum[1]);
    }
}

qmm_xq8_row_fn qmm_xq8_row_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? xq8_row_avx2 : NULL;
}

qmm_q8dot_fn qmm_q8dot_avx2(lorac_qformat f) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")))
        return NULL;
    return lookup_avx2(f);
}

qmm_q8dot_fn qmm_q8dot_vnni(lorac_qformat f) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") && qmm_q8dot_avx2(f)))
        return NULL;
    return lookup_vnni(f);
}

#else

qmm_q8dot_fn qmm_q8dot_avx2(lorac_qformat f) {
    (void)f;
    return NULL;
}
qmm_q8dot_fn qmm_q8dot_vnni(lorac_qformat f) {
    (void)f;
    return NULL;
}
qmm_xq8_row_fn qmm_xq8_row_avx2(void) { return NULL; }

#endif
