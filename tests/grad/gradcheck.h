/* gradcheck.h - central finite differences in double, for the grad tests.
 *
 * Usage: write a loss function L(ctx) that runs a forward pass of opd_*
 * (double) ops and returns sum(out * R) for a fixed random R (a plain sum
 * would hide softmax and transpose bugs: sum(softmax) is constant). Run the
 * backward with dout = R into gradient buffers that start at random values
 * (backward accumulates), subtract the start values, and call
 *
 *     gradcheck("what", L, ctx, x, n, analytic);
 *
 * which perturbs each x[i] by +-GC_EPS and requires
 *     |analytic - numeric| <= GC_ATOL + GC_RTOL |numeric|.
 * Error budget: the central difference's truncation error is ~eps^2 |L'''|
 * ~ 1e-12, its rounding error ~ 1e-16 |L| / eps ~ 1e-9 for |L| ~ 10, so a
 * wrong formula (errors of order 1) cannot pass and a right one cannot fail.
 * Header-only (static functions) so each grad test stays one file. */
#ifndef LORAC_TESTS_GRADCHECK_H
#define LORAC_TESTS_GRADCHECK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "testutil.h"

#define GC_EPS 1e-6
#define GC_RTOL 1e-6
#define GC_ATOL 1e-7

typedef double (*gc_loss_fn)(void *ctx);

static lorac_rng gc_rng;
static double gc_worst_seen; /* largest |analytic - numeric| / tolerance over all checks */

/* n standard-normal doubles (caller frees). */
static inline double *gc_randn(size_t n) {
    double *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = lorac_rng_normal(&gc_rng);
    return a;
}

static inline double *gc_copy(const double *a, size_t n) {
    double *c = malloc((n ? n : 1) * sizeof *c);
    memcpy(c, a, n * sizeof *c);
    return c;
}

/* sum_i out[i] * R[i] */
static inline double gc_dot(const double *out, const double *R, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += out[i] * R[i];
    return s;
}

/* after[i] -= before[i]: turns an accumulated gradient into its increment. */
static inline void gc_sub(double *after, const double *before, size_t n) {
    for (size_t i = 0; i < n; i++) after[i] -= before[i];
}

/* Checks grad (dL/dx, n elements) against central differences of f at x. */
static inline void gradcheck(const char *what, gc_loss_fn f, void *ctx, double *x, size_t n, const double *grad) {
    double worst = 0, wa = 0, wn = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + GC_EPS;
        double lp = f(ctx);
        x[i] = x0 - GC_EPS;
        double lm = f(ctx);
        x[i] = x0;
        double num = (lp - lm) / (2 * GC_EPS);
        double ratio = fabs(grad[i] - num) / (GC_ATOL + GC_RTOL * fabs(num));
        if (!(ratio <= worst)) { /* also catches NaN */
            worst = ratio;
            wi = i;
            wa = grad[i];
            wn = num;
        }
    }
    if (!(worst <= gc_worst_seen)) gc_worst_seen = worst;
    CHECK(worst <= 1.0, "%s: element %zu: analytic %.12g numeric %.12g (|err|/tol = %.3g)", what, wi, wa, wn, worst);
}

#endif
