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
 * unmerged 1.37x the merged model's time per token). Here the term opens
 * no region: over a quantized base on the int8 road it joins the base's
 * (lorac_lora_infer_linear, lorac_qepilogue): each thread computes a share
 * of t's rows, a barrier, then each adds B's rows for the band of y it
 * has just computed, so both threads stream the adapter (on one thread it
 * cost SmolLM2 1.24-1.31x the merged model's time per token). Elsewhere
 * (lorac_lora_infer_term) it runs on the caller's thread.
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

#include "quant/qmatmul.h"

/* The plain-C kernels: the math above, loop for loop. */
static void t_scalar(const lorac_lora_term *k, const float *x, int N, float *t, int j0, int j1) {
    const int R = k->parts * k->r;
    for (int n = 0; n < N; n++)
        for (int j = j0; j < j1; j++) {
            const float *a = k->A + (size_t)j * k->in, *xn = x + (size_t)n * k->in;
            float acc = 0.0f;
            for (int i = 0; i < k->in; i++) acc += a[i] * xn[i];
            t[n * R + j] = acc;
        }
}

static void y_scalar(const lorac_lora_term *k, float *y, const float *t, int N, int o0, int o1) {
    const int R = k->parts * k->r, ob = k->out / k->parts;
    for (int n = 0; n < N; n++)
        for (int o = o0; o < o1; o++) {
            const float *b = k->B + (size_t)o * k->r, *tn = t + n * R + (o / ob) * k->r;
            float acc = 0.0f;
            for (int j = 0; j < k->r; j++) acc += b[j] * tn[j];
            y[(size_t)n * k->out + o] += k->scale * acc;
        }
}

static void term_scalar(const lorac_lora_term *k, float *y, const float *x, int N, float *t) {
    t_scalar(k, x, N, t, 0, k->parts * k->r);
    y_scalar(k, y, t, N, 0, k->out);
}

static const lorac_lora_infer_kern kern_scalar = {term_scalar, t_scalar, y_scalar};

const lorac_lora_infer_kern *lorac_lora_infer_for(lorac_isa isa) {
    if (isa > lorac_isa_best()) return NULL;
    if (isa == LORAC_ISA_AVX512) return lorac_lora_infer_avx512();
    if (isa == LORAC_ISA_AVX2) return lorac_lora_infer_avx2();
    return &kern_scalar;
}

/* In chunks of LORAC_LORA_INFER_MAX_N rows: the kernels treat each row on
 * its own (the same operations whatever N), so a row's result does not
 * depend on which chunk it falls in, and a prompt's rows equal what decoding
 * steps compute for them one at a time. */
void lorac_lora_infer_term(const lorac_linear *L, lorac_lora *l, float *y, const float *x, int N, float *xa) {
    const lorac_lora_infer_kern *K = lorac_lora_infer_for(lorac_isa_active());
    if (l->dora || !K) {
        lorac_lora_term_fwd(L, l, y, x, N, xa);
        return;
    }
    const lorac_lora_term k = {l->A.data, l->B.data, L->in, L->out, l->r, l->parts, l->scale};
    const int R = l->parts * l->r;
    for (int n0 = 0; n0 < N; n0 += LORAC_LORA_INFER_MAX_N) {
        const int nc = N - n0 < LORAC_LORA_INFER_MAX_N ? N - n0 : LORAC_LORA_INFER_MAX_N;
        K->term(&k, y + (size_t)n0 * L->out, x + (size_t)n0 * L->in, nc, xa + (size_t)n0 * R);
    }
}

/* ---- the term inside the base's parallel region (lorac_qepilogue) ---- */

typedef struct infer_ep {
    const lorac_lora_infer_kern *K;
    lorac_lora_term k;
    float *y, *t;
    const float *x;
    int N;
} infer_ep;

/* t = x A^T for this thread's share of A's rows (whole groups of four, the
 * kernels' unit), every row of x in chunks of LORAC_LORA_INFER_MAX_N. */
static void ep_pre(void *ctx, int part, int nparts) {
    const infer_ep *e = ctx;
    const int R = e->k.parts * e->k.r, groups = (R + 3) / 4;
    const int j0 = 4 * (int)((int64_t)groups * part / nparts);
    int j1 = 4 * (int)((int64_t)groups * (part + 1) / nparts);
    if (j1 > R) j1 = R;
    for (int n0 = 0; n0 < e->N && j0 < j1; n0 += LORAC_LORA_INFER_MAX_N) {
        const int nc = e->N - n0 < LORAC_LORA_INFER_MAX_N ? e->N - n0 : LORAC_LORA_INFER_MAX_N;
        e->K->t(&e->k, e->x + (size_t)n0 * e->k.in, nc, e->t + (size_t)n0 * R, j0, j1);
    }
}

/* y[:, r0:r1) += s t B^T once the base has written those rows. */
static void ep_rows(void *ctx, int64_t r0, int64_t r1) {
    const infer_ep *e = ctx;
    const int R = e->k.parts * e->k.r;
    for (int n0 = 0; n0 < e->N; n0 += LORAC_LORA_INFER_MAX_N) {
        const int nc = e->N - n0 < LORAC_LORA_INFER_MAX_N ? e->N - n0 : LORAC_LORA_INFER_MAX_N;
        e->K->y(&e->k, e->y + (size_t)n0 * e->k.out, e->t + (size_t)n0 * R, nc, (int)r0, (int)r1);
    }
}

void lorac_lora_infer_linear(const lorac_linear *L, lorac_lora *l, float *y, const float *x, const float *xl, int N,
                             float *xa) {
    const lorac_lora_infer_kern *K = lorac_lora_infer_for(lorac_isa_active());
    if (!l || l->merged || l->dora || !K || !L->q) { /* no term, or one with its own road */
        lorac_linear_base_fwd(L, y, x, N);
        if (l && !l->merged) lorac_lora_infer_term(L, l, y, xl, N, xa);
        return;
    }
    infer_ep e = {K, {l->A.data, l->B.data, L->in, L->out, l->r, l->parts, l->scale}, y, xa, xl, N};
    const lorac_qepilogue ep = {ep_pre, ep_rows, &e};
    lorac_status st = lorac_qlinear_fwd_infer_ep(y, x, L->q, L->b ? L->b->data : NULL, N, 0.0f, &ep);
    LORAC_ASSERT(st == LORAC_OK); /* shapes were checked when the weight was quantized */
}
