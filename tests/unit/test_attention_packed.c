/* test_attention_packed.c - attention over packed sequences
 * (op_attention_seq_fwd / _bwd with op_att_seq.offs) against the same op on each sequence
 * alone (op_attention_fwd / _bwd with B = 1, T = its length, no mask), which
 * test_attention_flash.c checks against the double reference.
 *
 * Sequences laid end to end must not see each other: every query block and
 * key block starts at the same place relative to its own sequence in both
 * runs, so the arithmetic is the same and the results must be equal bit for
 * bit: out, lse, and dq, dk, dv accumulated into a buffer that held random
 * values before (backward adds). Lengths straddle the 64-row blocks and
 * include a sequence of one token; q, k, v are strided views into one fused
 * buffer with padding columns (GPT-2's layout), which must stay untouched.
 * Causal and bidirectional, grouped-query heads, every SIMD flavour this CPU
 * runs.
 *
 * Sliding windows (op_att_seq.window, Mistral / Gemma's local layers), a
 * custom score scale and Gemma 2's soft-capping: out, dq, dk, dv of packed
 * sequences against the materialised attention computed here in double (P
 * from the visible keys i - window < j <= i of z = c tanh(s q.k / c), then
 * dV = P^T dO, dS = P (dP - rowsum(P dP)) (1 - tanh^2), dQ = s dS K,
 * dK = s dS^T Q), to 1e-5 of the largest value. The same with attention
 * dropout (op_att_seq.dropout, causal and bidirectional): the reference
 * draws the masks from lorac_hash_keep with the documented index. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "ops/ops.h"
#include "testutil.h"

static lorac_rng rng;

static float *frandn(size_t n) {
    float *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = lorac_rng_normal(&rng);
    return a;
}

static size_t count_diff(const float *a, const float *b, size_t n) {
    size_t d = 0;
    for (size_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof *a) != 0;
    return d;
}

static void check_case(const char *flavour, const int *len, int B, int Hq, int Hkv, int D, int causal) {
    int *offs = malloc((size_t)(B + 1) * sizeof *offs);
    offs[0] = 0;
    for (int b = 0; b < B; b++) offs[b + 1] = offs[b] + len[b];
    const int N = offs[B], ld = (Hq + 2 * Hkv) * D + 3, HqD = Hq * D;
    const size_t nqkv = (size_t)N * ld, nout = (size_t)N * HqD, nlse = (size_t)N * Hq;
    float *qkv = frandn(nqkv), *dout = frandn(nout), *init = frandn(nqkv);
    const float *q = qkv, *k = qkv + HqD, *v = qkv + HqD + Hkv * D;
    float *out = malloc(nout * sizeof *out), *lse = malloc(nlse * sizeof *lse);
    float *d = malloc(nqkv * sizeof *d);
    memcpy(d, init, nqkv * sizeof *d);
    const op_att_seq sq = {.B = B, .offs = offs, .causal = causal};
    op_attention_seq_fwd(out, lse, q, ld, k, ld, v, ld, &sq, Hq, Hkv, D);
    op_attention_seq_bwd(d, d + HqD, d + HqD + Hkv * D, dout, out, lse, q, ld, k, ld, v, ld, &sq, Hq, Hkv, D);

    /* each sequence alone, into the same places */
    float *out1 = malloc(nout * sizeof *out1), *lse1 = malloc(nlse * sizeof *lse1);
    float *d1 = malloc(nqkv * sizeof *d1);
    memcpy(d1, init, nqkv * sizeof *d1);
    for (int b = 0; b < B; b++) {
        const size_t r = (size_t)offs[b];
        float *db = d1 + r * ld;
        op_attention_fwd(out1 + r * HqD, lse1 + r * Hq, q + r * ld, ld, k + r * ld, ld, v + r * ld, ld, NULL, 1, len[b],
                         Hq, Hkv, D, causal);
        op_attention_bwd(db, db + HqD, db + HqD + Hkv * D, dout + r * HqD, out1 + r * HqD, lse1 + r * Hq, q + r * ld,
                         ld, k + r * ld, ld, v + r * ld, ld, NULL, 1, len[b], Hq, Hkv, D, causal);
    }
    const size_t bo = count_diff(out, out1, nout), bl = count_diff(lse, lse1, nlse), bd = count_diff(d, d1, nqkv);
    size_t pad = 0;
    for (size_t r = 0; r < (size_t)N; r++)
        for (int c = ld - 3; c < ld; c++) pad += d[r * ld + c] != init[r * ld + c];
    CHECK(bo == 0 && bl == 0 && bd == 0 && pad == 0,
          "%s B=%d Hq=%d Hkv=%d D=%d causal=%d: packed differs from one sequence at a time in %zu out, %zu lse, "
          "%zu grad entries; %zu padding entries written",
          flavour, B, Hq, Hkv, D, causal, bo, bl, bd, pad);
    free(offs), free(qkv), free(dout), free(init), free(out), free(lse), free(d), free(out1), free(lse1), free(d1);
}

/* Sliding-window causal attention with scale s and soft cap c (0: none),
 * against double. One kv head per query head pair (Hq 2, Hkv 1); q, k, v,
 * dout N(0, 1): scaled scores have a spread near 1, so caps of 1 and 1.5
 * bend them well into tanh's curve. */
/* The attention-dropout scale of (sequence b, head h, query i, key j), as
 * ops.h's op_att_seq.dropout documents it. */
static double drop_scale(uint64_t key, float p, int b, int Hq, int h, int i, int j) {
    const uint64_t id = ((((uint64_t)b * (uint64_t)Hq + (uint64_t)h) << 20 | (uint64_t)i) << 20) | (uint64_t)j;
    return lorac_hash_keep(key, id, p) ? 1.0 / (1.0 - p) : 0.0;
}

/* window 0: none. p > 0: attention dropout, out = (P M) V with M the
 * masks' scales; backward dV = (P M)^T dO, dP = M (dO V^T). */
static void check_window(const char *flavour, const int *len, int B, int causal, int window, float s, float c, float p) {
    const int Hq = 2, Hkv = 1, D = 16, ld = (Hq + 2 * Hkv) * D, HqD = Hq * D;
    int *offs = malloc((size_t)(B + 1) * sizeof *offs);
    offs[0] = 0;
    for (int b = 0; b < B; b++) offs[b + 1] = offs[b] + len[b];
    const int N = offs[B];
    float *qkv = frandn((size_t)N * ld), *dout = frandn((size_t)N * HqD);
    float *out = malloc(sizeof(float) * N * HqD), *lse = malloc(sizeof(float) * N * Hq);
    float *d = calloc((size_t)N * ld, sizeof *d);
    const uint64_t key = 0x5eed0000u + (uint64_t)window;
    const op_att_seq sq = {.B = B, .offs = offs, .causal = causal, .window = window, .scale = s, .softcap = c,
                           .dropout = p, .drop_key = key};
    op_attention_seq_fwd(out, lse, qkv, ld, qkv + HqD, ld, qkv + HqD + D, ld, &sq, Hq, Hkv, D);
    op_attention_seq_bwd(d, d + HqD, d + HqD + D, dout, out, lse, qkv, ld, qkv + HqD, ld, qkv + HqD + D, ld, &sq, Hq,
                         Hkv, D);
    double *ro = calloc((size_t)N * HqD, sizeof *ro), *rd = calloc((size_t)N * ld, sizeof *rd);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            const int T = len[b], r0 = offs[b];
            double *P = calloc((size_t)T * T, sizeof *P), *dP = calloc((size_t)T * T, sizeof *dP);
            double *G = calloc((size_t)T * T, sizeof *G); /* dz'/dz of the soft cap */
            double *M = calloc((size_t)T * T, sizeof *M); /* dropout scales */
#define Q(i, c) qkv[(size_t)(r0 + (i)) * ld + h * D + (c)]
#define K(j, c) qkv[(size_t)(r0 + (j)) * ld + HqD + (c)]
#define V(j, c) qkv[(size_t)(r0 + (j)) * ld + HqD + D + (c)]
#define DO(i, c) dout[(size_t)(r0 + (i)) * HqD + h * D + (c)]
            for (int i = 0; i < T; i++) {
                const int j0 = window > 0 && i - window + 1 > 0 ? i - window + 1 : 0, j1 = causal ? i : T - 1;
                double mx = -INFINITY, sum = 0;
                for (int j = j0; j <= j1; j++) {
                    M[i * T + j] = p > 0 ? drop_scale(key, p, b, Hq, h, i, j) : 1.0;
                    double z = 0;
                    for (int e = 0; e < D; e++) z += (double)Q(i, e) * K(j, e);
                    z *= s;
                    G[i * T + j] = 1;
                    if (c > 0) {
                        const double t = tanh(z / c);
                        z = c * t;
                        G[i * T + j] = 1 - t * t;
                    }
                    P[i * T + j] = z;
                    mx = fmax(mx, z);
                }
                for (int j = j0; j <= j1; j++) sum += (P[i * T + j] = exp(P[i * T + j] - mx));
                double rowdot = 0;
                for (int j = j0; j <= j1; j++) {
                    P[i * T + j] /= sum;
                    const double pm = P[i * T + j] * M[i * T + j];
                    for (int e = 0; e < D; e++) {
                        ro[(size_t)(r0 + i) * HqD + h * D + e] += pm * V(j, e);
                        dP[i * T + j] += M[i * T + j] * DO(i, e) * V(j, e);
                        rd[(size_t)(r0 + j) * ld + HqD + D + e] += pm * DO(i, e); /* dV */
                    }
                    rowdot += P[i * T + j] * dP[i * T + j];
                }
                for (int j = j0; j <= j1; j++) {
                    const double dS = P[i * T + j] * (dP[i * T + j] - rowdot) * G[i * T + j];
                    for (int e = 0; e < D; e++) {
                        rd[(size_t)(r0 + i) * ld + h * D + e] += s * dS * K(j, e);   /* dQ */
                        rd[(size_t)(r0 + j) * ld + HqD + e] += s * dS * Q(i, e);     /* dK */
                    }
                }
            }
#undef Q
#undef K
#undef V
#undef DO
            free(P), free(dP), free(G), free(M);
        }
    double eo = 0, mo = 0, ed = 0, md = 0;
    for (size_t i = 0; i < (size_t)N * HqD; i++) eo = fmax(eo, fabs(out[i] - ro[i])), mo = fmax(mo, fabs(ro[i]));
    for (size_t i = 0; i < (size_t)N * ld; i++) ed = fmax(ed, fabs(d[i] - rd[i])), md = fmax(md, fabs(rd[i]));
    CHECK(eo <= 1e-5 * mo && ed <= 1e-5 * md,
          "%s causal %d window %d scale %g cap %g dropout %g: |out err| %.3g (max %.3g), |grad err| %.3g (max %.3g)",
          flavour, causal, window, s, c, (double)p, eo, mo, ed, md);
    free(offs), free(qkv), free(dout), free(out), free(lse), free(d), free(ro), free(rd);
}

int main(void) {
    lorac_rng_seed(&rng, 7);
    static const int len[] = {65, 1, 130, 63, 64, 2};
    const int B = (int)(sizeof len / sizeof len[0]);
    static const struct { op_att_isa isa; const char *name; } fl[] = {
        {OP_ATT_ISA_GENERIC, "generic"}, {OP_ATT_ISA_AVX2, "avx2"}, {OP_ATT_ISA_AVX512, "avx512"}};
    for (size_t f = 0; f < sizeof fl / sizeof fl[0]; f++) {
        if (!op_attention_set_isa(fl[f].isa)) {
            printf("flavour %s: not run by this CPU or build\n", fl[f].name);
            continue;
        }
        for (int causal = 0; causal <= 1; causal++) {
            check_case(fl[f].name, len, B, 4, 2, 8, causal);
            check_case(fl[f].name, len, B, 3, 1, 64, causal);
            check_case(fl[f].name, len + 1, 1, 2, 2, 16, causal); /* one sequence of one token */
        }
        static const int wlen[] = {130, 3, 70};
        check_window(fl[f].name, wlen, 3, 1, 5, 0.3f, 0, 0);
        check_window(fl[f].name, wlen, 3, 1, 64, 0.25f, 0, 0);
        check_window(fl[f].name, wlen, 3, 1, 100, 0.2f, 0, 0);
        check_window(fl[f].name, wlen, 3, 1, 64, 0.25f, 1.0f, 0); /* Gemma 2: soft-capped scores */
        check_window(fl[f].name, wlen, 3, 1, 100, 0.2f, 1.5f, 0);
        check_window(fl[f].name, wlen, 3, 0, 0, 0.25f, 0, 0.1f); /* attention dropout: bidirectional (BERT) */
        check_window(fl[f].name, wlen, 3, 1, 0, 0.25f, 0, 0.3f); /* and causal */
        printf("flavour %s: packed == one sequence at a time, bit for bit; sliding windows and soft caps match double\n",
               fl[f].name);
    }
    op_attention_set_isa(OP_ATT_ISA_AUTO);
    /* the hashed masks keep 1 - p of the elements: 4e6 draws, within 6 standard deviations */
    for (int k = 1; k <= 3; k++) {
        const float p = 0.1f * (float)k;
        long kept = 0;
        const long n = 4000000;
        for (long i = 0; i < n; i++) kept += lorac_hash_keep(0x1234u + (uint64_t)k, (uint64_t)i * 7919u, p);
        const double sd = sqrt(n * p * (1 - p)), dev = fabs((double)kept - n * (1.0 - p));
        CHECK(dev <= 6 * sd, "lorac_hash_keep p %g: kept %ld of %ld (%.1f sd off)", (double)p, kept, n, dev / sd);
    }
    return test_summary("attention_packed");
}
