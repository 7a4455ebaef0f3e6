/* lora_infer.c - a decoding step's LoRA term, fused (see lora_infer.h).
 *
 * The math, for N rows x (N <= 8: a KV-cache step's new tokens), a pair
 * A [R, in], B [out, r] with R = parts * r and ob = out / parts:
 *
 *   t[n, k]           = sum_i A[k, i] x[n, i]                 k < R
 *   y[n, p ob + o]   += s * sum_j B[p ob + o, j] t[n, p r + j]  j < r
 *
 * which is lorac_lora_term_fwd's y += s (x A^T) B_p^T, written as two loop
 * nests: each row of A is read once for all N rows of x (N dot products of
 * length in), then each row of B once (N dot products of length r). That
 * is a few multiply-adds per float of A and B, so the cost is reading them:
 * R in + out r floats per Linear, 19.5 MB per token for SmolLM2-135M's
 * r-16 adapter on all 210 Linears (against ~66 MB of its Q4_1 blocks).
 *
 * Why not op_gemm: for N = 1 it calls cblas_sgemv, and OpenBLAS splits an
 * sgemv over its threads once m n >= 9216 (every A and B above), so each
 * Linear paid two OpenMP fork/joins for a few microseconds of work; with 2
 * threads the barriers took more time than the products (issue 15:
 * unmerged 1.37x the merged model's time per token). Here the term runs on
 * the caller's thread, between the base GEMV's parallel regions.
 *
 * A and B are read in place, in fp32: no inference copy to build when an
 * adapter is activated, to keep in step with an optimizer step or to free.
 *
 * Numerics: every sum is in fp32, as op_gemm's; only the order of the
 * additions differs (lanes of VW elements, then the lanes added), so the
 * result matches lorac_lora_term_fwd within fp32 rounding: for each output
 * |error| <= ~(in + r) eps sum |terms| (tests/unit/test_lora_infer.c
 * checks a bound of that form against a double-precision reference). The
 * scalar kernel below is the reference the SIMD ones (lora_infer.inc) follow. */
#include "lora/lora_infer.h"

/* The plain-C kernel: the math above, loop for loop. */
static void infer_scalar(const lorac_lora_term *k, float *y, const float *x, int N, float *t) {
    const int R = k->parts * k->r, ob = k->out / k->parts;
    for (int n = 0; n < N; n++)
        for (int j = 0; j < R; j++) {
            const float *a = k->A + (size_t)j * k->in, *xn = x + (size_t)n * k->in;
            float acc = 0.0f;
            for (int i = 0; i < k->in; i++) acc += a[i] * xn[i];
            t[n * R + j] = acc;
        }
    for (int n = 0; n < N; n++)
        for (int o = 0; o < k->out; o++) {
            const float *b = k->B + (size_t)o * k->r, *tn = t + n * R + (o / ob) * k->r;
            float acc = 0.0f;
            for (int j = 0; j < k->r; j++) acc += b[j] * tn[j];
            y[(size_t)n * k->out + o] += k->scale * acc;
        }
}

lorac_lora_infer_fn lorac_lora_infer_for(lorac_isa isa) {
    if (isa > lorac_isa_best()) return NULL;
    if (isa == LORAC_ISA_AVX512) return lorac_lora_infer_avx512();
    if (isa == LORAC_ISA_AVX2) return lorac_lora_infer_avx2();
    return infer_scalar;
}

/* In chunks of LORAC_LORA_INFER_MAX_N rows: the kernels treat each row on
 * its own (the same operations whatever N), so a row's result does not
 * depend on which chunk it falls in, and a prompt's rows equal what decoding
 * steps compute for them one at a time. */
void lorac_lora_infer_term(const lorac_linear *L, lorac_lora *l, float *y, const float *x, int N, float *xa) {
    lorac_lora_infer_fn fn = lorac_lora_infer_for(lorac_isa_active());
    if (l->dora || !fn) {
        lorac_lora_term_fwd(L, l, y, x, N, xa);
        return;
    }
    const lorac_lora_term k = {l->A.data, l->B.data, L->in, L->out, l->r, l->parts, l->scale};
    const int R = l->parts * l->r;
    for (int n0 = 0; n0 < N; n0 += LORAC_LORA_INFER_MAX_N) {
        const int nc = N - n0 < LORAC_LORA_INFER_MAX_N ? N - n0 : LORAC_LORA_INFER_MAX_N;
        fn(&k, y + (size_t)n0 * L->out, x + (size_t)n0 * L->in, nc, xa + (size_t)n0 * R);
    }
}
