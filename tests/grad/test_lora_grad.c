/* test_lora_grad - the LoRA layer's backward against central finite
 * differences in double precision.
 *
 * The test re-implements the layer's forward in double with plain loops
 *   y = x W^T + b + s * sum_p B_p (A_p (mask * x / (1-p)))
 * and takes L = sum(y * R) for a random R. The numerical dL/dA, dL/dB,
 * dL/dx are compared with lorac_linear_bwd's (float, BLAS) results. The
 * frozen W and b must get no gradient buffer. Cases: nn.Linear and Conv1D
 * layouts, a fused projection split into 3 parts, dropout on, odd sizes.
 *
 * DoRA cases (lora/dora.c): with g[o] = m[o] / n[o], n the row norms of
 * W + s B A taken at the unperturbed point and held fixed (the norm is a
 * constant in backward, as PEFT),
 *   y = x W^T + b + (g - 1) (xd W^T) + g s B (A xd)     xd = dropout(x)
 * and dL/dm is checked too. */
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "lora/dora.h"
#include "models/model.h"
#include "testutil.h"

typedef struct {
    int N, in, out, r, parts, w_in_out;
    float p;
    int dora;
} case_t;

/* double forward: returns sum(y * R) */
static double loss_d(const case_t *c, const double *x, const double *W, const double *b, const double *A,
                     const double *Bm, const uint8_t *mask, const double *R, double s, const double *M, const double *nrm) {
    const int ob = c->out / c->parts;
    double L = 0;
    for (int n = 0; n < c->N; n++) {
        for (int o = 0; o < c->out; o++) {
            const double g = M ? M[o] / nrm[o] : 1.0;
            double y = b[o], yd = 0, yl = 0;
            for (int i = 0; i < c->in; i++) {
                const double w = c->w_in_out ? W[i * c->out + o] : W[o * c->in + i];
                const double xd = mask ? x[n * c->in + i] * mask[n * c->in + i] / (1.0 - c->p) : x[n * c->in + i];
                y += x[n * c->in + i] * w;
                yd += xd * w;
            }
            int p = o / ob;
            for (int j = 0; j < c->r; j++) {
                double xa = 0;
                for (int i = 0; i < c->in; i++) {
                    double xd = mask ? x[n * c->in + i] * mask[n * c->in + i] / (1.0 - c->p) : x[n * c->in + i];
                    xa += xd * A[(p * c->r + j) * c->in + i];
                }
                yl += s * Bm[o * c->r + j] * xa;
            }
            y += (g - 1) * yd + g * yl;
            L += y * R[n * c->out + o];
        }
    }
    return L;
}

static void to_d(double *d, const float *f, size_t n) {
    for (size_t i = 0; i < n; i++) d[i] = f[i];
}

static void run(const case_t *c, uint64_t seed) {
    lorac_rng rng;
    lorac_rng_seed(&rng, seed);
    const size_t nx = (size_t)c->N * c->in, nw = (size_t)c->in * c->out, nA = (size_t)c->parts * c->r * c->in,
                 nB = (size_t)c->out * c->r, ny = (size_t)c->N * c->out;
    float *x = malloc(nx * 4), *W = malloc(nw * 4), *b = malloc(c->out * 4), *R = malloc(ny * 4), *y = malloc(ny * 4),
          *dx = calloc(nx, 4);
    for (size_t i = 0; i < nx; i++) x[i] = lorac_rng_normal(&rng);
    for (size_t i = 0; i < nw; i++) W[i] = lorac_rng_normal(&rng) * 0.3f;
    for (int i = 0; i < c->out; i++) b[i] = lorac_rng_normal(&rng);
    for (size_t i = 0; i < ny; i++) R[i] = lorac_rng_normal(&rng);

    lorac_weight w = {0}, bw = {0};
    w.data = W;
    w.n = nw;
    bw.data = b;
    bw.n = (size_t)c->out;
    lorac_lora l = {0};
    l.r = c->r;
    l.parts = c->parts;
    l.alpha = 2.0f * c->r;
    l.scale = 2.0f;
    l.dropout = c->p;
    l.A.n = nA;
    l.B.n = nB;
    l.A.data = malloc(nA * 4);
    l.B.data = malloc(nB * 4);
    l.A.grad = calloc(nA, 4);
    l.B.grad = calloc(nB, 4);
    for (size_t i = 0; i < nA; i++) l.A.data[i] = lorac_rng_normal(&rng) * 0.5f;
    for (size_t i = 0; i < nB; i++) l.B.data[i] = lorac_rng_normal(&rng) * 0.5f;
    lorac_linear L = {0};
    strcpy(L.name, "test");
    L.in = c->in;
    L.out = c->out;
    L.w_in_out = c->w_in_out;
    L.fused_parts = c->parts;
    L.W = &w;
    L.b = &bw;
    L.lora = &l;
    if (c->dora) { /* m = the norms, then moved so that g != 1 */
        CHECK_OK(lorac_dora_attach(&L, &l, 1));
        for (int o = 0; o < c->out; o++) l.M.data[o] *= 1.0f + 0.3f * lorac_rng_normal(&rng);
    }
    CHECK_OK(lorac_lora_reserve(&l, c->in, c->N));
    lorac_rng drop;
    lorac_rng_seed(&drop, seed + 1);
    lorac_linear_fwd(&L, y, x, c->N, &drop, 1);
    /* backward with dy = R */
    lorac_linear_bwd(&L, dx, R, x, c->N);
    CHECK(w.grad == NULL && bw.grad == NULL, "frozen W/b got gradient buffers");

    /* double-precision reference and finite differences */
    double *xd = malloc(nx * 8), *Wd = malloc(nw * 8), *bd = malloc(c->out * 8), *Ad = malloc(nA * 8), *Bd = malloc(nB * 8),
           *Rd = malloc(ny * 8);
    to_d(xd, x, nx);
    to_d(Wd, W, nw);
    to_d(bd, b, (size_t)c->out);
    to_d(Ad, l.A.data, nA);
    to_d(Bd, l.B.data, nB);
    to_d(Rd, R, ny);
    const uint8_t *mask = c->p > 0 ? l.mask : NULL;
    double *Md = NULL, *nrm = NULL;
    if (c->dora) { /* the norms the forward used, in double: held fixed below */
        Md = malloc(sizeof(double) * c->out);
        nrm = malloc(sizeof(double) * c->out);
        to_d(Md, l.M.data, (size_t)c->out);
        to_d(nrm, l.wnorm, (size_t)c->out);
        const int ob = c->out / c->parts;
        for (int o = 0; o < c->out; o++) { /* ... which are ||W + s B A|| of each output row */
            double ss = 0;
            for (int i = 0; i < c->in; i++) {
                double v = c->w_in_out ? Wd[i * c->out + o] : Wd[o * c->in + i];
                for (int j = 0; j < c->r; j++) v += 2.0 * Bd[o * c->r + j] * Ad[((o / ob) * c->r + j) * c->in + i];
                ss += v * v;
            }
            CHECK(fabs(sqrt(ss) - nrm[o]) <= 1e-5 * sqrt(ss), "DoRA norm of row %d: %g, double %g", o, nrm[o], sqrt(ss));
        }
    }
    /* forward agrees with the double reference */
    double Lf = 0;
    for (size_t i = 0; i < ny; i++) Lf += (double)y[i] * R[i];
    double Lref = loss_d(c, xd, Wd, bd, Ad, Bd, mask, Rd, 2.0, Md, nrm);
    CHECK(fabs(Lf - Lref) <= 1e-4 * (fabs(Lref) + 1), "forward loss %g vs double %g", Lf, Lref);
    const double eps = 1e-6;
    struct { const char *name; double *p; size_t n; const float *g; } sets[] = {
        {"dA", Ad, nA, l.A.grad}, {"dB", Bd, nB, l.B.grad}, {"dx", xd, nx, dx}, {"dm", Md, (size_t)c->out, l.M.grad}};
    for (int k = 0; k < (c->dora ? 4 : 3); k++) {
        float *num = malloc(sets[k].n * 4);
        for (size_t i = 0; i < sets[k].n; i++) {
            double keep = sets[k].p[i];
            sets[k].p[i] = keep + eps;
            double lp = loss_d(c, xd, Wd, bd, Ad, Bd, mask, Rd, 2.0, Md, nrm);
            sets[k].p[i] = keep - eps;
            double lm = loss_d(c, xd, Wd, bd, Ad, Bd, mask, Rd, 2.0, Md, nrm);
            sets[k].p[i] = keep;
            num[i] = (float)((lp - lm) / (2 * eps));
        }
        char what[96];
        snprintf(what, sizeof what, "%s (N %d in %d out %d r %d parts %d conv1d %d p %.1f%s)", sets[k].name, c->N, c->in,
                 c->out, c->r, c->parts, c->w_in_out, c->p, c->dora ? " DoRA" : "");
        test_close(what, sets[k].g, num, sets[k].n, 1e-3, 1e-3);
        free(num);
    }
    free(xd); free(Wd); free(bd); free(Ad); free(Bd); free(Rd);
    free(x); free(W); free(b); free(R); free(y); free(dx);
    free(l.A.data); free(l.B.data); free(l.A.grad); free(l.B.grad); free(l.xa); free(l.xd); free(l.mask); free(l.dxa); free(l.dxd);
    free(l.M.data); free(l.M.grad); free(l.wnorm); free(l.mnorm); free(l.z); free(l.bd); free(Md); free(nrm);
}

int main(void) {
    const case_t cases[] = {
        {5, 7, 9, 3, 1, 0, 0.0f, 0},  /* nn.Linear */
        {4, 6, 12, 2, 1, 1, 0.0f, 0}, /* Conv1D layout */
        {3, 8, 15, 2, 3, 1, 0.0f, 0}, /* fused q|k|v split into 3 parts */
        {6, 5, 7, 4, 1, 0, 0.3f, 0},  /* LoRA dropout */
        {1, 33, 1, 1, 1, 0, 0.0f, 0}, /* odd shapes */
        {5, 7, 9, 3, 1, 0, 0.0f, 1},  /* DoRA */
        {4, 6, 12, 2, 1, 1, 0.0f, 1}, /* DoRA, Conv1D */
        {3, 8, 15, 2, 3, 1, 0.0f, 1}, /* DoRA over split q|k|v parts */
        {6, 5, 7, 4, 1, 0, 0.3f, 1},  /* DoRA with dropout: xd feeds (g - 1) xd W^T too */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run(&cases[i], 100 + i);
    return test_summary("test_lora_grad");
}
