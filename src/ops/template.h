/* template.h - scaffolding for the type-generic op sources (the .inc files in src/ops).
 *
 * Every op except the matmuls (linear.c, gemm.c) and the float attention
 * (attention_flash.c, tested against the double attention.inc) is written
 * ONCE, in a .inc file,
 * against two macros:
 *
 *   REAL      the floating-point type of tensors and scalar arguments
 *   OP(name)  the public name of a function, e.g. OP(relu_fwd)
 *
 * and compiled twice:
 *
 *   ops_float.c   REAL = float,  OP(n) = op_##n    -> the op_* API of ops.h
 *   ops_double.c  REAL = double, OP(n) = opd_##n   -> the opd_* twins of
 *                                                    ops_double.h, used by the
 *                                                    gradient checks in double
 *
 * so the function a model calls and the function whose backward is checked
 * against finite differences are the same source text. Math calls go through
 * <tgmath.h>: exp(x) is expf for a float x and exp for a double x.
 *
 * Threading: loops are parallelised with OpenMP over independent rows /
 * (batch, head) pairs / column tiles. No op reduces floats across threads in
 * an order that depends on the thread count, so every result is bitwise the
 * same for any OMP_NUM_THREADS.
 *
 * Include this header first, after defining REAL and OP. */
#ifndef LORAC_OPS_TEMPLATE_H
#define LORAC_OPS_TEMPLATE_H

#if !defined(REAL) || !defined(OP)
#error "define REAL and OP before including ops/template.h"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "core/rng.h"
#include "core/status.h"

/* erf for GELU. In float, libm's erff is a scalar call that costs ~8% of a
 * BERT training step; Abramowitz & Stegun 7.1.28 (|error| <= 3e-7, below
 * float's half-ulp near 1) needs no exp and vectorises:
 *   erf(x) = 1 - 1 / (1 + a1 x + ... + a6 x^6)^16   (x >= 0; odd function)
 * The double build (the gradient checks) keeps libm's erf. */
#ifdef OPS_FAST_ERF
static inline float ops_erf(float x) {
    const float ax = fabsf(x);
    float p = 1.0f + ax * (0.0705230784f + ax * (0.0422820123f + ax * (0.0092705272f +
                     ax * (0.0001520143f + ax * (0.0002765672f + ax * 0.0000430638f)))));
    p *= p; /* ^2 */
    p *= p; /* ^4 */
    p *= p; /* ^8 */
    p *= p; /* ^16 (inf for large |x|: 1/inf = 0, erf = +-1) */
    const float r = 1.0f - 1.0f / p;
    return x < 0 ? -r : r;
}
#define OPS_ERF(x) ops_erf(x)

/* exp in float, for the activations (GELU's tanh form, SiLU): libm's expf
 * is a scalar call per element; this is branch-free, and vkern.inc has the
 * same formula in SIMD lanes (GCC does not vectorise this one on its own).
 *   x = n ln2 + r,  n = round(x / ln2),  |r| <= ln2 / 2
 *   e^x = 2^n e^r,  e^r by its Taylor polynomial to r^6 (truncation
 *   <= 0.347^7 / 7! = 1.2e-7 relative), 2^n built in the exponent bits.
 * n is rounded by adding and subtracting 1.5 * 2^23 (round to nearest, no
 * libm call). Inputs are clamped to [-87.3, 88.7] (the results at the
 * clamps are 2^-126 and +inf, what the callers' 1 / (1 + e) wants); a NaN
 * input gives NaN, never a finite number. Max relative error ~3e-7. */
static inline float ops_expf(float x) {
    const float xc = x < -87.3f ? -87.3f : x > 88.7f ? 88.7f : x;
    const float big = 12582912.0f; /* 1.5 * 2^23 */
    float n = (xc * 1.44269504f + big) - big;
    n = n == n ? n : 0.0f; /* NaN in: keep the integer conversion defined */
    const float r = (xc - n * 0.693145751953125f) - n * 1.42860677e-06f;
    const float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666667f + r * (0.0416666667f + r * (0.00833333333f +
                                                                                   r * 0.00138888889f)))));
    const int32_t bits = ((int32_t)n + 127) * 8388608; /* (n + 127) << 23, n in [-126, 128] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x == x ? p * scale : x;
}
#define OPS_EXP(x) ops_expf(x)

/* The elementwise kernels (ops/vkern.h). A .inc source writes a kernel's
 * scalar reference with OPS_KERNEL_REF in front of it; an op that calls
 * kernels starts with OPS_KERNELS (which looks up the table once) and calls
 * one as OPS_KERNEL(name). In float the reference is an external function
 * (the scalar row of the kernel table) and OPS_KERNEL goes through the table
 * of the active SIMD level, which holds AVX2 / AVX-512 versions of the same
 * formula (ops/isa.h: LORAC_ISA picks the level). In double there is only
 * the reference, called directly. */
#include "ops/vkern.h"
#define OPS_KERNEL_REF
#define OPS_KERNELS                                                                                             \
    const lorac_vkern *const ops_kernels_ = lorac_vkern_active();                                               \
    (void)ops_kernels_
#define OPS_KERNEL(name) (ops_kernels_->name)
#else
#define OPS_ERF(x) erf(x)
#define OPS_EXP(x) exp(x)
#define OPS_KERNEL_REF static
#define OPS_KERNELS (void)0
#define OPS_KERNEL(name) OP(name)
#endif

/* Run `call` over [0, n) in chunks of OPS_CHUNK elements, the chunks spread
 * over the OpenMP threads when n >= OPS_PAR_MIN; `call` sees i0 (first
 * element) and len (elements in the chunk). Chunks are disjoint, so the
 * result does not depend on the thread count. */
#define OPS_CHUNK 4096
#define OPS_FOR_CHUNKS(n, call)                                                                                  \
    do {                                                                                                         \
        const size_t n_ = (n);                                                                                   \
        const long nch_ = (long)((n_ + OPS_CHUNK - 1) / OPS_CHUNK);                                              \
        const int par_ = n_ >= OPS_PAR_MIN;                                                                      \
        _Pragma("omp parallel for if (par_)") for (long c_ = 0; c_ < nch_; c_++) {                               \
            const size_t i0 = (size_t)c_ * OPS_CHUNK, len = n_ - i0 < OPS_CHUNK ? n_ - i0 : OPS_CHUNK;           \
            call;                                                                                                \
        }                                                                                                        \
    } while (0)

/* A loop over fewer than this many scalar elements runs on one thread: the
 * cost of waking the OpenMP team (a few microseconds) is more than the work. */
#define OPS_PAR_MIN 16384

/* Width of the column tiles used for reductions over rows (dg, db, dtable):
 * each tile is owned by one thread, which sums the rows in order. */
#define OPS_COL_TILE 64

#endif
