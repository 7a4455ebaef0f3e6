/* test_lora_infer.c - the fused decode-step LoRA term (lora/lora_infer.c)
 * against a double-precision reference and against lorac_lora_term_fwd,
 * over odd shapes, parts 1 .. 3, N = 1 .. 8 rows and every SIMD level this
 * CPU runs.
 *
 * The bound is the textbook one for fp32 dot products (any order of the
 * additions, fused or not; u = 2^-24, gamma_n = n u / (1 - n u)):
 *   t_j = x A_j^T      |fl(t_j) - t_j| <= gamma_in T_j,  T_j = sum_i |A_ji x_i|
 *   y_o += s B_o t     |error| <= s gamma_(in + r + 1) sum_j |B_oj| T_j + u |y_o|
 * (the second dot product's own rounding, the multiply by s and the add
 * into y). Both the fused kernels and lorac_lora_term_fwd's GEMMs must stay
 * inside it at every output; a wrong block, row or stride misses by O(1).
 * Then: lorac_lora_infer_term gives the active level's kernel's result bit
 * for bit with 1 or 2 OpenMP threads (it opens no parallel region), and
 * past LORAC_LORA_INFER_MAX_N rows (chunks) each row's result is bit for bit
 * that row's alone (N = 1), as a KV-cache step computes it. Each kernel's
 * t and y over pieces of the rows (as threads split them) give the whole's
 * bits, and lorac_lora_infer_linear over a quantized base (the term inside
 * the base's parallel region) gives the bits of base then term. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "lora/lora.h"
#include "lora/lora_infer.h"
#include "quant/qmatmul.h"
#include "testutil.h"

typedef struct shape { int in, out, r, parts; } shape;

/* A Linear of the shape with a random LoRA pair (B nonzero, unlike a fresh one). */
static lorac_lora *make_pair(lorac_linear *L, const shape *sh, lorac_rng *rng) {
    memset(L, 0, sizeof *L);
    snprintf(L->name, sizeof L->name, "test.%dx%d", sh->out, sh->in);
    L->in = sh->in;
    L->out = sh->out;
    lorac_lora *l = NULL;
    CHECK_OK(lorac_lora_new(L, sh->r, sh->parts, 2.0f * sh->r, 2.0f, 0.0f, 0, &l));
    for (size_t i = 0; i < l->A.n; i++) l->A.data[i] = lorac_rng_uniform(rng) * 2 - 1;
    for (size_t i = 0; i < l->B.n; i++) l->B.data[i] = lorac_rng_uniform(rng) * 2 - 1;
    return l;
}

/* ref = y0 + s (x A^T) B^T in double; bound = the error bound above for an fp32 result. */
static void reference(const lorac_linear *L, const lorac_lora *l, const float *y0, const float *x, int N, double *ref,
                      double *bound) {
    const int R = l->parts * l->r, ob = L->out / l->parts;
    const double u = ldexp(1.0, -24), g = (L->in + l->r + 1) * u / (1 - (L->in + l->r + 1) * u);
    double *t = malloc(sizeof(double) * R), *T = malloc(sizeof(double) * R);
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < R; j++) {
            t[j] = T[j] = 0;
            for (int i = 0; i < L->in; i++) {
                const double p = (double)l->A.data[(size_t)j * L->in + i] * x[(size_t)n * L->in + i];
                t[j] += p;
                T[j] += fabs(p);
            }
        }
        for (int o = 0; o < L->out; o++) {
            const float *b = l->B.data + (size_t)o * l->r;
            const int j0 = (o / ob) * l->r;
            double acc = 0, mag = 0;
            for (int j = 0; j < l->r; j++) {
                acc += b[j] * t[j0 + j];
                mag += fabs(b[j]) * T[j0 + j];
            }
            const size_t at = (size_t)n * L->out + o;
            ref[at] = y0[at] + l->scale * acc;
            bound[at] = l->scale * g * mag + u * fabs(ref[at]) + 1e-30;
        }
    }
    free(t);
    free(T);
}

/* The worst |got - ref| / bound over the outputs (<= 1 passes). */
static double worst(const float *got, const double *ref, const double *bound, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = isfinite(got[i]) ? fabs(got[i] - ref[i]) / bound[i] : INFINITY;
        if (e > w) w = e;
    }
    return w;
}

static void check_shape(const shape *sh, lorac_rng *rng) {
    lorac_linear L;
    lorac_lora *l = make_pair(&L, sh, rng);
    if (!l) return;
    const int N_MAX = 2 * LORAC_LORA_INFER_MAX_N + 3, R = sh->parts * sh->r; /* three chunks */
    const size_t ny = (size_t)N_MAX * sh->out, nx = (size_t)N_MAX * sh->in;
    float *x = malloc(sizeof(float) * nx), *y0 = malloc(sizeof(float) * ny), *y = malloc(sizeof(float) * ny);
    float *y2 = malloc(sizeof(float) * ny), *t = malloc(sizeof(float) * (size_t)N_MAX * R);
    double *ref = malloc(sizeof(double) * ny), *bound = malloc(sizeof(double) * ny);
    for (size_t i = 0; i < nx; i++) x[i] = lorac_rng_normal(rng);
    for (size_t i = 0; i < ny; i++) y0[i] = lorac_rng_normal(rng);
    for (int N = 1; N <= LORAC_LORA_INFER_MAX_N; N++) {
        const size_t n = (size_t)N * sh->out;
        reference(&L, l, y0, x, N, ref, bound);
        memcpy(y, y0, sizeof(float) * n);
        lorac_lora_term_fwd(&L, l, y, x, N, t);
        const double wg = worst(y, ref, bound, n);
        CHECK(wg <= 1, "lorac_lora_term_fwd in %d out %d r %d parts %d N %d: error %.3g of the bound", sh->in,
              sh->out, sh->r, sh->parts, N, wg);
        for (int isa = 0; isa < LORAC_ISA_LEVELS; isa++) {
            const lorac_lora_infer_kern *K = lorac_lora_infer_for((lorac_isa)isa);
            if (!K) continue;
            const lorac_lora_term k = {l->A.data, l->B.data, sh->in, sh->out, sh->r, sh->parts, l->scale};
            memcpy(y, y0, sizeof(float) * n);
            K->term(&k, y, x, N, t);
            const double w = worst(y, ref, bound, n);
            CHECK(w <= 1, "%s kernel in %d out %d r %d parts %d N %d: error %.3g of the bound",
                  lorac_isa_name((lorac_isa)isa), sh->in, sh->out, sh->r, sh->parts, N, w);
            /* the same rows in pieces (as threads split them): t over three ranges of A's rows (cut at
             * groups of four), y over three ranges of B's rows cut anywhere, across the parts */
            const int cuts_t[4] = {0, 4 * (R / 12), 4 * (R / 8) > R ? R : 4 * (R / 8), R};
            const int cuts_y[4] = {0, sh->out / 3, (2 * sh->out + 1) / 3, sh->out};
            memcpy(y2, y0, sizeof(float) * n);
            float *t2 = malloc(sizeof(float) * (size_t)N * R);
            for (int c = 0; c < 3; c++)
                if (cuts_t[c] < cuts_t[c + 1]) K->t(&k, x, N, t2, cuts_t[c], cuts_t[c + 1]);
            for (int c = 0; c < 3; c++)
                if (cuts_y[c] < cuts_y[c + 1]) K->y(&k, y2, t2, N, cuts_y[c], cuts_y[c + 1]);
            CHECK(!memcmp(y, y2, sizeof(float) * n), "%s kernel in %d out %d parts %d N %d: rows in pieces != whole",
                  lorac_isa_name((lorac_isa)isa), sh->in, sh->out, sh->parts, N);
            free(t2);
        }
        /* the entry point: the active level, the same bits under 1 and 2 threads */
        memcpy(y, y0, sizeof(float) * n);
        memcpy(y2, y0, sizeof(float) * n);
        omp_set_num_threads(1);
        lorac_lora_infer_term(&L, l, y, x, N, t);
        omp_set_num_threads(2);
        lorac_lora_infer_term(&L, l, y2, x, N, t);
        CHECK(!memcmp(y, y2, sizeof(float) * n) && worst(y, ref, bound, n) <= 1,
              "lorac_lora_infer_term in %d out %d N %d: 1 and 2 threads differ or miss the bound", sh->in, sh->out, N);
    }
    /* more rows than one kernel call takes: each row bit for bit its own N = 1 result */
    memcpy(y, y0, sizeof(float) * ny);
    memcpy(y2, y0, sizeof(float) * ny);
    lorac_lora_infer_term(&L, l, y, x, N_MAX, t);
    for (int n = 0; n < N_MAX; n++)
        lorac_lora_infer_term(&L, l, y2 + (size_t)n * sh->out, x + (size_t)n * sh->in, 1, t);
    CHECK(!memcmp(y, y2, sizeof(float) * ny), "lorac_lora_infer_term N %d: rows differ from their N = 1 results", N_MAX);
    free(x);
    free(y0);
    free(y);
    free(y2);
    free(t);
    free(ref);
    free(bound);
    lorac_lora_free(l);
}

/* lorac_lora_infer_linear over a quantized base (Q4_0): bit for bit
 * lorac_linear_base_fwd then lorac_lora_infer_term, with 1 and 2 threads, on
 * the int8 road (the term inside the base's region) and the fp32 one (after
 * it), decoding-step and prompt sizes of N. */
static void check_linear(const shape *sh, lorac_rng *rng) {
    lorac_linear L;
    lorac_lora *l = make_pair(&L, sh, rng);
    if (!l) return;
    float *w = malloc(sizeof(float) * (size_t)sh->out * sh->in);
    for (size_t i = 0; i < (size_t)sh->out * sh->in; i++) w[i] = lorac_rng_normal(rng) * 0.05f;
    lorac_qweight q;
    CHECK_OK(lorac_qweight_quantize_ggml(&q, LORAC_QF_Q4_0, w, sh->out, sh->in));
    L.q = &q;
    const int Ns[] = {1, 3, 8, 9, 37}, N_MAX = 37, R = sh->parts * sh->r;
    float *x = malloc(sizeof(float) * (size_t)N_MAX * sh->in), *t = malloc(sizeof(float) * (size_t)N_MAX * R);
    float *y = malloc(sizeof(float) * (size_t)N_MAX * sh->out), *y2 = malloc(sizeof(float) * (size_t)N_MAX * sh->out);
    for (size_t i = 0; i < (size_t)N_MAX * sh->in; i++) x[i] = lorac_rng_normal(rng);
    for (int road = 0; road < 2; road++) {
        const lorac_qact was = lorac_qact_force(road ? LORAC_QACT_F32 : LORAC_QACT_Q8);
        for (size_t i = 0; i < sizeof Ns / sizeof Ns[0]; i++)
            for (int threads = 1; threads <= 2; threads++) {
                const int N = Ns[i];
                omp_set_num_threads(threads);
                lorac_linear_base_fwd(&L, y, x, N);
                lorac_lora_infer_term(&L, l, y, x, N, t);
                memset(y2, 0xff, sizeof(float) * (size_t)N * sh->out); /* NaNs: every element must be written */
                lorac_lora_infer_linear(&L, l, y2, x, x, N, t);
                CHECK(!memcmp(y, y2, sizeof(float) * (size_t)N * sh->out),
                      "lorac_lora_infer_linear (%s road) in %d out %d parts %d N %d, %d threads: != base then term",
                      road ? "f32" : "int8", sh->in, sh->out, sh->parts, N, threads);
            }
        lorac_qact_force(was);
    }
    omp_set_num_threads(2);
    lorac_qweight_free(&q);
    free(w);
    free(x);
    free(t);
    free(y);
    free(y2);
    lorac_lora_free(l);
}

int main(void) {
    lorac_rng rng;
    lorac_rng_seed(&rng, 15);
    /* SmolLM2's q_proj and up_proj, a fused q|k|v in three parts, and odd sizes off every vector width */
    const shape shapes[] = {{576, 576, 16, 1}, {576, 1536, 16, 1}, {64, 192, 8, 3}, {37, 45, 3, 3},
                            {17, 24, 5, 2},    {100, 33, 24, 1},   {7, 9, 1, 1},   {1, 1, 1, 1}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&shapes[i], &rng);
    /* over a quantized base: several bands of W rows, a fused q|k|v, an odd out (in: whole blocks) */
    const shape qshapes[] = {{576, 576, 16, 1}, {64, 192, 8, 3}, {96, 45, 5, 3}, {256, 1536, 16, 1}};
    for (size_t i = 0; i < sizeof qshapes / sizeof qshapes[0]; i++) check_linear(&qshapes[i], &rng);
    for (int isa = 0; isa < LORAC_ISA_LEVELS; isa++)
        CHECK((lorac_lora_infer_for((lorac_isa)isa) != NULL) == (isa <= (int)lorac_isa_best()),
              "lorac_lora_infer_for(%s): a kernel exactly for the levels this CPU runs", lorac_isa_name((lorac_isa)isa));
    return test_summary("test_lora_infer");
}
