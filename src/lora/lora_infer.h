/* lora_infer.h - the LoRA term of a decoding step in one pass, no BLAS call
 * and no parallel region of its own (lora/lora_infer.c has the math and the
 * reasons).
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

/* The kernels of one SIMD level, for 1 <= N <= LORAC_LORA_INFER_MAX_N rows:
 *   term  y[N, out] += scale * (x[N, in] A^T) B^T with t [N, parts * r] as
 *         scratch (it holds x A^T afterwards): t over all rows of A, then y;
 *   t     t[:, j0:j1) = x A[j0:j1)^T, rows j0 .. j1 - 1 of A only;
 *   y     y[:, o0:o1) += scale * t B^T for the rows o0 .. o1 - 1 of B only.
 * A row's result is the same bits whichever range it is computed in, so
 * threads may split t's rows, then y's (lorac_lora_infer_linear). */
typedef void (*lorac_lora_infer_fn)(const lorac_lora_term *k, float *y, const float *x, int N, float *t);
typedef struct lorac_lora_infer_kern {
    lorac_lora_infer_fn term;
    void (*t)(const lorac_lora_term *k, const float *x, int N, float *t, int j0, int j1);
    void (*y)(const lorac_lora_term *k, float *y, const float *t, int N, int o0, int o1);
} lorac_lora_infer_kern;

/* The kernels of `isa` (scalar, AVX2, AVX-512), or NULL when this CPU or
 * build does not run them. Tests reach every level through it. */
const lorac_lora_infer_kern *lorac_lora_infer_for(lorac_isa isa);

/* The adapter term of Linear L at inference (a decoding step, a prompt, a
 * forward without gradients): y[N, out] += s (x A^T) B^T (DoRA: its
 * rescaled output), as lorac_lora_term_fwd, whose result it matches within
 * fp32 rounding. Plain LoRA runs the fused kernel of the active SIMD level
 * over chunks of LORAC_LORA_INFER_MAX_N rows, so each row's result is the
 * same bits whatever N is (a KV-cache step equals the full forward's row);
 * DoRA goes to lorac_lora_term_fwd. xa [N, parts * r] receives x A^T. */
void lorac_lora_infer_term(const lorac_linear *L, lorac_lora *l, float *y, const float *x, int N, float *xa);

/* A whole Linear at inference: y[N, out] = x W^T + b (lorac_linear_base_fwd)
 * plus the term of pair l (NULL or merged: none) on its input xl (x, or
 * LoRA dropout's copy of it), with the same result, bit for bit, as
 * lorac_linear_base_fwd then lorac_lora_infer_term. Over a quantized base
 * on the int8 road the term joins the base's parallel region
 * (lorac_qepilogue): the threads split the rows of A, then each finishes
 * its band of y with the rows of B, so a decoding step reads the adapter
 * on every thread and opens no region for it. */
void lorac_lora_infer_linear(const lorac_linear *L, lorac_lora *l, float *y, const float *x, const float *xl, int N,
                             float *xa);

/* The SIMD kernels (lora_infer_avx2.c, lora_infer_avx512.c); NULL where not
 * compiled in. They do not check the CPU: lorac_lora_infer_for does. */
const lorac_lora_infer_kern *lorac_lora_infer_avx2(void);
const lorac_lora_infer_kern *lorac_lora_infer_avx512(void);

#endif
