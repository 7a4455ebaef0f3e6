/* vkern.h - the elementwise float kernels, one table of function pointers per
 * SIMD level (ops/isa.h), and the choice among the tables.
 *
 * These are the inner loops of ops that are cheap per element but run over
 * every activation of a step: GELU, SwiGLU, the rows of LayerNorm and
 * RMSNorm, AdamW's update, hashed dropout and the bf16 conversions. Each exists as
 *
 *   the scalar reference  plain C, the type-generic .inc sources (the same
 *                         text the double-precision gradient checks run)
 *                         or vkern.c for the float-only ones;
 *   an AVX2 and an AVX-512 version, written once in vkern.inc with GCC
 *                         vector extensions and explicit FMA, compiled per
 *                         level by vkern_avx2.c and vkern_avx512.c.
 *
 * The public ops (ops.h, op_f32_to_bf16, lorac_optim_step) call the table of
 * lorac_isa_active(); tests and benchmarks reach any level's table through
 * lorac_vkern_for().
 *
 * How far the SIMD versions may differ from the scalar reference (checked by
 * tests/unit/test_isa_kernels.c):
 *   - exp, erf and the activations built on them: the same formulas with
 *     fused multiply-adds, so a few float ulps: exp within 1e-6 relative;
 *     GELU-tanh and SwiGLU within 1e-6 relative + 1e-6 absolute (their
 *     derivatives add O(1) terms that cancel); erf and GELU-erf within 1e-6
 *     relative + 4e-6 absolute (erf = 1 - 1/p^16 multiplies the rounding
 *     difference in the polynomial p by 16). All far below the formulas' own
 *     error against the exact functions (template.h: 3e-7 for erf, 5e-7 for
 *     GELU-tanh), and the worst seen is about a third of these bounds;
 *   - the norm rows: the double-precision row sums are added in another
 *     order (lane-wise), which moves a float result by about an ulp of the
 *     row's largest value (1e-6 relative + 1e-7 of the row's max);
 *     the dg / db tiles are bit for bit;
 *   - AdamW, the bf16 conversions and hashed dropout (integer hash, one
 *     float multiply): no FMA, no reordering: bit for bit.
 *
 * Shapes follow the ops they serve: n elements, or one row of C elements;
 * "accumulate" kernels add into their output. */
#ifndef LORAC_OPS_VKERN_H
#define LORAC_OPS_VKERN_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "ops/isa.h"

/* The scalars of one AdamW update (train/optim.c computes them per step):
 *   w *= decay_mul (if decay);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   w -= step_size * m / (sqrt(v) / bc2_sqrt + eps) */
typedef struct lorac_adamw_scalars {
    float step_size, bc2_sqrt, decay_mul, b1, one_minus_b1, b2, one_minus_b2, eps;
    int decay;
} lorac_adamw_scalars;

/* X(name, parameters): every kernel of the table, in one list, so that the
 * struct and each level's table are generated from it and a level missing a
 * kernel does not compile. */
#define LORAC_VKERN_LIST(X)                                                                                       \
    /* y = exp(x), y = erf(x): the building blocks, alone (test, bench) */                                        \
    X(exp_run, (float *y, const float *x, size_t n))                                                              \
    X(erf_run, (float *y, const float *x, size_t n))                                                              \
    /* activations (ops/activations.inc has the formulas); backward accumulates */                               \
    X(gelu_tanh_fwd_run, (float *y, const float *x, size_t n))                                                    \
    X(gelu_tanh_bwd_run, (float *dx, const float *dy, const float *x, size_t n))                                  \
    X(gelu_erf_fwd_run, (float *y, const float *x, size_t n))                                                     \
    X(gelu_erf_bwd_run, (float *dx, const float *dy, const float *x, size_t n))                                   \
    X(swiglu_fwd_run, (float *h, const float *gate, const float *up, size_t n))                                   \
    X(swiglu_bwd_run, (float *dgate, float *dup, const float *dh, const float *gate, const float *up, size_t n))  \
    /* one row of a norm (ops/norms.inc; mean / rstd may be NULL), and the
     * parameter gradients of n columns over N rows of row stride ld */                                             \
    X(layernorm_fwd_row,                                                                                          \
      (float *y, float *mean, float *rstd, const float *x, const float *g, const float *b, int C, float eps))    \
    X(layernorm_bwd_row, (float *dx, const float *dy, const float *x, float mu, float r, const float *g, int C)) \
    X(layernorm_params_tile, (double *acc_g, double *acc_b, const float *dy, const float *x, const float *mean,   \
                              const float *rstd, int N, int ld, int n))                                           \
    X(rmsnorm_fwd_row, (float *y, float *rstd, const float *x, const float *g, int C, float eps))                 \
    X(rmsnorm_bwd_row, (float *dx, const float *dy, const float *x, float r, const float *g, int C))             \
    X(rmsnorm_params_tile,                                                                                        \
      (double *acc_g, const float *dy, const float *x, const float *rstd, int N, int ld, int n))                 \
    /* AdamW over one parameter tensor (train/optim.c) */                                                         \
    X(adamw_run, (float *w, float *m, float *v, const float *g, size_t n, const lorac_adamw_scalars *s))         \
    /* hashed dropout (op_dropout_hash, attention dropout): x[k] = keep ? x[k] * keep_scale : 0 with keep =    \
     * lorac_hash_keep(key, idx0 + k * step, p), the same integer hash in every level: bit for bit */           \
    X(dropout_hash_run, (float *x, size_t n, uint64_t key, uint64_t idx0, uint64_t step, float p, float keep_scale)) \
    /* bf16 <-> fp32 (ops/gemm.h: round to nearest even, NaN stays a quiet NaN) */                                \
    X(f32_to_bf16_run, (uint16_t *dst, const float *src, size_t n))                                               \
    X(bf16_to_f32_run, (float *dst, const uint16_t *src, size_t n))

#define LORAC_VKERN_FIELD(name, params) void(*name) params;
typedef struct lorac_vkern {
    const char *name; /* lorac_isa_name of its level */
    LORAC_VKERN_LIST(LORAC_VKERN_FIELD)
} lorac_vkern;
#undef LORAC_VKERN_FIELD

/* The table of the active level (lorac_isa_active()). */
const lorac_vkern *lorac_vkern_active(void);
/* The table of `isa`; NULL when this CPU or build does not run it. */
const lorac_vkern *lorac_vkern_for(lorac_isa isa);

/* ---- internal: where the tables come from ---- */

/* The SIMD tables (vkern_avx2.c, vkern_avx512.c); NULL where not compiled
 * in (other architectures). They do not check the CPU: lorac_vkern_for does. */
const lorac_vkern *lorac_vkern_avx2(void);
const lorac_vkern *lorac_vkern_avx512(void);

/* The scalar references: the activation and norm ones are the float
 * instances of the .inc sources (ops_float.c), the rest are in vkern.c. */
#define LORAC_VKERN_DECL(name, params) void op_##name params;
LORAC_VKERN_LIST(LORAC_VKERN_DECL)
#undef LORAC_VKERN_DECL

#endif
