/* test_optim.c - AdamW against an independent double-precision version of
 * the algorithm as torch documents it (bias-corrected moments m_hat, v_hat),
 * gradient clipping as torch.nn.utils.clip_grad_norm_, gradient checks,
 * state save / restore, and the Hugging Face schedules at their boundaries. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "testutil.h"
#include "train/optim.h"

/* ---- the reference: torch.optim.AdamW's documented algorithm, in double ---- */

typedef struct ref_param {
    double *p, *m, *v;
    size_t n;
    int decay;
} ref_param;

/* One step t (1-based) with learning rate lr:
 *   theta <- theta - lr * wd * theta
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   m_hat = m / (1 - b1^t);  v_hat = v / (1 - b2^t)
 *   theta <- theta - lr * m_hat / (sqrt(v_hat) + eps) */
static void ref_step(ref_param *r, const float *g, int t, double lr, const lorac_adamw_cfg *c) {
    for (size_t i = 0; i < r->n; i++) {
        if (r->decay) r->p[i] -= lr * c->weight_decay * r->p[i];
        r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * g[i];
        r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * (double)g[i] * g[i];
        double m_hat = r->m[i] / (1 - pow(c->beta1, t));
        double v_hat = r->v[i] / (1 - pow(c->beta2, t));
        r->p[i] -= lr * m_hat / (sqrt(v_hat) + c->eps);
    }
}

/* A common mistake, to show the test can tell: eps added before the bias
 * correction of the denominator, (sqrt(v) + eps) / sqrt(1 - b2^t). */
static void wrong_eps_step(ref_param *r, const float *g, int t, double lr, const lorac_adamw_cfg *c) {
    for (size_t i = 0; i < r->n; i++) {
        r->m[i] = c->beta1 * r->m[i] + (1 - c->beta1) * g[i];
        r->v[i] = c->beta2 * r->v[i] + (1 - c->beta2) * (double)g[i] * g[i];
        double m_hat = r->m[i] / (1 - pow(c->beta1, t));
        r->p[i] -= lr * m_hat / ((sqrt(r->v[i]) + c->eps) / sqrt(1 - pow(c->beta2, t)));
    }
}

static ref_param ref_new(const float *init, size_t n, int decay) {
    ref_param r = {calloc(n, sizeof(double)), calloc(n, sizeof(double)), calloc(n, sizeof(double)), n, decay};
    for (size_t i = 0; i < n; i++) r.p[i] = init[i];
    return r;
}

static void ref_free(ref_param *r) {
    free(r->p);
    free(r->m);
    free(r->v);
}

/* max |a - b| / (atol + rtol |b|) <= 1 over doubles */
static int close_d(const char *what, const float *a, const double *b, size_t n, double rtol, double atol) {
    float *bf = malloc(n * sizeof *bf);
    for (size_t i = 0; i < n; i++) bf[i] = (float)b[i];
    int ok = test_close(what, a, bf, n, rtol, atol);
    free(bf);
    return ok;
}

static void fill(lorac_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lorac_rng_normal(r);
}

/* ---- AdamW ---- */

static void test_defaults(void) {
    lorac_optim *o;
    CHECK_OK(lorac_optim_create(NULL, &o));
    CHECK(o->cfg.lr == 1e-3 && o->cfg.beta1 == 0.9 && o->cfg.beta2 == 0.999 && o->cfg.eps == 1e-8 &&
              o->cfg.weight_decay == 1e-2 && o->step == 0,
          "torch.optim.AdamW defaults");
    lorac_optim_destroy(o);
    lorac_optim_destroy(NULL);
    lorac_adamw_cfg bad = LORAC_ADAMW_DEFAULTS;
    bad.beta2 = 1.0;
    CHECK(lorac_optim_create(&bad, &o) == LORAC_ERR_ARG && o == NULL, "beta2 = 1 refused");
    bad = (lorac_adamw_cfg)LORAC_ADAMW_DEFAULTS;
    bad.eps = NAN;
    CHECK(lorac_optim_create(&bad, &o) == LORAC_ERR_ARG, "NaN eps refused");
}

/* Several steps, two tensors (one without decay), odd sizes, changing lr. */
static void test_adamw_vs_reference(void) {
    enum { NA = 7, NB = 33, STEPS = 6 };
    lorac_adamw_cfg cfg = {3e-2, 0.9, 0.999, 1e-8, 0.1};
    lorac_rng rng;
    lorac_rng_seed(&rng, 42);
    float a[NA], b[NB], ga[NA], gb[NB];
    fill(&rng, a, NA, 1.0f);
    fill(&rng, b, NB, 0.5f);
    ref_param ra = ref_new(a, NA, 1), rb = ref_new(b, NB, 0);
    lorac_optim *o;
    CHECK_OK(lorac_optim_create(&cfg, &o));
    CHECK_OK(lorac_optim_add(o, "lora_A", a, ga, NA, 1, NULL));
    CHECK_OK(lorac_optim_add(o, "bias", b, gb, NB, 0, NULL));
    CHECK(lorac_optim_numel(o) == NA + NB, "numel");
    CHECK(lorac_optim_find(o, "bias") == &o->p[1] && lorac_optim_find(o, "nope") == NULL, "find");
    for (int t = 1; t <= STEPS; t++) {
        double lr = cfg.lr * (1.0 - 0.1 * t); /* as a schedule would */
        fill(&rng, ga, NA, 0.3f);
        fill(&rng, gb, NB, 2.0f);
        lorac_optim_step(o, lr);
        ref_step(&ra, ga, t, lr, &cfg);
        ref_step(&rb, gb, t, lr, &cfg);
    }
    CHECK(o->step == STEPS, "step counter %lld", (long long)o->step);
    close_d("adamw decayed param", a, ra.p, NA, 1e-5, 1e-6);
    close_d("adamw param without decay", b, rb.p, NB, 1e-5, 1e-6);
    close_d("adamw m", o->p[0].m, ra.m, NA, 1e-5, 1e-7);
    close_d("adamw v", o->p[1].v, rb.v, NB, 1e-5, 1e-9);
    lorac_optim_destroy(o);
    ref_free(&ra);
    ref_free(&rb);
}

/* Gradients near eps: where eps is added matters. */
static void test_eps_placement(void) {
    enum { N = 9 };
    lorac_adamw_cfg cfg = {1e-3, 0.9, 0.999, 1e-8, 0.0};
    lorac_rng rng;
    lorac_rng_seed(&rng, 7);
    float w[N], g[N];
    fill(&rng, w, N, 1.0f);
    ref_param good = ref_new(w, N, 0), wrong = ref_new(w, N, 0);
    lorac_optim *o;
    CHECK_OK(lorac_optim_create(&cfg, &o));
    CHECK_OK(lorac_optim_add(o, "w", w, g, N, 0, NULL));
    for (int t = 1; t <= 3; t++) {
        fill(&rng, g, N, 1e-8f);
        lorac_optim_step(o, cfg.lr);
        ref_step(&good, g, t, cfg.lr, &cfg);
        wrong_eps_step(&wrong, g, t, cfg.lr, &cfg);
    }
    /* compare the updates (w - w0), which are ~1e-3, not w itself */
    float dw[N];
    double dgood[N], dwrong[N], worst_wrong = 0;
    float w0[N];
    lorac_rng_seed(&rng, 7);
    fill(&rng, w0, N, 1.0f);
    for (int i = 0; i < N; i++) {
        dw[i] = w[i] - w0[i];
        dgood[i] = good.p[i] - w0[i];
        dwrong[i] = wrong.p[i] - w0[i];
        double rel = fabs(dwrong[i] - dgood[i]) / fabs(dgood[i]);
        if (rel > worst_wrong) worst_wrong = rel;
    }
    close_d("adamw update with |g| ~ eps", dw, dgood, N, 1e-3, 1e-9);
    CHECK(worst_wrong > 1e-2, "the wrong eps placement differs by only %g: test not sensitive", worst_wrong);
    lorac_optim_destroy(o);
    ref_free(&good);
    ref_free(&wrong);
}

/* Closed forms: the first step is p (1 - lr wd) - lr g / (|g| + eps); with a
 * constant gradient the bias-corrected moments are exactly g and g^2, so
 * every step moves by lr g / (|g| + eps). */
static void test_bias_correction(void) {
    lorac_adamw_cfg cfg = {1e-2, 0.9, 0.999, 1e-8, 0.5};
    float w[4] = {1.0f, -2.0f, 0.5f, 3.0f}, g[4] = {0.25f, -4.0f, 1e-3f, 0.0f};
    float want[4];
    lorac_optim *o;
    CHECK_OK(lorac_optim_create(&cfg, &o));
    CHECK_OK(lorac_optim_add(o, "w", w, g, 4, 1, NULL));
    for (int i = 0; i < 4; i++)
        want[i] = (float)(w[i] * (1 - cfg.lr * cfg.weight_decay) - cfg.lr * g[i] / (fabs(g[i]) + cfg.eps));
    lorac_optim_step(o, cfg.lr);
    test_close("first step closed form", w, want, 4, 1e-6, 1e-7);
    lorac_optim_destroy(o);

    cfg.weight_decay = 0;
    float u[3] = {0.0f, 1.0f, -1.0f}, gu[3] = {0.5f, -0.02f, 3.0f}, wu[3];
    CHECK_OK(lorac_optim_create(&cfg, &o));
    CHECK_OK(lorac_optim_add(o, "u", u, gu, 3, 1, NULL));
    for (int t = 0; t < 20; t++) lorac_optim_step(o, cfg.lr);
    for (int i = 0; i < 3; i++) wu[i] = (float)((i == 0 ? 0.0 : i == 1 ? 1.0 : -1.0) - 20 * cfg.lr * gu[i] / (fabs(gu[i]) + cfg.eps));
    test_close("constant gradient: steps of lr * sign(g)", u, wu, 3, 1e-5, 1e-6);
    lorac_optim_destroy(o);
}

/* Copying step, m and v into a fresh optimizer continues bit for bit. */
static void test_state_restore(void) {
    enum { N = 13 };
    lorac_rng rng;
    lorac_rng_seed(&rng, 3);
    float w1[N], w2[N], g[N];
    fill(&rng, w1, N, 1.0f);
    lorac_optim *a, *b;
    CHECK_OK(lorac_optim_create(NULL, &a));
    CHECK_OK(lorac_optim_create(NULL, &b));
    CHECK_OK(lorac_optim_add(a, "w", w1, g, N, 1, NULL));
    CHECK_OK(lorac_optim_add(b, "w", w2, g, N, 1, NULL));
    for (int t = 0; t < 3; t++) {
        fill(&rng, g, N, 1.0f);
        lorac_optim_step(a, 1e-3);
    }
    /* "checkpoint" a into b */
    memcpy(w2, w1, sizeof w1);
    lorac_param *pa = lorac_optim_find(a, "w"), *pb = lorac_optim_find(b, "w");
    memcpy(pb->m, pa->m, N * sizeof(float));
    memcpy(pb->v, pa->v, N * sizeof(float));
    b->step = a->step;
    fill(&rng, g, N, 1.0f);
    lorac_optim_step(a, 1e-3);
    lorac_optim_step(b, 1e-3);
    CHECK(memcmp(w1, w2, sizeof w1) == 0 && b->step == 4, "restored optimizer diverges");
    lorac_optim_destroy(a);
    lorac_optim_destroy(b);
}

/* ---- gradients: clipping, checks, zeroing ---- */

static void test_clipping(void) {
    float a[2] = {0}, b[1] = {0};
    lorac_optim *o;
    CHECK_OK(lorac_optim_create(NULL, &o));
    CHECK_OK(lorac_optim_add(o, "a", a, NULL, 2, 1, NULL)); /* grads owned by the optimizer */
    CHECK_OK(lorac_optim_add(o, "b", b, NULL, 1, 0, NULL));
    CHECK(o->p[0].own_grad && o->p[0].grad[0] == 0 && o->p[0].grad[1] == 0, "owned grad zeroed");
    float *ga = o->p[0].grad, *gb = o->p[1].grad;
    ga[0] = 3, ga[1] = 4, gb[0] = 12; /* total norm 13 */
    CHECK(fabs(lorac_optim_grad_norm(o) - 13.0) < 1e-12, "norm %g", lorac_optim_grad_norm(o));
    double total = lorac_optim_clip_grad_norm(o, 100.0);
    CHECK(total == 13.0 && ga[0] == 3 && ga[1] == 4 && gb[0] == 12, "no clipping under max_norm");
    total = lorac_optim_clip_grad_norm(o, 0.0);
    CHECK(total == 13.0 && gb[0] == 12, "max_norm 0 only measures");
    total = lorac_optim_clip_grad_norm(o, 1.0);
    double coef = 1.0 / (13.0 + 1e-6); /* torch: max_norm / (total + 1e-6) */
    float want[3] = {(float)(3 * coef), (float)(4 * coef), (float)(12 * coef)}, got[3] = {ga[0], ga[1], gb[0]};
    CHECK(total == 13.0, "returns the norm before clipping: %g", total);
    test_close("clipped grads", got, want, 3, 1e-6, 0);
    CHECK(fabs(lorac_optim_grad_norm(o) - 1.0) < 1e-5, "norm after clipping %g", lorac_optim_grad_norm(o));
    /* exactly at max_norm: clip_coef = 13 / (13 + 1e-6) < 1, so torch scales (by ~1 - 8e-8) */
    ga[0] = 3, ga[1] = 4, gb[0] = 12;
    lorac_optim_clip_grad_norm(o, 13.0);
    CHECK(fabs(gb[0] - 12.0f) < 1e-5f, "at max_norm the change is tiny");
    /* tiny norms show torch's + 1e-6: norm 1e-6 with max_norm 1e-6 halves the grads */
    ga[0] = 6e-7f, ga[1] = 8e-7f, gb[0] = 0;
    total = lorac_optim_clip_grad_norm(o, 1e-6);
    CHECK(fabs(total - 1e-6) < 1e-12 && fabs(ga[0] - 3e-7f) < 1e-12 && fabs(ga[1] - 4e-7f) < 1e-12,
          "clip_coef = max_norm / (total + 1e-6): got %g %g", ga[0], ga[1]);
    gb[0] = 12;
    /* a non-finite norm leaves grads alone */
    ga[0] = INFINITY;
    total = lorac_optim_clip_grad_norm(o, 1.0);
    CHECK(isinf(total) && isinf(ga[0]) && gb[0] > 11.0f, "inf norm leaves grads");

    /* checks */
    int bad = 99;
    lorac_status st = lorac_optim_check_grads(o, &bad);
    CHECK(st == LORAC_ERR_NUMERIC && bad == 0 && strstr(lorac_last_error(), "gradient of 'a' is infinite at element 0"),
          "inf detected: %s", lorac_last_error());
    ga[0] = 1;
    gb[0] = NAN;
    st = lorac_optim_check_grads(o, &bad);
    CHECK(st == LORAC_ERR_NUMERIC && bad == 1 && strstr(lorac_last_error(), "'b' is NaN") &&
              strstr(lorac_last_error(), "hint:"),
          "NaN detected: %s", lorac_last_error());
    lorac_optim_zero_grad(o);
    st = lorac_optim_check_grads(o, &bad);
    CHECK(st == LORAC_OK && bad == -1 && ga[0] == 0 && ga[1] == 0 && gb[0] == 0, "zero_grad");
    CHECK(lorac_optim_add(o, "empty", NULL, NULL, 0, 0, NULL) == LORAC_ERR_ARG, "a param without data");
    lorac_optim_destroy(o);
}

/* ---- schedules: Hugging Face's lr_lambda functions written out ---- */

static double hf_linear(int step, int warmup, int total) {
    if (step < warmup) return (double)step / (double)fmax(1, warmup);
    return fmax(0.0, (double)(total - step) / (double)fmax(1, total - warmup));
}

static double hf_cosine(int step, int warmup, int total, double num_cycles) {
    if (step < warmup) return (double)step / (double)fmax(1, warmup);
    double progress = (double)(step - warmup) / (double)fmax(1, total - warmup);
    return fmax(0.0, 0.5 * (1.0 + cos(3.141592653589793 * num_cycles * 2.0 * progress)));
}

static double hf_constant(int step, int warmup) {
    if (step < warmup) return (double)step / fmax(1.0, warmup);
    return 1.0;
}

static void test_schedules(void) {
    lorac_sched lin = {LORAC_SCHED_LINEAR, 10, 100, 0}, cosd = {LORAC_SCHED_COSINE, 10, 100, 0};
    lorac_sched con = {LORAC_SCHED_CONSTANT, 0, 100, 0}, conw = {LORAC_SCHED_CONSTANT, 4, 100, 0};
    /* boundaries */
    CHECK(lorac_lr_at(&lin, 0) == 0.0 && lorac_lr_at(&cosd, 0) == 0.0, "warm-up starts at 0");
    CHECK(fabs(lorac_lr_at(&lin, 5) - 0.5) < 1e-15, "half-way through warm-up");
    CHECK(lorac_lr_at(&lin, 10) == 1.0 && lorac_lr_at(&cosd, 10) == 1.0, "peak at the end of warm-up");
    CHECK(fabs(lorac_lr_at(&lin, 55) - 0.5) < 1e-15 && fabs(lorac_lr_at(&cosd, 55) - 0.5) < 1e-15, "mid-decay");
    CHECK(lorac_lr_at(&lin, 100) == 0.0 && fabs(lorac_lr_at(&cosd, 100)) < 1e-15, "zero at total: %g",
          lorac_lr_at(&cosd, 100));
    CHECK(lorac_lr_at(&lin, 130) == 0.0, "linear stays at 0 after total");
    CHECK(lorac_lr_at(&con, 0) == 1.0 && lorac_lr_at(&con, 1000) == 1.0, "constant");
    CHECK(lorac_lr_at(&conw, 0) == 0.0 && lorac_lr_at(&conw, 2) == 0.5 && lorac_lr_at(&conw, 4) == 1.0,
          "constant with warm-up");
    /* every step, several shapes, against the formulas */
    static const int shapes[][2] = {{10, 100}, {0, 50}, {1, 7}, {7, 7}, {0, 1}, {3, 0}};
    int bad = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int w = shapes[k][0], n = shapes[k][1];
        lorac_sched l = {LORAC_SCHED_LINEAR, w, n, 0}, c = {LORAC_SCHED_COSINE, w, n, 0},
                    c1 = {LORAC_SCHED_COSINE, w, n, 1.0}, k0 = {LORAC_SCHED_CONSTANT, w, n, 0};
        for (int s = 0; s <= n + 5; s++) {
            bad += fabs(lorac_lr_at(&l, s) - hf_linear(s, w, n)) > 1e-15;
            bad += fabs(lorac_lr_at(&c, s) - hf_cosine(s, w, n, 0.5)) > 1e-15;
            bad += fabs(lorac_lr_at(&c1, s) - hf_cosine(s, w, n, 1.0)) > 1e-15;
            bad += fabs(lorac_lr_at(&k0, s) - hf_constant(s, w)) > 1e-15;
        }
    }
    CHECK(bad == 0, "%d schedule values differ from the HF formulas", bad);
    lorac_sched_kind kind;
    CHECK(lorac_sched_parse("cosine", &kind) == LORAC_OK && kind == LORAC_SCHED_COSINE, "parse cosine");
    CHECK(lorac_sched_parse("step", &kind) == LORAC_ERR_ARG && strstr(lorac_last_error(), "'step'"), "parse bad");
    CHECK(!strcmp(lorac_sched_name(LORAC_SCHED_LINEAR), "linear"), "name");
}

int main(void) {
    test_defaults();
    test_adamw_vs_reference();
    test_eps_placement();
    test_bias_correction();
    test_state_restore();
    test_clipping();
    test_schedules();
    return test_summary("test_optim");
}
