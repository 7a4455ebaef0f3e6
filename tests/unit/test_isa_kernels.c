/* test_isa_kernels.c - the SIMD levels of the elementwise float kernels
 * (ops/vkern.h) against their scalar references, and the LORAC_ISA switch
 * (ops/isa.h).
 *
 * For every level this CPU runs (scalar always; avx2, avx512 when present),
 * every kernel of the table runs on sizes 1, 7, 8, 15, 16, 17, 33, 1000 and
 * 4099 (below, at and around the vector widths 8 and 16, and long arrays
 * with a ragged end), on the same random inputs as the scalar reference, and
 * must agree within the tolerances vkern.h documents:
 *
 *   exp                      |got - want| <= 1e-6 |want| (a few float ulps:
 *                            the SIMD code fuses multiply-adds);
 *   GELU-tanh, SwiGLU        1e-6 |want| + 1e-6: their derivatives add terms
 *                            of size ~1 that cancel, so an ulp of a term is
 *                            an absolute error of the sum;
 *   erf, GELU-erf            1e-6 |want| + 4e-6: erf = 1 - 1/p^16 raises the
 *                            polynomial p to the 16th power, which multiplies
 *                            the ulp-sized difference in p by 16;
 *   norm rows                1e-6 |want| + 1e-7 max|want| of the row (dx sums
 *                            terms that cancel, so one ulp of a row mean shows
 *                            up absolutely, not relatively);
 *   AdamW, bf16 <-> fp32     bit for bit.
 *
 * Special values (0, -0, tiny, huge, +-inf, NaN) go through the float
 * kernels too: NaN must stay NaN and infinities must match.
 * Then: the public ops (op_gelu_tanh_fwd, op_layernorm_fwd, op_f32_to_bf16,
 * lorac_optim_step) run the table of the level lorac_isa_force() made
 * active, and LORAC_ISA set in the environment of a child process (this
 * program with --print-isa) picks the level it names, falls back to the best
 * one for a level the CPU lacks, and warns for a value it does not know. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "lorac.h"
#include "ops/gemm.h"
#include "ops/isa.h"
#include "ops/ops.h"
#include "ops/vkern.h"
#include "quant/qmatmul.h"
#include "testutil.h"
#include "train/optim.h"

static const size_t g_sizes[] = {1, 7, 8, 15, 16, 17, 33, 1000, 4099};
#define NSIZES (sizeof g_sizes / sizeof g_sizes[0])
#define MAXN 4099

#define RTOL 1e-6
#define ATOL 1e-7     /* norm rows: times the row's largest |want| */
#define ATOL_ACT 1e-6 /* GELU-tanh, SwiGLU */
#define ATOL_ERF 4e-6 /* erf, GELU-erf */

/* The largest error seen, as a fraction of the tolerance, for the summary. */
static double g_worst;
static char g_worst_what[96];

/* Equal, both NaN, or within atol + rtol |want|: one CHECK for the array. */
static void check_close(const char *what, const char *isa, size_t n, const float *got, const float *want,
                        size_t cnt, double rtol, double atol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < cnt; i++) {
        const double a = got[i], b = want[i];
        if (a == b || (isnan(a) && isnan(b))) continue;
        const double ratio = fabs(a - b) / (atol + rtol * fabs(b));
        if (!(ratio <= worst)) { /* NaN against a number gives NaN here: a failure */
            worst = isnan(ratio) ? INFINITY : ratio;
            wi = i;
        }
    }
    CHECK(worst <= 1.0, "%s [%s, n %zu]: element %zu: got %.9g want %.9g (%.2f x the tolerance)", what, isa, n, wi,
          (double)got[wi], (double)want[wi], worst);
    if (worst > g_worst) {
        g_worst = worst;
        snprintf(g_worst_what, sizeof g_worst_what, "%s [%s, n %zu]", what, isa, n);
    }
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static void check_bits(const char *what, const char *isa, size_t n, const void *got, const void *want, size_t bytes) {
    CHECK(memcmp(got, want, bytes) == 0, "%s [%s, n %zu]: not bit-identical to the scalar reference", what, isa, n);
}

static void fill(lorac_rng *r, float *a, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * lorac_rng_uniform(r);
}

/* Inputs shared by every kernel, and two output sets: [0] the reference's, [1] the level's. */
typedef struct bufs {
    float x[MAXN], dy[MAXN], g[MAXN], b[MAXN], up[MAXN];
    float out[2][3][MAXN]; /* up to three outputs per kernel */
    double acc[2][3][MAXN];
    uint16_t h[2][MAXN];
} bufs;

/* The outputs a kernel accumulates into start from the same random values. */
static void seed_outputs(bufs *B, lorac_rng *r, size_t n) {
    for (int k = 0; k < 3; k++) {
        fill(r, B->out[0][k], n, -1, 1);
        memcpy(B->out[1][k], B->out[0][k], n * sizeof(float));
    }
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < n; i++) B->acc[0][k][i] = B->acc[1][k][i] = lorac_rng_normal(r);
}

/* One activation-style kernel over arrays of n: y = f(x) or accumulate. */
static void test_activations(bufs *B, lorac_rng *r, const lorac_vkern *ref, const lorac_vkern *v, size_t n) {
    const char *isa = v->name;
    const lorac_vkern *k[2] = {ref, v};
    fill(r, B->x, n, -100, 100);
    for (int s = 0; s < 2; s++) k[s]->exp_run(B->out[s][0], B->x, n);
    check_close("exp", isa, n, B->out[1][0], B->out[0][0], n, RTOL, 0);

    fill(r, B->x, n, -8, 8);
    fill(r, B->dy, n, -2, 2);
    fill(r, B->up, n, -3, 3);
    for (int s = 0; s < 2; s++) k[s]->erf_run(B->out[s][0], B->x, n);
    check_close("erf", isa, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL_ERF);

    seed_outputs(B, r, n);
    for (int s = 0; s < 2; s++) {
        k[s]->gelu_tanh_fwd_run(B->out[s][0], B->x, n);
        k[s]->gelu_tanh_bwd_run(B->out[s][1], B->dy, B->x, n);
    }
    check_close("gelu_tanh_fwd", isa, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL_ACT);
    check_close("gelu_tanh_bwd", isa, n, B->out[1][1], B->out[0][1], n, RTOL, ATOL_ACT);

    seed_outputs(B, r, n);
    for (int s = 0; s < 2; s++) {
        k[s]->gelu_erf_fwd_run(B->out[s][0], B->x, n);
        k[s]->gelu_erf_bwd_run(B->out[s][1], B->dy, B->x, n);
    }
    check_close("gelu_erf_fwd", isa, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL_ERF);
    check_close("gelu_erf_bwd", isa, n, B->out[1][1], B->out[0][1], n, RTOL, ATOL_ERF);

    seed_outputs(B, r, n);
    for (int s = 0; s < 2; s++) {
        k[s]->swiglu_fwd_run(B->out[s][0], B->x, B->up, n);
        k[s]->swiglu_bwd_run(B->out[s][1], B->out[s][2], B->dy, B->x, B->up, n);
    }
    check_close("swiglu_fwd", isa, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL_ACT);
    check_close("swiglu_bwd dgate", isa, n, B->out[1][1], B->out[0][1], n, RTOL, ATOL_ACT);
    check_close("swiglu_bwd dup", isa, n, B->out[1][2], B->out[0][2], n, RTOL, ATOL_ACT);
}

/* The norm rows with C = n. */
static void test_norms(bufs *B, lorac_rng *r, const lorac_vkern *ref, const lorac_vkern *v, size_t n) {
    const char *isa = v->name;
    const lorac_vkern *k[2] = {ref, v};
    const int C = (int)n;
    for (size_t i = 0; i < n; i++) B->x[i] = 0.5f + 2.0f * lorac_rng_normal(r); /* an offset mean, as real rows */
    fill(r, B->g, n, 0.5f, 1.5f);
    fill(r, B->b, n, -1, 1);
    for (size_t i = 0; i < n; i++) B->dy[i] = lorac_rng_normal(r);
    float stats[2][3];
    seed_outputs(B, r, n);
    for (int s = 0; s < 2; s++) {
        k[s]->layernorm_fwd_row(B->out[s][0], &stats[s][0], &stats[s][1], B->x, B->g, B->b, C, 1e-5f);
        k[s]->layernorm_bwd_row(B->out[s][1], B->dy, B->x, stats[0][0], stats[0][1], B->g, C);
        k[s]->rmsnorm_fwd_row(B->out[s][2], &stats[s][2], B->x, B->g, C, 1e-5f);
    }
    check_close("layernorm_fwd_row mean, rstd", isa, n, stats[1], stats[0], 2, RTOL, ATOL);
    check_close("layernorm_fwd_row y", isa, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL * max_abs(B->out[0][0], n));
    check_close("layernorm_bwd_row dx", isa, n, B->out[1][1], B->out[0][1], n, RTOL, ATOL * max_abs(B->out[0][1], n));
    check_close("rmsnorm_fwd_row rstd", isa, n, &stats[1][2], &stats[0][2], 1, RTOL, ATOL);
    check_close("rmsnorm_fwd_row y", isa, n, B->out[1][2], B->out[0][2], n, RTOL, ATOL * max_abs(B->out[0][2], n));

    seed_outputs(B, r, n);
    for (int s = 0; s < 2; s++) k[s]->rmsnorm_bwd_row(B->out[s][0], B->dy, B->x, stats[0][2], B->g, C);
    check_close("rmsnorm_bwd_row dx", isa, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL * max_abs(B->out[0][0], n));
}

/* The parameter-gradient tiles: n columns of up to 5 rows, 3 floats of
 * padding between rows (a tile is a column slice of wider rows). */
static void test_norm_tiles(bufs *B, lorac_rng *r, const lorac_vkern *ref, const lorac_vkern *v, size_t n) {
    const lorac_vkern *k[2] = {ref, v};
    const int ld = (int)n + 3, N = MAXN / ld < 1 ? 1 : MAXN / ld > 5 ? 5 : MAXN / ld;
    const size_t span = (size_t)(N - 1) * ld + n; /* floats from the first to the last element */
    float mean[5], rstd[5];
    fill(r, mean, 5, -1, 1);
    fill(r, rstd, 5, 0.5f, 2);
    for (size_t i = 0; i < span; i++) B->x[i] = 0.5f + 2.0f * lorac_rng_normal(r);
    for (size_t i = 0; i < span; i++) B->dy[i] = lorac_rng_normal(r);
    seed_outputs(B, r, n);
    for (int s = 0; s < 2; s++) {
        k[s]->layernorm_params_tile(B->acc[s][0], B->acc[s][1], B->dy, B->x, mean, rstd, N, ld, (int)n);
        k[s]->rmsnorm_params_tile(B->acc[s][2], B->dy, B->x, rstd, N, ld, (int)n);
    }
    CHECK(memcmp(B->acc[1][0], B->acc[0][0], n * sizeof(double)) == 0 &&
              memcmp(B->acc[1][1], B->acc[0][1], n * sizeof(double)) == 0,
          "layernorm_params_tile [%s, n %zu, %d rows]: not bit-identical", v->name, n, N);
    CHECK(memcmp(B->acc[1][2], B->acc[0][2], n * sizeof(double)) == 0,
          "rmsnorm_params_tile [%s, n %zu, %d rows]: not bit-identical", v->name, n, N);
}

/* AdamW (with and without weight decay), the bf16 conversions and hashed dropout: exact. */
static void test_exact(bufs *B, lorac_rng *r, const lorac_vkern *ref, const lorac_vkern *v, size_t n) {
    const char *isa = v->name;
    const lorac_vkern *k[2] = {ref, v};
    for (int decay = 0; decay < 2; decay++) {
        /* w, m in out[.][0..1], v (>= 0) in out[.][2]; step 3 of lr 1e-3, betas (0.9, 0.999) */
        seed_outputs(B, r, n);
        for (size_t i = 0; i < n; i++) B->out[0][2][i] = B->out[1][2][i] = fabsf(B->out[0][2][i]) * 1e-3f;
        fill(r, B->dy, n, -1, 1);
        const lorac_adamw_scalars sc = {(float)(1e-3 / (1 - pow(0.9, 3))), (float)sqrt(1 - pow(0.999, 3)),
                                        (float)(1 - 1e-3 * 0.1), 0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, decay};
        for (int s = 0; s < 2; s++) k[s]->adamw_run(B->out[s][0], B->out[s][1], B->out[s][2], B->dy, n, &sc);
        check_bits(decay ? "adamw (decay) w, m, v" : "adamw w, m, v", isa, n, B->out[1], B->out[0],
                   sizeof B->out[0]);
    }
    /* every bit pattern is fair: NaNs, infinities, denormals, rounding ties */
    uint32_t *bits = (uint32_t *)(void *)B->x;
    for (size_t i = 0; i < n; i++) bits[i] = (uint32_t)lorac_rng_u64(r);
    const uint32_t special[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x3f808000u,
                                0x3f818000u, 0x7f7fffffu, 0x00000001u, 0x80000000u, 0x0000ffffu, 0x3f807fffu};
    for (size_t i = 0; i < n && i < sizeof special / sizeof special[0]; i++) bits[i] = special[i];
    for (int s = 0; s < 2; s++) k[s]->f32_to_bf16_run(B->h[s], B->x, n);
    check_bits("f32_to_bf16", isa, n, B->h[1], B->h[0], n * sizeof(uint16_t));
    for (int s = 0; s < 2; s++) k[s]->bf16_to_f32_run(B->out[s][0], B->h[0], n);
    check_bits("bf16_to_f32", isa, n, B->out[1][0], B->out[0][0], n * sizeof(float));
    /* hashed dropout: the element indices of a plain array (step 1) and of an attention tile's column
       (step 2^20, a key above 2^63), against lorac_hash_keep itself */
    const struct { uint64_t key, idx0, step; float p; } hd[] = {
        {0x1234, 0, 1, 0.1f}, {0xfedcba9876543210ull, ((uint64_t)37 << 40) | ((uint64_t)64 << 20) | 5, 1u << 20, 0.5f}};
    for (size_t c = 0; c < sizeof hd / sizeof hd[0]; c++) {
        fill(r, B->x, n, -2, 2);
        const float ks = 1.0f / (1.0f - hd[c].p);
        for (size_t i = 0; i < n; i++)
            B->out[0][0][i] = lorac_hash_keep(hd[c].key, hd[c].idx0 + i * hd[c].step, hd[c].p) ? B->x[i] * ks : 0.0f;
        for (int s = 0; s < 2; s++) {
            memcpy(B->out[1][s], B->x, n * sizeof(float));
            k[s]->dropout_hash_run(B->out[1][s], n, hd[c].key, hd[c].idx0, hd[c].step, hd[c].p, ks);
        }
        check_bits("dropout_hash (scalar row)", isa, n, B->out[1][0], B->out[0][0], n * sizeof(float));
        check_bits("dropout_hash", isa, n, B->out[1][1], B->out[0][0], n * sizeof(float));
    }
}

/* The float kernels on the values where formulas break first. */
static void test_specials(bufs *B, const lorac_vkern *ref, const lorac_vkern *v) {
    const float sp[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, 5.0f, -5.0f, 20.0f, -20.0f, 44.0f, -44.0f,
                        88.0f, -88.0f, 89.0f, -89.0f, 100.0f, -100.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
    const size_t n = sizeof sp / sizeof sp[0];
    const lorac_vkern *k[2] = {ref, v};
    memcpy(B->x, sp, sizeof sp);
    for (size_t i = 0; i < n; i++) B->dy[i] = B->up[i] = 1.0f;
    for (int s = 0; s < 2; s++) {
        memset(B->out[s], 0, sizeof B->out[s]);
        k[s]->exp_run(B->out[s][0], B->x, n);
        k[s]->gelu_tanh_fwd_run(B->out[s][1], B->x, n);
        k[s]->gelu_erf_fwd_run(B->out[s][2], B->x, n);
    }
    check_close("exp (special values)", v->name, n, B->out[1][0], B->out[0][0], n, RTOL, 0);
    check_close("gelu_tanh_fwd (special values)", v->name, n, B->out[1][1], B->out[0][1], n, RTOL, ATOL_ACT);
    check_close("gelu_erf_fwd (special values)", v->name, n, B->out[1][2], B->out[0][2], n, RTOL, ATOL_ERF);
    for (int s = 0; s < 2; s++) {
        memset(B->out[s], 0, sizeof B->out[s]);
        k[s]->gelu_tanh_bwd_run(B->out[s][0], B->dy, B->x, n);
        k[s]->gelu_erf_bwd_run(B->out[s][1], B->dy, B->x, n);
        k[s]->swiglu_bwd_run(B->out[s][2], B->out[s][2] + n, B->dy, B->x, B->up, n);
    }
    check_close("gelu_tanh_bwd (special values)", v->name, n, B->out[1][0], B->out[0][0], n, RTOL, ATOL_ACT);
    check_close("gelu_erf_bwd (special values)", v->name, n, B->out[1][1], B->out[0][1], n, RTOL, ATOL_ERF);
    check_close("swiglu_bwd (special values)", v->name, n, B->out[1][2], B->out[0][2], 2 * n, RTOL, ATOL_ACT);
}

/* The public ops run the active level's table: bit for bit its results. */
static void test_dispatch(bufs *B, lorac_rng *r, lorac_isa isa) {
    const lorac_isa got = lorac_isa_force(isa);
    CHECK(got == isa && lorac_isa_active() == isa, "lorac_isa_force(%s) made %s active", lorac_isa_name(isa),
          lorac_isa_name(lorac_isa_active()));
    const lorac_vkern *k = lorac_vkern_for(isa);
    CHECK(lorac_vkern_active() == k, "the active table is %s, not %s", lorac_vkern_active()->name, k->name);
    const size_t n = MAXN;
    fill(r, B->x, n, -6, 6);
    fill(r, B->g, n, 0.5f, 1.5f);
    op_gelu_tanh_fwd(B->out[0][0], B->x, n);
    k->gelu_tanh_fwd_run(B->out[1][0], B->x, n);
    check_bits("op_gelu_tanh_fwd", k->name, n, B->out[0][0], B->out[1][0], n * sizeof(float));
    const int C = 1000, N = 4; /* 4 rows of 1000 fit in MAXN */
    op_layernorm_fwd(B->out[0][1], NULL, NULL, B->x, B->g, NULL, N, C, 1e-5f);
    for (int row = 0; row < N; row++)
        k->layernorm_fwd_row(B->out[1][1] + row * C, NULL, NULL, B->x + row * C, B->g, NULL, C, 1e-5f);
    check_bits("op_layernorm_fwd", k->name, n, B->out[0][1], B->out[1][1], (size_t)N * C * sizeof(float));
    op_f32_to_bf16(B->h[0], B->x, n);
    k->f32_to_bf16_run(B->h[1], B->x, n);
    check_bits("op_f32_to_bf16", k->name, n, B->h[0], B->h[1], n * sizeof(uint16_t));

    /* lorac_optim_step on one tensor against the table's adamw_run */
    lorac_optim *o = NULL;
    CHECK_OK(lorac_optim_create(NULL, &o));
    memcpy(B->out[0][2], B->x, n * sizeof(float));
    memcpy(B->out[1][2], B->x, n * sizeof(float));
    CHECK_OK(lorac_optim_add(o, "w", B->out[0][2], B->g, n, 1, NULL));
    lorac_optim_step(o, 1e-3);
    const lorac_adamw_cfg c = LORAC_ADAMW_DEFAULTS;
    const lorac_adamw_scalars sc = {(float)(1e-3 / (1 - c.beta1)), (float)sqrt(1 - c.beta2),
                                    (float)(1 - 1e-3 * c.weight_decay), (float)c.beta1, (float)(1 - c.beta1),
                                    (float)c.beta2, (float)(1 - c.beta2), (float)c.eps, 1};
    float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    k->adamw_run(B->out[1][2], m, v, B->g, n, &sc);
    check_bits("lorac_optim_step", k->name, n, B->out[0][2], B->out[1][2], n * sizeof(float));
    free(m);
    free(v);
    lorac_optim_destroy(o);

    /* the attention flavour and the quantized tiles follow the level too */
    const char *att = op_attention_isa_name();
    CHECK(!strcmp(att, isa == LORAC_ISA_SCALAR ? "generic" : lorac_isa_name(isa)), "attention runs %s under %s", att,
          lorac_isa_name(isa));
    /* the best tile kernel at or below the level (they also want F16C, which they check) */
    lorac_qisa want = LORAC_QISA_GENERIC;
    if (isa >= LORAC_ISA_AVX2 && lorac_qisa_supported(LORAC_QISA_AVX2)) want = LORAC_QISA_AVX2;
    if (isa >= LORAC_ISA_AVX512 && lorac_qisa_supported(LORAC_QISA_AVX512)) want = LORAC_QISA_AVX512;
    CHECK(lorac_qisa_best() == want, "qmatmul runs %s under %s", lorac_qisa_name(lorac_qisa_best()),
          lorac_isa_name(isa));
}

/* ---- LORAC_ISA in the environment: a child process per value ---- */

static void print_log(int level, const char *msg, void *user) {
    (void)user;
    printf("log%d: %s\n", level, msg);
}

/* The child: the level LORAC_ISA gave it, and what follows it. */
static int print_isa(void) {
    lorac_set_log(print_log, NULL);
    printf("active=%s best=%s attention=%s qisa=%s\n", lorac_isa_name(lorac_isa_active()),
           lorac_isa_name(lorac_isa_best()), op_attention_isa_name(), lorac_qisa_name(lorac_qisa_best()));
    return 0;
}

/* Runs this program with LORAC_ISA=value (NULL: unset); its output into out. */
static int run_child(const char *self, const char *value, char *out, size_t cap) {
    if (value)
        setenv("LORAC_ISA", value, 1);
    else
        unsetenv("LORAC_ISA");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --print-isa", self);
    FILE *p = popen(cmd, "r");
    size_t len = p ? fread(out, 1, cap - 1, p) : 0;
    out[len] = 0;
    const int rc = p ? pclose(p) : -1;
    unsetenv("LORAC_ISA");
    return rc;
}

static void test_env(void) {
    char self[4096], out[2048], want[64];
    const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        printf("  (no /proc/self/exe: LORAC_ISA child checks skipped)\n");
        return;
    }
    self[len] = 0;
    const char *best = lorac_isa_name(lorac_isa_best());
    struct {
        const char *value, *active;
        int warns;
    } cases[] = {{NULL, best, 0},     {"", best, 0},         {"auto", best, 0},   {"scalar", "scalar", 0},
                 {"avx2", lorac_isa_best() >= LORAC_ISA_AVX2 ? "avx2" : best, 0},
                 {"avx512", best, 0}, {"AVX2", best, 1},     {"sse9", best, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *v = cases[i].value ? cases[i].value : "(unset)";
        CHECK(run_child(self, cases[i].value, out, sizeof out) == 0, "LORAC_ISA=%s: the child failed: %s", v, out);
        snprintf(want, sizeof want, "active=%s ", cases[i].active);
        CHECK(strstr(out, want) != NULL, "LORAC_ISA=%s: want %s, the child said: %s", v, want, out);
        CHECK(!!strstr(out, "log1: LORAC_ISA=") == cases[i].warns, "LORAC_ISA=%s: warning %s expected: %s", v,
              cases[i].warns ? "" : "not", out);
        if (cases[i].value && !strcmp(cases[i].value, "scalar"))
            CHECK(strstr(out, "attention=generic qisa=generic") != NULL, "LORAC_ISA=scalar: %s", out);
    }
    lorac_isa parsed;
    CHECK(lorac_isa_parse("avx2", &parsed) && parsed == LORAC_ISA_AVX2, "lorac_isa_parse(avx2)");
    CHECK(!lorac_isa_parse("avx-512", &parsed), "lorac_isa_parse accepted 'avx-512'");
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--print-isa")) return print_isa();
    bufs *B = calloc(1, sizeof *B);
    lorac_rng r;
    lorac_rng_seed(&r, 20240613);
    const lorac_vkern *ref = lorac_vkern_for(LORAC_ISA_SCALAR);
    printf("best level here: %s\n", lorac_isa_name(lorac_isa_best()));
    for (int isa = LORAC_ISA_SCALAR; isa < LORAC_ISA_LEVELS; isa++) {
        const lorac_vkern *v = lorac_vkern_for((lorac_isa)isa);
        if (!v) {
            printf("  %s: not run by this CPU, skipped\n", lorac_isa_name((lorac_isa)isa));
            continue;
        }
        g_worst = 0;
        g_worst_what[0] = 0;
        for (size_t s = 0; s < NSIZES; s++) {
            test_activations(B, &r, ref, v, g_sizes[s]);
            test_norms(B, &r, ref, v, g_sizes[s]);
            test_norm_tiles(B, &r, ref, v, g_sizes[s]);
            test_exact(B, &r, ref, v, g_sizes[s]);
        }
        test_specials(B, ref, v);
        test_dispatch(B, &r, (lorac_isa)isa);
        printf("  %s: largest difference from scalar %.3f x its tolerance%s%s\n", v->name, g_worst,
               g_worst_what[0] ? ", at " : "", g_worst_what);
    }
    lorac_isa_force(lorac_isa_best());
    test_env();
    free(B);
    return test_summary("test_isa_kernels");
}
