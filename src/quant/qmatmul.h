/* qmatmul.h - linear layers over quantized weights, dequantizing tiles of W
 * on the fly (never the whole matrix):
 *
 *   forward   y[N,out]  = beta * y + x[N,in] W^T + b
 *   backward  dx[N,in] += dy[N,out] W
 *
 * W is [out, in] = [rows, cols] as torch.nn.Linear (ops.h conventions),
 * held as a lorac_qweight in one of the formats below. The dequantized
 * values are exactly those of the scalar dequantizers (nf4.h,
 * ggml_blocks.h); only the summation differs between code paths:
 *
 *   LORAC_QISA_REF     scalar reference: one W row at a time, every dot
 *                      product / update accumulated in double. Serial.
 *   LORAC_QISA_GENERIC the tiled kernel in plain C (any CPU).
 *   LORAC_QISA_AVX2    the tiled kernel with AVX2+FMA (x86-64).
 *   LORAC_QISA_AVX512  the tiled kernel with AVX-512 F/BW/DQ/VL.
 *   LORAC_QISA_AUTO    the best of the above that this CPU runs, decided at
 *                      run time (__builtin_cpu_supports); no build flags.
 *                      The LORAC_ISA environment variable (ops/isa.h) caps
 *                      it: avx2 -> at most AVX2, scalar -> GENERIC.
 *
 * The tiled kernels: OpenMP tasks over (64 output rows x a chunk of the N
 * rows) forward and (a 64- or 256-column slice of `in` x a chunk of N)
 * backward; each task dequantizes a K-slice of its W tile into a 64 KiB
 * fp32 panel (the forward one transposed), then runs a 6x64 register-
 * blocked fp32 FMA micro-kernel over it. fp32 accumulation (runs of at
 * most 256 products per lane, then added into y / dx): the result differs
 * from the double-precision reference by fp32 rounding only; test_qmatmul.c
 * requires |fast - ref| <= 2e-6 * sum_k |x_k w_k| per element (worst seen
 * 2.7e-7), and the result does not depend on the thread count (bit for
 * bit). No AVX512-BF16 path: bf16 products would not meet that bound.
 *
 * The GEMV road (qgemv.c): forward with N <= QMM_GEMV_MAX_N (8) rows, a
 * decoding step. The tiles above would dequantize a whole 64-row panel and
 * run a 6-row kernel for one row of x; instead each OpenMP thread takes a
 * band of W rows and forms the N dot products of each row straight from its
 * blocks, so W is read once and nothing is written but y. Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K and Q6_K have fused AVX-512 / AVX2 kernels
 * (16 / 8 weights dequantized in a register, then one FMA per row of x);
 * the other formats, and every format on GENERIC, dequantize 256 weights at
 * a time into an L1 buffer with the dequantizers above and dot that with
 * the rows (F32 rows are read in place, BF16 widened exactly). Products are
 * summed in fp32 lanes over at most 256 weights, then in double: the same
 * bound as the tiles (worst seen about 4e-7), the dequantized values the
 * same bit for bit (the fused kernels convert f16 scales with F16C, equal
 * to lorac_f16_to_f32 for every finite half), and every y element is one
 * thread's, so the result does not depend on the thread count. Each ISA
 * (REF aside) has its own GEMV road; backward keeps the tiles at every N.
 * bench_qmatmul decode compares the roads.
 *
 * Inference (lorac_qlinear_fwd_infer: a prompt's prefill, a forward without
 * the KV cache, evaluation) takes the int8-activation road below at every N
 * for the GGML block formats: x quantized once, then tiles of 64 W rows,
 * each decoded once per 8 rows of x while it sits in L2 (qgemv.c), every
 * row of y bit for bit what its row of x gives alone. That is what keeps
 * greedy text with the KV cache equal to the text without it on the
 * default road. On the Zen 4 here (one thread, N = 80-120) it runs 0.6-0.9x
 * the whole-matrix oneDNN road below for Q4_0 / Q4_1 / Q8_0 and 1.0-1.3x
 * for Q5_0 / Q4_K / Q6_K, whose fp32 dequantization costs more; a whole
 * Qwen2.5-0.5B Q4_K_M prompt takes 0.73x the CPU time (bench/README.md).
 * It is not switched to oneDNN above some N because the cache's steps are
 * int8: the two sides would no longer agree. Training's forward
 * (lorac_qlinear_fwd) keeps the fp32 roads above N = 8.
 *
 * LORAC_QISA_AUTO on the oneDNN GEMM backend (ops/gemm.h) takes a faster
 * road for N >= 16 rows: W is expanded into a scratch matrix for this call
 * only (one Linear's worth, reused across calls; never the whole model) and
 * multiplied by op_gemm, whose AVX-512 kernels beat the tiles above. The
 * dequantized values are the same; the summation order is oneDNN's (fp32
 * accumulation, the same bound). A BF16 weight on a CPU with AVX512-BF16 is
 * not expanded: x (or dy) is rounded to bf16 and op_gemm_bf16 multiplies
 * bf16 by bf16 with fp32 accumulation, so the result is that of the
 * bf16-rounded activations (documented tolerance in test_qmatmul.c).
 *
 * Shape rules: `in` (cols) must be a multiple of the format's block along a
 * row (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/IQ4_NL: 32; Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/
 * IQ4_XS: 256; NF4, F32: any, NF4 blocks run along the flattened matrix).
 *
 * The SIMD dequantizers of Q4_0, Q4_1, Q8_0, Q4_K, Q6_K and NF4 unpack their
 * bits in vector registers. The grouped formats (Q5_0, Q5_1, Q2_K, Q3_K,
 * Q5_K, IQ4_NL, IQ4_XS; quant/ggml_blocks_impl.h) unpack a block's bits to
 * int8 levels in plain C, then scale them to fp32 in vector registers. */
#ifndef LORAC_QUANT_QMATMUL_H
#define LORAC_QUANT_QMATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "io/tensorfile.h"
#include "quant/nf4.h"

typedef enum lorac_qformat {
    LORAC_QF_NONE = 0,
    LORAC_QF_F32,  /* plain fp32 [rows, cols] (so one pointer type covers every Linear) */
    LORAC_QF_NF4,  /* nf4.h, with double quantization */
    LORAC_QF_Q4_0, /* GGML blocks (ggml_blocks.h), rows * cols/bs blocks, row-major */
    LORAC_QF_Q4_1,
    LORAC_QF_Q8_0,
    LORAC_QF_Q4_K,
    LORAC_QF_Q6_K,
    LORAC_QF_Q5_0,
    LORAC_QF_Q5_1,
    LORAC_QF_Q2_K,
    LORAC_QF_Q3_K,
    LORAC_QF_Q5_K,
    LORAC_QF_IQ4_NL,
    LORAC_QF_IQ4_XS,
    LORAC_QF_BF16, /* bfloat16 [rows, cols] (ops/gemm.h): the "--base bf16" frozen base */
    LORAC_QF_COUNT
} lorac_qformat;

/* One weight matrix of any format. Either a view (owns == 0: `data` points
 * into someone else's memory, e.g. a mapped GGUF file) or owning
 * (owns == 1: lorac_qweight_free releases data / the NF4 arrays). */
typedef struct lorac_qweight {
    lorac_qformat fmt;
    int64_t rows, cols; /* [out, in] */
    const void *data;   /* F32 / GGML formats: the matrix; unused for NF4 */
    size_t nbytes;      /* bytes at data: must be exactly what the shape needs */
    lorac_nf4 nf4;      /* NF4 only */
    int owns;
} lorac_qweight;

const char *lorac_qformat_name(lorac_qformat f);
/* LORAC_F32 and the GGML block dtypes (LORAC_Q4_0 .. LORAC_IQ4_XS) map to their format; others to NONE. */
lorac_qformat lorac_qformat_of_dtype(lorac_dtype t);
/* Elements per block along a row that `cols` must be a multiple of (1 for F32 and NF4). */
int lorac_qformat_row_block(lorac_qformat f);

/* A view of an F32 or GGML-block matrix (no copy). nbytes is checked against
 * the shape: a mismatch is LORAC_ERR_SHAPE, never a read past the end. */
lorac_status lorac_qweight_view(lorac_qweight *w, lorac_qformat fmt, const void *data, size_t nbytes, int64_t rows,
                                int64_t cols);
/* Quantize a fp32 [rows, cols] matrix to NF4 (owning). */
lorac_status lorac_qweight_quantize_nf4(lorac_qweight *w, const float *W, int64_t rows, int64_t cols);
/* Quantize a fp32 [rows, cols] matrix to a GGML block format (owning; rows
 * a whole number of blocks; quant/ggml_blocks.h's lorac_quant_row). */
lorac_status lorac_qweight_quantize_ggml(lorac_qweight *w, lorac_qformat fmt, const float *W, int64_t rows, int64_t cols);
/* Round a fp32 [rows, cols] matrix to bf16 (owning; nearest even). */
lorac_status lorac_qweight_from_f32_bf16(lorac_qweight *w, const float *W, int64_t rows, int64_t cols);
/* Take over an NF4 weight (owning; *q is emptied). */
lorac_status lorac_qweight_from_nf4(lorac_qweight *w, lorac_nf4 *q);
void lorac_qweight_free(lorac_qweight *w);
/* Consistency of format, shape, block counts and byte counts. */
lorac_status lorac_qweight_validate(const lorac_qweight *w);
/* Bytes of weight data (for NF4 including its statistics). */
size_t lorac_qweight_nbytes(const lorac_qweight *w);
/* Dequantize row r into dst[cols] / the whole matrix into dst[rows*cols]. */
lorac_status lorac_qweight_dequant_row(const lorac_qweight *w, int64_t r, float *dst);
lorac_status lorac_qweight_dequantize(const lorac_qweight *w, float *dst);

typedef enum lorac_qisa {
    LORAC_QISA_AUTO = 0,
    LORAC_QISA_REF,
    LORAC_QISA_GENERIC,
    LORAC_QISA_AVX2,
    LORAC_QISA_AVX512,
} lorac_qisa;
const char *lorac_qisa_name(lorac_qisa isa);
/* Whether this build on this CPU can run `isa` (REF, GENERIC, AUTO: always). */
int lorac_qisa_supported(lorac_qisa isa);
/* What LORAC_QISA_AUTO picks here. */
lorac_qisa lorac_qisa_best(void);

/* The activations of the small-N (GEMV) road, N <= 8 rows of x, and of
 * lorac_qlinear_fwd_infer at any N:
 *   LORAC_QACT_Q8   (default) each row of x is quantized once per call to
 *                   int8 per 32 elements (dx = max|x| / 127, q = round(x /
 *                   dx)) and every GGML block format is dotted with it in
 *                   integers (AVX-512 VNNI vpdpbusd, AVX2 maddubs, or the
 *                   scalar reference), as llama.cpp does: about half the
 *                   work per weight. The result is x~ W^T for the rounded
 *                   x~, so it differs from the fp32 road by at most
 *                   sum_k |w_k| |x_k - x~_k| <= sum_k |w_k| dx_k / 2
 *                   (plus fp32 rounding; test_qmatmul.c checks that bound).
 *   LORAC_QACT_F32  the exact fp32-activation road above.
 * NF4, F32 and BF16 weights and the REF path always use fp32 activations.
 * The LORAC_QDOT environment variable ("q8" or "f32", read once at the
 * first use) sets it; lorac_qact_force changes it (tests, benchmarks). */
typedef enum lorac_qact { LORAC_QACT_Q8 = 0, LORAC_QACT_F32 = 1 } lorac_qact;
lorac_qact lorac_qact_active(void);
lorac_qact lorac_qact_force(lorac_qact a); /* returns the previous setting */

/* y[N,out] = beta * y + x[N,in] W^T + b   (b may be NULL; beta == 0 ignores
 * the old y entirely, NaNs included). The training forward: int8
 * activations (LORAC_QACT_Q8) for N <= 8 rows only, the fp32 roads above. */
lorac_status lorac_qlinear_fwd(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N, float beta);
/* The same for a forward no gradient follows (generation, a prompt's
 * prefill, evaluation): under LORAC_QACT_Q8 every GGML block format takes
 * the int8 road at any N (qgemv.c: W read from memory once, decoded per 8
 * rows of x from L2), and each row of y is bit for bit what that row of x
 * alone gives (N = 1), so a prompt computed at once equals it computed
 * token by token (KV cache) on the default road. */
lorac_status lorac_qlinear_fwd_infer(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N,
                                     float beta);
/* Work a caller joins to lorac_qlinear_fwd_infer_ep's parallel region, so
 * that a small term computed beside the base (an adapter's y += s (x A^T)
 * B^T at a decoding step) is split over the same threads without a region
 * of its own. pre(ctx, part, nparts) runs once on each of the region's
 * nparts threads before any row of W (part 0 .. nparts - 1; a barrier
 * follows it); rows(ctx, r0, r1) runs after y[:, r0:r1) holds the base's
 * result, on the thread that wrote those rows, and may add to them. Where
 * the call takes a road without that region (not the int8 road), the base
 * runs first and then pre(ctx, 0, 1) and rows(ctx, 0, W->rows) on the
 * calling thread: the same calls, so the same result. */
typedef struct lorac_qepilogue {
    void (*pre)(void *ctx, int part, int nparts);
    void (*rows)(void *ctx, int64_t r0, int64_t r1);
    void *ctx;
} lorac_qepilogue;
/* lorac_qlinear_fwd_infer, then ep (NULL: none) as above. */
lorac_status lorac_qlinear_fwd_infer_ep(float *y, const float *x, const lorac_qweight *W, const float *b, int64_t N,
                                        float beta, const lorac_qepilogue *ep);
/* dx[N,in] += dy[N,out] W */
lorac_status lorac_qlinear_bwd_x(float *dx, const float *dy, const lorac_qweight *W, int64_t N);
/* The same with a chosen code path (an unsupported one is LORAC_ERR_UNSUPPORTED). */
lorac_status lorac_qlinear_fwd_isa(lorac_qisa isa, float *y, const float *x, const lorac_qweight *W, const float *b,
                                   int64_t N, float beta);
lorac_status lorac_qlinear_fwd_infer_isa(lorac_qisa isa, float *y, const float *x, const lorac_qweight *W,
                                         const float *b, int64_t N, float beta);
lorac_status lorac_qlinear_bwd_x_isa(lorac_qisa isa, float *dx, const float *dy, const lorac_qweight *W, int64_t N);
/* Free the scratch matrices of the whole-matrix road (they regrow on use). */
void lorac_qmatmul_release(void);

#endif
