/* lora_infer_avx512.c - the fused LoRA term of lora_infer.inc for AVX-512
 * (16 floats per zmm register). Called only when lorac_isa_best() says the
 * CPU has AVX-512 F/BW/DQ/VL besides AVX2 and FMA (ops/isa.c). */
#include <string.h>

#include "lora/lora_infer.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define LI_ISA avx512
#define LI_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#define LI_VW 16
#define LI_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define LI_LOADN(p, len) _mm512_maskz_loadu_ps((__mmask16)((1u << (len)) - 1), p)
#include "lora/lora_infer.inc"
#else
const lorac_lora_infer_kern *lorac_lora_infer_avx512(void) { return NULL; }
#endif
