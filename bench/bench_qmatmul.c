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
 * CMake build links the OpenMP OpenBLAS). Never fails on time.
 *
 *   bench_qmatmul decode [N] [runs] [isa] [fmts] [clock]     (N <= 512)
 *   defaults:             1  15     auto  F32,BF16,NF4,Q4_0,Q4_1,Q5_0,Q8_0,Q4_K,Q6_K ("all": every format)  wall
 *
 * Decoding: the forward at N = 1..8 rows on the Linear shapes of
 * SmolLM2-135M and Qwen2.5-0.5B (their LM heads included), old road
 * against new: for the quantized formats the GEMV road (qgemv.c) with fp32
 * activations (LORAC_QACT_F32) against int8 activations (LORAC_QACT_Q8,
 * qdot.c; NF4 and BF16 have no int8 road: the same twice); for F32 the
 * backend sgemm (op_gemm_backend_only: oneDNN / OpenBLAS) against op_gemm
 * (its choice at small N), beside OpenBLAS's cblas_sgemv (N calls) and the
 * hand kernel op_gemv_nt, which op_gemm chooses between. Each row: the weight's
 * bytes, microseconds per call (median), and the GB/s of weight bytes that
 * makes, next to this machine's memory bandwidth measured first by a read
 * loop and a copy loop over 512 MiB with the same threads.
 *
 * N = 9..512 measures a prompt's prefill the same way: old = the fp32 road
 * training keeps (lorac_qlinear_fwd: with auto, the whole-matrix oneDNN
 * road for N >= 16, the tiles below), new = the int8 road inference takes
 * at any N (lorac_qlinear_fwd_infer, qgemv.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <omp.h>

#include "core/rng.h"
#include "core/util.h"
#include "ops/gemm.h"
#include "ops/ops.h"
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

/* ---- decode: small N, old road against new -------------------------------- */

static double median_s(run_fn fn, void *ctx, int runs) {
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
    return med;
}

typedef struct {
    uint64_t *a, *b;
    size_t n; /* 64-bit words */
    uint64_t sink;
} bw_t;

static void run_read(void *p) {
    bw_t *c = p;
    uint64_t s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < c->n; i++) s += c->a[i];
    c->sink += s;
}
static void run_copy(void *p) {
    bw_t *c = p;
    const size_t chunk = 1 << 20, nch = (c->n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nch; k++) {
        const size_t i = k * chunk, len = c->n - i < chunk ? c->n - i : chunk;
        memcpy(c->b + i, c->a + i, len * 8);
    }
}

/* GB/s reading and copying (read + write bytes) 512 MiB. */
static void memory_bandwidth(int runs) {
    bw_t c = {0};
    c.n = (size_t)64 << 20;
    c.a = malloc(c.n * 8), c.b = malloc(c.n * 8);
    for (size_t i = 0; i < c.n; i++) c.a[i] = i, c.b[i] = 0;
    const double tr = median_s(run_read, &c, runs), tc = median_s(run_copy, &c, runs);
    printf("memory bandwidth (%d threads, 512 MiB): read %.1f GB/s, copy %.1f GB/s (read + write bytes)%s\n",
           omp_get_max_threads(), c.n * 8 / tr / 1e9, 2.0 * c.n * 8 / tc / 1e9, c.sink == 1 ? " " : "");
    free(c.a), free(c.b);
}

typedef struct {
    ctx_t c;
    int road; /* 0: tiles / backend sgemm, 1: new road (F32: op_gemm), 2: cblas_sgemv, 3: op_gemv_nt */
} dctx_t;

static void run_decode(void *p) {
    dctx_t *d = p;
    ctx_t *c = &d->c;
    lorac_status st = LORAC_OK;
    if (c->qw->fmt == LORAC_QF_F32 && d->road == 0)
        op_gemm_backend_only(0, 1, c->N, c->out, c->in, 1.0f, c->x, c->in, c->W, c->in, 0.0f, c->y, c->out);
    else if (c->qw->fmt == LORAC_QF_F32 && d->road == 1)
        op_gemm(0, 1, c->N, c->out, c->in, 1.0f, c->x, c->in, c->W, c->in, 0.0f, c->y, c->out);
    else if (c->qw->fmt == LORAC_QF_F32 && d->road == 3)
        op_gemv_nt(c->N, c->out, c->in, 1.0f, c->x, c->in, c->W, c->in, 0.0f, c->y, c->out);
    else if (c->qw->fmt == LORAC_QF_F32 && d->road == 2)
        for (int n = 0; n < c->N; n++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, c->out, c->in, 1.0f, c->W, c->in, c->x + (size_t)n * c->in, 1,
                        0.0f, c->y + (size_t)n * c->out, 1);
    else {
        lorac_qact_force(d->road == 0 ? LORAC_QACT_F32 : LORAC_QACT_Q8);
        st = lorac_qlinear_fwd_infer_isa(c->isa, c->y, c->x, c->qw, NULL, c->N, 0.0f);
    }
    if (st != LORAC_OK) {
        fprintf(stderr, "bench_qmatmul: %s\n", lorac_last_error());
        exit(1);
    }
}

static const shape g_decode_shapes[] = {
    {"smollm2", 576, 576, "q/o_proj"},   {"smollm2", 576, 192, "k/v_proj"}, {"smollm2", 576, 1536, "gate/up"},
    {"smollm2", 1536, 576, "down_proj"}, {"smollm2", 576, 49152, "lm_head"}, {"qwen2.5", 896, 896, "q/o_proj"},
    {"qwen2.5", 896, 128, "k/v_proj"},   {"qwen2.5", 896, 4864, "gate/up"}, {"qwen2.5", 4864, 896, "down_proj"},
    {"qwen2.5", 896, 151936, "lm_head"},
};

static int decode_main(int N, int runs, lorac_qisa isa, const char *fmts) {
    print_cpu();
    printf("bench_qmatmul decode: N = %d rows, median of %d runs, %d threads, kernels: %s, %s time\n", N, runs,
           omp_get_max_threads(), lorac_qisa_name(isa == LORAC_QISA_AUTO ? lorac_qisa_best() : isa),
           g_cpu_clock ? "CPU" : "wall");
    memory_bandwidth(runs);
    printf("old: fp32 activations (quantized: the GEMV road for N <= 8, training's road above) / backend sgemm %s "
           "(F32); new: int8 activations (quantized, lorac_qlinear_fwd_infer; F32: op_gemm, which picks sgemv or "
           "op_gemv_nt at N = 1);\nGB/s = weight bytes / time; F32 only: cblas_sgemv (N calls) and op_gemv_nt\n\n",
           op_gemm_backend());
    printf("| model   | in -> out      | fmt    | MB     | old us   | new us   | new GB/s | old/new | sgemv us | gemv_nt us |\n");
    printf("|---------|----------------|--------|-------:|---------:|---------:|---------:|--------:|---------:|---------:|\n");
    const int nshapes = (int)(sizeof g_decode_shapes / sizeof g_decode_shapes[0]);
    for (int s = 0; s < nshapes; s++) {
        const shape *sh = &g_decode_shapes[s];
        const size_t nw = (size_t)sh->in * sh->out;
        float *W = NULL, *x = malloc(sizeof(float) * (size_t)N * sh->in), *y = malloc(sizeof(float) * (size_t)N * sh->out);
        for (size_t i = 0; i < (size_t)N * sh->in; i++) x[i] = lorac_rng_normal(&g_rng);
        for (int f = LORAC_QF_F32; f < LORAC_QF_COUNT; f++) {
            char key[16];
            snprintf(key, sizeof key, ",%s,", lorac_qformat_name((lorac_qformat)f));
            char list[256];
            snprintf(list, sizeof list, ",%s,", fmts);
            if (strcmp(fmts, "all") && !strstr(list, key)) continue;
            if (sh->in % lorac_qformat_row_block((lorac_qformat)f)) continue;
            if (!W && (f == LORAC_QF_F32 || f == LORAC_QF_NF4 || f == LORAC_QF_BF16)) {
                W = malloc(sizeof(float) * nw);
                for (size_t i = 0; i < nw; i++) W[i] = lorac_rng_normal(&g_rng) * 0.02f;
            }
            lorac_qweight qw;
            void *store = NULL;
            lorac_status st;
            if (f == LORAC_QF_F32)
                st = lorac_qweight_view(&qw, LORAC_QF_F32, W, sizeof(float) * nw, sh->out, sh->in);
            else if (f == LORAC_QF_NF4)
                st = lorac_qweight_quantize_nf4(&qw, W, sh->out, sh->in);
            else if (f == LORAC_QF_BF16)
                st = lorac_qweight_from_f32_bf16(&qw, W, sh->out, sh->in);
            else {
                size_t nb = 0;
                store = random_blocks((lorac_qformat)f, sh->out, sh->in, &nb);
                st = lorac_qweight_view(&qw, (lorac_qformat)f, store, nb, sh->out, sh->in);
            }
            if (st != LORAC_OK) {
                fprintf(stderr, "bench_qmatmul: %s\n", lorac_last_error());
                return 1;
            }
            dctx_t d = {{N, sh->in, sh->out, x, W, NULL, y, NULL, &qw, isa}, 0};
            const double t_old = median_s(run_decode, &d, runs);
            d.road = 1;
            const double t_new = median_s(run_decode, &d, runs);
            const double mb = (double)lorac_qweight_nbytes(&qw) / 1e6;
            printf("| %-7s | %5d -> %-6d | %-6s | %6.2f | %8.1f | %8.1f | %8.1f | %6.2fx |", sh->model, sh->in,
                   sh->out, lorac_qformat_name((lorac_qformat)f), mb, t_old * 1e6, t_new * 1e6, mb / 1e3 / t_new,
                   t_old / t_new);
            if (f == LORAC_QF_F32) {
                d.road = 2;
                const double t_sgemv = median_s(run_decode, &d, runs);
                d.road = 3;
                printf(" %8.1f | %8.1f |\n", t_sgemv * 1e6, median_s(run_decode, &d, runs) * 1e6);
            } else {
                printf("        - |        - |\n");
            }
            fflush(stdout);
            lorac_qweight_free(&qw);
            free(store);
        }
        free(W), free(x), free(y);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "decode")) {
        const int N = argc > 2 ? atoi(argv[2]) : 1, runs = argc > 3 ? atoi(argv[3]) : 15;
        lorac_qisa isa = LORAC_QISA_AUTO;
        if (argc > 4 && !strcmp(argv[4], "generic")) isa = LORAC_QISA_GENERIC;
        if (argc > 4 && !strcmp(argv[4], "avx2")) isa = LORAC_QISA_AVX2;
        if (argc > 4 && !strcmp(argv[4], "avx512")) isa = LORAC_QISA_AVX512;
        if (N < 1 || N > 512 || runs < 1 || !lorac_qisa_supported(isa)) {
            fprintf(stderr, "usage: bench_qmatmul decode [N 1..512] [runs] [auto|generic|avx2|avx512] [FMT,FMT,...|all] [wall|cpu]\n");
            return 2;
        }
        g_cpu_clock = argc > 6 && !strcmp(argv[6], "cpu");
        lorac_rng_seed(&g_rng, 7);
        return decode_main(N, runs, isa, argc > 5 ? argv[5] : "F32,BF16,NF4,Q4_0,Q4_1,Q5_0,Q8_0,Q4_K,Q6_K");
    }
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
