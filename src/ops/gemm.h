/* gemm.h - the matrix products under every Linear, and where they run.
 *
 * op_gemm (ops.h) is the one fp32 GEMM every layer calls. It runs on one of
 * two backends, chosen once per process:
 *
 *   onednn    Debian's oneDNN (libdnnl) matmul primitive, when lorac was
 *             built with it (LORAC_HAVE_DNNL). On CPUs with AVX-512 its
 *             kernels use the full vector width; Debian's OpenBLAS 0.3.21
 *             runs Haswell (AVX2) kernels there, so oneDNN is about 2x faster
 *             on the large products of a training step (bench_step peak).
 *   openblas  cblas_sgemm: always available; the fallback, and what
 *             LORAC_GEMM=openblas in the environment selects (for A/B runs).
 *
 * Small products (fewer than ~1 MFLOP, e.g. the LoRA factors of a short
 * batch) and calls from inside an OpenMP parallel region always use
 * cblas_sgemm: a primitive costs more to look up than such a product.
 *
 * Row buckets: a oneDNN primitive is made for one exact problem, and oneDNN
 * keeps what it made in its own cache (1024 entries) besides lorac's (256),
 * about 0.4 MB each. A server's batched decode (lorac_model_decode: every
 * step's rows are the running sequences plus the prompts joining) asks for
 * ever new row counts M, so memory crept (bench/serve-load: +90 MB over 800
 * requests and still rising; 4 SmolLM2 shapes at M = 1..200: +250 MB) and
 * JIT time went to shapes seen once. So an fp32 product with A not transposed runs
 * with M rounded up to a bucket: M <= 16 as it is (a decoding step has a
 * row per sequence), then multiples of 8 up to 64, of 16 up to 256, of 64 up
 * to 1024, of 256 beyond (at most 7 extra rows up to 64, under 25% beyond;
 * they are zero). The rows up to M rounded down to its step run in place;
 * only the rest (fewer than a step; padded to a multiple of 8 below 17
 * rows) are copied into and out of a padded scratch, O(step (K + N))
 * against the product's O(M N K). LORAC_GEMM_ROWS=exact
 * in the environment turns the buckets off (for A/B runs).
 *
 * bf16: op_gemm_bf16 multiplies bf16 matrices with fp32 accumulation and an
 * fp32 result, for a frozen base held in bf16 (model --base bf16). It needs
 * oneDNN (its AVX512-BF16 kernels); without it, it widens tiles of A and B
 * to fp32 (exact) and calls op_gemm, so the result is the same up to
 * summation order.
 *
 * One row of A against a transposed B (y = x W^T for one token: a decoding
 * step's Linears) takes neither: cblas_sgemv, or for a B of 32 MiB and more
 * (an LM head) op_gemv_nt below, which streams B once over all threads
 * (gemm.c gives the measurements behind the choice).
 *
 * bf16 numbers: the top 16 bits of an IEEE fp32 (8 exponent bits, 7 mantissa
 * bits); op_f32_to_bf16 rounds to nearest even, as torch and oneDNN do. */
#ifndef LORAC_OPS_GEMM_H
#define LORAC_OPS_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "ops/isa.h"

typedef uint16_t lorac_bf16;

/* "onednn" or "openblas": the backend op_gemm uses for large products. */
const char *op_gemm_backend(void);
/* 1 when op_gemm_bf16 runs bf16 products natively (oneDNN with AVX512-BF16
 * or AMX on this CPU), 0 when it widens to fp32. */
int op_gemm_bf16_native(void);

/* C[M,N] = alpha * op(A) op(B) + beta * C with A, B in bf16 and C in fp32;
 * op = transpose when ta / tb; row-major with row strides lda, ldb, ldc. */
void op_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const lorac_bf16 *A, int lda, const lorac_bf16 *B,
                  int ldb, float beta, float *C, int ldc);

/* dst[i] = bf16(src[i]) rounded to nearest even (NaN stays NaN); and back. */
void op_f32_to_bf16(lorac_bf16 *dst, const float *src, size_t n);
void op_bf16_to_f32(float *dst, const lorac_bf16 *src, size_t n);

/* ---- small-M products (GEMV) ----------------------------------------------
 *
 * C[m, r] = alpha * sum_k A[m, k] W[r, k] + bias[r] + beta * C[m, r]  for m < M <= OP_GEMV_MAX_M
 * and every row r of a weight W [rows, K] (beta == 0 ignores the old C).
 * OpenMP threads take bands of W rows; each C element is computed by one
 * thread in a fixed order, so the result does not depend on the thread
 * count. W's rows come from a callback, so the same driver serves fp32 W
 * (op_gemm) and quantized W (quant/qmatmul.h), dequantized chunk by chunk.
 *
 * Numerics: products and sums in fp32 vector lanes over chunks of at most
 * OP_GEMV_KC elements (16 per lane), the lanes' totals added in double, the
 * result rounded to fp32 once: |C - exact| <= about 1e-7 * sum_k |A W|. */
#define OP_GEMV_MAX_M 8
#define OP_GEMV_KC 256

/* acc[m] += sum_{k<K} w[k] * a[m * lda + k] for m < M <= OP_GEMV_MAX_M (fp32
 * lanes over chunks of OP_GEMV_KC, then double). */
typedef void (*op_dot_rows_fn)(int64_t K, const float *w, const float *a, int64_t lda, int M, double *acc);
/* The kernel of SIMD level isa (ops/isa.h: scalar, avx2, avx512), lowered to
 * what this CPU runs. */
op_dot_rows_fn op_dot_rows_for(lorac_isa isa);

/* acc[m] = sum_k A[m, k] W[r, k] for m < M over the whole of row r (acc
 * starts at zero; ctx is the caller's). */
typedef void (*op_gemv_row_fn)(const void *ctx, int64_t r, const float *A, int64_t lda, int M, double *acc);

/* The driver (see above): rows of W, K its row length (for the threading
 * decision only). bias may be NULL. */
void op_gemv_rows(int M, int64_t rows, int64_t K, float alpha, const float *A, int64_t lda, op_gemv_row_fn row,
                  const void *ctx, const float *bias, float beta, float *C, int64_t ldc);

/* C[M, N] = alpha A[M, K] B[N, K]^T + beta C (M <= OP_GEMV_MAX_M) by
 * op_gemv_rows on fp32 B with the dot kernel of the active SIMD level
 * (what op_gemm runs for M = 1 and a large B, see above). */
void op_gemv_nt(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
                int ldc);

/* C[M, N] = op(A) op(B) + bias + beta C, bias a row [N] added to every row
 * of C (NULL: none), op_gemm's alpha 1: a Linear's y = x W^T + b in one
 * pass over C (oneDNN adds the bias as it writes the product). */
void op_gemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                  const float *bias, float beta, float *C, int ldc);

/* op_gemm without the small-M road: always the backend (bench_qmatmul's "old path"). */
void op_gemm_backend_only(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                          int ldb, float beta, float *C, int ldc);

/* Release the cached oneDNN primitives (at exit; the cache refills on use). */
void op_gemm_release(void);

#endif
