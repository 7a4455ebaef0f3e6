/* ops_float.c - instantiates the type-generic op sources (.inc files) in float:
 * these are the op_* functions declared in ops.h, except the BLAS-backed
 * linear layer and GEMM (linear.c) and attention (attention_flash.c, a
 * cache-blocked float algorithm tested against the double attention.inc).
 * Their double twins, from the same source text, are built by ops_double.c;
 * see ops/template.h. */
#define REAL float
#define OP(name) op_##name
#define OPS_FAST_ERF 1
#include "ops/template.h"

#include "ops/ops.h"

#include "ops/elementwise.inc"
#include "ops/activations.inc"
#include "ops/norms.inc"
#include "ops/embed.inc"
#include "ops/rope.inc"
#include "ops/xent.inc"

/* The exp and erf of the activations on their own: the scalar references of
 * the kernel table's exp_run and erf_run (ops/vkern.h), for the tests and the
 * benchmark that check the SIMD versions of these building blocks alone. */
void op_exp_run(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = ops_expf(x[i]);
}

void op_erf_run(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = ops_erf(x[i]);
}
