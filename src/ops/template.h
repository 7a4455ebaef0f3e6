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

/* A loop over fewer than this many scalar elements runs on one thread: the
 * cost of waking the OpenMP team (a few microseconds) is more than the work. */
#define OPS_PAR_MIN 16384

/* Width of the column tiles used for reductions over rows (dg, db, dtable):
 * each tile is owned by one thread, which sums the rows in order. */
#define OPS_COL_TILE 64

#endif
