/* bench_kernels - throughput of the elementwise float kernels (ops/vkern.h)
 * at each SIMD level this CPU runs (ops/isa.h), through the public ops a
 * training step calls (op_gelu_tanh_fwd, op_layernorm_bwd, lorac_optim_step,
 * op_f32_to_bf16, op_dropout_hash, ...), so OpenMP chunking is included as in a step.
 *
 *   bench_kernels [rows] [cols] [runs]     default 1024 768 9 (GPT-2 small,
 *                                          batch 8 x 128 tokens, one layer)
 *
 * Prints the CPU model and the SIMD flags that matter here (from
 * /proc/cpuinfo), the thread count (OMP_NUM_THREADS), then one row per
 * kernel: elements per nanosecond (rows x cols / median time of `runs`
 * calls, after one warm-up call) for scalar, avx2 and avx512 ("-" where the
 * CPU lacks the level). exp and erf alone are timed through the kernel table
 * (they are parts of the activations, not ops of their own). The level is
 * switched with lorac_isa_force, as LORAC_ISA would at start-up. Never fails
 * on time. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "ops/gemm.h"
#include "ops/isa.h"
#include "ops/ops.h"
#include "ops/vkern.h"
#include "train/optim.h"

#include "bench_cpu.h"

static int g_rows = 1024, g_cols = 768;
static size_t g_n;
static float *g_x, *g_y, *g_dy, *g_dx, *g_g, *g_b, *g_mu, *g_r, *g_dg, *g_db;
static lorac_bf16 *g_h;
static lorac_optim *g_opt;

static void k_exp(void) { lorac_vkern_active()->exp_run(g_y, g_x, g_n); }
static void k_erf(void) { lorac_vkern_active()->erf_run(g_y, g_x, g_n); }
static void k_gelu_tanh_fwd(void) { op_gelu_tanh_fwd(g_y, g_x, g_n); }
static void k_gelu_tanh_bwd(void) { op_gelu_tanh_bwd(g_dx, g_dy, g_x, g_n); }
static void k_gelu_erf_fwd(void) { op_gelu_erf_fwd(g_y, g_x, g_n); }
static void k_gelu_erf_bwd(void) { op_gelu_erf_bwd(g_dx, g_dy, g_x, g_n); }
static void k_swiglu_fwd(void) { op_swiglu_fwd(g_y, g_x, g_dy, g_n); }
static void k_swiglu_bwd(void) { op_swiglu_bwd(g_dx, g_y, g_dy, g_x, g_b, g_n); }
static void k_ln_fwd(void) { op_layernorm_fwd(g_y, g_mu, g_r, g_x, g_g, g_b, g_rows, g_cols, 1e-5f); }
static void k_ln_bwd(void) { op_layernorm_bwd(g_dx, NULL, NULL, g_dy, g_x, g_mu, g_r, g_g, g_rows, g_cols); }
static void k_ln_bwd_p(void) { op_layernorm_bwd(NULL, g_dg, g_db, g_dy, g_x, g_mu, g_r, g_g, g_rows, g_cols); }
static void k_rms_fwd(void) { op_rmsnorm_fwd(g_y, g_r, g_x, g_g, g_rows, g_cols, 1e-5f); }
static void k_rms_bwd(void) { op_rmsnorm_bwd(g_dx, NULL, g_dy, g_x, g_r, g_g, g_rows, g_cols); }
static void k_rms_bwd_p(void) { op_rmsnorm_bwd(NULL, g_dg, g_dy, g_x, g_r, g_g, g_rows, g_cols); }
static void k_adamw(void) { lorac_optim_step(g_opt, 1e-4); }
static void k_to_bf16(void) { op_f32_to_bf16(g_h, g_x, g_n); }
static void k_from_bf16(void) { op_bf16_to_f32(g_y, g_h, g_n); }
static void k_dropout_hash(void) { op_dropout_hash(g_y, g_n, 0.1f, 0x5eed); }

static const struct {
    const char *name;
    void (*run)(void);
} g_k[] = {
    {"exp", k_exp},                     {"erf", k_erf},                     {"gelu_tanh_fwd", k_gelu_tanh_fwd},
    {"gelu_tanh_bwd", k_gelu_tanh_bwd}, {"gelu_erf_fwd", k_gelu_erf_fwd},   {"gelu_erf_bwd", k_gelu_erf_bwd},
    {"swiglu_fwd", k_swiglu_fwd},       {"swiglu_bwd", k_swiglu_bwd},       {"layernorm_fwd", k_ln_fwd},
    {"layernorm_bwd_dx", k_ln_bwd},     {"layernorm_bwd_dgdb", k_ln_bwd_p}, {"rmsnorm_fwd", k_rms_fwd},
    {"rmsnorm_bwd_dx", k_rms_bwd},      {"rmsnorm_bwd_dg", k_rms_bwd_p},    {"adamw", k_adamw},
    {"f32_to_bf16", k_to_bf16},         {"bf16_to_f32", k_from_bf16},       {"dropout_hash", k_dropout_hash},
};

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n values in [lo, hi) from a fixed linear congruential sequence. */
static float *arr(float lo, float hi, unsigned seed) {
    float *p = malloc(g_n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < g_n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = lo + (hi - lo) * (float)(seed >> 8) / 16777216.0f;
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc > 1) g_rows = atoi(argv[1]);
    if (argc > 2) g_cols = atoi(argv[2]);
    const int runs = argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 9;
    if (g_rows < 1 || g_cols < 1) {
        fprintf(stderr, "usage: bench_kernels [rows] [cols] [runs]\n");
        return 2;
    }
    g_n = (size_t)g_rows * g_cols;
    g_x = arr(-4, 4, 1), g_y = arr(-1, 1, 2), g_dy = arr(-1, 1, 3), g_dx = arr(-1, 1, 4), g_g = arr(0.5f, 1.5f, 5);
    g_b = arr(-1, 1, 6), g_mu = arr(0, 1, 7), g_r = arr(0, 1, 8), g_dg = arr(0, 1, 9), g_db = arr(0, 1, 10);
    g_h = malloc(g_n * sizeof *g_h);
    if (!g_h || lorac_optim_create(NULL, &g_opt) != LORAC_OK ||
        lorac_optim_add(g_opt, "w", arr(-1, 1, 11), arr(-1, 1, 12), g_n, 1, NULL) != LORAC_OK) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        return 1;
    }
    print_cpu();
    printf("threads %d, %d x %d = %zu elements, median of %d runs, elements/ns\n", omp_get_max_threads(), g_rows,
           g_cols, g_n, runs);
    printf("%-20s %10s %10s %10s\n", "kernel", "scalar", "avx2", "avx512");
    double *t = malloc((size_t)runs * sizeof *t);
    for (size_t k = 0; k < sizeof g_k / sizeof g_k[0]; k++) {
        printf("%-20s", g_k[k].name);
        for (int isa = LORAC_ISA_SCALAR; isa < LORAC_ISA_LEVELS; isa++) {
            if (lorac_isa_force((lorac_isa)isa) != (lorac_isa)isa) {
                printf(" %10s", "-");
                continue;
            }
            g_k[k].run(); /* warm-up: caches, page faults, the OpenMP team */
            for (int r = 0; r < runs; r++) {
                const double t0 = lorac_now();
                g_k[k].run();
                t[r] = lorac_now() - t0;
            }
            qsort(t, (size_t)runs, sizeof t[0], cmp_d);
            printf(" %10.3f", (double)g_n / (t[runs / 2] * 1e9));
        }
        printf("\n");
    }
    free(t);
    return 0;
}
