/* lora_infer_avx2.c - the fused LoRA term of lora_infer.inc for AVX2 + FMA
 * (8 floats per ymm register). Called only when lorac_isa_best() says the
 * CPU has AVX2 and FMA (ops/isa.c). */
#include <string.h>

#include "lora/lora_infer.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define LI_ISA avx2
#define LI_TARGET __attribute__((target("avx2,fma")))
#define LI_VW 8
#define LI_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define LI_LOADN(p, len) \
    _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(len), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
#include "lora/lora_infer.inc"
#else
const lorac_lora_infer_kern *lorac_lora_infer_avx2(void) { return NULL; }
#endif
