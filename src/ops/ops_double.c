/* ops_double.c - the double-precision twins (opd_*, ops_double.h) of every op.
 * The type-generic sources (.inc files) are instantiated here with REAL = double;
 * the linear layer and GEMM, which are BLAS calls in linear.c, are written
 * out below as plain loops so they are an independent reference. */
#define REAL double
#define OP(name) opd_##name
#include "ops/template.h"

#include "ops/ops_double.h"

#include "ops/elementwise.inc"
#include "ops/activations.inc"
#include "ops/norms.inc"
#include "ops/embed.inc"
#include "ops/rope.inc"
#include "ops/attention.inc"
#include "ops/xent.inc"

/* Element (o, i) of the [out, in] matrix W_eff that y = x W_eff^T uses:
 * W itself for w_in_out == 0, the transpose of W [in, out] for 1. */
static double w_eff(const double *W, int o, int i, int in, int out, int w_in_out) {
    return w_in_out ? W[(size_t)i * out + o] : W[(size_t)o * in + i];
}

/* y[n,o] = beta y[n,o] + sum_i x[n,i] W_eff[o,i] + b[o]  (beta == 0 overwrites) */
void opd_linear_fwd(double *y, const double *x, const double *W, const double *b, int N, int in, int out,
                    int w_in_out, double beta) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int i = 0; i < in; i++) acc += x[(size_t)n * in + i] * w_eff(W, o, i, in, out, w_in_out);
            double *yo = &y[(size_t)n * out + o];
            *yo = (beta != 0 ? beta * *yo : 0) + acc + (b ? b[o] : 0);
        }
}

/* dx[n,i] += sum_o dy[n,o] W_eff[o,i] */
void opd_linear_bwd_x(double *dx, const double *dy, const double *W, int N, int in, int out, int w_in_out) {
    if (!dx) return;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < in; i++) {
            double acc = 0;
            for (int o = 0; o < out; o++) acc += dy[(size_t)n * out + o] * w_eff(W, o, i, in, out, w_in_out);
            dx[(size_t)n * in + i] += acc;
        }
}

/* dW_eff[o,i] += sum_n dy[n,o] x[n,i]  (stored in W's layout);  db[o] += sum_n dy[n,o] */
void opd_linear_bwd_w(double *dW, double *db, const double *dy, const double *x, int N, int in, int out,
                      int w_in_out) {
    for (int o = 0; o < out; o++) {
        if (dW)
            for (int i = 0; i < in; i++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += dy[(size_t)n * out + o] * x[(size_t)n * in + i];
                dW[w_in_out ? (size_t)i * out + o : (size_t)o * in + i] += acc;
            }
        if (db) {
            double acc = 0;
            for (int n = 0; n < N; n++) acc += dy[(size_t)n * out + o];
            db[o] += acc;
        }
    }
}

/* C[m,n] = alpha sum_k op(A)[m,k] op(B)[k,n] + beta C[m,n]  (beta == 0 overwrites) */
void opd_gemm(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda, const double *B, int ldb,
              double beta, double *C, int ldc) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + m] : A[(size_t)m * lda + k];
                double b = tb ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                acc += a * b;
            }
            double *c = &C[(size_t)m * ldc + n];
            *c = alpha * acc + (beta != 0 ? beta * *c : 0);
        }
}
