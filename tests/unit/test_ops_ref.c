/* test_ops_ref.c - the float ops (op_*: BLAS linear layer, OpenMP loops)
 * against their double-precision twins (opd_*, whose backward passes
 * test_ops_grad.c / test_attention_grad.c check by finite differences), over
 * odd shapes (1, 7, 33, non-multiples of 16, and sizes that take the
 * multi-threaded paths). Both sides see the same float inputs (widened for
 * opd_*). Also: golden values from the defining formulas, RoPE against a
 * direct formula, attention / xent stability, and bitwise determinism across
 * thread counts.
 *
 * Tolerances (|float - double| <= atol + rtol |double|), values ~ N(0, 1):
 *   pointwise ops           rtol 1e-5  atol 1e-6  (a few ulp of expf/tanhf/erff)
 *   GEMM / linear, K <= 100 rtol 1e-5  atol 2e-5  (float sums of K products)
 *   norms                   rtol 1e-5  atol 2e-5  (dg, db sum N rows)
 *   rope                    rtol 1e-5  atol 1e-5  (float angle pos * inv_freq)
 *   attention               rtol 1e-4  atol 2e-5  (softmax + T-term sums)
 *   xent loss               rtol 1e-9             (both log-sum-exp in double)
 *   xent dlogits            rtol 1e-6  atol 1e-7 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/ops_double.h"
#include "testutil.h"

static lorac_rng rng;

static float *frandn(size_t n, float scale) {
    float *a = malloc((n ? n : 1) * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = scale * lorac_rng_normal(&rng);
    return a;
}

static double *widen(const float *a, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = a[i];
    return d;
}

static float *fcopy(const float *a, size_t n) {
    float *c = malloc((n ? n : 1) * sizeof *c);
    memcpy(c, a, n * sizeof *c);
    return c;
}

/* test_close of a float result against a double reference. */
static int close_fd(const char *what, const float *got, const double *want, size_t n, double rtol, double atol) {
    float *w = malloc((n ? n : 1) * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = (float)want[i];
    int ok = test_close(what, got, w, n, rtol, atol);
    free(w);
    return ok;
}

/* ---- GEMM and linear ---------------------------------------------------- */

static void test_gemm(int M, int N, int K) {
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1; /* padded strides */
            size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
            float *A = frandn(na, 1), *B = frandn(nb, 1), *C = frandn(nc, 1);
            double *Ad = widen(A, na), *Bd = widen(B, nb), *Cd = widen(C, nc);
            op_gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C, ldc);
            opd_gemm(ta, tb, M, N, K, 0.5, Ad, lda, Bd, ldb, 0.25, Cd, ldc);
            char what[80];
            snprintf(what, sizeof what, "gemm ta=%d tb=%d M=%d N=%d K=%d", ta, tb, M, N, K);
            close_fd(what, C, Cd, nc, 1e-5, 2e-5);
            free(A), free(B), free(C), free(Ad), free(Bd), free(Cd);
        }
}

static void test_linear(int N, int in, int out, int layout, int bias, float beta) {
    size_t nx = (size_t)N * in, nw = (size_t)in * out, ny = (size_t)N * out;
    float *x = frandn(nx, 1), *W = frandn(nw, 1), *b = bias ? frandn(out, 1) : NULL, *y = frandn(ny, 1);
    float *dy = frandn(ny, 1), *dx = frandn(nx, 1), *dW = frandn(nw, 1), *db = frandn(out, 1);
    double *xd = widen(x, nx), *Wd = widen(W, nw), *bd = bias ? widen(b, out) : NULL, *yd = widen(y, ny);
    double *dyd = widen(dy, ny), *dxd = widen(dx, nx), *dWd = widen(dW, nw), *dbd = widen(db, out);
    float *dW2 = fcopy(dW, nw), *db2 = fcopy(db, out);
    op_linear_fwd(y, x, W, b, N, in, out, layout, beta);
    opd_linear_fwd(yd, xd, Wd, bd, N, in, out, layout, beta);
    op_linear_bwd_x(dx, dy, W, N, in, out, layout);
    opd_linear_bwd_x(dxd, dyd, Wd, N, in, out, layout);
    op_linear_bwd_w(dW, db, dy, x, N, in, out, layout);
    opd_linear_bwd_w(dWd, dbd, dyd, xd, N, in, out, layout);
    char what[96];
    int k = snprintf(what, sizeof what, "linear N=%d in=%d out=%d layout=%d bias=%d beta=%g ", N, in, out, layout,
                     bias, beta);
    snprintf(what + k, sizeof what - k, "y");
    close_fd(what, y, yd, ny, 1e-5, 2e-5);
    snprintf(what + k, sizeof what - k, "dx");
    close_fd(what, dx, dxd, nx, 1e-5, 2e-5);
    snprintf(what + k, sizeof what - k, "dW");
    close_fd(what, dW, dWd, nw, 1e-5, 2e-5);
    snprintf(what + k, sizeof what - k, "db");
    close_fd(what, db, dbd, out, 1e-5, 2e-5);
    /* NULL gradients are skipped; the other one comes out the same */
    op_linear_bwd_w(NULL, db2, dy, x, N, in, out, layout);
    op_linear_bwd_w(dW2, NULL, dy, x, N, in, out, layout);
    op_linear_bwd_x(NULL, dy, W, N, in, out, layout);
    CHECK(memcmp(db2, db, out * sizeof *db) == 0 && memcmp(dW2, dW, nw * sizeof *dW) == 0,
          "linear: bwd_w with a NULL gradient changed the other (%s)", what);
    free(x), free(W), free(b), free(y), free(dy), free(dx), free(dW), free(db), free(dW2), free(db2);
    free(xd), free(Wd), free(bd), free(yd), free(dyd), free(dxd), free(dWd), free(dbd);
}

/* ---- pointwise ---------------------------------------------------------- */

typedef void (*ffwd_fn)(float *, const float *, size_t);
typedef void (*fbwd_fn)(float *, const float *, const float *, size_t);
typedef void (*dfwd_fn)(double *, const double *, size_t);
typedef void (*dbwd_fn)(double *, const double *, const double *, size_t);

static void test_unary(const char *name, ffwd_fn ff, fbwd_fn fb, dfwd_fn df, dbwd_fn db, int bwd_uses_output,
                       size_t n) {
    float *x = frandn(n, 3), *y = frandn(n, 1), *dy = frandn(n, 1), *dx = frandn(n, 1);
    double *xd = widen(x, n), *yd = widen(y, n), *dyd = widen(dy, n), *dxd = widen(dx, n);
    ff(y, x, n);
    df(yd, xd, n);
    fb(dx, dy, bwd_uses_output ? y : x, n);
    db(dxd, dyd, bwd_uses_output ? yd : xd, n);
    char what[64];
    snprintf(what, sizeof what, "%s fwd n=%zu", name, n);
    close_fd(what, y, yd, n, 1e-5, 1e-6);
    snprintf(what, sizeof what, "%s bwd n=%zu", name, n);
    close_fd(what, dx, dxd, n, 1e-5, 1e-6);
    free(x), free(y), free(dy), free(dx), free(xd), free(yd), free(dyd), free(dxd);
}

static void test_pointwise(size_t n) {
    test_unary("gelu_tanh", op_gelu_tanh_fwd, op_gelu_tanh_bwd, opd_gelu_tanh_fwd, opd_gelu_tanh_bwd, 0, n);
    test_unary("gelu_erf", op_gelu_erf_fwd, op_gelu_erf_bwd, opd_gelu_erf_fwd, opd_gelu_erf_bwd, 0, n);
    test_unary("relu", op_relu_fwd, op_relu_bwd, opd_relu_fwd, opd_relu_bwd, 0, n);
    test_unary("tanh", op_tanh_fwd, op_tanh_bwd, opd_tanh_fwd, opd_tanh_bwd, 1, n);

    float *a = frandn(n, 3), *b = frandn(n, 1), *dh = frandn(n, 1), *dg = frandn(n, 1), *du = frandn(n, 1);
    double *ad = widen(a, n), *bd = widen(b, n), *dhd = widen(dh, n), *dgd = widen(dg, n), *dud = widen(du, n);
    float *h = malloc(n * sizeof *h);
    double *hd = malloc(n * sizeof *hd);
    op_swiglu_fwd(h, a, b, n);
    opd_swiglu_fwd(hd, ad, bd, n);
    op_swiglu_bwd(dg, du, dh, a, b, n);
    opd_swiglu_bwd(dgd, dud, dhd, ad, bd, n);
    close_fd("swiglu h", h, hd, n, 1e-5, 1e-6);
    close_fd("swiglu dgate", dg, dgd, n, 1e-5, 1e-6);
    close_fd("swiglu dup", du, dud, n, 1e-5, 1e-6);

    /* add (aliased output), acc, scale: exact in both precisions */
    op_add(h, a, b, n);
    opd_add(hd, ad, bd, n);
    op_acc(h, a, n);
    opd_acc(hd, ad, n);
    op_scale(h, 0.5f, n);
    opd_scale(hd, 0.5, n);
    op_add(a, a, b, n); /* y aliases a */
    opd_add(ad, ad, bd, n);
    close_fd("add / acc / scale", h, hd, n, 1e-6, 1e-6);
    close_fd("add aliased", a, ad, n, 1e-6, 1e-6);

    /* dropout: the same seed gives the same mask in both builds */
    uint8_t *m = malloc(n), *md = malloc(n);
    lorac_rng r1, r2;
    lorac_rng_seed(&r1, n);
    lorac_rng_seed(&r2, n);
    op_dropout_fwd(h, m, b, n, 0.125f, &r1);
    opd_dropout_fwd(hd, md, bd, n, 0.125, &r2);
    op_dropout_bwd(dg, dh, m, n, 0.125f);
    opd_dropout_bwd(dgd, dhd, md, n, 0.125);
    CHECK(memcmp(m, md, n) == 0, "dropout masks differ between float and double (n=%zu)", n);
    close_fd("dropout y", h, hd, n, 1e-6, 1e-7);
    close_fd("dropout dx", dg, dgd, n, 1e-5, 1e-6);
    free(a), free(b), free(dh), free(dg), free(du), free(ad), free(bd), free(dhd), free(dgd), free(dud);
    free(h), free(hd), free(m), free(md);
}

/* Values of the defining formulas, computed with Python's math module
 * (0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3))) and 0.5*x*(1+erf(x/sqrt(2)))),
 * which are what torch.nn.functional.gelu(approximate='tanh' / 'none') compute. */
static void test_golden(void) {
    static const float x[7] = {-3, -1, -0.5f, 0, 0.5f, 1, 2.5f};
    static const float gt[7] = {-0.0036373920817729943f, -0.15880800939172324f, -0.15428599017485606f, 0,
                                0.34571400982514394f,    0.8411919906082768f,   2.484915733910001f};
    static const float ge[7] = {-0.00404969409489031f, -0.15865525393145707f, -0.15426876936299344f, 0,
                                0.34573123063700656f,  0.8413447460685429f,   2.4844758366855597f};
    float y[7];
    op_gelu_tanh_fwd(y, x, 7);
    test_close("gelu_tanh golden", y, gt, 7, 1e-6, 1e-7);
    op_gelu_erf_fwd(y, x, 7);
    /* float GELU-erf uses A&S 7.1.28 (|erf error| <= 3e-7, ops/template.h): absolute tolerance */
    test_close("gelu_erf golden", y, ge, 7, 1e-6, 1e-6);
    /* LayerNorm of [1 2 3 4] (var 1.25, biased) and RMSNorm (mean square 7.5), eps 0 */
    static const float v[4] = {1, 2, 3, 4}, ones[4] = {1, 1, 1, 1}, zeros[4] = {0};
    static const float ln[4] = {-1.3416407864998738f, -0.4472135954999579f, 0.4472135954999579f,
                                1.3416407864998738f};
    static const float rms[4] = {0.3651483716701107f, 0.7302967433402214f, 1.0954451150103321f,
                                 1.4605934866804429f};
    float mean, rstd;
    op_layernorm_fwd(y, &mean, &rstd, v, ones, zeros, 1, 4, 0.0f);
    test_close("layernorm golden", y, ln, 4, 1e-6, 1e-7);
    op_rmsnorm_fwd(y, &rstd, v, ones, 1, 4, 0.0f);
    test_close("rmsnorm golden", y, rms, 4, 1e-6, 1e-7);
}

/* Huge inputs: exp() overflows inside the sigmoid forms; results must stay
 * finite and agree with double. */
static void test_extremes(void) {
    enum { n = 8 };
    static const float x[n] = {-1e4f, -100, -20, -9, 9, 20, 100, 1e4f};
    static const float dy[n] = {1, 1, 1, 1, 1, 1, 1, 1};
    double xd[n], dyd[n];
    for (int i = 0; i < n; i++) xd[i] = x[i], dyd[i] = dy[i];
    float y[n], dx[n], dx2[n];
    double yd[n], dxd[n], dxd2[n];
    struct { const char *name; ffwd_fn ff; fbwd_fn fb; dfwd_fn df; dbwd_fn db; } act[] = {
        {"gelu_tanh", op_gelu_tanh_fwd, op_gelu_tanh_bwd, opd_gelu_tanh_fwd, opd_gelu_tanh_bwd},
        {"gelu_erf", op_gelu_erf_fwd, op_gelu_erf_bwd, opd_gelu_erf_fwd, opd_gelu_erf_bwd},
        {"relu", op_relu_fwd, op_relu_bwd, opd_relu_fwd, opd_relu_bwd},
    };
    char what[64];
    for (size_t a = 0; a < sizeof act / sizeof act[0]; a++) {
        memset(dx, 0, sizeof dx);
        memset(dxd, 0, sizeof dxd);
        act[a].ff(y, x, n);
        act[a].df(yd, xd, n);
        act[a].fb(dx, dy, x, n);
        act[a].db(dxd, dyd, xd, n);
        snprintf(what, sizeof what, "%s fwd at extremes", act[a].name);
        close_fd(what, y, yd, n, 1e-6, 1e-7);
        snprintf(what, sizeof what, "%s bwd at extremes", act[a].name);
        close_fd(what, dx, dxd, n, 1e-6, 1e-7);
    }
    memset(dx, 0, sizeof dx), memset(dx2, 0, sizeof dx2);
    memset(dxd, 0, sizeof dxd), memset(dxd2, 0, sizeof dxd2);
    op_swiglu_fwd(y, x, dy, n);
    opd_swiglu_fwd(yd, xd, dyd, n);
    op_swiglu_bwd(dx, dx2, dy, x, dy, n);
    opd_swiglu_bwd(dxd, dxd2, dyd, xd, dyd, n);
    close_fd("swiglu fwd at extremes", y, yd, n, 1e-6, 1e-7);
    close_fd("swiglu dgate at extremes", dx, dxd, n, 1e-6, 1e-7);
    close_fd("swiglu dup at extremes", dx2, dxd2, n, 1e-6, 1e-7);
}

/* ---- norms, embedding --------------------------------------------------- */

static void test_norms(int N, int C) {
    size_t n = (size_t)N * C;
    float *x = frandn(n, 2), *g = frandn(C, 1), *b = frandn(C, 1), *dy = frandn(n, 1);
    float *dx = frandn(n, 1), *dg = frandn(C, 1), *db = frandn(C, 1), *y = malloc(n * sizeof *y);
    float *mean = malloc(N * sizeof *mean), *rstd = malloc(N * sizeof *rstd);
    for (size_t i = 0; i < n; i++) x[i] += 1.5f; /* nonzero mean */
    double *xd = widen(x, n), *gd = widen(g, C), *bd = widen(b, C), *dyd = widen(dy, n);
    double *dxd = widen(dx, n), *dgd = widen(dg, C), *dbd = widen(db, C), *yd = malloc(n * sizeof *yd);
    double *meand = malloc(N * sizeof *meand), *rstdd = malloc(N * sizeof *rstdd);
    char what[64];
    op_layernorm_fwd(y, mean, rstd, x, g, b, N, C, 1e-5f);
    opd_layernorm_fwd(yd, meand, rstdd, xd, gd, bd, N, C, 1e-5);
    op_layernorm_bwd(dx, dg, db, dy, x, mean, rstd, g, N, C);
    opd_layernorm_bwd(dxd, dgd, dbd, dyd, xd, meand, rstdd, gd, N, C);
    snprintf(what, sizeof what, "layernorm N=%d C=%d y", N, C);
    close_fd(what, y, yd, n, 1e-5, 2e-5);
    close_fd("layernorm mean", mean, meand, N, 1e-6, 1e-6);
    close_fd("layernorm rstd", rstd, rstdd, N, 1e-5, 1e-6);
    snprintf(what, sizeof what, "layernorm N=%d C=%d dx", N, C);
    close_fd(what, dx, dxd, n, 1e-5, 2e-5);
    snprintf(what, sizeof what, "layernorm N=%d C=%d dg", N, C);
    close_fd(what, dg, dgd, C, 1e-5, 2e-5);
    snprintf(what, sizeof what, "layernorm N=%d C=%d db", N, C);
    close_fd(what, db, dbd, C, 1e-5, 2e-5);

    op_rmsnorm_fwd(y, rstd, x, g, N, C, 1e-6f);
    opd_rmsnorm_fwd(yd, rstdd, xd, gd, N, C, 1e-6);
    op_rmsnorm_bwd(dx, dg, dy, x, rstd, g, N, C);
    opd_rmsnorm_bwd(dxd, dgd, dyd, xd, rstdd, gd, N, C);
    snprintf(what, sizeof what, "rmsnorm N=%d C=%d y", N, C);
    close_fd(what, y, yd, n, 1e-5, 2e-5);
    snprintf(what, sizeof what, "rmsnorm N=%d C=%d dx", N, C);
    close_fd(what, dx, dxd, n, 1e-5, 2e-5);
    snprintf(what, sizeof what, "rmsnorm N=%d C=%d dg", N, C);
    close_fd(what, dg, dgd, C, 1e-5, 2e-5);
    free(x), free(g), free(b), free(dy), free(dx), free(dg), free(db), free(y), free(mean), free(rstd);
    free(xd), free(gd), free(bd), free(dyd), free(dxd), free(dgd), free(dbd), free(yd), free(meand), free(rstdd);
}

static void test_embed(int V, int N, int C) {
    int *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) ids[i] = (int)lorac_rng_below(&rng, V);
    float *table = frandn((size_t)V * C, 1), *y = frandn((size_t)N * C, 1), *dy = frandn((size_t)N * C, 1);
    float *dt = frandn((size_t)V * C, 1);
    double *td = widen(table, (size_t)V * C), *yd = widen(y, (size_t)N * C), *dyd = widen(dy, (size_t)N * C);
    double *dtd = widen(dt, (size_t)V * C);
    op_embed_fwd(y, table, ids, N, C, 1);
    opd_embed_fwd(yd, td, ids, N, C, 1);
    op_embed_bwd(dt, dy, ids, N, C);
    opd_embed_bwd(dtd, dyd, ids, N, C);
    close_fd("embed fwd (accumulate)", y, yd, (size_t)N * C, 1e-6, 1e-6);
    close_fd("embed bwd", dt, dtd, (size_t)V * C, 1e-5, 1e-5);
    op_embed_fwd(y, table, ids, N, C, 0);
    CHECK(memcmp(y + (size_t)(N - 1) * C, table + (size_t)ids[N - 1] * C, C * sizeof *y) == 0, "embed copy");
    free(ids), free(table), free(y), free(dy), free(dt), free(td), free(yd), free(dyd), free(dtd);
}

/* ---- rope --------------------------------------------------------------- */

/* RoPE straight from its definition in ops.h, in double. */
static void rope_direct(double *out, const float *x, const int *pos, int B, int T, int H, int D, int ld,
                        double theta) {
    int half = D / 2;
    for (int bt = 0; bt < B * T; bt++) {
        double p = pos ? pos[bt] : bt % T;
        for (int c = 0; c < ld; c++) out[(size_t)bt * ld + c] = x[(size_t)bt * ld + c];
        for (int h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                double a = p * pow(theta, -2.0 * i / D);
                size_t k = (size_t)bt * ld + (size_t)h * D + i;
                out[k] = x[k] * cos(a) - x[k + half] * sin(a);
                out[k + half] = x[k + half] * cos(a) + x[k] * sin(a);
            }
    }
}

static void test_rope(int B, int T, int H, int D, int pad, const int *pos, float theta) {
    int ld = H * D + pad;
    size_t n = (size_t)B * T * ld;
    float *x = frandn(n, 1), *y = fcopy(x, n), *y2 = fcopy(x, n);
    double *want = malloc(n * sizeof *want), *yd = widen(x, n);
    rope_direct(want, x, pos, B, T, H, D, ld, theta);
    op_rope(y, pos, B, T, H, D, ld, theta, 0);
    opd_rope(yd, pos, B, T, H, D, ld, theta, 0);
    char what[80];
    snprintf(what, sizeof what, "rope B=%d T=%d H=%d D=%d ld=%d vs formula", B, T, H, D, ld);
    close_fd(what, y, want, n, 1e-5, 1e-5);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(yd[i] - want[i]));
    CHECK(worst < 1e-12, "opd_rope differs from the formula by %g", worst);
    float inv_freq[64];
    op_rope_inv_freq(inv_freq, D, theta);
    op_rope_freqs(y2, pos, B, T, H, D, ld, inv_freq, 0);
    CHECK(memcmp(y, y2, n * sizeof *y) == 0, "op_rope != op_rope_freqs(op_rope_inv_freq)");
    op_rope(y, pos, B, T, H, D, ld, theta, 1); /* inverse(forward(x)) == x */
    test_close("rope inverse(forward(x))", y, x, n, 1e-6, 1e-6);
    free(x), free(y), free(y2), free(want), free(yd);
}

/* ---- attention ---------------------------------------------------------- */

/* q, k, v are views into one fused [B*T, ld] buffer; keymask pads the last b
 * keys of sequence b and, for odd b, its first key too. qscale > 1 makes the
 * scores large (checks the max-subtracted softmax). */
static void test_attention(int B, int T, int Hq, int Hkv, int D, int causal, int masked, int pad, float qscale,
                           double rtol, double atol) {
    int ld = (Hq + 2 * Hkv) * D + pad, qo = 0, ko = Hq * D, vo = (Hq + Hkv) * D;
    size_t nqkv = (size_t)B * T * ld, nout = (size_t)B * T * Hq * D, natt = (size_t)B * Hq * T * T;
    size_t nlse = (size_t)B * Hq * T;
    uint8_t *mask = malloc((size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[b * T + t] = !(t >= T - b || (b % 2 == 1 && t == 0));
    float *qkv = frandn(nqkv, 1), *dout = frandn(nout, 1), *dqkv = frandn(nqkv, 1);
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int c = 0; c < Hq * D; c++) qkv[r * ld + c] *= qscale;
    float *out = malloc(nout * sizeof *out), *lse = malloc(nlse * sizeof *lse);
    double *qkvd = widen(qkv, nqkv), *doutd = widen(dout, nout), *dqkvd = widen(dqkv, nqkv);
    double *outd = malloc(nout * sizeof *outd), *attd = malloc(natt * sizeof *attd);
    const uint8_t *km = masked ? mask : NULL;
    op_attention_fwd(out, lse, qkv + qo, ld, qkv + ko, ld, qkv + vo, ld, km, B, T, Hq, Hkv, D, causal);
    opd_attention_fwd(outd, attd, qkvd + qo, ld, qkvd + ko, ld, qkvd + vo, ld, km, B, T, Hq, Hkv, D, causal);
    op_attention_bwd(dqkv + qo, dqkv + ko, dqkv + vo, dout, out, lse, qkv + qo, ld, qkv + ko, ld, qkv + vo, ld, km, B,
                     T, Hq, Hkv, D, causal);
    opd_attention_bwd(dqkvd + qo, dqkvd + ko, dqkvd + vo, doutd, attd, qkvd + qo, ld, qkvd + ko, ld, qkvd + vo, ld,
                      B, T, Hq, Hkv, D);
    char what[128];
    int k = snprintf(what, sizeof what, "attention B=%d T=%d Hq=%d Hkv=%d D=%d causal=%d mask=%d qscale=%g ", B, T,
                     Hq, Hkv, D, causal, masked, qscale);
    snprintf(what + k, sizeof what - k, "out");
    close_fd(what, out, outd, nout, rtol, atol);
    snprintf(what + k, sizeof what - k, "dq|dk|dv");
    close_fd(what, dqkv, dqkvd, nqkv, rtol, atol);
    free(mask), free(qkv), free(dout), free(dqkv), free(out), free(lse);
    free(qkvd), free(doutd), free(dqkvd), free(outd), free(attd);
}

/* ---- cross-entropy ------------------------------------------------------ */

static void test_xent(int N, int V) {
    size_t n = (size_t)N * V;
    float *logits = frandn(n, 3), *dl = frandn(n, 1);
    for (int r = 1; r < N; r += 3)
        for (int j = 0; j < V; j++) logits[(size_t)r * V + j] += 1000; /* exp would overflow unshifted */
    int *targets = malloc(N * sizeof *targets);
    for (int r = 0; r < N; r++) targets[r] = r % 4 == 3 ? -100 : (int)lorac_rng_below(&rng, V);
    double *ld = widen(logits, n), *dld = malloc(n * sizeof *dld);
    int cf = -1, cd = -2;
    double lf = op_xent(dl, logits, targets, N, V, 0.5f, &cf);
    double ldv = opd_xent(dld, ld, targets, N, V, 0.5, &cd);
    CHECK(cf == cd, "xent count %d vs %d", cf, cd);
    CHECK(fabs(lf - ldv) <= 1e-9 * fabs(ldv) + 1e-12 && isfinite(lf), "xent N=%d V=%d loss %.15g vs %.15g", N, V,
          lf, ldv);
    char what[64];
    snprintf(what, sizeof what, "xent N=%d V=%d dlogits", N, V);
    close_fd(what, dl, dld, n, 1e-6, 1e-7);
    float *alias = fcopy(logits, n);
    double la = op_xent(alias, alias, targets, N, V, 0.5f, NULL);
    CHECK(la == lf && memcmp(alias, dl, n * sizeof *dl) == 0, "xent: aliased dlogits differ");
    free(logits), free(dl), free(targets), free(ld), free(dld), free(alias);
}

/* ---- determinism across thread counts ------------------------------------
 * Runs the ops whose parallel loops reduce (norm dg/db, embed_bwd, linear db,
 * attention, xent) on inputs large enough to take the OpenMP paths, and
 * appends every output to res. (BLAS GEMM is OpenBLAS's business.) */
static size_t det_run(float *res) {
    enum { N = 64, C = 300, V = 11, B = 2, T = 33, HQ = 4, HKV = 2, D = 16 };
    lorac_rng saved = rng;
    lorac_rng_seed(&rng, 99); /* the same inputs on every run */
    size_t k = 0;
    float *x = frandn(N * C, 1), *dy = frandn(N * C, 1), *g = frandn(C, 1), *b = frandn(C, 1);
    float *mean = res + k, *rstd = res + k + N;
    k += 2 * N;
    op_layernorm_fwd(res + k, mean, rstd, x, g, b, N, C, 1e-5f);
    k += N * C;
    memset(res + k, 0, (N * C + 2 * C) * sizeof *res);
    op_layernorm_bwd(res + k, res + k + N * C, res + k + N * C + C, dy, x, mean, rstd, g, N, C);
    k += N * C + 2 * C;
    op_rmsnorm_fwd(res + k, rstd, x, g, N, C, 1e-6f);
    k += N * C;
    memset(res + k, 0, (N * C + C) * sizeof *res);
    op_rmsnorm_bwd(res + k, res + k + N * C, dy, x, rstd, g, N, C);
    k += N * C + C;
    int ids[N];
    for (int i = 0; i < N; i++) ids[i] = i * 7 % V;
    memset(res + k, 0, V * C * sizeof *res);
    op_embed_bwd(res + k, dy, ids, N, C);
    k += V * C;
    memset(res + k, 0, C * sizeof *res);
    op_linear_bwd_w(NULL, res + k, dy, x, N, C, C, 0);
    k += C;
    double loss = op_xent(res + k, x, ids, N, C, 0.25f, NULL);
    k += N * C;
    memcpy(res + k, &loss, sizeof loss); /* the double, bit for bit */
    k += 2;
    int ld = (HQ + 2 * HKV) * D;
    float *qkv = frandn(B * T * ld, 1), *dout = frandn(B * T * HQ * D, 1);
    float *out = res + k, *lse = res + k + B * T * HQ * D;
    op_attention_fwd(out, lse, qkv, ld, qkv + HQ * D, ld, qkv + (HQ + HKV) * D, ld, NULL, B, T, HQ, HKV, D, 1);
    k += B * T * HQ * D + B * HQ * T;
    memset(res + k, 0, B * T * ld * sizeof *res);
    op_attention_bwd(res + k, res + k + HQ * D, res + k + (HQ + HKV) * D, dout, out, lse, qkv, ld, qkv + HQ * D, ld,
                     qkv + (HQ + HKV) * D, ld, NULL, B, T, HQ, HKV, D, 1);
    k += B * T * ld;
    free(x), free(dy), free(g), free(b), free(qkv), free(dout);
    rng = saved;
    return k;
}

static void test_determinism(void) {
    size_t cap = 1 << 20;
    float *r1 = calloc(cap, sizeof *r1), *r2 = calloc(cap, sizeof *r2);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    size_t n = det_run(r1);
    CHECK(n <= cap, "determinism buffer too small");
    for (int threads = 2; threads <= 3; threads++) {
        omp_set_num_threads(threads);
        memset(r2, 0, cap * sizeof *r2);
        det_run(r2);
        CHECK(memcmp(r1, r2, n * sizeof *r1) == 0, "results with %d threads differ from 1 thread", threads);
    }
    omp_set_num_threads(saved);
    free(r1), free(r2);
}

int main(void) {
    lorac_rng_seed(&rng, 1234);
    static const int shapes[][3] = {{1, 1, 1}, {7, 33, 17}, {33, 7, 65}, {5, 100, 3}, {1, 7, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        test_gemm(shapes[s][0], shapes[s][1], shapes[s][2]);
        for (int layout = 0; layout < 2; layout++) {
            test_linear(shapes[s][0], shapes[s][1], shapes[s][2], layout, 1, 0.0f);
            test_linear(shapes[s][0], shapes[s][1], shapes[s][2], layout, 0, 1.0f);
        }
    }
    /* products large enough for oneDNN (>= 1M multiply-adds) whose row counts
     * are not bucket sizes: ops/gemm.c runs the first 32 and 256 rows in
     * place, then the other 5 padded to 8 and the other 44 to 48 rows
     * through copies of A and C (beta != 0, padded strides, see test_gemm) */
    test_gemm(37, 300, 120);
    test_gemm(300, 130, 33);
    /* and a bias row that oneDNN adds as it writes the product (op_gemm_bias),
     * in the in-place rows and the padded ones, onto y (beta 1) or not */
    for (int layout = 0; layout < 2; layout++) {
        test_linear(300, 130, 33, layout, 1, 0.0f);
        test_linear(37, 120, 300, layout, 1, 1.0f);
    }
    static const size_t sizes[] = {1, 7, 33, 70001};
    for (size_t s = 0; s < 4; s++) test_pointwise(sizes[s]);
    test_golden();
    test_extremes();
    static const int norm_shapes[][2] = {{1, 1}, {7, 33}, {33, 7}, {5, 1000}, {64, 300}};
    for (size_t s = 0; s < 5; s++) test_norms(norm_shapes[s][0], norm_shapes[s][1]);
    test_embed(5, 7, 3);
    test_embed(11, 200, 130);
    static const int pos[2 * 7] = {0, 1, 2, 3, 4, 5, 6, 40, 39, 38, 7, 1, 0, 17};
    test_rope(1, 1, 1, 2, 0, NULL, 10000.0f);
    test_rope(2, 7, 3, 16, 5, pos, 10000.0f);
    test_rope(2, 7, 2, 34, 0, pos, 500000.0f);
    test_rope(3, 33, 4, 64, 3, NULL, 10000.0f);
    test_attention(1, 1, 1, 1, 1, 1, 0, 0, 1, 1e-4, 2e-5);
    test_attention(2, 7, 4, 2, 5, 1, 1, 3, 1, 1e-4, 2e-5);
    test_attention(1, 33, 3, 1, 16, 0, 0, 0, 1, 1e-4, 2e-5);
    test_attention(2, 33, 2, 2, 7, 1, 1, 1, 1, 1e-4, 2e-5);
    test_attention(3, 17, 4, 4, 8, 0, 1, 0, 1, 1e-4, 2e-5);
    test_attention(2, 7, 2, 1, 8, 1, 1, 0, 40, 1e-3, 1e-4); /* scores ~ +-100: unshifted exp overflows */
    test_xent(1, 1);
    test_xent(7, 33);
    test_xent(33, 1000);
    test_determinism();
    return test_summary("test_ops_ref");
}
