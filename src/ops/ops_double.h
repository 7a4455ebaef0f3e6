/* ops_double.h - double-precision twins of every op in ops.h (opd_*).
 *
 * Same semantics, argument order and accumulate rules as the op_* function of
 * the same name, with every float replaced by double. Except for the linear
 * layer and GEMM (plain triple loops here, BLAS in op_*), each opd_* is
 * compiled from the same source text as its op_* twin (see ops/template.h).
 *
 * Who uses them: tests. Gradient checks run entirely in double (central
 * finite differences need ~1e-6 steps, which float cannot resolve), and the
 * float / BLAS / OpenMP paths are checked against these over odd shapes. A
 * model- or LoRA-level gradient check may build its forward from these too. */
#ifndef LORAC_OPS_DOUBLE_H
#define LORAC_OPS_DOUBLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

/* matmul: scalar reference loops (accumulated in double, row by row) */
void opd_linear_fwd(double *y, const double *x, const double *W, const double *b, int N, int in, int out,
                    int w_in_out, double beta);
void opd_linear_bwd_x(double *dx, const double *dy, const double *W, int N, int in, int out, int w_in_out);
void opd_linear_bwd_w(double *dW, double *db, const double *dy, const double *x, int N, int in, int out,
                      int w_in_out);
void opd_gemm(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda, const double *B, int ldb,
              double beta, double *C, int ldc);

/* elementwise */
void opd_add(double *y, const double *a, const double *b, size_t n);
void opd_acc(double *y, const double *x, size_t n);
void opd_scale(double *y, double s, size_t n);
void opd_gelu_tanh_fwd(double *y, const double *x, size_t n);
void opd_gelu_tanh_bwd(double *dx, const double *dy, const double *x, size_t n);
void opd_gelu_erf_fwd(double *y, const double *x, size_t n);
void opd_gelu_erf_bwd(double *dx, const double *dy, const double *x, size_t n);
void opd_relu_fwd(double *y, const double *x, size_t n);
void opd_relu_bwd(double *dx, const double *dy, const double *x, size_t n);
void opd_tanh_fwd(double *y, const double *x, size_t n);
void opd_tanh_bwd(double *dx, const double *dy, const double *y, size_t n);
void opd_swiglu_fwd(double *h, const double *gate, const double *up, size_t n);
void opd_swiglu_bwd(double *dgate, double *dup, const double *dh, const double *gate, const double *up, size_t n);
void opd_dropout_fwd(double *y, uint8_t *mask, const double *x, size_t n, double p, lorac_rng *rng);
void opd_dropout_apply(double *y, const uint8_t *mask, const double *x, size_t n, double p); /* p > 0: y = x * mask / (1 - p) */
void opd_dropout_bwd(double *dx, const double *dy, const uint8_t *mask, size_t n, double p);

/* norms */
void opd_layernorm_fwd(double *y, double *mean, double *rstd, const double *x, const double *g, const double *b,
                       int N, int C, double eps);
void opd_layernorm_bwd(double *dx, double *dg, double *db, const double *dy, const double *x, const double *mean,
                       const double *rstd, const double *g, int N, int C);
void opd_rmsnorm_fwd(double *y, double *rstd, const double *x, const double *g, int N, int C, double eps);
void opd_rmsnorm_bwd(double *dx, double *dg, const double *dy, const double *x, const double *rstd, const double *g,
                     int N, int C);

/* embeddings, rope */
void opd_embed_fwd(double *y, const double *table, const int *ids, int N, int C, int accumulate);
void opd_embed_bwd(double *dtable, const double *dy, const int *ids, int N, int C);
void opd_rope(double *x, const int *pos, int B, int T, int H, int D, int ld, double theta, int inverse);
void opd_rope_inv_freq(double *inv_freq, int D, double theta);
void opd_rope_freqs(double *x, const int *pos, int B, int T, int H, int D, int ld, const double *inv_freq,
                    int inverse);

/* attention */
void opd_attention_fwd(double *out, double *att, const double *q, int ldq, const double *k, int ldk, const double *v,
                       int ldv, const uint8_t *keymask, int B, int T, int Hq, int Hkv, int D, int causal);
void opd_attention_bwd(double *dq, double *dk, double *dv, const double *dout, const double *att, const double *q,
                       int ldq, const double *k, int ldk, const double *v, int ldv, int B, int T, int Hq, int Hkv,
                       int D);

/* loss */
double opd_xent(double *dlogits, const double *logits, const int *targets, int N, int V, double grad_scale,
                int *count);

#endif
