/* bench_gemm - time the GEMM shapes of one GPT-2 LoRA step (batch 8 x 128,
 * r 16) on the backend op_gemm uses (LORAC_GEMM=openblas for OpenBLAS), to
 * see where the LoRA factors' thin products should run.
 *   bench_gemm [N]    median of 20 runs per shape, microseconds and GFLOP/s */
#include <stdio.h>
#include <stdlib.h>

#include "core/util.h"
#include "ops/gemm.h"
#include "ops/ops.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int N = argc > 1 ? atoi(argv[1]) : 1024, r = 16;
    /* ta, tb, M, N, K, beta: what lora_layer.c and linear.c ask for, c_fc (768 -> 3072) */
    const struct { const char *what; int ta, tb, M, Nn, K; float beta; } s[] = {
        {"base fwd  y = x W^T", 0, 1, N, 3072, 768, 0},     {"base bwd  dx += dy W", 0, 0, N, 768, 3072, 1},
        {"lora xa = x A^T", 0, 1, N, r, 768, 0},             {"lora y += xa B^T", 0, 1, N, 3072, r, 1},
        {"lora dxa = dy B", 0, 0, N, r, 3072, 0},            {"lora dB += dy^T xa", 1, 0, 3072, r, N, 1},
        {"lora dA += dxa^T x", 1, 0, r, 768, N, 1},          {"lora dx += dxa A", 0, 0, N, 768, r, 1},
    };
    float *a = malloc(sizeof(float) * (size_t)N * 3072), *b = malloc(sizeof(float) * 3072 * 3072),
          *c = malloc(sizeof(float) * (size_t)N * 3072);
    for (size_t i = 0; i < (size_t)N * 3072; i++) a[i] = c[i] = 0.001f * (float)(i % 101);
    for (size_t i = 0; i < 3072 * 3072; i++) b[i] = 0.001f * (float)(i % 97);
    printf("backend %s, N = %d\n", op_gemm_backend(), N);
    for (size_t k = 0; k < sizeof s / sizeof s[0]; k++) {
        double t[20];
        const int lda = s[k].ta ? s[k].M : s[k].K, ldb = s[k].tb ? s[k].K : s[k].Nn;
        for (int i = 0; i < 20; i++) {
            double t0 = lorac_now();
            op_gemm(s[k].ta, s[k].tb, s[k].M, s[k].Nn, s[k].K, 1.0f, a, lda, b, ldb, s[k].beta, c, s[k].Nn);
            t[i] = lorac_now() - t0;
        }
        qsort(t, 20, sizeof t[0], cmp_d);
        printf("%-22s M %5d N %5d K %5d  %8.1f us  %7.1f GFLOP/s\n", s[k].what, s[k].M, s[k].Nn, s[k].K, 1e6 * t[10],
               2.0 * s[k].M * s[k].Nn * s[k].K / t[10] / 1e9);
    }
    free(a), free(b), free(c);
    return 0;
}
