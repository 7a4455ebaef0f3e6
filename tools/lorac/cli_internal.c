/* cli_internal.c - TRANSITIONAL: the CLI helpers on internal types that
 * lorac info / modules / eval / merge (tools/lorac/cmd_info.c, cmd_eval.c,
 * cmd_merge.c: the other share of issue 15) still call until they are on
 * the public API. lorac train and compare no longer use any of this (they
 * go through lorac.h: cli_method.c, cli_data.c). Delete this file together
 * with cli_internal.h. The code is the earlier cli_method.c / cli_data.c's,
 * unchanged. */
#include "cli_data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_chat.h"
#include "api/data.h"
#include "lora/lora_init.h"

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

static lorac_task parse_task(const cli_args *a) {
    const char *t = cli_str(a, "task", "classify");
    if (!strcmp(t, "classify")) return LORAC_TASK_CLS;
    if (!strcmp(t, "lm")) return LORAC_TASK_LM;
    if (!strcmp(t, "instruct")) return LORAC_TASK_INSTRUCT;
    cli_die(a->cmd, EXIT_USAGE, "--task '%s': expected classify, lm or instruct", t);
}

/* --chat-format's family (a usage error for a bad name); NULL name = auto. */
static const char *chat_format_opt(const cli_args *a, lorac_chat_family *fam) {
    const char *name = cli_str(a, "chat-format", "auto");
    *fam = LORAC_CHAT_ALPACA;
    if (strcmp(name, "auto") && lorac_chat_family_parse(name, fam) != LORAC_OK)
        cli_die(a->cmd, EXIT_USAGE, "--chat-format '%s': expected auto, chatml, llama3, gemma, phi3, mistral, llama2 or "
                "alpaca", name);
    return strcmp(name, "auto") ? name : NULL;
}

void cli_load_splits(const cli_args *a, cli_splits *s, int whole) {
    memset(s, 0, sizeof *s);
    s->task = parse_task(a);
    lorac_chat_family fam;
    (void)chat_format_opt(a, &fam); /* a bad --chat-format is a usage error before any work */
    lorac_data_config c = {0};
    c.data = cli_str(a, "data", NULL);
    if (!c.data) cli_die(a->cmd, EXIT_USAGE, "--data is required");
    c.labels = cli_str(a, "labels", NULL);
    if (c.labels) { /* the syntax, with the flag's name */
        char lab[LORAC_MAX_TARGETS][96];
        int nl = 0;
        cli_check(a->cmd, lorac_lora_parse_list(c.labels, lab, &nl, "--labels"));
    }
    c.format = cli_str(a, "format", NULL);
    c.text_col = cli_str(a, "text-col", NULL);
    c.label_col = cli_str(a, "label-col", NULL);
    c.skip_bad_rows = cli_has(a, "skip-bad-rows");
    c.whole = whole;
    const uint64_t seed = cli_u64(a, "seed", 123);
    if (!whole) {
        c.balance = cli_has(a, "balance");
        if (c.balance && s->task != LORAC_TASK_CLS) cli_die(a->cmd, EXIT_USAGE, "--balance needs --task classify");
        c.val = cli_str(a, "val", NULL);
        c.test = cli_str(a, "test", NULL);
        const char *sp = cli_str(a, "split", NULL);
        if (sp && (sscanf(sp, "%lf,%lf", &c.split_train, &c.split_val) != 2 || c.split_train <= 0 || c.split_val < 0 ||
                   c.split_train + c.split_val > 1))
            cli_die(a->cmd, EXIT_USAGE, "--split '%s': expected two fractions like 0.7,0.1 summing to at most 1", sp);
        c.max_examples = cli_int(a, "max-examples", 0, 0, 1 << 30);
        c.max_eval = cli_int(a, "max-eval", 0, 0, 1 << 30);
    }
    lorac_dataset set[3];
    int skipped[3];
    const lorac_status st = lorac_api_split(&c, s->task, seed, set, skipped);
    const char *files[3] = {c.data, c.val, c.test};
    for (int i = 0; i < 3; i++)
        if (skipped[i]) fprintf(stderr, "%s: skipped %d bad rows\n", files[i], skipped[i]);
    cli_check(a->cmd, st);
    s->train = set[0];
    s->val = set[1];
    s->test = set[2];
    if (whole) { /* every row of --data is the test set (lorac eval without --split) */
        fprintf(stderr, "examples: test %d (every row of %s)\n", s->test.n, c.data);
        return;
    }
    if (s->task == LORAC_TASK_CLS) {
        fprintf(stderr, "labels:");
        for (int i = 0; i < s->train.n_labels; i++)
            fprintf(stderr, " %d=%s (%d)", i, s->train.label_names[i], lorac_dataset_count(&s->train, i));
        fputc('\n', stderr);
    }
    fprintf(stderr, "examples: train %d, val %d, test %d\n", s->train.n, s->val.n, s->test.n);
}

void cli_splits_free(cli_splits *s) {
    lorac_dataset_free(&s->train);
    lorac_dataset_free(&s->val);
    lorac_dataset_free(&s->test);
}

void cli_chat_format(const cli_args *a, const lorac_llm *llm, lorac_chat_format *f) {
    lorac_chat_family fam;
    const char *name = chat_format_opt(a, &fam);
    char where[1200];
    cli_check(a->cmd, lorac_api_chat_format(llm, name, f, where, sizeof where));
    fprintf(stderr, "chat format: %s (%s)%s%s%s\n", lorac_chat_family_name(f->family),
            f->from_template ? where : !name ? "the model has no chat template" : "--chat-format",
            f->default_system[0] ? "; default system message \"" : "", f->default_system,
            f->default_system[0] ? "\"" : "");
}

void cli_tokenize_splits(const cli_args *a, const cli_splits *s, const lorac_llm *llm, cli_tokenized *t) {
    const lorac_model *m = llm->m;
    const lorac_tokenizer *tok = llm->tok.t;
    memset(t, 0, sizeof *t);
    int max_len = cli_int(a, "max-len", 256 < m->cfg.n_ctx ? 256 : m->cfg.n_ctx, 2, m->cfg.n_ctx);
    const lorac_dataset *d[3] = {&s->train, &s->val, &s->test};
    lorac_tokenized *o[3] = {&t->train, &t->val, &t->test};
    static const char *names[3] = {"train", "val", "test"};
    lorac_chat_format chat;
    if (s->task == LORAC_TASK_INSTRUCT) cli_chat_format(a, llm, &chat);
    for (int i = 0; i < 3; i++) {
        if (d[i]->n == 0) continue;
        cli_check(a->cmd, lorac_tokenize_dataset(tok, d[i], s->task, max_len,
                                                 s->task == LORAC_TASK_INSTRUCT ? &chat : NULL, o[i]));
        if (o[i]->n_truncated)
            fprintf(stderr, "%s: %d of %d examples truncated to %d tokens\n", names[i], o[i]->n_truncated, o[i]->n, max_len);
    }
}

void cli_tokenized_free(cli_tokenized *t) {
    lorac_tokenized_free(&t->train);
    lorac_tokenized_free(&t->val);
    lorac_tokenized_free(&t->test);
}

void cli_evaluate_splits(const cli_args *a, lorac_model *m, const cli_tokenized *t, lorac_task task, int batch,
                         cli_results *r) {
    const lorac_tokenized *d[3] = {&t->train, &t->val, &t->test};
    memset(r, 0, sizeof *r);
    int want[3];
    cli_eval_splits(a, want);
    const double t0 = cli_now();
    for (int i = 0; i < 3; i++) {
        r->n[i] = d[i]->n;
        r->acc[i] = -1;
        r->loss[i] = NAN;
        if (d[i]->n == 0 || !want[i]) continue;
        r->scored[i] = 1;
        cli_check(a->cmd, lorac_evaluate_dist(m, d[i], task, batch, NULL /* eval / merge never run data-parallel (cli_dist_refuse) */, &r->loss[i], &r->acc[i]));
    }
    r->eval_seconds = cli_now() - t0;
}

