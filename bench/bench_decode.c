/* bench_decode - prompt and decode speed over the KV cache (models/kvcache.h):
 * an adapter merged against unmerged, one sequence or several decoding
 * together with different adapters.
 *
 *   bench_decode MODEL [--base fp32|keep|bf16|nf4] [--r N] [--targets attn|all-linear|LIST]
 *                [--batch 1,4,8] [--prompt P] [--gen G] [--runs R]
 *   MODEL   a Hugging Face directory or a .gguf file
 *   --base  fp32 (default; a GGUF's blocks dequantized at load), keep (a
 *           GGUF's own Q4_1 / Q8_0 ... blocks kept, lorac_model_load_quantized
 *           KEEP), bf16 (--base bf16), nf4 (QLoRA's base)
 *   --r 8, --targets attn (= q,k,v,o projections) or all-linear or a list
 *   --batch 1,4,8: the batch sizes, each a row group
 *   --prompt 64 --gen 32: tokens per sequence prefilled, then decode steps
 *   --runs 5: timed runs per (batch, mode), interleaved across the modes
 *
 * Modes, per batch size B (every sequence P random prompt tokens, then G
 * steps of one token each, all B sequences in one lorac_model_decode call
 * per step):
 *   merged    the adapter folded into the base: decoding pays the base's
 *             cost alone (the adapter's pairs are flagged merged, which is
 *             what lorac_lora_merge leaves: the per-token work of a merged
 *             model, without rewriting a quantized base)
 *   unmerged  every sequence with the same adapter (r, targets above,
 *             random A and nonzero B) applied on the fly: y = x W^T + s (x A^T) B^T
 *   multi     (B > 1) each sequence its own adapter of the same shape:
 *             one base GEMM, B adapter terms (S-LoRA / Punica)
 * Prints the CPU line (bench_cpu.h), the thread count and GEMM backend,
 * then per row: prompt tok/s (B P tokens over the prefill call), decode
 * tok/s (B G tokens over the G steps), ms per step, each the median of the
 * runs (min-max of decode ms/step beside it), and the decode time per step
 * over merged's. The goal: unmerged <= 1.10x merged. Never fails
 * on time. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cpu.h"
#include "core/util.h"
#include "lora/lora.h"
#include "models/kvcache.h"
#include "models/model.h"
#include "ops/gemm.h"

static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what) {
    fprintf(stderr, "bench_decode: %s: %s\n", what, lorac_last_error());
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_decode MODEL [--base fp32|keep|bf16|nf4] [--r N] [--targets attn|all-linear|LIST] "
                    "[--batch 1,4,8] [--prompt P] [--gen G] [--runs R]\n");
    exit(2);
}

static lorac_rng rng;

static void fill(lorac_weight *w, float s) {
    for (size_t i = 0; i < w->n; i++) w->data[i] = s * lorac_rng_normal(&rng);
}

/* One table per sequence for `multi`: pairs shaped as the model's own adapter, random A and B. */
static lorac_lora **make_table(const lorac_model *m, float alpha) {
    lorac_lora **t = calloc((size_t)m->n_lin, sizeof *t);
    for (int i = 0; t && i < m->n_lin; i++) {
        const lorac_lora *own = m->lin[i].lora;
        if (!own) continue;
        if (lorac_lora_new(&m->lin[i], own->r, own->parts, alpha, own->scale, 0, 0, &t[i]) != LORAC_OK) die("adapter");
        fill(&t[i]->A, 0.05f);
        fill(&t[i]->B, 0.05f);
    }
    return t;
}

typedef struct { double prompt_s, step_s; } timing;

/* One run: B sequences prefilled in one call, then G steps; the caller's tables (NULL: the model's own). */
static timing run(lorac_model *m, lorac_kv *kv, int B, int P, int G, lorac_lora *const *const *tabs, float *logits) {
    const int V = m->cfg.vocab;
    int *ids = malloc(sizeof(int) * (size_t)B * P), *slot = malloc(sizeof(int) * B), *offs = malloc(sizeof(int) * (B + 1));
    offs[0] = 0;
    for (int b = 0; b < B; b++) {
        lorac_kv_reset(kv, b);
        slot[b] = b;
        offs[b + 1] = offs[b] + P;
    }
    for (int i = 0; i < B * P; i++) ids[i] = 1 + (int)(lorac_rng_uniform(&rng) * (V - 1));
    timing t;
    double t0 = lorac_now();
    if (lorac_model_decode(m, kv, B, slot, ids, offs, tabs, logits) != LORAC_OK) die("prefill");
    t.prompt_s = lorac_now() - t0;
    for (int b = 0; b <= B; b++) offs[b] = b;
    t0 = lorac_now();
    for (int g = 0; g < G; g++) {
        for (int b = 0; b < B; b++) { /* greedy: the next token of each sequence */
            const float *l = logits + (size_t)b * V;
            int best = 0;
            for (int v = 1; v < V; v++) best = l[v] > l[best] ? v : best;
            ids[b] = best;
        }
        if (lorac_model_decode(m, kv, B, slot, ids, offs, tabs, logits) != LORAC_OK) die("decode step");
    }
    t.step_s = (lorac_now() - t0) / G;
    free(ids), free(slot), free(offs);
    return t;
}

static void set_merged(lorac_model *m, int merged) {
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) m->lin[i].lora->merged = merged;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') usage();
    const char *path = argv[1], *base = "fp32", *targets = "attn", *batches = "1,4,8";
    int r = 8, P = 64, G = 32, R = 5;
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--base")) base = v;
        else if (!strcmp(k, "--r")) r = atoi(v);
        else if (!strcmp(k, "--targets")) targets = v;
        else if (!strcmp(k, "--batch")) batches = v;
        else if (!strcmp(k, "--prompt")) P = atoi(v);
        else if (!strcmp(k, "--gen")) G = atoi(v);
        else if (!strcmp(k, "--runs")) R = atoi(v);
        else usage();
    }
    if (r < 1 || P < 1 || G < 1 || R < 1) usage();
    lorac_rng_seed(&rng, 1234);
    print_cpu();
    printf("threads %d, gemm %s\n", omp_get_max_threads(), op_gemm_backend());

    lorac_model *m = NULL;
    lorac_status st;
    if (!strcmp(base, "keep")) st = lorac_model_load_quantized(path, LORAC_QLOAD_KEEP | LORAC_QLOAD_EMBED_FP32, &m);
    else if (!strcmp(base, "nf4")) st = lorac_model_load_quantized(path, LORAC_QLOAD_NF4 | LORAC_QLOAD_EMBED_FP32, &m);
    else if (!strcmp(base, "fp32") || !strcmp(base, "bf16")) st = lorac_model_load(path, &m);
    else usage();
    if (st != LORAC_OK) die(path);
    if (!strcmp(base, "bf16") && lorac_model_quantize(m, LORAC_QF_BF16) != LORAC_OK) die("bf16 base");

    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = r;
    c.alpha = 2.0f * r;
    if (!strcmp(targets, "attn")) targets = "q_proj,k_proj,v_proj,o_proj,c_attn,attn.c_proj,qkv_proj";
    if (lorac_lora_parse_list(targets, c.targets, &c.n_targets, "targets") != LORAC_OK) die("targets");
    int n_adapted = 0;
    if (lorac_lora_apply(m, &c, &n_adapted) != LORAC_OK) die("adapter");
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) fill(&m->lin[i].lora->B, 0.05f);
    printf("model %s: %d layers, dim %d, vocab %d; base %s; adapter r %d alpha %g on %d Linears (%s)\n", path,
           m->cfg.n_layer, m->cfg.dim, m->cfg.vocab, base, r, c.alpha, n_adapted, targets);
    printf("prompt %d tokens per sequence, then %d decode steps; median of %d runs (modes interleaved)\n\n", P, G, R);
    printf("%5s %-9s %14s %14s %12s %17s %10s\n", "batch", "mode", "prompt tok/s", "decode tok/s", "ms/step",
           "(min-max ms/step)", "vs merged");

    for (const char *bs = batches; *bs;) {
        const int B = atoi(bs);
        bs = strchr(bs, ',') ? strchr(bs, ',') + 1 : bs + strlen(bs);
        if (B < 1 || P + G > m->cfg.n_ctx) usage();
        lorac_kv *kv = NULL;
        if (lorac_kv_create(m, B, P + G, &kv) != LORAC_OK) die("cache");
        float *logits = malloc(sizeof(float) * (size_t)B * m->cfg.vocab);
        lorac_lora ***tabs = calloc((size_t)B, sizeof *tabs);
        for (int b = 0; b < B && B > 1; b++) tabs[b] = make_table(m, c.alpha);
        const int n_modes = B > 1 ? 3 : 2;
        static const char *names[] = {"merged", "unmerged", "multi"};
        double ps[3][64], ss[3][64];
        run(m, kv, B, P < 8 ? P : 8, 2, NULL, logits); /* warm-up: buffers, GEMM primitives */
        for (int k = 0; k < R && k < 64; k++)
            for (int mode = 0; mode < n_modes; mode++) {
                set_merged(m, mode == 0);
                const timing t = run(m, kv, B, P, G, mode == 2 ? (lorac_lora *const *const *)tabs : NULL, logits);
                ps[mode][k] = t.prompt_s;
                ss[mode][k] = t.step_s;
            }
        set_merged(m, 0);
        const int n = R < 64 ? R : 64;
        double merged_step = 0;
        for (int mode = 0; mode < n_modes; mode++) {
            const double p = median(ps[mode], n), s = median(ss[mode], n); /* ss sorted by median() */
            if (mode == 0) merged_step = s;
            printf("%5d %-9s %14.1f %14.1f %12.2f %8.2f-%-8.2f %9.3fx\n", B, names[mode], B * P / p, B / s, 1e3 * s,
                   1e3 * ss[mode][0], 1e3 * ss[mode][n - 1], s / merged_step);
        }
        for (int b = 0; b < B; b++) {
            for (int i = 0; tabs[b] && i < m->n_lin; i++) lorac_lora_free(tabs[b][i]);
            free(tabs[b]);
        }
        free(tabs);
        free(logits);
        lorac_kv_free(kv);
    }
    lorac_model_free(m);
    return 0;
}
