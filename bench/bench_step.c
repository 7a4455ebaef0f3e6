/* bench_step - time one LoRA training step (forward, loss, backward) on
 * random weights of a real model's shape, and measure this machine's sgemm
 * peak in the same process, so the step can be reported as a fraction of it.
 *
 *   bench_step [gpt2|smollm2] [batch] [seq] [r] [steps] [targets]
 *   defaults:  gpt2 8 128 16 10 all-linear
 *   LORAC_QLORA=nf4 in the environment: QLoRA, the block Linears of the
 *   base quantized to NF4 (lorac_model_quantize) before the adapters go on.
 *
 * Prints one table row: ms/step (median, min-max over `steps` timed steps
 * after 2 warm-up steps), tokens/s, achieved GFLOP/s (model FLOPs below),
 * fraction of the measured sgemm peak, peak RSS, the base's storage (bytes
 * per base parameter, and bits per parameter of its Linears). Peak RSS is
 * that of the steps: the high-water mark is reset after setup through
 * /proc/self/clear_refs (so the fp32 random weights made before quantizing
 * do not count; the model and adapters do), "(process)" where that reset
 * is not possible. Never fails on time.
 *
 * Model FLOPs of a LoRA step: forward 2·P and backward-to-inputs 2·P per
 * token for the frozen matmul parameters P (no weight gradients), plus
 * 6·r·(in+out) per adapted Linear per token, plus causal attention
 * 6·T·Hq·D per layer per token (fwd 2·T·Hq·D for QK^T and AV over the
 * causal half, backward twice that). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/util.h"
#include "lora/lora.h"
#include "ops/ops.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sgemm_peak(void) {
    const int n = 1536;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 977);
    double best = 0;
    for (int k = 0; k < 5; k++) {
        double t = lorac_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = lorac_now() - t;
        double g = 2.0 * n * n * n / t / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* Reset the peak RSS (VmHWM, getrusage's ru_maxrss) to the current RSS: 1 on success. */
static int reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static lorac_config shape(const char *name) {
    lorac_config c;
    memset(&c, 0, sizeof c);
    if (!strcmp(name, "smollm2")) {
        c.arch = LORAC_ARCH_LLAMA;
        strcpy(c.model_type, "llama");
        c.vocab = 49152, c.n_ctx = 2048, c.dim = 576, c.n_layer = 30, c.n_head = 9, c.n_kv_head = 3, c.ffn_dim = 1536;
        c.norm_eps = 1e-5f, c.rope_theta = 100000, c.tied = 1;
    } else {
        c.arch = LORAC_ARCH_GPT2;
        strcpy(c.model_type, "gpt2");
        c.vocab = 50257, c.n_ctx = 1024, c.dim = 768, c.n_layer = 12, c.n_head = 12, c.n_kv_head = 12, c.ffn_dim = 3072;
        c.norm_eps = 1e-5f, c.tied = 1, c.attn_bias = c.mlp_bias = 1;
    }
    c.bos_id = c.eos_id = c.pad_id = -1;
    lorac_config_check(&c, name);
    return c;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "gpt2";
    const int B = argc > 2 ? atoi(argv[2]) : 8, T = argc > 3 ? atoi(argv[3]) : 128, r = argc > 4 ? atoi(argv[4]) : 16;
    const int steps = argc > 5 ? atoi(argv[5]) : 10;
    const char *targets = argc > 6 ? argv[6] : "all-linear";
    const double peak = sgemm_peak();
    lorac_config cfg = shape(name);
    lorac_model *m;
    if (lorac_model_create_random(&cfg, 1, &m) != LORAC_OK || lorac_model_add_head(m, 2, 1, 1) != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
    const char *ql = getenv("LORAC_QLORA");
    const int qlora = ql && *ql;
    if (qlora && strcmp(ql, "nf4")) {
        fprintf(stderr, "bench_step: LORAC_QLORA=%s: only nf4\n", ql);
        return 1;
    }
    if (qlora && lorac_model_quantize(m, LORAC_QF_NF4) != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
#ifdef __GLIBC__
    /* the freed fp32 weights sit in the middle of the heap (sgemm_peak's
       buffers raised glibc's mmap threshold): hand their pages back */
    malloc_trim(0);
#endif
    lorac_qstats qs;
    lorac_model_qstats(m, &qs);
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = r;
    lc.alpha = (float)r;
    if (lorac_lora_parse_list(targets, lc.targets, &lc.n_targets, "targets") != LORAC_OK ||
        lorac_lora_apply(m, &lc, NULL) != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
    /* FLOPs per token */
    double P = 0, lora = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (L == m->lm_head) continue; /* classification: the LM head is not run */
        P += (double)L->in * L->out;
        if (L->lora) lora += 6.0 * L->lora->r * L->lora->parts * (L->in + (double)L->out / L->lora->parts);
    }
    const double flop_tok = 4 * P + lora + 6.0 * T * cfg.n_head * cfg.head_dim * cfg.n_layer;
    int *ids = malloc(sizeof(int) * B * T), labels[4096];
    const int hwm_reset = reset_hwm();
    for (int i = 0; i < B * T; i++) ids[i] = (int)((i * 7919u) % (unsigned)cfg.vocab);
    for (int i = 0; i < B; i++) labels[i] = i & 1;
    double *t = malloc(sizeof(double) * (steps + 2));
    for (int s = 0; s < steps + 2; s++) {
        double t0 = lorac_now();
        if (lorac_model_forward(m, ids, NULL, B, T, LORAC_FWD_CLS) != LORAC_OK) {
            fprintf(stderr, "bench_step: %s\n", lorac_last_error());
            return 1;
        }
        int cnt;
        op_xent(m->acts.cls_logits, m->acts.cls_logits, labels, B, 2, 1.0f / B, &cnt);
        lorac_model_backward(m, ids, B, T, LORAC_FWD_CLS);
        t[s] = lorac_now() - t0;
    }
    qsort(t + 2, steps, sizeof(double), cmp_d);
    const double med = t[2 + steps / 2], tok_s = B * T / med, gflops = flop_tok * B * T / med / 1e9;
    int64_t tr, all;
    lorac_count_params(m, &tr, &all);
    printf("%-8s B=%d T=%-4d threads=%d r=%d targets=%s trainable=%lld | %8.1f ms/step (%.1f-%.1f) | %7.1f tok/s | "
           "%6.1f GFLOP/s | %4.0f%% of sgemm peak %.0f GFLOP/s | peak RSS %.0f MB (%s) | base %s %.2f bytes/param "
           "(Linears %.2f bits/param)\n",
           name, B, T, omp_get_max_threads(), r, targets, (long long)tr, 1e3 * med, 1e3 * t[2], 1e3 * t[steps + 1],
           tok_s, gflops, 100 * gflops / peak, peak, lorac_peak_rss() / 1048576.0, hwm_reset ? "steps" : "process",
           qlora ? "nf4" : "fp32", qs.base_bytes / (double)qs.base_params,
           qs.q_params ? 8 * qs.q_bytes / (double)qs.q_params : 32.0);
    free(ids);
    free(t);
    lorac_model_free(m);
    return 0;
}
