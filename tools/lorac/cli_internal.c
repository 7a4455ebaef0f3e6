/* cli_internal.c - TRANSITIONAL: the LoRA flags on internal types, which
 * lorac info / modules (cmd_info.c) still use: the last part of the CLI not
 * on the public API (lorac train / compare build a lorac_train_config in
 * cli_method.c instead). Delete this file together with cli_internal.h and
 * the LORAC_PRIVATE_0 node of src/api/lorac.map once cmd_info.c reads a
 * prepared llm's modules through lorac.h. */
#include "cli_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_chat.h"
#include "api/data.h"
#include "lora/lora_init.h"

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
