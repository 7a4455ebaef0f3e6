/* test_attention_flash.c - the float cache-blocked attention (op_attention_*,
 * src/ops/attention_flash.c) against the materialised double reference
 * (opd_attention_*, src/ops/attention.inc), which test_attention_grad.c checks
 * by finite differences.
 *
 * Shapes straddle the 64 x 64 blocks: T in {1, 2, 63, 64, 65, 130}, head size
 * D in {8, 64}, (Hq, Hkv) in {(2, 2), (4, 2), (3, 1)}, causal or not, with and
 * without a key mask. q, k, v are strided views into one fused buffer with
 * padding columns (as GPT-2 passes them). B = 3 sequences; the mask hides, in
 * sequence 0, key 0 and every key j = 1 mod 3 (so under the causal mask
 * query 0 sees nothing); in sequence 1, every key (no query sees anything);
 * in sequence 2, keys 64..127 (a whole key block) and the last key.
 *
 * For every SIMD flavour this CPU runs (generic, AVX2, AVX-512):
 *   out, lse, dq, dk, dv within 1e-5 max|reference| (+1e-7) of the double
 *   reference (lse: log-sum-exp of the visible scores, computed here; +inf
 *   exactly where a query sees no key; for the gradients, the max over all
 *   three), and no NaN anywhere;
 * and with the default flavour:
 *   backward accumulates (+=) into dq, dk, dv and leaves the padding columns
 *   alone; NULL gradients skip their part without changing the others (bit
 *   for bit); results do not depend on the thread count (bit for bit); a head
 *   size above the packed limit (D = 264) takes the plain-dot path. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "ops/ops.h"
#include "ops/ops_double.h"
#include "testutil.h"

#define REL_TOL 1e-5
#define ABS_TOL 1e-7

static lorac_rng rng;
static double g_worst_ratio; /* max over all comparisons of |err| / tol, printed at the end */

typedef struct {
    int B, T, Hq, Hkv, D, causal, ld; /* ld: row stride of the fused [B*T, ld] q | k | v | pad buffer */
    const uint8_t *mask;              /* [B*T] or NULL */
    float *qkv, *dout;                /* inputs */
    double *outd, *lsed, *dqkvd;      /* the double reference (dqkvd: gradients from zero) */
} att_case;

static int qcol(const att_case *c) { return 0; }
static int kcol(const att_case *c) { return c->Hq * c->D; }
static int vcol(const att_case *c) { return (c->Hq + c->Hkv) * c->D; }
static size_t n_out(const att_case *c) { return (size_t)c->B * c->T * c->Hq * c->D; }
static size_t n_qkv(const att_case *c) { return (size_t)c->B * c->T * c->ld; }
static size_t n_lse(const att_case *c) { return (size_t)c->B * c->Hq * c->T; }

static float *frandn(size_t n) {
    float *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = lorac_rng_normal(&rng);
    return a;
}

static double *widen(const float *a, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

static int visible(const att_case *c, int b, int i, int j) {
    return (!c->causal || j <= i) && (!c->mask || c->mask[(size_t)b * c->T + j]);
}

/* lse [B, Hq, T] in double from the fused inputs: log sum over visible j of exp(s q_i . k_j). */
static void lse_reference(const att_case *c, const double *qkvd) {
    const int T = c->T, D = c->D, group = c->Hq / c->Hkv;
    const double s = 1.0 / sqrt((double)D);
    double *z = malloc((size_t)T * sizeof *z);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->Hq; h++)
            for (int i = 0; i < T; i++) {
                const double *qi = qkvd + ((size_t)b * T + i) * c->ld + qcol(c) + (size_t)h * D;
                double zmax = -INFINITY;
                for (int j = 0; j < T; j++) {
                    z[j] = -INFINITY;
                    if (!visible(c, b, i, j)) continue;
                    const double *kj = qkvd + ((size_t)b * T + j) * c->ld + kcol(c) + (size_t)(h / group) * D;
                    double dot = 0;
                    for (int d = 0; d < D; d++) dot += qi[d] * kj[d];
                    z[j] = s * dot;
                    zmax = fmax(zmax, z[j]);
                }
                double sum = 0;
                for (int j = 0; j < T; j++)
                    if (z[j] > -INFINITY) sum += exp(z[j] - zmax);
                c->lsed[((size_t)b * c->Hq + h) * T + i] = sum > 0 ? zmax + log(sum) : INFINITY;
            }
    free(z);
}

/* Random inputs and the double reference for one shape. */
static att_case make_case(int B, int T, int Hq, int Hkv, int D, int causal, const uint8_t *mask) {
    att_case c = {B, T, Hq, Hkv, D, causal, (Hq + 2 * Hkv) * D + 3, mask, NULL, NULL, NULL, NULL, NULL};
    c.qkv = frandn(n_qkv(&c));
    c.dout = frandn(n_out(&c));
    double *qkvd = widen(c.qkv, n_qkv(&c)), *doutd = widen(c.dout, n_out(&c));
    double *att = malloc((size_t)B * Hq * T * T * sizeof *att);
    c.outd = malloc(n_out(&c) * sizeof *c.outd);
    c.lsed = malloc(n_lse(&c) * sizeof *c.lsed);
    c.dqkvd = calloc(n_qkv(&c), sizeof *c.dqkvd);
    opd_attention_fwd(c.outd, att, qkvd + qcol(&c), c.ld, qkvd + kcol(&c), c.ld, qkvd + vcol(&c), c.ld, mask, B, T,
                      Hq, Hkv, D, causal);
    opd_attention_bwd(c.dqkvd + qcol(&c), c.dqkvd + kcol(&c), c.dqkvd + vcol(&c), doutd, att, qkvd + qcol(&c), c.ld,
                      qkvd + kcol(&c), c.ld, qkvd + vcol(&c), c.ld, B, T, Hq, Hkv, D);
    lse_reference(&c, qkvd);
    free(qkvd), free(doutd), free(att);
    return c;
}

static void free_case(att_case *c) { free(c->qkv), free(c->dout), free(c->outd), free(c->lsed), free(c->dqkvd); }

/* The float op on case c: fwd into out, lse; bwd into dqkv (added to what is there). */
static void run_flash(const att_case *c, float *out, float *lse, float *dqkv, int want_dq, int want_dk, int want_dv) {
    const float *q = c->qkv + qcol(c), *k = c->qkv + kcol(c), *v = c->qkv + vcol(c);
    op_attention_fwd(out, lse, q, c->ld, k, c->ld, v, c->ld, c->mask, c->B, c->T, c->Hq, c->Hkv, c->D, c->causal);
    op_attention_bwd(want_dq ? dqkv + qcol(c) : NULL, want_dk ? dqkv + kcol(c) : NULL,
                     want_dv ? dqkv + vcol(c) : NULL, c->dout, out, lse, q, c->ld, k, c->ld, v, c->ld, c->mask, c->B,
                     c->T, c->Hq, c->Hkv, c->D, c->causal);
}

/* max |a| over the finite entries of columns [c0, c1) of `rows` rows of stride ld */
static double max_abs(const double *a, size_t rows, size_t ld, size_t c0, size_t c1) {
    double m = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = c0; j < c1; j++)
            if (isfinite(a[r * ld + j])) m = fmax(m, fabs(a[r * ld + j]));
    return m;
}

/* got vs want over columns [c0, c1) of `rows` rows of stride ld:
 * |got - want| <= REL_TOL scale + ABS_TOL; infinities must match exactly. */
static void compare(const char *what, const char *name, const float *got, const double *want, size_t rows, size_t ld,
                    size_t c0, size_t c1, double scale) {
    double worst = 0;
    size_t wi = 0, bad_inf = 0;
    const double tol = REL_TOL * scale + ABS_TOL;
    for (size_t r = 0; r < rows; r++)
        for (size_t j = c0; j < c1; j++) {
            const size_t i = r * ld + j;
            if (!isfinite(want[i])) {
                bad_inf += !(got[i] == want[i]);
                continue;
            }
            const double e = fabs((double)got[i] - want[i]);
            if (!(e <= worst)) { /* also catches NaN */
                worst = e;
                wi = i;
            }
        }
    g_worst_ratio = fmax(g_worst_ratio, worst / tol);
    CHECK(worst <= tol && bad_inf == 0, "%s %s: |err| %.3g at %zu (got %.8g want %.8g) > tol %.3g; %zu infinities differ",
          name, what, worst, wi, (double)got[wi], want[wi], tol, bad_inf);
}

/* One case with the current SIMD flavour: everything against the reference. */
static void check_flavour(const att_case *c, const char *name) {
    float *out = malloc(n_out(c) * sizeof *out), *lse = malloc(n_lse(c) * sizeof *lse);
    float *dqkv = calloc(n_qkv(c), sizeof *dqkv);
    for (size_t i = 0; i < n_out(c); i++) out[i] = NAN; /* forward must write every entry */
    for (size_t i = 0; i < n_lse(c); i++) lse[i] = NAN;
    run_flash(c, out, lse, dqkv, 1, 1, 1);
    const size_t N = (size_t)c->B * c->T, HqD = (size_t)c->Hq * c->D;
    compare("out", name, out, c->outd, N, HqD, 0, HqD, max_abs(c->outd, N, HqD, 0, HqD));
    compare("lse", name, lse, c->lsed, 1, n_lse(c), 0, n_lse(c), max_abs(c->lsed, 1, n_lse(c), 0, n_lse(c)));
    /* one scale for the three gradients: where dq, dk are exactly 0 (a query
       that sees one key) float keeps the rounding of dP - D_i, ~ |dO| |v| */
    const double gscale = max_abs(c->dqkvd, N, c->ld, 0, (size_t)c->ld);
    compare("dq", name, dqkv, c->dqkvd, N, c->ld, qcol(c), kcol(c), gscale);
    compare("dk", name, dqkv, c->dqkvd, N, c->ld, kcol(c), vcol(c), gscale);
    compare("dv", name, dqkv, c->dqkvd, N, c->ld, vcol(c), (size_t)c->ld, gscale);
    free(out), free(lse), free(dqkv);
}

/* With the default flavour: += semantics, padding untouched, NULL gradients. */
static void check_contract(const att_case *c, const char *name) {
    const size_t nq = n_qkv(c);
    float *out = malloc(n_out(c) * sizeof *out), *lse = malloc(n_lse(c) * sizeof *lse);
    float *zero = calloc(nq, sizeof *zero), *init = frandn(nq), *acc = malloc(nq * sizeof *acc);
    run_flash(c, out, lse, zero, 1, 1, 1);
    memcpy(acc, init, nq * sizeof *acc);
    run_flash(c, out, lse, acc, 1, 1, 1);
    size_t bad = 0;
    for (size_t i = 0; i < nq; i++) {
        const int pad = (int)(i % (size_t)c->ld) >= vcol(c) + c->Hkv * c->D;
        const float want = init[i] + zero[i];
        bad += pad ? acc[i] != init[i] || zero[i] != 0 : !(fabsf(acc[i] - want) <= 1e-6f * (fabsf(want) + 1));
    }
    CHECK(bad == 0, "%s: backward does not add into dq/dk/dv (or touches padding): %zu entries", name, bad);
    /* one gradient at a time equals that part of the full run, bit for bit */
    for (int part = 0; part < 3; part++) {
        float *one = calloc(nq, sizeof *one);
        run_flash(c, out, lse, one, part == 0, part == 1, part == 2);
        const int c0 = part == 0 ? qcol(c) : part == 1 ? kcol(c) : vcol(c);
        const int c1 = part == 0 ? kcol(c) : part == 1 ? vcol(c) : vcol(c) + c->Hkv * c->D;
        size_t diff = 0;
        for (size_t i = 0; i < nq; i++) {
            const int col = (int)(i % (size_t)c->ld);
            diff += col >= c0 && col < c1 ? memcmp(&one[i], &zero[i], sizeof *one) != 0 : one[i] != 0;
        }
        CHECK(diff == 0, "%s: with only %s requested, %zu entries differ from the full backward", name,
              part == 0 ? "dq" : part == 1 ? "dk" : "dv", diff);
        free(one);
    }
    free(out), free(lse), free(zero), free(init), free(acc);
}

/* Bitwise the same outputs for 1, 2 and 3 threads. */
static void check_threads(const att_case *c, const char *name) {
    float *ref = NULL;
    const size_t n = n_out(c) + n_lse(c) + n_qkv(c);
    const int saved = omp_get_max_threads();
    for (int threads = 1; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        float *res = calloc(n, sizeof *res);
        run_flash(c, res, res + n_out(c), res + n_out(c) + n_lse(c), 1, 1, 1);
        if (!ref) {
            ref = res;
            continue;
        }
        CHECK(memcmp(ref, res, n * sizeof *res) == 0, "%s: %d threads differ from 1", name, threads);
        free(res);
    }
    omp_set_num_threads(saved);
    free(ref);
}

static uint8_t *make_mask(int B, int T) {
    uint8_t *m = malloc((size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++) {
            int hide = b == 0 ? j == 0 || j % 3 == 1 : b == 1 ? 1 : (j >= 64 && j < 128) || j == T - 1;
            m[(size_t)b * T + j] = !hide;
        }
    return m;
}

static const op_att_isa flavours[] = {OP_ATT_ISA_GENERIC, OP_ATT_ISA_AVX2, OP_ATT_ISA_AVX512};

static void run_case(int T, int D, int Hq, int Hkv, int causal, int masked, int extra_checks) {
    enum { B = 3 };
    uint8_t *mask = masked ? make_mask(B, T) : NULL;
    att_case c = make_case(B, T, Hq, Hkv, D, causal, mask);
    char name[160];
    for (size_t f = 0; f < sizeof flavours / sizeof flavours[0]; f++) {
        if (!op_attention_set_isa(flavours[f])) continue;
        snprintf(name, sizeof name, "T=%d D=%d Hq=%d Hkv=%d causal=%d mask=%d [%s]", T, D, Hq, Hkv, causal, masked,
                 op_attention_isa_name());
        check_flavour(&c, name);
    }
    op_attention_set_isa(OP_ATT_ISA_AUTO);
    snprintf(name, sizeof name, "T=%d D=%d Hq=%d Hkv=%d causal=%d mask=%d [%s]", T, D, Hq, Hkv, causal, masked,
             op_attention_isa_name());
    check_contract(&c, name);
    if (extra_checks) check_threads(&c, name);
    free_case(&c);
    free(mask);
}

int main(void) {
    lorac_rng_seed(&rng, 4321);
    static const int Ts[] = {1, 2, 63, 64, 65, 130}, Ds[] = {8, 64}, heads[][2] = {{2, 2}, {4, 2}, {3, 1}};
    for (size_t t = 0; t < sizeof Ts / sizeof Ts[0]; t++)
        for (size_t d = 0; d < sizeof Ds / sizeof Ds[0]; d++)
            for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
                for (int causal = 0; causal < 2; causal++)
                    for (int masked = 0; masked < 2; masked++)
                        run_case(Ts[t], Ds[d], heads[h][0], heads[h][1], causal, masked, Ts[t] == 130 && h == 1);
    run_case(65, 264, 2, 1, 1, 1, 1); /* D above the packed limit: plain dot products */
    run_case(33, 80, 4, 2, 1, 0, 0);  /* D = 64 + 16: both vector strips */
    printf("test_attention_flash: worst |err| / tolerance over all comparisons: %.3f\n", g_worst_ratio);
    return test_summary("test_attention_flash");
}
