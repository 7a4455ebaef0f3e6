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
QD_T static INL float h16_avx2(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
#define h16 h16_avx2
#include "quant/qdot_x86.inc"
#undef h16
#undef QD_T
#undef QD
#undef QD_DOT

/* ---- AVX-512 VNNI ---- */
#define QD_T __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define QD(name) name##_vnni
#define QD_DOT(u, x) _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x)
QD_T static INL float h16_vnni(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}
#define h16 h16_vnni
#include "quant/qdot_x86.inc"
#undef h16

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

#endif
