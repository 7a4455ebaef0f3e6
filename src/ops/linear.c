/* linear.c - the linear layer on top of op_gemm (gemm.c: oneDNN or OpenBLAS).
 *
 * Shapes: x, dx [N, in]; y, dy [N, out]; b, db [out]; W, dW either
 *   w_in_out == 0: [out, in]  (torch.nn.Linear; y = x W^T)
 *   w_in_out == 1: [in, out]  (GPT-2 Conv1D;    y = x W)
 * All matrices row-major and contiguous. The double-precision scalar twins
 * (opd_linear_*, opd_gemm in ops_double.c) are the reference these are
 * tested against. */
#include "ops/gemm.h"
#include "ops/ops.h"

/* ld of a row-major matrix with `cols` columns: BLAS wants >= 1 even when
 * a dimension is 0. */
static int ld_of(int cols) { return cols > 0 ? cols : 1; }

/* Forward: y = x W^T + b  (+ beta * y before the product).
 *   w_in_out 0: y[N,out] = x[N,in] . (W[out,in])^T   -> sgemm(N, T)
 *   w_in_out 1: y[N,out] = x[N,in] . W[in,out]       -> sgemm(N, N)
 * with b[o] added to every row as the product is written (b may be NULL). */
void op_linear_fwd(float *y, const float *x, const float *W, const float *b, int N, int in, int out, int w_in_out,
                   float beta) {
    if (N <= 0 || out <= 0) return;
    if (w_in_out)
        op_gemm_bias(0, 0, N, out, in, x, ld_of(in), W, ld_of(out), b, beta, y, out);
    else
        op_gemm_bias(0, 1, N, out, in, x, ld_of(in), W, ld_of(in), b, beta, y, out);
}

void op_add_bias(float *y, const float *b, int64_t N, int64_t out) {
#pragma omp parallel for if (N * out >= 16384)
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < out; o++) y[n * out + o] += b[o];
}

/* Backward to the input: dx += dy W_eff with W_eff = W [out,in] (layout 0) or
 * W^T (layout 1):
 *   w_in_out 0: dx[N,in] += dy[N,out] . W[out,in]        -> sgemm(N, N)
 *   w_in_out 1: dx[N,in] += dy[N,out] . (W[in,out])^T    -> sgemm(N, T) */
void op_linear_bwd_x(float *dx, const float *dy, const float *W, int N, int in, int out, int w_in_out) {
    if (!dx || N <= 0 || in <= 0) return;
    if (w_in_out)
        op_gemm(0, 1, N, in, out, 1.0f, dy, ld_of(out), W, ld_of(out), 1.0f, dx, in);
    else
        op_gemm(0, 0, N, in, out, 1.0f, dy, ld_of(out), W, ld_of(in), 1.0f, dx, in);
}

/* Backward to the parameters:
 *   w_in_out 0: dW[out,in] += dy^T x   -> sgemm(T, N) on (dy, x)
 *   w_in_out 1: dW[in,out] += x^T dy   -> sgemm(T, N) on (x, dy)
 *   db[o] += sum_n dy[n,o]   (column tiles, rows summed in order in double:
 *                             the same result for any thread count) */
void op_linear_bwd_w(float *dW, float *db, const float *dy, const float *x, int N, int in, int out, int w_in_out) {
    if (N <= 0 || out <= 0) return;
    if (dW && in > 0) {
        if (w_in_out)
            op_gemm(1, 0, in, out, N, 1.0f, x, in, dy, out, 1.0f, dW, out);
        else
            op_gemm(1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
    }
    if (!db) return;
    enum { TILE = 64 };
    int ntiles = (out + TILE - 1) / TILE;
#pragma omp parallel for if ((size_t)N * out >= 16384)
    for (int t = 0; t < ntiles; t++) {
        int o0 = t * TILE, o1 = o0 + TILE < out ? o0 + TILE : out;
        double acc[TILE] = {0};
        for (int n = 0; n < N; n++)
            for (int o = o0; o < o1; o++) acc[o - o0] += dy[(size_t)n * out + o];
        for (int o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
    }
}
