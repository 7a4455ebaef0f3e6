/* bench_step - time one LoRA training step (forward, loss, backward) on
 * random weights of a real model's shape, and measure this machine's sgemm
 * peak in the same process, so the step can be reported as a fraction of it.
 *
 *   bench_step [gpt2|smollm2] [batch] [seq] [r] [steps] [targets]
 *   defaults:  gpt2 8 128 16 10 all-linear
 *   bench_step peak     this machine's GEMM peaks (OpenBLAS sgemm, op_gemm
 *                       fp32 and bf16 at 1536^3) as one JSON line
 *   Environment:
 *   LORAC_QLORA=nf4     QLoRA: the block Linears of the base and the token
 *                       embedding quantized to NF4 (lorac_model_quantize,
 *                       lorac_model_quantize_embedding) before the adapters
 *                       go on; LORAC_QEMBED=off leaves the embedding fp32;
 *                       q4_0, q4_1, q8_0, q4_k, q6_k: GGML blocks instead
 *                       (a GGUF file's base, made from the random weights)
 *   LORAC_BASE=bf16     the block Linears held in bf16 (--base bf16)
 *   LORAC_BENCH_MODE=infer   forward only (no loss, no backward), with the
 *                       adapters unmerged, or merged into the base when
 *                       LORAC_BENCH_MERGED=1
 *   LORAC_BENCH_CKPT=1  gradient checkpointing (lorac_model_set_grad_ckpt)
 *   LORAC_BENCH_JSON=1  print one JSON line instead of the table row
 *
 * A training step is forward, loss, backward and the AdamW step over the
 * trainable parameters (as the peers in bench/peers/ time it).
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
#include <strings.h>

#include <cblas.h>
#include <omp.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/util.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "train/optim.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Best GFLOP/s of 5 runs of a 1536^3 product: 0 = OpenBLAS cblas_sgemm,
 * 1 = op_gemm (the backend lorac uses), 2 = op_gemm_bf16. */
static double gemm_peak(int which) {
    const int n = 1536;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
    lorac_bf16 *ah = malloc(sizeof(lorac_bf16) * n * n), *bh = malloc(sizeof(lorac_bf16) * n * n);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = 0.001f * (float)(i % 977);
    op_f32_to_bf16(ah, a, (size_t)n * n);
    op_f32_to_bf16(bh, b, (size_t)n * n);
    double best = 0;
    for (int k = 0; k < 5; k++) {
        double t = lorac_now();
        if (which == 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else if (which == 1)
            op_gemm(0, 1, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        else
            op_gemm_bf16(0, 1, n, n, n, 1.0f, ah, n, bh, n, 0.0f, c, n);
        t = lorac_now() - t;
        double g = 2.0 * n * n * n / t / 1e9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    free(ah);
    free(bh);
    return best;
}

static int env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && !strcmp(v, value);
}

/* Reset the peak RSS (VmHWM, getrusage's ru_maxrss) to the current RSS: 1 on success. */
static int reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

typedef struct { lorac_optim *o; lorac_status st; } optim_ctx;
static void add_trainable(lorac_weight *w, void *ctx) {
    optim_ctx *c = ctx;
    if (c->st == LORAC_OK) c->st = lorac_optim_add(c->o, w->name, w->data, w->grad, w->n, 1, NULL);
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
    if (argc > 1 && !strcmp(argv[1], "peak")) {
        const double s = gemm_peak(0), f = gemm_peak(1), h = gemm_peak(2);
        printf("{\"threads\": %d, \"backend\": \"%s\", \"bf16_native\": %d, \"sgemm_openblas_gflops\": %.1f, "
               "\"gemm_f32_gflops\": %.1f, \"gemm_bf16_gflops\": %.1f}\n",
               omp_get_max_threads(), op_gemm_backend(), op_gemm_bf16_native(), s, f, h);
        return 0;
    }
    const char *name = argc > 1 ? argv[1] : "gpt2";
    const int B = argc > 2 ? atoi(argv[2]) : 8, T = argc > 3 ? atoi(argv[3]) : 128, r = argc > 4 ? atoi(argv[4]) : 16;
    const int steps = argc > 5 ? atoi(argv[5]) : 10;
    const char *targets = argc > 6 ? argv[6] : "all-linear";
    const int bf16 = env_is("LORAC_BASE", "bf16"), infer = env_is("LORAC_BENCH_MODE", "infer");
    const int merged = env_is("LORAC_BENCH_MERGED", "1"), json = env_is("LORAC_BENCH_JSON", "1");
    const double peak_blas = gemm_peak(0), peak_own = gemm_peak(bf16 ? 2 : 1);
    const double peak = peak_own > peak_blas ? peak_own : peak_blas;
    lorac_config cfg = shape(name);
    lorac_model *m;
    if (lorac_model_create_random(&cfg, 1, &m) != LORAC_OK || lorac_model_add_head(m, 2, 0, LORAC_HEAD_INIT_HF, 1) != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
    const char *ql = getenv("LORAC_QLORA");
    const int qlora = ql && *ql;
    lorac_qformat qf = LORAC_QF_NONE;
    for (int f = LORAC_QF_NF4; qlora && f <= LORAC_QF_Q6_K; f++)
        if (!strcasecmp(ql, lorac_qformat_name((lorac_qformat)f))) qf = (lorac_qformat)f;
    if (qlora && !qf) {
        fprintf(stderr, "bench_step: LORAC_QLORA=%s: expected nf4, q4_0, q4_1, q8_0, q4_k or q6_k\n", ql);
        return 1;
    }
    if (qlora && bf16) {
        fprintf(stderr, "bench_step: LORAC_QLORA and LORAC_BASE=bf16 exclude each other\n");
        return 1;
    }
    const char *qe = getenv("LORAC_QEMBED");
    if (((qlora || bf16) && lorac_model_quantize(m, bf16 ? LORAC_QF_BF16 : qf) != LORAC_OK) ||
        (qlora && !(qe && !strcmp(qe, "off")) && lorac_model_quantize_embedding(m, qf) != LORAC_OK)) {
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
    double flop_tok = 4 * P + lora + 6.0 * T * cfg.n_head * cfg.head_dim * cfg.n_layer;
    if (infer) flop_tok = 2 * P + (merged ? 0 : lora / 3) + 2.0 * T * cfg.n_head * cfg.head_dim * cfg.n_layer;
    if (infer && merged && lorac_lora_merge(m) != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
    const int ckpt = env_is("LORAC_BENCH_CKPT", "1");
    if (ckpt && lorac_model_set_grad_ckpt(m, 1) != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
    lorac_optim *opt = NULL;
    lorac_status ost = lorac_optim_create(NULL, &opt);
    optim_ctx oc = {opt, ost};
    if (!infer && ost == LORAC_OK) lorac_for_each_trainable(m, add_trainable, &oc);
    if (oc.st != LORAC_OK) {
        fprintf(stderr, "bench_step: %s\n", lorac_last_error());
        return 1;
    }
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
        if (!infer) {
            int cnt;
            op_xent(m->acts.cls_logits, m->acts.cls_logits, labels, B, 2, 1.0f / B, &cnt);
            lorac_model_backward(m, ids, B, T, LORAC_FWD_CLS);
            lorac_optim_step(opt, 1e-4);
            lorac_optim_zero_grad(opt);
        }
        t[s] = lorac_now() - t0;
    }
    qsort(t + 2, steps, sizeof(double), cmp_d);
    const double med = t[2 + steps / 2], tok_s = B * T / med, gflops = flop_tok * B * T / med / 1e9;
    int64_t tr, all;
    lorac_count_params(m, &tr, &all);
    char qprec[32];
    snprintf(qprec, sizeof qprec, "%s%s", qlora ? lorac_qformat_name(qf) : "", ckpt ? "+ckpt" : "");
    const char *prec = qlora ? qprec : bf16 ? (ckpt ? "bf16+ckpt" : "bf16") : ckpt ? "fp32+ckpt" : "fp32";
    const char *mode = infer ? (merged ? "infer-merged" : "infer") : "train";
    if (json)
        printf("{\"impl\": \"lorac\", \"mode\": \"%s\", \"model\": \"%s\", \"batch\": %d, \"seq\": %d, "
               "\"threads\": %d, \"r\": %d, \"targets\": \"%s\", \"precision\": \"%s\", \"trainable\": %lld, "
               "\"ms_median\": %.2f, \"ms_min\": %.2f, \"ms_max\": %.2f, \"steps\": %d, \"tok_s\": %.1f, "
               "\"gflops\": %.1f, \"peak_gflops\": %.1f, \"rss_mb\": %.1f, \"rss_scope\": \"%s\", "
               "\"gemm\": \"%s\", \"base_bytes_per_param\": %.3f}\n",
               mode, name, B, T, omp_get_max_threads(), r, targets, prec, (long long)tr, 1e3 * med, 1e3 * t[2],
               1e3 * t[steps + 1], steps, tok_s, gflops, peak, lorac_peak_rss() / 1048576.0,
               hwm_reset ? "steps" : "process", op_gemm_backend(), qs.base_bytes / (double)qs.base_params);
    else
        printf("%-8s %s B=%d T=%-4d threads=%d r=%d targets=%s trainable=%lld | %8.1f ms/step (%.1f-%.1f) | %7.1f tok/s "
               "| %6.1f GFLOP/s | %4.0f%% of GEMM peak %.0f GFLOP/s (%s) | peak RSS %.0f MB (%s) | base %s %.2f "
               "bytes/param (Linears %.2f bits/param)\n",
               name, mode, B, T, omp_get_max_threads(), r, targets, (long long)tr, 1e3 * med, 1e3 * t[2],
               1e3 * t[steps + 1], tok_s, gflops, 100 * gflops / peak, peak, op_gemm_backend(),
               lorac_peak_rss() / 1048576.0, hwm_reset ? "steps" : "process", prec,
               qs.base_bytes / (double)qs.base_params, qs.q_params ? 8 * qs.q_bytes / (double)qs.q_params : 32.0);
    lorac_optim_destroy(opt);
    free(ids);
    free(t);
    lorac_model_free(m);
    return 0;
}
