/* qmatmul_impl.h - internals shared by qmatmul.c and its per-ISA files
 * (qmatmul_avx2.c, qmatmul_avx512.c). Not part of the library API. */
#ifndef LORAC_QUANT_QMATMUL_IMPL_H
#define LORAC_QUANT_QMATMUL_IMPL_H

#include <math.h>
#include <string.h>

#include "quant/qmatmul.h"

#define QMM_MR 6   /* rows of x / dy per micro-kernel call */
#define QMM_NR 64  /* columns per micro-kernel call (= panel width forward) */
#define QMM_KC 256 /* forward: `in` elements per panel (a multiple of every block) */
#define QMM_KCB 64 /* backward: W rows per panel */

/* A fused GEMV row kernel of one GGML block format: acc[n] += sum_k
 * x[n * ldx + k] W[r, k] for n < N <= QMM_GEMV_MAX_N over the nb blocks of
 * row r at `blocks`. Each 16 (AVX2: 8) weights are dequantized in a
 * register (the scalar dequantizer's operations, so its values bit for bit,
 * given finite f16 scales) and multiplied into N fp32 lane accumulators,
 * whose totals are added in double every 256 weights (the accuracy of
 * op_dot_rows_fn). */
typedef void (*qmm_rowdot_fn)(const uint8_t *blocks, int64_t nb, const float *x, int64_t ldx, int N, double *acc);

/* The per-ISA pieces the tiled driver in qmatmul.c calls. */
typedef struct lorac_qkern {
    /* dst[0 .. c1-c0) = W[r, c0 .. c1). For the GGML formats c0 and c1 are
     * multiples of the block size (c1 may be cols); NF4 and F32: any. The
     * values are bit-identical to the scalar dequantizers. */
    void (*dequant)(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst);
    /* c[i*64 + j] = sum_{k<kc} a[i][k] * b[k*ldb + j], i < 6, j < 64
     * (c overwritten; a[i] may all point at zeros). */
    void (*kernel)(int64_t kc, const float *const *a, const float *b, int64_t ldb, float *c);
    /* dst[k*ldd + i] = src[i*lds + k] for i < 16, k < kc (a 16-row transpose). */
    void (*transpose16)(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t kc);
    /* The GEMV road's fused kernel for format f, or NULL (then each chunk
     * is dequantized into L1 and dotted, qgemv.c). NULL itself: none. */
    qmm_rowdot_fn (*rowdot)(lorac_qformat f);
} lorac_qkern;

/* Scalar pieces (qmatmul.c), also the fallbacks of the SIMD files. */
void qmm_dequant_scalar(const lorac_qweight *w, int64_t r, int64_t c0, int64_t c1, float *dst);
/* The GGML dtype of a block format (LORAC_DTYPE_COUNT for F32, NF4, BF16). */
lorac_dtype qmm_dtype(lorac_qformat f);
/* Start of row r's blocks for a GGML format, and the bytes per block. */
const uint8_t *qmm_row_blocks(const lorac_qweight *w, int64_t r);
size_t qmm_block_bytes(lorac_qformat f);

extern const lorac_qkern qmm_kern_generic;

/* The small-N forward road (qgemv.c): for N <= QMM_GEMV_MAX_N rows, each W
 * row through K's fused kernel for its format, or dequantized chunk by
 * chunk into L1 and dotted with the N rows of x by the dot kernel of the
 * SIMD level of isa (K's: GENERIC, AVX2 or AVX512). */
#define QMM_GEMV_MAX_N 8
lorac_status qmm_gemv_fwd(const lorac_qkern *K, lorac_qisa isa, float *y, const float *x, const lorac_qweight *W,
                          const float *b, int64_t N, float beta);
/* The tiled forward road at any N (what lorac_qlinear_fwd_isa ran for small
 * N before the GEMV road: bench_qmatmul's "old path"). */
lorac_status qmm_fwd_tiles_isa(lorac_qisa isa, float *y, const float *x, const lorac_qweight *W, const float *b,
                               int64_t N, float beta);
/* NULL when not compiled in (non-x86 builds). */
const lorac_qkern *qmm_kern_avx2(void);
const lorac_qkern *qmm_kern_avx512(void);

/* ---- the int8-activation GEMV road (qdot.c, qdot_x86.c) ----
 *
 * x quantized once per call, per row n and per group of 32 elements g:
 *   dx = max|x| / 127, q = round(x / dx) in [-127, 127],  x~ = dx * q
 * (dx = 0 and q = 0 for an all-zero group). Stored row by row: */
typedef struct qmm_xq8 {
    int8_t *q;       /* [N][ldq]   the levels (ldq = in) */
    float *d;        /* [N][ld32]  dx per group of 32 */
    float *s32;      /* [N][ld32]  x~ summed per group of 32 (dx * sum q) */
    float *s;        /* [N][ld16]  x~ summed per 16 elements */
                     /* (d, s32, s zero-padded to ld32 = a multiple of 8 / ld16 = of 16 entries) */
    int64_t ldq, ld32, ld16;
} qmm_xq8;

/* acc[n] += sum_k x~[n, k] W[r, k], for the nb blocks of row r at blocks
 * and n < N <= QMM_GEMV_MAX_N. Every format decodes to groups of 16 or 32
 * weights w = a * v - c with integer levels v (ggml_blocks_impl.h's form),
 * so a group's share is  dx * a * (sum v q) - c * (dx * sum q): an exact
 * integer dot product, scaled once. */
typedef void (*qmm_q8dot_fn)(const uint8_t *blocks, int64_t nb, const qmm_xq8 *x, int N, double *acc);

/* Quantize rows x[n * ldx ..] (n < N, `in` a multiple of 32) into xq,
 * whose arrays hold what qmm_xq8_bytes says (qdot.c). The same x~ for
 * every ISA, so every kernel sees the same x~. */
size_t qmm_xq8_bytes(int64_t N, int64_t in);
void qmm_xq8_quantize(qmm_xq8 *xq, void *mem, const float *x, int64_t ldx, int64_t N, int64_t in);
/* One row of x, ng groups of 32: its levels q[32 ng], dx d[ng], sums s32[ng]
 * and s[2 ng]. qmm_xq8_quantize runs the AVX2 one (qdot_x86.c, the same
 * values bit for bit: the same IEEE operations, lrintf's rounding) unless
 * LORAC_ISA=scalar or the CPU lacks AVX2 (NULL), then the scalar one. */
typedef void (*qmm_xq8_row_fn)(const float *x, int64_t ng, int8_t *q, float *d, float *s32, float *s);
qmm_xq8_row_fn qmm_xq8_row_avx2(void);
/* Group g's scale, once its max |x| (amax) and whether all 32 are finite are
 * known, for both row quantizers: returns 127 / amax, the factor of the
 * levels, with d[g] = amax / 127 stored; or 0 for an all-zero or non-finite
 * group, written here whole: zero levels and sums, dx = 0 (non-finite: NaN,
 * so that y is NaN, as on the fp32 road). */
static inline float qmm_xq8_group_scale(float amax, int finite, int64_t g, int8_t *q, float *d, float *s32, float *s) {
    if (finite && amax != 0.0f) {
        d[g] = amax / 127.0f;
        return 127.0f / amax; /* > 0: amax <= 3.4e38 */
    }
    d[g] = s[2 * g] = s[2 * g + 1] = s32[g] = finite ? 0.0f : NAN;
    memset(q + 32 * g, 0, 32);
    return 0.0f;
}
/* One block of format f (a GGML block format) as groups w = a * v - c
 * (quant/ggml_blocks_impl.h's ggml_groups), the form the kernels use. */
struct ggml_groups;
void qmm_q8_unpack(lorac_qformat f, const uint8_t *block, struct ggml_groups *G);
/* Whether format f has int8-activation kernels (the GGML block formats). */
int qmm_q8_format(lorac_qformat f);
/* The kernel for format f at SIMD level isa (GENERIC: the scalar reference,
 * summed in double; AVX2: maddubs; AVX512: VNNI vpdpbusd where the CPU has
 * it, else the AVX2 one); NULL where f has none. */
qmm_q8dot_fn qmm_q8dot_for(lorac_qisa isa, lorac_qformat f);
/* The x86 ones (qdot_x86.c); NULL when not built or not supported here. */
qmm_q8dot_fn qmm_q8dot_avx2(lorac_qformat f);
qmm_q8dot_fn qmm_q8dot_vnni(lorac_qformat f);
/* The GEMV road with int8 activations (qgemv.c); ep (NULL: none) joins its
 * parallel region (lorac_qepilogue). */
lorac_status qmm_gemv_fwd_q8(qmm_q8dot_fn dot, float *y, const float *x, const lorac_qweight *W, const float *b,
                             int64_t N, float beta, const lorac_qepilogue *ep);

#endif
