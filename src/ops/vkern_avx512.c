/* vkern_avx512.c - the elementwise kernels of vkern.inc for AVX-512 (16
 * floats per zmm register). Called only when lorac_isa_best() says the CPU
 * has AVX-512 F/BW/DQ/VL besides AVX2 and FMA (ops/isa.c). */
#include <math.h>
#include <string.h>

#include "ops/vkern.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define VK_ISA avx512
#define VK_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define VK_VW 16
#define VK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VK_SQRT(a) _mm512_sqrt_ps(a)
#define VK_WIDEN16(h) _mm512_cvtepu16_epi32((__m256i)(h))
#include "ops/vkern.inc"
#else
const lorac_vkern *lorac_vkern_avx512(void) { return NULL; }
#endif
