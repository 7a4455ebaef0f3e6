/* test_ops_grad.c - the backward pass of every op (attention: see
 * test_attention_grad.c) against central finite differences, in double.
 *
 * The opd_* functions are the same source text as the float op_* the models
 * call (see src/ops/template.h), so checking them in double checks the
 * formulas without float noise; test_ops_ref.c then checks the float builds
 * (and the BLAS linear layer) against opd_*. Shapes are tiny and odd. Loss is
 * sum(out * R) for random R; gradient buffers start random, so a check also
 * proves that backward accumulates (+=). Tolerances: see gradcheck.h. */
#include <stdio.h>

#include "gradcheck.h"
#include "ops/ops_double.h"

/* ---- linear ------------------------------------------------------------ */

typedef struct {
    double *x, *W, *b, *y, *R;
    int N, in, out, layout;
} linear_ctx;

static double linear_loss(void *p) {
    linear_ctx *c = p;
    opd_linear_fwd(c->y, c->x, c->W, c->b, c->N, c->in, c->out, c->layout, 0.0);
    return gc_dot(c->y, c->R, (size_t)c->N * c->out);
}

static void test_linear(int layout, int bias) {
    enum { N = 3, IN = 5, OUT = 7 };
    linear_ctx c = {gc_randn(N * IN), gc_randn(IN * OUT), bias ? gc_randn(OUT) : NULL, gc_randn(N * OUT),
                    gc_randn(N * OUT), N, IN, OUT, layout};
    double *dx0 = gc_randn(N * IN), *dW0 = gc_randn(IN * OUT), *db0 = gc_randn(OUT);
    double *dx = gc_copy(dx0, N * IN), *dW = gc_copy(dW0, IN * OUT), *db = gc_copy(db0, OUT);
    opd_linear_bwd_x(dx, c.R, c.W, N, IN, OUT, layout);
    opd_linear_bwd_w(dW, db, c.R, c.x, N, IN, OUT, layout);
    gc_sub(dx, dx0, N * IN);
    gc_sub(dW, dW0, IN * OUT);
    gc_sub(db, db0, OUT);
    char name[64];
    snprintf(name, sizeof name, "linear(layout %d, bias %d) dx", layout, bias);
    gradcheck(name, linear_loss, &c, c.x, N * IN, dx);
    snprintf(name, sizeof name, "linear(layout %d, bias %d) dW", layout, bias);
    gradcheck(name, linear_loss, &c, c.W, IN * OUT, dW);
    if (bias) {
        snprintf(name, sizeof name, "linear(layout %d) db", layout);
        gradcheck(name, linear_loss, &c, c.b, OUT, db);
    }
    /* A NULL gradient is skipped and leaves the other one unchanged. */
    double *db2 = gc_copy(db0, OUT), *dW2 = gc_copy(dW0, IN * OUT);
    opd_linear_bwd_w(NULL, db2, c.R, c.x, N, IN, OUT, layout);
    opd_linear_bwd_w(dW2, NULL, c.R, c.x, N, IN, OUT, layout);
    opd_linear_bwd_x(NULL, c.R, c.W, N, IN, OUT, layout);
    gc_sub(db2, db0, OUT);
    gc_sub(dW2, dW0, IN * OUT);
    CHECK(memcmp(db2, db, OUT * sizeof *db) == 0, "linear layout %d: db with dW = NULL differs", layout);
    CHECK(memcmp(dW2, dW, IN * OUT * sizeof *dW) == 0, "linear layout %d: dW with db = NULL differs", layout);
    free(c.x), free(c.W), free(c.b), free(c.y), free(c.R);
    free(dx0), free(dW0), free(db0), free(dx), free(dW), free(db), free(db2), free(dW2);
}

/* ---- layernorm, rmsnorm ------------------------------------------------ */

typedef struct {
    double *x, *g, *b, *y, *mean, *rstd, *R;
    int N, C;
} norm_ctx;

static double layernorm_loss(void *p) {
    norm_ctx *c = p;
    opd_layernorm_fwd(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->N, c->C, 1e-5);
    return gc_dot(c->y, c->R, (size_t)c->N * c->C);
}

static double rmsnorm_loss(void *p) {
    norm_ctx *c = p;
    opd_rmsnorm_fwd(c->y, c->rstd, c->x, c->g, c->N, c->C, 1e-6);
    return gc_dot(c->y, c->R, (size_t)c->N * c->C);
}

/* C > OPS_COL_TILE (64) exercises the column tiling of dg, db. */
static void test_norms(int N, int C) {
    norm_ctx c = {gc_randn(N * C), gc_randn(C), gc_randn(C), gc_randn(N * C), gc_randn(N), gc_randn(N),
                  gc_randn(N * C), N, C};
    for (int i = 0; i < N * C; i++) c.x[i] += 0.7 * (i / C); /* rows with different means */
    double *dx0 = gc_randn(N * C), *dg0 = gc_randn(C), *db0 = gc_randn(C);
    double *dx = gc_copy(dx0, N * C), *dg = gc_copy(dg0, C), *db = gc_copy(db0, C);

    layernorm_loss(&c); /* fills mean, rstd */
    opd_layernorm_bwd(dx, dg, db, c.R, c.x, c.mean, c.rstd, c.g, N, C);
    gc_sub(dx, dx0, N * C);
    gc_sub(dg, dg0, C);
    gc_sub(db, db0, C);
    char name[64];
    snprintf(name, sizeof name, "layernorm N=%d C=%d dx", N, C);
    gradcheck(name, layernorm_loss, &c, c.x, N * C, dx);
    snprintf(name, sizeof name, "layernorm N=%d C=%d dg", N, C);
    gradcheck(name, layernorm_loss, &c, c.g, C, dg);
    snprintf(name, sizeof name, "layernorm N=%d C=%d db", N, C);
    gradcheck(name, layernorm_loss, &c, c.b, C, db);
    double *dx2 = gc_copy(dx0, N * C);
    opd_layernorm_bwd(dx2, NULL, NULL, c.R, c.x, c.mean, c.rstd, c.g, N, C);
    gc_sub(dx2, dx0, N * C);
    CHECK(memcmp(dx2, dx, sizeof(double) * N * C) == 0, "layernorm: dx with dg = db = NULL differs");

    memcpy(dx, dx0, sizeof(double) * N * C);
    memcpy(dg, dg0, sizeof(double) * C);
    rmsnorm_loss(&c); /* fills rstd */
    opd_rmsnorm_bwd(dx, dg, c.R, c.x, c.rstd, c.g, N, C);
    gc_sub(dx, dx0, N * C);
    gc_sub(dg, dg0, C);
    snprintf(name, sizeof name, "rmsnorm N=%d C=%d dx", N, C);
    gradcheck(name, rmsnorm_loss, &c, c.x, N * C, dx);
    snprintf(name, sizeof name, "rmsnorm N=%d C=%d dg", N, C);
    gradcheck(name, rmsnorm_loss, &c, c.g, C, dg);
    free(c.x), free(c.g), free(c.b), free(c.y), free(c.mean), free(c.rstd), free(c.R);
    free(dx0), free(dg0), free(db0), free(dx), free(dg), free(db), free(dx2);
}

/* ---- pointwise activations -------------------------------------------- */

typedef void (*unary_fwd_fn)(double *, const double *, size_t);
typedef void (*unary_bwd_fn)(double *, const double *, const double *, size_t);

typedef struct {
    unary_fwd_fn fwd;
    double *x, *y, *R;
    size_t n;
} unary_ctx;

static double unary_loss(void *p) {
    unary_ctx *c = p;
    c->fwd(c->y, c->x, c->n);
    return gc_dot(c->y, c->R, c->n);
}

/* bwd_uses_output: tanh's backward takes y, the others take x. */
static void test_unary(const char *name, unary_fwd_fn fwd, unary_bwd_fn bwd, int bwd_uses_output) {
    enum { n = 13 };
    unary_ctx c = {fwd, gc_randn(n), gc_randn(n), gc_randn(n), n};
    for (int i = 0; i < n; i++) {
        c.x[i] *= 2;                                /* reach the tails of GELU / tanh */
        if (fabs(c.x[i]) < 0.05) c.x[i] = 0.3;      /* keep relu away from its kink */
    }
    double *dx0 = gc_randn(n), *dx = gc_copy(dx0, n);
    fwd(c.y, c.x, n);
    bwd(dx, c.R, bwd_uses_output ? c.y : c.x, n);
    gc_sub(dx, dx0, n);
    gradcheck(name, unary_loss, &c, c.x, n, dx);
    bwd(NULL, c.R, c.x, n); /* frozen input: no-op */
    free(c.x), free(c.y), free(c.R), free(dx0), free(dx);
}

typedef struct {
    double *gate, *up, *h, *R;
    size_t n;
} swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    opd_swiglu_fwd(c->h, c->gate, c->up, c->n);
    return gc_dot(c->h, c->R, c->n);
}

static void test_swiglu(void) {
    enum { n = 11 };
    swiglu_ctx c = {gc_randn(n), gc_randn(n), gc_randn(n), gc_randn(n), n};
    double *dg0 = gc_randn(n), *du0 = gc_randn(n), *dg = gc_copy(dg0, n), *du = gc_copy(du0, n);
    opd_swiglu_bwd(dg, du, c.R, c.gate, c.up, n);
    gc_sub(dg, dg0, n);
    gc_sub(du, du0, n);
    gradcheck("swiglu dgate", swiglu_loss, &c, c.gate, n, dg);
    gradcheck("swiglu dup", swiglu_loss, &c, c.up, n, du);
    double *du2 = gc_copy(du0, n);
    opd_swiglu_bwd(NULL, du2, c.R, c.gate, c.up, n);
    gc_sub(du2, du0, n);
    CHECK(memcmp(du2, du, n * sizeof *du) == 0, "swiglu: dup with dgate = NULL differs");
    free(c.gate), free(c.up), free(c.h), free(c.R), free(dg0), free(du0), free(dg), free(du), free(du2);
}

/* ---- dropout ------------------------------------------------------------ */

typedef struct {
    double *x, *y, *R;
    uint8_t *mask;
    lorac_rng rng0; /* every forward starts from this state: same mask */
    double p;
    size_t n;
} dropout_ctx;

static double dropout_loss(void *p) {
    dropout_ctx *c = p;
    lorac_rng r = c->rng0;
    opd_dropout_fwd(c->y, c->mask, c->x, c->n, c->p, &r);
    return gc_dot(c->y, c->R, c->n);
}

static void test_dropout(void) {
    enum { n = 41 };
    dropout_ctx c = {gc_randn(n), gc_randn(n), gc_randn(n), malloc(n), gc_rng, 0.25, n};
    dropout_loss(&c);
    int kept = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        kept += c.mask[i] == 1;
        bad += c.mask[i] > 1 || fabs(c.y[i] - (c.mask[i] ? c.x[i] / 0.75 : 0.0)) > 1e-15;
    }
    CHECK(bad == 0, "dropout: %d elements are not x * mask / (1 - p)", bad);
    CHECK(kept > 0 && kept < n, "dropout p=0.25 kept %d of %d", kept, n);
    double *dx0 = gc_randn(n), *dx = gc_copy(dx0, n);
    opd_dropout_bwd(dx, c.R, c.mask, n, c.p);
    gc_sub(dx, dx0, n);
    gradcheck("dropout dx", dropout_loss, &c, c.x, n, dx);

    /* keep rate over many draws */
    enum { big = 100000 };
    double *xb = calloc(big, sizeof *xb);
    uint8_t *mb = malloc(big);
    lorac_rng r = c.rng0;
    opd_dropout_fwd(xb, mb, xb, big, 0.25, &r);
    long kb = 0;
    for (int i = 0; i < big; i++) kb += mb[i];
    CHECK(fabs(kb / (double)big - 0.75) < 0.01, "dropout keep rate %.4f, want 0.75", kb / (double)big);

    /* p = 0: identity, mask all ones (or NULL), rng untouched */
    r = c.rng0;
    memset(c.mask, 7, n);
    opd_dropout_fwd(c.y, c.mask, c.x, n, 0.0, &r);
    opd_dropout_fwd(c.y, NULL, c.x, n, 0.0, NULL);
    int ones = 0;
    for (int i = 0; i < n; i++) ones += c.mask[i] == 1;
    CHECK(memcmp(c.y, c.x, n * sizeof *c.x) == 0 && ones == n, "dropout p=0 is not the identity");
    CHECK(memcmp(&r, &c.rng0, sizeof r) == 0, "dropout p=0 consumed random numbers");
    memcpy(dx, dx0, n * sizeof *dx);
    opd_dropout_bwd(dx, c.R, NULL, n, 0.0);
    gc_sub(dx, dx0, n);
    CHECK(memcmp(dx, c.R, n * sizeof *dx) == 0, "dropout p=0 backward is not dx += dy");
    free(c.x), free(c.y), free(c.R), free(c.mask), free(dx0), free(dx), free(xb), free(mb);
}

/* ---- embedding ---------------------------------------------------------- */

typedef struct {
    double *table, *y, *R;
    const int *ids;
    int N, C;
} embed_ctx;

static double embed_loss(void *p) {
    embed_ctx *c = p;
    opd_embed_fwd(c->y, c->table, c->ids, c->N, c->C, 0);
    return gc_dot(c->y, c->R, (size_t)c->N * c->C);
}

/* ids repeat and some id is never used; C > 64 exercises the column tiles. */
static void test_embed(int V, int C, int N) {
    int *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) ids[i] = (i * 3 + i / 2) % (V - 1);
    embed_ctx c = {gc_randn(V * C), gc_randn(N * C), gc_randn(N * C), ids, N, C};
    double *dt0 = gc_randn(V * C), *dt = gc_copy(dt0, V * C);
    opd_embed_bwd(dt, c.R, ids, N, C);
    gc_sub(dt, dt0, V * C);
    char name[64];
    snprintf(name, sizeof name, "embed V=%d C=%d N=%d dtable", V, C, N);
    gradcheck(name, embed_loss, &c, c.table, V * C, dt);
    /* accumulate = 1 adds onto y */
    double *y0 = gc_randn(N * C), *y = gc_copy(y0, N * C);
    opd_embed_fwd(y, c.table, ids, N, C, 1);
    int bad = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) bad += y[n * C + k] != y0[n * C + k] + c.table[ids[n] * C + k];
    CHECK(bad == 0, "embed accumulate: %d wrong elements", bad);
    free(ids), free(c.table), free(c.y), free(c.R), free(dt0), free(dt), free(y0), free(y);
}

/* ---- rope --------------------------------------------------------------- */

typedef struct {
    double *x, *work, *R;
    const int *pos;
    int B, T, H, D, ld;
    double theta;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t n = (size_t)c->B * c->T * c->ld;
    memcpy(c->work, c->x, n * sizeof *c->x);
    opd_rope(c->work, c->pos, c->B, c->T, c->H, c->D, c->ld, c->theta, 0);
    return gc_dot(c->work, c->R, n);
}

/* Backward of the in-place rotation is the inverse rotation of dy (padding
 * columns between rows pass through unchanged, gradient 1). */
static void test_rope(const int *pos, double theta) {
    enum { B = 2, T = 3, H = 2, D = 6, LD = H * D + 2 };
    size_t n = B * T * LD;
    rope_ctx c = {gc_randn(n), gc_randn(n), gc_randn(n), pos, B, T, H, D, LD, theta};
    double *dx = gc_copy(c.R, n);
    opd_rope(dx, pos, B, T, H, D, LD, theta, 1);
    char name[64];
    snprintf(name, sizeof name, "rope dx (theta %g, pos %s)", theta, pos ? "given" : "NULL");
    gradcheck(name, rope_loss, &c, c.x, n, dx);
    free(c.x), free(c.work), free(c.R), free(dx);
}

/* ---- cross-entropy ------------------------------------------------------ */

typedef struct {
    double *logits;
    const int *targets;
    int N, V;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    int count;
    return opd_xent(NULL, c->logits, c->targets, c->N, c->V, 1.0, &count);
}

/* Row 1 is ignored. N > 256 exercises the blocked row sum. */
static void test_xent(int N, int V) {
    int *targets = malloc(N * sizeof *targets);
    for (int i = 0; i < N; i++) targets[i] = i == 1 ? -100 : (i * 5) % V;
    const double scale = 0.37;
    xent_ctx c = {gc_randn(N * V), targets, N, V};
    double *dl = gc_randn(N * V); /* garbage: must be overwritten, not accumulated */
    int count = -1;
    double loss = opd_xent(dl, c.logits, targets, N, V, scale, &count);
    CHECK(count == N - 1, "xent count %d, want %d", count, N - 1);
    int nonzero = 0;
    for (int j = 0; j < V; j++) nonzero += dl[1 * V + j] != 0;
    CHECK(nonzero == 0, "xent: ignored row has %d nonzero gradients", nonzero);
    double *g = gc_copy(dl, N * V);
    for (int i = 0; i < N * V; i++) g[i] /= scale;
    char name[64];
    snprintf(name, sizeof name, "xent N=%d V=%d dlogits / grad_scale", N, V);
    gradcheck(name, xent_loss, &c, c.logits, N * V, g);
    /* dlogits aliasing logits gives the same numbers */
    double *alias = gc_copy(c.logits, N * V);
    double loss2 = opd_xent(alias, alias, targets, N, V, scale, &count);
    CHECK(loss2 == loss && memcmp(alias, dl, sizeof(double) * N * V) == 0, "xent: aliased dlogits differ");
    free(targets), free(c.logits), free(dl), free(g), free(alias);
}

int main(void) {
    lorac_rng_seed(&gc_rng, 20240601);
    for (int layout = 0; layout < 2; layout++)
        for (int bias = 0; bias < 2; bias++) test_linear(layout, bias);
    test_norms(3, 7);
    test_norms(2, 130);
    test_unary("gelu_tanh dx", opd_gelu_tanh_fwd, opd_gelu_tanh_bwd, 0);
    test_unary("gelu_erf dx", opd_gelu_erf_fwd, opd_gelu_erf_bwd, 0);
    test_unary("relu dx", opd_relu_fwd, opd_relu_bwd, 0);
    test_unary("tanh dx", opd_tanh_fwd, opd_tanh_bwd, 1);
    test_swiglu();
    test_dropout();
    test_embed(5, 3, 7);
    test_embed(4, 130, 5);
    static const int pos[2 * 3] = {5, 6, 7, 0, 1, 40};
    test_rope(NULL, 10000.0);
    test_rope(pos, 10.0);
    test_xent(5, 7);
    test_xent(517, 2);
    printf("worst |analytic - numeric| / tolerance: %.3g (tolerance %g + %g |numeric|, eps %g)\n", gc_worst_seen,
           GC_ATOL, GC_RTOL, GC_EPS);
    return test_summary("test_ops_grad");
}
