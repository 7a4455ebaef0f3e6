/* test_attention_grad.c - attention backward (dq, dk, dv) against central
 * finite differences in double, on tiny odd shapes:
 *   causal and not; grouped-query heads (Hq = 4 over Hkv = 2); a key mask
 *   with padding; q/k/v as strided views into one fused qkv buffer with
 *   extra padding columns (as GPT-2 passes them); queries that see no key.
 * Loss is sum(out * R) for random R. Tolerances: see gradcheck.h. */
#include <stdio.h>

#include "gradcheck.h"
#include "ops/ops_double.h"

typedef struct {
    int B, T, Hq, Hkv, D, causal;
    int ld;                 /* row stride of the fused buffer */
    const uint8_t *keymask; /* [B*T] or NULL */
    double *qkv;            /* [B*T, ld]: q at column 0, k at Hq*D, v at (Hq+Hkv)*D */
    double *out, *att, *R;  /* out, R [B*T, Hq*D]; att [B, Hq, T, T] */
} attn_ctx;

static double *q_of(attn_ctx *c, double *buf) { return buf; }
static double *k_of(attn_ctx *c, double *buf) { return buf + c->Hq * c->D; }
static double *v_of(attn_ctx *c, double *buf) { return buf + (c->Hq + c->Hkv) * c->D; }

static size_t out_size(const attn_ctx *c) { return (size_t)c->B * c->T * c->Hq * c->D; }

static double attn_loss(void *p) {
    attn_ctx *c = p;
    opd_attention_fwd(c->out, c->att, q_of(c, c->qkv), c->ld, k_of(c, c->qkv), c->ld, v_of(c, c->qkv), c->ld,
                      c->keymask, c->B, c->T, c->Hq, c->Hkv, c->D, c->causal);
    return gc_dot(c->out, c->R, out_size(c));
}

/* pad: extra columns at the end of each fused row, never read or written. */
static void test_attention(const char *name, int B, int T, int Hq, int Hkv, int D, int causal,
                           const uint8_t *keymask, int pad) {
    attn_ctx c = {B, T, Hq, Hkv, D, causal, (Hq + 2 * Hkv) * D + pad, keymask, NULL, NULL, NULL, NULL};
    size_t nqkv = (size_t)B * T * c.ld;
    c.qkv = gc_randn(nqkv);
    c.out = gc_randn(out_size(&c));
    c.att = gc_randn((size_t)B * Hq * T * T); /* garbage: forward must write every entry */
    c.R = gc_randn(out_size(&c));
    attn_loss(&c);

    /* probabilities: rows sum to 1 (or are all 0), hidden entries are 0 */
    int bad_rows = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < T; i++) {
                const double *a = c.att + (((size_t)b * Hq + h) * T + i) * T;
                double sum = 0;
                int sees = 0, hidden_nonzero = 0;
                for (int j = 0; j < T; j++) {
                    int visible = (!causal || j <= i) && (!keymask || keymask[b * T + j]);
                    sees |= visible;
                    sum += a[j];
                    hidden_nonzero += !visible && a[j] != 0;
                }
                bad_rows += hidden_nonzero || fabs(sum - (sees ? 1.0 : 0.0)) > 1e-12;
            }
    CHECK(bad_rows == 0, "%s: %d attention rows are not a distribution over the visible keys", name, bad_rows);

    double *d0 = gc_randn(nqkv), *d = gc_copy(d0, nqkv);
    opd_attention_bwd(q_of(&c, d), k_of(&c, d), v_of(&c, d), c.R, c.att, q_of(&c, c.qkv), c.ld, k_of(&c, c.qkv),
                      c.ld, v_of(&c, c.qkv), c.ld, B, T, Hq, Hkv, D);
    gc_sub(d, d0, nqkv);
    char what[128];
    snprintf(what, sizeof what, "attention %s: d(q|k|v|pad)", name);
    gradcheck(what, attn_loss, &c, c.qkv, nqkv, d);

    /* frozen inputs: NULL dq/dk/dv are skipped, the rest unchanged */
    double *e = gc_copy(d0, nqkv);
    opd_attention_bwd(NULL, k_of(&c, e), NULL, c.R, c.att, q_of(&c, c.qkv), c.ld, k_of(&c, c.qkv), c.ld,
                      v_of(&c, c.qkv), c.ld, B, T, Hq, Hkv, D);
    gc_sub(e, d0, nqkv);
    int bad = 0;
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int col = 0; col < c.ld; col++) {
            int in_k = col >= Hq * D && col < (Hq + Hkv) * D;
            double want = in_k ? d[r * c.ld + col] : 0.0;
            bad += e[r * c.ld + col] != want;
        }
    CHECK(bad == 0, "%s: backward with dq = dv = NULL: %d wrong elements", name, bad);
    free(c.qkv), free(c.out), free(c.att), free(c.R), free(d0), free(d), free(e);
}

/* A query that sees no key gets a zero probability row, zero output, zero
 * gradients, and no NaN anywhere. */
static void test_blind_queries(void) {
    enum { B = 2, T = 4, H = 2, D = 3 };
    /* batch 0: key 0 padded, so with the causal mask query 0 sees nothing;
     * batch 1: every key padded, so no query sees anything. */
    static const uint8_t keymask[B * T] = {0, 1, 1, 1, 0, 0, 0, 0};
    size_t n = (size_t)B * T * H * D;
    double *q = gc_randn(n), *k = gc_randn(n), *v = gc_randn(n), *out = gc_randn(n), *R = gc_randn(n);
    double *att = gc_randn((size_t)B * H * T * T);
    double *dq = calloc(n, sizeof *dq), *dk = calloc(n, sizeof *dk), *dv = calloc(n, sizeof *dv);
    opd_attention_fwd(out, att, q, H * D, k, H * D, v, H * D, keymask, B, T, H, H, D, 1);
    opd_attention_bwd(dq, dk, dv, R, att, q, H * D, k, H * D, v, H * D, B, T, H, H, D);
    int nan = 0, nonzero = 0;
    for (size_t i = 0; i < n; i++) nan += isnan(out[i]) || isnan(dq[i]) || isnan(dk[i]) || isnan(dv[i]);
    for (size_t i = 0; i < (size_t)B * H * T * T; i++) nan += isnan(att[i]);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < H * D; c++) {
            size_t b0 = (size_t)t * H * D + c, b1 = ((size_t)T + t) * H * D + c;
            if (t == 0) nonzero += out[b0] != 0 || dq[b0] != 0; /* batch 0, query 0 */
            nonzero += out[b1] != 0 || dq[b1] != 0 || dk[b1] != 0 || dv[b1] != 0;
        }
    for (int h = 0; h < H; h++)
        for (int j = 0; j < T; j++) nonzero += att[((size_t)0 * H + h) * T * T + j] != 0; /* b0, query 0 */
    CHECK(nan == 0, "blind queries: %d NaNs", nan);
    CHECK(nonzero == 0, "blind queries: %d nonzero outputs / gradients", nonzero);
    /* the padded key 0 of batch 0 is seen by nobody: it gets no gradient */
    int leak = 0;
    for (int c = 0; c < H * D; c++) leak += dk[c] != 0 || dv[c] != 0;
    CHECK(leak == 0, "padded key received %d nonzero gradients", leak);
    free(q), free(k), free(v), free(out), free(R), free(att), free(dq), free(dk), free(dv);
}

int main(void) {
    lorac_rng_seed(&gc_rng, 77);
    /* keymask for B = 2, T = 5: batch 0 right-padded by 2, batch 1 left-padded by 1 */
    static const uint8_t mask25[10] = {1, 1, 1, 0, 0, 0, 1, 1, 1, 1};
    /* batch 1: its first key padded, so causal query 0 of batch 1 sees nothing */
    static const uint8_t mask25b[10] = {1, 1, 1, 1, 0, 0, 1, 1, 1, 1};
    test_attention("causal", 2, 5, 2, 2, 3, 1, NULL, 0);
    test_attention("bidirectional + keymask", 2, 5, 2, 2, 3, 0, mask25, 0);
    test_attention("causal + keymask", 2, 5, 2, 2, 3, 1, mask25, 0);
    test_attention("GQA 4/2 causal + keymask + fused padded qkv", 2, 5, 4, 2, 3, 1, mask25b, 3);
    test_attention("GQA 4/2 bidirectional, fused padded qkv", 2, 5, 4, 2, 3, 0, NULL, 2);
    test_attention("GQA 3/1 (multi-query), T=1", 1, 1, 3, 1, 5, 1, NULL, 1);
    test_attention("1 head, D=1", 1, 7, 1, 1, 1, 0, NULL, 0);
    test_blind_queries();
    printf("worst |analytic - numeric| / tolerance: %.3g (tolerance %g + %g |numeric|, eps %g)\n", gc_worst_seen,
           GC_ATOL, GC_RTOL, GC_EPS);
    return test_summary("test_attention_grad");
}
