/* vkern_avx2.c - the elementwise kernels of vkern.inc for AVX2 + FMA (8
 * floats per ymm register). Called only when lorac_isa_best() says the CPU
 * has AVX2 and FMA (ops/isa.c). */
#include <math.h>
#include <string.h>

#include "ops/vkern.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VK_ISA avx2
#define VK_TARGET __attribute__((target("avx2,fma")))
#define VK_VW 8
#define VK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VK_SQRT(a) _mm256_sqrt_ps(a)
#define VK_WIDEN16(h) _mm256_cvtepu16_epi32((__m128i)(h))
#include "ops/vkern.inc"
#else
const lorac_vkern *lorac_vkern_avx2(void) { return NULL; }
#endif
