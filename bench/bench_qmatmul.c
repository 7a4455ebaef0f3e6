/* bench_qmatmul - quantized linear kernels (src/quant/qmatmul.h) against
 * fp32 sgemm (cblas_sgemm, OpenBLAS) on the Linear shapes of GPT-2 124M and
 * SmolLM2-135M.
 *
 *   bench_qmatmul [N] [runs] [isa] [clock]
 *   defaults:      1024 (= batch 8 x seq 128)  7  auto  wall
 *   isa: auto | generic | avx2 | avx512
 *   clock: wall (elapsed time) | cpu (this process's CPU time: with
 *          OMP_NUM_THREADS=1 a per-core figure that other load on a shared
 *          machine does not distort)
 *
 * For every shape [in -> out] it times the forward y[N,out] = x W^T and the
 * backward to the inputs dx[N,in] += dy W: sgemm on the fp32 weight, then
 * the tiled kernel on each format (F32 = the same kernel without any
 * dequantization, then NF4 with double quantization and the GGML block
 * formats on random blocks: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, then the grouped
 * ones, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q5_K, IQ4_XS; "n/a" where `in` is not
 * a whole number of the format's blocks, e.g. K-quants on SmolLM2's 576).
 * The CPU's model and SIMD flags come first. Figures are GFLOP/s (2*N*in*out per call),
 * the median of `runs` timed calls after one warm-up; "%" is the share of
 * that shape's sgemm. Threads: OMP_NUM_THREADS (both BLAS and ours; the
 * CMake build links the OpenMP OpenBLAS). Never fails on time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>

#include "core/rng.h"
#include "core/util.h"
#include "quant/qmatmul.h"
#include "quant/qmatmul_impl.h"

#include "bench_cpu.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *model;
    int in, out;
    const char *what;
} shape;

static const shape g_shapes[] = {
    {"gpt2", 768, 768, "attn.c_proj"},   {"gpt2", 768, 2304, "attn.c_attn"}, {"gpt2", 768, 3072, "mlp.c_fc"},
    {"gpt2", 3072, 768, "mlp.c_proj"},   {"smollm2", 576, 576, "q/o_proj"}, {"smollm2", 576, 192, "k/v_proj"},
    {"smollm2", 576, 1536, "gate/up"},   {"smollm2", 1536, 576, "down_proj"},
};

static lorac_rng g_rng;

static uint8_t *random_blocks(lorac_qformat f, int64_t rows, int64_t cols, size_t *nbytes) {
    const size_t bb = qmm_block_bytes(f), nb = (size_t)(rows * (cols / lorac_qformat_row_block(f)));
    uint8_t *p = malloc(nb * bb);
    for (size_t i = 0; i < nb * bb; i++) p[i] = (uint8_t)lorac_rng_u64(&g_rng);
    /* the f16 scale (and min) fields get a finite value */
    const int at = f == LORAC_QF_Q6_K ? 208 : f == LORAC_QF_Q3_K ? 108 : f == LORAC_QF_Q2_K ? 80 : 0;
    const int has_min = f == LORAC_QF_Q4_1 || f == LORAC_QF_Q4_K || f == LORAC_QF_Q5_1 || f == LORAC_QF_Q5_K ||
                        f == LORAC_QF_Q2_K;
    for (size_t b = 0; b < nb; b++) {
        const uint16_t h = lorac_f32_to_f16(0.01f);
        p[b * bb + at] = (uint8_t)(h & 0xFF), p[b * bb + at + 1] = (uint8_t)(h >> 8);
        if (has_min) p[b * bb + at + 2] = p[b * bb + at], p[b * bb + at + 3] = p[b * bb + at + 1];
    }
    *nbytes = nb * bb;
    return p;
}

typedef void (*run_fn)(void *ctx);

static int g_cpu_clock;

static double now(void) {
    if (!g_cpu_clock) return lorac_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double median_gflops(run_fn fn, void *ctx, double flops, int runs) {
    double *t = malloc(sizeof(double) * (size_t)runs);
    fn(ctx); /* warm-up */
    for (int r = 0; r < runs; r++) {
        const double t0 = now();
        fn(ctx);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)runs, sizeof(double), cmp_d);
    const double med = t[runs / 2];
    free(t);
    return flops / med / 1e9;
}

typedef struct {
    int N, in, out;
    const float *x, *W, *dy;
    float *y, *dx;
    const lorac_qweight *qw;
    lorac_qisa isa;
} ctx_t;

static void run_sgemm_fwd(void *p) {
    ctx_t *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->N, c->out, c->in, 1.0f, c->x, c->in, c->W, c->in, 0.0f,
                c->y, c->out);
}
static void run_sgemm_bwd(void *p) {
    ctx_t *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->N, c->in, c->out, 1.0f, c->dy, c->out, c->W, c->in,
                1.0f, c->dx, c->in);
}
static void run_q_fwd(void *p) {
    ctx_t *c = p;
    if (lorac_qlinear_fwd_isa(c->isa, c->y, c->x, c->qw, NULL, c->N, 0.0f) != LORAC_OK) {
        fprintf(stderr, "bench_qmatmul: %s\n", lorac_last_error());
        exit(1);
    }
}
static void run_q_bwd(void *p) {
    ctx_t *c = p;
    if (lorac_qlinear_bwd_x_isa(c->isa, c->dx, c->dy, c->qw, c->N) != LORAC_OK) {
        fprintf(stderr, "bench_qmatmul: %s\n", lorac_last_error());
        exit(1);
    }
}

int main(int argc, char **argv) {
    const int N = argc > 1 ? atoi(argv[1]) : 1024;
    const int runs = argc > 2 ? atoi(argv[2]) : 7;
    lorac_qisa isa = LORAC_QISA_AUTO;
    if (argc > 3) {
        if (!strcmp(argv[3], "generic")) isa = LORAC_QISA_GENERIC;
        else if (!strcmp(argv[3], "avx2")) isa = LORAC_QISA_AVX2;
        else if (!strcmp(argv[3], "avx512")) isa = LORAC_QISA_AVX512;
    }
    g_cpu_clock = argc > 4 && !strcmp(argv[4], "cpu");
    if (N < 1 || runs < 1 || !lorac_qisa_supported(isa)) {
        fprintf(stderr, "usage: bench_qmatmul [N] [runs] [auto|generic|avx2|avx512] [wall|cpu] (that ISA must run "
                        "here)\n");
        return 2;
    }
    lorac_rng_seed(&g_rng, 7);
    print_cpu();
    static const lorac_qformat fmts[] = {LORAC_QF_F32,  LORAC_QF_NF4,  LORAC_QF_Q4_0,   LORAC_QF_Q4_1, LORAC_QF_Q8_0,
                                         LORAC_QF_Q4_K, LORAC_QF_Q6_K, LORAC_QF_Q5_0,   LORAC_QF_Q5_1, LORAC_QF_IQ4_NL,
                                         LORAC_QF_Q2_K, LORAC_QF_Q3_K, LORAC_QF_Q5_K,   LORAC_QF_IQ4_XS};
    const int nf = (int)(sizeof fmts / sizeof fmts[0]);
    printf("bench_qmatmul: N = %d rows, median of %d runs, %d threads, kernels: %s, %s time\n", N, runs,
           omp_get_max_threads(), lorac_qisa_name(isa == LORAC_QISA_AUTO ? lorac_qisa_best() : isa),
           g_cpu_clock ? "CPU" : "wall");
    printf("GFLOP/s (%% of the same shape's sgemm); fwd: y = x W^T, bwd: dx += dy W\n\n");
    printf("| model   | in -> out    | dir | sgemm |");
    for (int f = 0; f < nf; f++) printf(" %-11s |", lorac_qformat_name(fmts[f]));
    printf("\n|---------|--------------|-----|------:|");
    for (int f = 0; f < nf; f++) printf("------------:|");
    printf("\n");
    double sum_pct[2][16] = {{0}};
    int cnt[2][16] = {{0}};
    const int nshapes = (int)(sizeof g_shapes / sizeof g_shapes[0]);
    for (int s = 0; s < nshapes; s++) {
        const shape *sh = &g_shapes[s];
        const size_t nw = (size_t)sh->in * sh->out;
        float *W = malloc(sizeof(float) * nw), *x = malloc(sizeof(float) * (size_t)N * sh->in);
        float *dy = malloc(sizeof(float) * (size_t)N * sh->out), *y = malloc(sizeof(float) * (size_t)N * sh->out);
        float *dx = calloc((size_t)N * sh->in, sizeof(float));
        for (size_t i = 0; i < nw; i++) W[i] = lorac_rng_normal(&g_rng) * 0.02f;
        for (size_t i = 0; i < (size_t)N * sh->in; i++) x[i] = lorac_rng_normal(&g_rng);
        for (size_t i = 0; i < (size_t)N * sh->out; i++) dy[i] = lorac_rng_normal(&g_rng);
        lorac_qweight qw[16];
        void *store[16] = {0};
        int have[16] = {0};
        for (int f = 0; f < nf; f++) {
            lorac_status st;
            if (sh->in % lorac_qformat_row_block(fmts[f]) != 0) continue; /* e.g. K-quants need in % 256 == 0 */
            have[f] = 1;
            if (fmts[f] == LORAC_QF_F32)
                st = lorac_qweight_view(&qw[f], fmts[f], W, sizeof(float) * nw, sh->out, sh->in);
            else if (fmts[f] == LORAC_QF_NF4)
                st = lorac_qweight_quantize_nf4(&qw[f], W, sh->out, sh->in);
            else {
                size_t nb = 0;
                store[f] = random_blocks(fmts[f], sh->out, sh->in, &nb);
                st = lorac_qweight_view(&qw[f], fmts[f], store[f], nb, sh->out, sh->in);
            }
            if (st != LORAC_OK) {
                fprintf(stderr, "bench_qmatmul: %s\n", lorac_last_error());
                return 1;
            }
        }
        const double flops = 2.0 * N * sh->in * sh->out;
        for (int dir = 0; dir < 2; dir++) {
            ctx_t c = {N, sh->in, sh->out, x, W, dy, y, dx, NULL, isa};
            const double g0 = median_gflops(dir ? run_sgemm_bwd : run_sgemm_fwd, &c, flops, runs);
            printf("| %-7s | %4d -> %-5d | %s | %5.0f |", sh->model, sh->in, sh->out, dir ? "bwd" : "fwd", g0);
            for (int f = 0; f < nf; f++) {
                if (!have[f]) {
                    printf("         n/a |");
                    continue;
                }
                c.qw = &qw[f];
                const double g = median_gflops(dir ? run_q_bwd : run_q_fwd, &c, flops, runs);
                printf(" %4.0f (%3.0f%%) |", g, 100.0 * g / g0);
                sum_pct[dir][f] += 100.0 * g / g0;
                cnt[dir][f]++;
            }
            printf("\n");
            fflush(stdout);
        }
        for (int f = 0; f < nf; f++) {
            if (have[f]) lorac_qweight_free(&qw[f]);
            free(store[f]);
        }
        free(W), free(x), free(dy), free(y), free(dx);
    }
    for (int dir = 0; dir < 2; dir++) {
        printf("| mean %% of sgemm       | %s |       |", dir ? "bwd" : "fwd");
        for (int f = 0; f < nf; f++) printf("      %3.0f%%  |", cnt[dir][f] ? sum_pct[dir][f] / cnt[dir][f] : 0.0);
        printf("\n");
    }
    return 0;
}
