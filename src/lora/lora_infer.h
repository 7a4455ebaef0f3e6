/* lora_infer.h - the LoRA term of a decoding step in one pass, no BLAS call
 * and no parallel region (lora/lora_infer.c has the math and the reasons).
 *
 * For the few rows a KV-cache step feeds a Linear (one per sequence and
 * new token), y += s (x A^T) B^T costs two tiny GEMVs per Linear; through
 * op_gemm each is a BLAS call that may open an OpenMP region of its own.
 * lorac_lora_infer_term does them as one loop nest on the caller's thread,
 * reading A and B where they are (fp32, in place: no copy to build, to keep
 * in step with training or to free). */
#ifndef LORAC_LORA_LORA_INFER_H
#define LORAC_LORA_LORA_INFER_H

#include "models/model.h"
#include "ops/isa.h"

/* The most rows one call of the fused kernel takes (lorac_lora_infer_term chunks more). */
#define LORAC_LORA_INFER_MAX_N 8

/* One LoRA pair's term as the kernels see it: A [parts * r, in], B [out, r]
 * (block p of ob = out / parts rows of B pairs with rows p r .. p r + r - 1
 * of A), y += scale (x A^T) B^T. */
typedef struct lorac_lora_term {
    const float *A, *B;
    int in, out, r, parts;
    float scale;
} lorac_lora_term;

/* y[N, out] += scale * (x[N, in] A^T) B^T with t [N, parts * r] as scratch
 * (it holds x A^T afterwards); 1 <= N <= LORAC_LORA_INFER_MAX_N. */
typedef void (*lorac_lora_infer_fn)(const lorac_lora_term *k, float *y, const float *x, int N, float *t);

/* The kernel of `isa` (scalar, AVX2, AVX-512), or NULL when this CPU or
 * build does not run it. Tests reach every level through it. */
lorac_lora_infer_fn lorac_lora_infer_for(lorac_isa isa);

/* The adapter term of Linear L at inference (a decoding step, a prompt, a
 * forward without gradients): y[N, out] += s (x A^T) B^T (DoRA: its
 * rescaled output), as lorac_lora_term_fwd, whose result it matches within
 * fp32 rounding. Plain LoRA runs the fused kernel of the active SIMD level
 * over chunks of LORAC_LORA_INFER_MAX_N rows, so each row's result is the
 * same bits whatever N is (a KV-cache step equals the full forward's row);
 * DoRA goes to lorac_lora_term_fwd. xa [N, parts * r] receives x A^T. */
void lorac_lora_infer_term(const lorac_linear *L, lorac_lora *l, float *y, const float *x, int N, float *xa);

/* The SIMD kernels (lora_infer_avx2.c, lora_infer_avx512.c); NULL where not
 * compiled in. They do not check the CPU: lorac_lora_infer_for does. */
lorac_lora_infer_fn lorac_lora_infer_avx2(void);
lorac_lora_infer_fn lorac_lora_infer_avx512(void);

#endif
