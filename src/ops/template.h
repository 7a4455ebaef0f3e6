/* template.h - scaffolding for the type-generic op sources (the .inc files in src/ops).
 *
 * Every op except the BLAS matmuls (linear.c) is written ONCE, in a .inc file,
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
#else
#define OPS_ERF(x) erf(x)
#endif

/* A loop over fewer than this many scalar elements runs on one thread: the
 * cost of waking the OpenMP team (a few microseconds) is more than the work. */
#define OPS_PAR_MIN 16384

/* Width of the column tiles used for reductions over rows (dg, db, dtable):
 * each tile is owned by one thread, which sums the rows in order. */
#define OPS_COL_TILE 64

#endif
