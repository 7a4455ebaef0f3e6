/* cli_method.c - lorac train / info's LoRA flags and training methods, the
 * trainable-parameter line and the progress display. Not on the public API
 * yet: it builds the LoRA config and applies the method on the model inside
 * the llm (cli_internal.h), as lorac_llm_train does in the library; the
 * flags' error messages are the CLI's own. */
#include "cli_internal.h"
#include "lora/lora_init.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_add_head(const cli_args *a, lorac_model *m, int n_classes, uint64_t seed) {
    const char *preset = cli_str(a, "preset", NULL);
    const char *h = cli_str(a, "head-init", preset && !strcmp(preset, "appendix-e") ? "torch" : "hf");
    lorac_head_init init = LORAC_HEAD_INIT_HF;
    if (!strcmp(h, "torch")) init = LORAC_HEAD_INIT_TORCH;
    else if (strcmp(h, "hf")) cli_die(a->cmd, EXIT_USAGE, "--head-init '%s': expected hf or torch", h);
    /* transformers' decoder score heads have no bias; its encoder classifiers and nn.Linear do */
    const int bias = init == LORAC_HEAD_INIT_TORCH || m->cfg.arch == LORAC_ARCH_BERT;
    cli_check(a->cmd, lorac_model_add_head(m, n_classes, bias, init, seed));
}

void cli_lora_config(const cli_args *a, lorac_lora_config *c) {
    lorac_lora_config_default(c);
    const char *preset = cli_str(a, "preset", NULL);
    int appx = 0;
    if (preset) {
        if (strcmp(preset, "appendix-e")) cli_die(a->cmd, EXIT_USAGE, "--preset '%s' unknown; hint: appendix-e", preset);
        appx = 1;
    }
    c->r = cli_int(a, "r", appx ? 16 : 8, 1, 4096);
    c->alpha = (float)cli_num(a, "alpha", c->r, 1e-6, 1e6);
    c->dropout = (float)cli_num(a, "dropout", 0, 0, 0.999);
    c->use_rslora = cli_has(a, "rslora");
    c->split_fused = cli_has(a, "split-qkv") || appx;
    const char *re = cli_str(a, "target-regex", NULL);
    if (re) {
        if (strlen(re) >= sizeof c->target_regex) cli_die(a->cmd, EXIT_USAGE, "--target-regex is too long");
        snprintf(c->target_regex, sizeof c->target_regex, "%s", re);
    } else {
        const char *t = cli_str(a, "target", appx ? "all-linear,score" : "all-linear");
        cli_check(a->cmd, lorac_lora_parse_list(t, c->targets, &c->n_targets, "--target"));
    }
    const char *b = cli_str(a, "bias", "none");
    if (!strcmp(b, "none")) c->bias = LORAC_BIAS_NONE;
    else if (!strcmp(b, "all")) c->bias = LORAC_BIAS_ALL;
    else if (!strcmp(b, "lora_only")) c->bias = LORAC_BIAS_LORA_ONLY;
    else cli_die(a->cmd, EXIT_USAGE, "--bias '%s': expected none, all or lora_only", b);
    const char *mts = cli_str(a, "modules-to-save", NULL);
    if (mts) cli_check(a->cmd, lorac_lora_parse_list(mts, c->modules_to_save, &c->n_modules_to_save, "--modules-to-save"));
    const char *ly = cli_str(a, "layers", NULL);
    if (ly) cli_check(a->cmd, lorac_lora_parse_layers(ly, c));
    c->use_dora = cli_has(a, "dora");
    const char *rp = cli_str(a, "rank-pattern", NULL), *ap = cli_str(a, "alpha-pattern", NULL);
    if (rp) cli_check(a->cmd, lorac_lora_parse_patterns(rp, c->rank_pattern, &c->n_rank_pattern, 1, "--rank-pattern"));
    if (ap) cli_check(a->cmd, lorac_lora_parse_patterns(ap, c->alpha_pattern, &c->n_alpha_pattern, 0, "--alpha-pattern"));
    const char *in = cli_str(a, "init", NULL);
    if (in) cli_check(a->cmd, lorac_lora_init_parse(in, c));
    c->seed = cli_u64(a, "seed", 123);
}

static void save_module(const cli_args *a, lorac_lora_config *c, const char *name) {
    if (strlen(name) >= sizeof c->modules_to_save[0] || c->n_modules_to_save >= LORAC_MAX_TARGETS)
        cli_die(a->cmd, 1, "module name '%s' does not fit modules_to_save", name);
    strcpy(c->modules_to_save[c->n_modules_to_save++], name);
}

/* PEFT's task_type SEQ_CLS: the new classifier goes into modules_to_save. */
static void seq_cls_modules_to_save(const cli_args *a, const lorac_model *m, lorac_lora_config *c) {
    if (!m->head || cli_has(a, "modules-to-save") || lorac_lora_targets(c, m, m->head)) return;
    save_module(a, c, m->head->name);
    if (m->pre_head && m->pre_head_fresh && !lorac_lora_targets(c, m, m->pre_head)) save_module(a, c, m->pre_head->name);
    fprintf(stderr, "note: training the new classification head in full (PEFT's modules_to_save for SEQ_CLS)\n");
}

static void train_linear(const cli_args *a, lorac_linear *L) {
    cli_check(a->cmd, lorac_weight_make_trainable(L->W));
    if (L->b) cli_check(a->cmd, lorac_weight_make_trainable(L->b));
}

void cli_apply_method(const cli_args *a, lorac_llm *llm, lorac_lora_config *c, int seq_cls) {
    lorac_model *m = llm->m;
    int n;
    const cli_method meth = cli_method_parse(a->cmd, "--method", cli_str(a, "method", "lora"), &n);
    cli_quant_opts_need_qlora(a, meth == CLI_METHOD_QLORA);
    switch (meth) {
    case CLI_METHOD_QLORA:
        /* loaded quantized by cli_load_model; a model from elsewhere (info --config) is quantized here */
        (void)cli_qformat_keep(a, m->path); /* a usage error for keep without a .gguf base */
        cli_check(a->cmd, lorac_model_quantize(m, LORAC_QF_NF4)); /* no-op for Linears already quantized */
        if (cli_qembed_on(a)) cli_check(a->cmd, lorac_model_quantize_embedding(m, LORAC_QF_NF4)); /* ... or embedding */
        cli_print_quantized_base(llm, "qlora");
        if (seq_cls) seq_cls_modules_to_save(a, m, c);
        cli_check(a->cmd, lorac_lora_apply(m, c, NULL));
        break;
    case CLI_METHOD_LORA:
        if (seq_cls) seq_cls_modules_to_save(a, m, c);
        cli_check(a->cmd, lorac_lora_apply(m, c, NULL));
        break;
    case CLI_METHOD_FULL:
        cli_check(a->cmd, lorac_make_full_trainable(m));
        break;
    case CLI_METHOD_LAST_LAYERS:
        cli_check(a->cmd, lorac_make_last_layers_trainable(m, n));
        break;
    case CLI_METHOD_HEAD:
        if (!m->head) cli_die(a->cmd, EXIT_USAGE, "--method head needs a classification task");
        train_linear(a, m->head);
        if (m->pre_head && m->pre_head_fresh) train_linear(a, m->pre_head);
        break;
    }
}

static void commas(char *buf, size_t n, int64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = tmp[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len && tmp[i] != '-') buf[o++] = ',';
    }
    buf[o] = 0;
}

void cli_print_trainable(const lorac_model *m, FILE *f) {
    int64_t t, all;
    char a[32], b[32];
    lorac_count_params(m, &t, &all);
    commas(a, sizeof a, t);
    commas(b, sizeof b, all);
    fprintf(f, "trainable params: %s || all params: %s || trainable%%: %.4f\n", a, b, all ? 100.0 * t / all : 0.0);
}

void cli_progress(const lorac_progress *p, void *ctx) {
    (void)ctx;
    static int tty = -1;
    if (tty < 0) tty = isatty(2);
    if (p->is_eval) {
        if (tty) fputc('\n', stderr);
        if (p->val_acc >= 0)
            fprintf(stderr, "epoch %d step %d: val loss %.4f, val accuracy %.2f%%\n", p->epoch, p->step, p->val_loss, 100 * p->val_acc);
        else
            fprintf(stderr, "epoch %d step %d: val loss %.4f (perplexity %.2f)\n", p->epoch, p->step, p->val_loss, exp(p->val_loss));
        return;
    }
    if (tty) {
        int width = 30, done = p->total_steps ? (int)((double)p->step / p->total_steps * width) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %d/%d ep %d/%d loss %.4f lr %.2e %.0f tok/s ETA %.0fs  ", bar, p->step, p->total_steps,
                p->epoch, p->epochs, p->loss, p->lr, p->tokens_per_s, p->eta);
    } else if (p->step == 1 || p->step % 10 == 0 || p->step == p->total_steps) {
        fprintf(stderr, "step %d/%d epoch %d/%d loss %.4f lr %.3g tok/s %.0f elapsed %.0fs eta %.0fs\n", p->step,
                p->total_steps, p->epoch, p->epochs, p->loss, p->lr, p->tokens_per_s, p->elapsed, p->eta);
    }
    fflush(stderr);
}

