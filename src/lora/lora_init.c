/* lora_init.c - PEFT's init_lora_weights for one LoRA pair (A [r, in],
 * B [out, r], scale s, base W seen as [out, in]):
 *
 *   True (default)  A ~ kaiming_uniform(a = sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)), B = 0
 *   "gaussian"      A ~ N(0, (1/r)^2), B = 0
 *   False           A as True, B ~ U(-1/sqrt(r), 1/sqrt(r)) (nn.Linear's own init: no identity start)
 *   "pissa"         W = U S V^T: B = U_r sqrt(S_r / s), A = sqrt(S_r / s) V_r^T, W -= s B A
 *                   (Meng et al. 2024); "pissa_niter_K": U_r S_r V_r from a randomized
 *                   SVD with K subspace iterations (torch.svd_lowrank, Halko et al. 2011)
 *   "olora"         W = Q R (Householder QR): B = Q[:, :r], A = R[:r, :], W -= s B A (Büyükakyüz 2024)
 *
 * PiSSA and OLoRA change the base: W becomes the residual W - s B0 A0, so
 * the model's output is unchanged at init. B0, A0 are kept on the pair
 * (l->A0, l->B0): adapter_io.c saves such an adapter converted to a plain
 * LoRA on the original W, as PEFT's save_pretrained(...,
 * path_initial_model_for_weight_conversion=...) does. A quantized base is
 * dequantized, changed and quantized again in its own format. OLoRA on a
 * GPT-2 Conv1D weight is refused: PEFT factors the stored [in, out] matrix
 * and its A, B come out with the wrong shapes.
 *
 * The SVD and QR are LAPACK's (dgesdd, dgeqrf, dorgqr from OpenBLAS), in
 * double. Singular vectors are defined up to sign; B A and the residual are
 * not, and those are what PEFT's fixtures are compared on. */
#include "lora/lora_init.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

/* LAPACK (Fortran ABI, as OpenBLAS exports it; trailing hidden string lengths) */
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
                    const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info,
                    size_t jobz_len);
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work, const int *lwork,
                    int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau, double *work,
                    const int *lwork, int *info);

/* Thin SVD of the row-major W [m, n]: U [m, r], S [r], Vt [r, n] (row-major),
 * the r largest triplets. W is destroyed. LAPACK sees W as W^T [n, m]
 * column-major: W^T = U' S V'^T, so W's left vectors are V' and its right U'. */
static lorac_status svd_exact(double *W, int m, int n, int r, double *U, double *S, double *Vt) {
    const int k = m < n ? m : n, lwq = -1;
    double *s = NULL, *u = NULL, *vt = NULL, *work = NULL, wq;
    int *iwork = NULL, info = 0;
    lorac_status st = lorac_alloc((void **)&s, (size_t)k, sizeof(double), "SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&u, (size_t)n * k, sizeof(double), "SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&vt, (size_t)k * m, sizeof(double), "SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&iwork, 8 * (size_t)k, sizeof(int), "SVD");
    if (st == LORAC_OK) {
        dgesdd_("S", &n, &m, W, &n, s, u, &n, vt, &k, &wq, &lwq, iwork, &info, 1);
        const int lw = (int)wq + 1;
        st = lorac_alloc((void **)&work, (size_t)lw, sizeof(double), "SVD work");
        if (st == LORAC_OK) dgesdd_("S", &n, &m, W, &n, s, u, &n, vt, &k, work, &lw, iwork, &info, 1);
        if (st == LORAC_OK && info != 0)
            st = lorac_fail(LORAC_ERR_NUMERIC, "SVD of a [%d, %d] weight did not converge (LAPACK info %d)", m, n, info);
    }
    if (st == LORAC_OK)
        for (int j = 0; j < r; j++) {
            S[j] = s[j];
            for (int o = 0; o < m; o++) U[(size_t)o * r + j] = vt[j + (size_t)o * k];
            for (int i = 0; i < n; i++) Vt[(size_t)j * n + i] = u[i + (size_t)j * n];
        }
    free(s);
    free(u);
    free(vt);
    free(work);
    free(iwork);
    return st;
}

/* Orthonormal columns of X [m, q] in place (modified Gram-Schmidt, twice). */
static void orthonormalize(double *X, int m, int q) {
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < q; j++) {
            for (int k = 0; k < j; k++) {
                double d = 0;
                for (int o = 0; o < m; o++) d += X[(size_t)o * q + k] * X[(size_t)o * q + j];
                for (int o = 0; o < m; o++) X[(size_t)o * q + j] -= d * X[(size_t)o * q + k];
            }
            double nn = 0;
            for (int o = 0; o < m; o++) nn += X[(size_t)o * q + j] * X[(size_t)o * q + j];
            nn = nn > 0 ? 1.0 / sqrt(nn) : 0;
            for (int o = 0; o < m; o++) X[(size_t)o * q + j] *= nn;
        }
}

/* Y [m, q] = W [m, n] X [n, q] (tw = 0) or W^T X with X [m, q] -> Y [n, q] (tw = 1). */
static void matmul(const double *W, int m, int n, const double *X, int q, double *Y, int tw) {
    memset(Y, 0, sizeof(double) * (size_t)(tw ? n : m) * q);
    for (int o = 0; o < m; o++)
        for (int i = 0; i < n; i++) {
            const double w = W[(size_t)o * n + i];
            double *y = tw ? Y + (size_t)i * q : Y + (size_t)o * q;
            const double *x = tw ? X + (size_t)o * q : X + (size_t)i * q;
            for (int j = 0; j < q; j++) y[j] += w * x[j];
        }
}

/* torch.svd_lowrank(W, q = r, niter): Q = orth(W G), G [n, r] ~ N(0, 1);
 * niter times Q = orth(W orth(W^T Q)); then the SVD of Q^T W [r, n]. */
static lorac_status svd_random(const double *W, int m, int n, int r, int niter, lorac_rng *rng, double *U, double *S,
                               double *Vt) {
    double *G = NULL, *Q = NULL, *P = NULL, *Bm = NULL, *Ub = NULL;
    lorac_status st = lorac_alloc((void **)&G, (size_t)n * r, sizeof(double), "randomized SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&Q, (size_t)m * r, sizeof(double), "randomized SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&P, (size_t)n * r, sizeof(double), "randomized SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&Bm, (size_t)r * n, sizeof(double), "randomized SVD");
    if (st == LORAC_OK) st = lorac_alloc((void **)&Ub, (size_t)r * r, sizeof(double), "randomized SVD");
    if (st == LORAC_OK) {
        for (size_t e = 0; e < (size_t)n * r; e++) G[e] = lorac_rng_normal(rng);
        matmul(W, m, n, G, r, Q, 0);
        orthonormalize(Q, m, r);
        for (int it = 0; it < niter; it++) {
            matmul(W, m, n, Q, r, P, 1);
            orthonormalize(P, n, r);
            matmul(W, m, n, P, r, Q, 0);
            orthonormalize(Q, m, r);
        }
        matmul(W, m, n, Q, r, P, 1); /* P [n, r] = W^T Q: Bm = Q^T W = P^T */
        for (int j = 0; j < r; j++)
            for (int i = 0; i < n; i++) Bm[(size_t)j * n + i] = P[(size_t)i * r + j];
        st = svd_exact(Bm, r, n, r, Ub, S, Vt);
    }
    if (st == LORAC_OK) /* U = Q Ub */
        for (int o = 0; o < m; o++)
            for (int j = 0; j < r; j++) {
                double d = 0;
                for (int k = 0; k < r; k++) d += Q[(size_t)o * r + k] * Ub[(size_t)k * r + j];
                U[(size_t)o * r + j] = d;
            }
    free(G);
    free(Q);
    free(P);
    free(Bm);
    free(Ub);
    return st;
}

/* OLoRA: B = Q[:, :r] [m, r], A = R[:r, :] [r, n] of W [m, n] = Q R. */
static lorac_status qr_top(const double *W, int m, int n, int r, double *Bq, double *Ar) {
    const int k = m < n ? m : n, lwq = -1;
    double *a = NULL, *tau = NULL, *work = NULL, wq;
    int info = 0;
    lorac_status st = lorac_alloc((void **)&a, (size_t)m * n, sizeof(double), "QR");
    if (st == LORAC_OK) st = lorac_alloc((void **)&tau, (size_t)k, sizeof(double), "QR");
    if (st == LORAC_OK) {
        for (int o = 0; o < m; o++)
            for (int i = 0; i < n; i++) a[o + (size_t)i * m] = W[(size_t)o * n + i]; /* column-major W */
        dgeqrf_(&m, &n, a, &m, tau, &wq, &lwq, &info);
        const int lw = (int)wq + 1 + m;
        st = lorac_alloc((void **)&work, (size_t)lw, sizeof(double), "QR work");
        if (st == LORAC_OK) dgeqrf_(&m, &n, a, &m, tau, work, &lw, &info);
        for (int j = 0; st == LORAC_OK && j < r; j++)
            for (int i = 0; i < n; i++) Ar[(size_t)j * n + i] = i >= j ? a[j + (size_t)i * m] : 0.0;
        if (st == LORAC_OK && info == 0) dorgqr_(&m, &k, &k, a, &m, tau, work, &lw, &info);
        if (st == LORAC_OK && info != 0) st = lorac_fail(LORAC_ERR_NUMERIC, "QR of a [%d, %d] weight failed (LAPACK info %d)", m, n, info);
        for (int o = 0; st == LORAC_OK && o < m; o++)
            for (int j = 0; j < r; j++) Bq[(size_t)o * r + j] = a[o + (size_t)j * m];
    }
    free(a);
    free(tau);
    free(work);
    return st;
}

static lorac_status init_from_base(lorac_linear *L, lorac_lora *l, const lorac_lora_config *c, lorac_rng *rng) {
    const int m = L->out, n = L->in, r = l->r, kmin = m < n ? m : n;
    const char *what = c->init == LORAC_INIT_PISSA ? "pissa" : "olora";
    if (l->parts > 1)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "init_lora_weights=%s on '%s' with --split-qkv: hint: drop --split-qkv "
                          "(PEFT has no split pairs)", what, L->name);
    if (c->init == LORAC_INIT_OLORA && L->w_in_out)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "init_lora_weights=olora on '%s', a GPT-2 Conv1D weight: PEFT factors "
                          "its stored [in, out] matrix and gets A, B of the wrong shapes; hint: use pissa or the default", L->name);
    if (r > kmin)
        return lorac_fail(LORAC_ERR_ARG, "init_lora_weights=%s on '%s': r=%d is more than min(out, in) = %d", what, L->name,
                          r, kmin);
    const lorac_qformat qf = L->q ? L->q->fmt : LORAC_QF_NONE;
    if (L->q_shared)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "init_lora_weights=%s on '%s', tied to the quantized embedding; hint: "
                          "leave lm_head out of the targets", what, L->name);
    if (L->q) LORAC_TRY(lorac_linear_dequantize(L));
    LORAC_TRY(lorac_weight_make_owned(L->W));
    double *W = NULL, *U = NULL, *S = NULL, *Vt = NULL;
    lorac_status st = lorac_alloc((void **)&W, (size_t)m * n, sizeof(double), "init weight");
    if (st == LORAC_OK) st = lorac_alloc((void **)&U, (size_t)m * r, sizeof(double), "init factors");
    if (st == LORAC_OK) st = lorac_alloc((void **)&S, (size_t)r, sizeof(double), "init factors");
    if (st == LORAC_OK) st = lorac_alloc((void **)&Vt, (size_t)r * n, sizeof(double), "init factors");
    float *Wf = L->W->data;
    for (int o = 0; st == LORAC_OK && o < m; o++)
        for (int i = 0; i < n; i++) W[(size_t)o * n + i] = L->w_in_out ? Wf[(size_t)i * m + o] : Wf[(size_t)o * n + i];
    if (st == LORAC_OK && c->init == LORAC_INIT_OLORA) {
        st = qr_top(W, m, n, r, U, Vt);
        for (int o = 0; st == LORAC_OK && o < m; o++)
            for (int j = 0; j < r; j++) l->B.data[(size_t)o * r + j] = (float)U[(size_t)o * r + j];
        for (size_t e = 0; st == LORAC_OK && e < (size_t)r * n; e++) l->A.data[e] = (float)Vt[e];
    } else if (st == LORAC_OK) {
        double *Wc = NULL; /* svd_exact destroys its input */
        st = c->pissa_niter > 0 ? svd_random(W, m, n, r, c->pissa_niter, rng, U, S, Vt)
                                : lorac_alloc((void **)&Wc, (size_t)m * n, sizeof(double), "SVD input");
        if (st == LORAC_OK && Wc) {
            memcpy(Wc, W, sizeof(double) * (size_t)m * n);
            st = svd_exact(Wc, m, n, r, U, S, Vt);
        }
        free(Wc);
        for (int j = 0; st == LORAC_OK && j < r; j++) {
            const double g = sqrt(S[j] / (double)l->scale); /* Sr /= scaling; A = sqrt(Sr) Vr^T, B = Ur sqrt(Sr) */
            for (int i = 0; i < n; i++) l->A.data[(size_t)j * n + i] = (float)(g * Vt[(size_t)j * n + i]);
            for (int o = 0; o < m; o++) l->B.data[(size_t)o * r + j] = (float)(U[(size_t)o * r + j] * g);
        }
    }
    /* the residual: W -= s B A (from the float A, B the adapter holds) */
    for (int o = 0; st == LORAC_OK && o < m; o++)
        for (int i = 0; i < n; i++) {
            double d = 0;
            for (int k = 0; k < r; k++) d += (double)l->B.data[(size_t)o * r + k] * l->A.data[(size_t)k * n + i];
            float *w = L->w_in_out ? &Wf[(size_t)i * m + o] : &Wf[(size_t)o * n + i];
            *w = (float)((double)*w - (double)l->scale * d);
        }
    free(W);
    free(U);
    free(S);
    free(Vt);
    if (st == LORAC_OK) st = lorac_alloc((void **)&l->A0, l->A.n, sizeof(float), "initial lora_A");
    if (st == LORAC_OK) st = lorac_alloc((void **)&l->B0, l->B.n, sizeof(float), "initial lora_B");
    if (st == LORAC_OK) {
        memcpy(l->A0, l->A.data, sizeof(float) * l->A.n);
        memcpy(l->B0, l->B.data, sizeof(float) * l->B.n);
    }
    if (st == LORAC_OK && qf != LORAC_QF_NONE) st = lorac_linear_quantize(L, qf);
    return st;
}

lorac_status lorac_lora_init_weights(lorac_linear *L, lorac_lora *l, const lorac_lora_config *c, lorac_rng *rng) {
    /* kaiming_uniform_(a=sqrt(5)): gain = sqrt(2/(1+5)), bound = gain*sqrt(3/fan_in) = 1/sqrt(fan_in) */
    const float bound = 1.0f / sqrtf((float)L->in);
    switch (c->init) {
    case LORAC_INIT_DEFAULT:
    case LORAC_INIT_FALSE:
        for (size_t i = 0; i < l->A.n; i++) l->A.data[i] = (2.0f * lorac_rng_uniform(rng) - 1.0f) * bound;
        if (c->init == LORAC_INIT_FALSE) {
            const float bb = 1.0f / sqrtf((float)l->r);
            for (size_t i = 0; i < l->B.n; i++) l->B.data[i] = (2.0f * lorac_rng_uniform(rng) - 1.0f) * bb;
        }
        return LORAC_OK;
    case LORAC_INIT_GAUSSIAN:
        for (size_t i = 0; i < l->A.n; i++) l->A.data[i] = lorac_rng_normal(rng) / (float)l->r;
        return LORAC_OK;
    case LORAC_INIT_PISSA:
    case LORAC_INIT_OLORA:
        return init_from_base(L, l, c, rng);
    }
    return lorac_fail(LORAC_ERR_ARG, "init_lora_weights: unknown kind %d", (int)c->init);
}

lorac_status lorac_lora_init_parse(const char *s, lorac_lora_config *c) {
    c->pissa_niter = 0;
    if (!strcmp(s, "true") || !strcmp(s, "default")) c->init = LORAC_INIT_DEFAULT;
    else if (!strcmp(s, "false")) c->init = LORAC_INIT_FALSE;
    else if (!strcmp(s, "gaussian")) c->init = LORAC_INIT_GAUSSIAN;
    else if (!strcmp(s, "olora")) c->init = LORAC_INIT_OLORA;
    else if (!strcmp(s, "pissa")) c->init = LORAC_INIT_PISSA;
    else if (!strncmp(s, "pissa_niter_", 12)) {
        char *end;
        const long k = strtol(s + 12, &end, 10);
        if (end == s + 12 || *end || k < 1 || k > 1000)
            return lorac_fail(LORAC_ERR_ARG, "init_lora_weights '%s': K in pissa_niter_K must be 1..1000", s);
        c->init = LORAC_INIT_PISSA;
        c->pissa_niter = (int)k;
    } else {
        return lorac_fail(LORAC_ERR_ARG, "init_lora_weights '%s' is not supported; hint: true, false, gaussian, pissa, "
                          "pissa_niter_K or olora", s);
    }
    return LORAC_OK;
}

const char *lorac_lora_init_name(const lorac_lora_config *c, char *buf, size_t n) {
    static const char *const names[] = {"true", "gaussian", "pissa", "olora", "false"};
    if (c->init == LORAC_INIT_PISSA && c->pissa_niter > 0) snprintf(buf, n, "pissa_niter_%d", c->pissa_niter);
    else snprintf(buf, n, "%s", names[c->init]);
    return buf;
}
