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
 * bf16: op_gemm_bf16 multiplies bf16 matrices with fp32 accumulation and an
 * fp32 result, for a frozen base held in bf16 (model --base bf16). It needs
 * oneDNN (its AVX512-BF16 kernels); without it, it widens tiles of A and B
 * to fp32 (exact) and calls op_gemm, so the result is the same up to
 * summation order.
 *
 * bf16 numbers: the top 16 bits of an IEEE fp32 (8 exponent bits, 7 mantissa
 * bits); op_f32_to_bf16 rounds to nearest even, as torch and oneDNN do. */
#ifndef LORAC_OPS_GEMM_H
#define LORAC_OPS_GEMM_H

#include <stddef.h>
#include <stdint.h>

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

/* Release the cached oneDNN primitives (at exit; the cache refills on use). */
void op_gemm_release(void);

#endif
