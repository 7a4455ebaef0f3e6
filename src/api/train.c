/* train.c - lorac_llm_train / lorac_llm_evaluate: a lorac_train_config
 * (the fields of `lorac train --help`) made into a LoRA config, a method,
 * data (api/data.h) and lorac_train options; the progress callback can
 * cancel at a step boundary (the trainer's stop flag).
 *
 * As PEFT's task_type SEQ_CLS, LoRA on a classifier also trains the new
 * head in full (its name goes into modules_to_save) unless modules_to_save
 * is given or the head is a LoRA target. */
#include "api/data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "train/trainer.h"

void lorac_train_config_init(lorac_train_config *c) {
    if (!c) return;
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
    c->method = "lora";
    c->r = 8;
    c->epochs = 1;
    c->batch = 8;
    c->grad_accum = 1;
    c->lr = 1e-4f;
    c->weight_decay = 0.01f;
    c->seed = 123;
}

static lorac_status lora_config(const lorac_train_config *c, lorac_lora_config *lc) {
    lorac_lora_config_default(lc);
    if (c->r < 1 || c->r > 4096) return lorac_fail(LORAC_ERR_ARG, "r %d: expected 1..4096", c->r);
    lc->r = c->r;
    lc->alpha = c->alpha > 0 ? c->alpha : (float)c->r;
    if (c->dropout < 0 || c->dropout >= 1) return lorac_fail(LORAC_ERR_ARG, "dropout %g: expected [0, 1)", (double)c->dropout);
    lc->dropout = c->dropout;
    lc->use_rslora = c->rslora;
    lc->split_fused = c->split_qkv;
    if (c->target_regex) {
        if (strlen(c->target_regex) >= sizeof lc->target_regex) return lorac_fail(LORAC_ERR_ARG, "target_regex is too long");
        snprintf(lc->target_regex, sizeof lc->target_regex, "%s", c->target_regex);
    } else {
        LORAC_TRY(lorac_lora_parse_list(c->target ? c->target : "all-linear", lc->targets, &lc->n_targets, "target"));
    }
    const char *b = c->bias ? c->bias : "none";
    if (!strcmp(b, "none")) lc->bias = LORAC_BIAS_NONE;
    else if (!strcmp(b, "all")) lc->bias = LORAC_BIAS_ALL;
    else if (!strcmp(b, "lora_only")) lc->bias = LORAC_BIAS_LORA_ONLY;
    else return lorac_fail(LORAC_ERR_ARG, "bias '%s': expected none, all or lora_only", b);
    if (c->modules_to_save)
        LORAC_TRY(lorac_lora_parse_list(c->modules_to_save, lc->modules_to_save, &lc->n_modules_to_save, "modules_to_save"));
    if (c->layers) LORAC_TRY(lorac_lora_parse_layers(c->layers, lc));
    lc->seed = c->seed;
    return LORAC_OK;
}

typedef enum { M_LORA, M_FULL, M_HEAD, M_LAST } method;

static lorac_status parse_method(const char *s, method *m, int *n) {
    *n = 0;
    if (!s || !strcmp(s, "lora") || !strcmp(s, "qlora")) *m = M_LORA;
    else if (!strcmp(s, "full")) *m = M_FULL;
    else if (!strcmp(s, "head")) *m = M_HEAD;
    else if (!strncmp(s, "last-layers:", 12)) {
        char *end;
        errno = 0;
        long x = strtol(s + 12, &end, 10);
        if (end == s + 12 || *end || errno || x < 1 || x > 100000)
            return lorac_fail(LORAC_ERR_ARG, "method '%s': expected last-layers:N with N >= 1", s);
        *m = M_LAST;
        *n = (int)x;
    } else {
        return lorac_fail(LORAC_ERR_ARG, "method '%s': expected lora, full, last-layers:N or head", s);
    }
    return LORAC_OK;
}

static lorac_status save_module(lorac_lora_config *c, const char *name) {
    if (strlen(name) >= sizeof c->modules_to_save[0] || c->n_modules_to_save >= LORAC_MAX_TARGETS)
        return lorac_fail(LORAC_ERR_ARG, "module name '%s' does not fit modules_to_save", name);
    strcpy(c->modules_to_save[c->n_modules_to_save++], name);
    return LORAC_OK;
}

static lorac_status train_linear(lorac_linear *L) {
    LORAC_TRY(lorac_weight_make_trainable(L->W));
    return L->b ? lorac_weight_make_trainable(L->b) : LORAC_OK;
}

static lorac_status apply_method(lorac_llm *llm, const lorac_train_config *c, lorac_lora_config *lc, int *is_lora) {
    lorac_model *m = llm->m;
    method meth;
    int n;
    LORAC_TRY(parse_method(c->method, &meth, &n));
    *is_lora = meth == M_LORA;
    /* A GGUF base keeps an untied LM head's blocks for decoding (LORAC_QLOAD_KEEP_HEAD); training runs over an
       fp32 head, as QLoRA always has (the same values: the blocks dequantized exactly). */
    if (m->lm_head && m->lm_head->q && !m->lm_head->q_shared) LORAC_TRY(lorac_linear_dequantize(m->lm_head));
    if ((meth == M_FULL || meth == M_LAST) && llm->base != LORAC_BASE_FP32)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "lorac_llm_train: method %s trains base weights, and this base is held "
                          "%s; hint: open the model with lorac_llm_opts.base = LORAC_BASE_FP32 (LORAC_BASE_AUTO keeps a "
                          ".gguf's quantized blocks)", c->method, llm->base == LORAC_BASE_BF16 ? "in bf16" : "quantized");
    switch (meth) {
    case M_LORA:
        if (llm->base == LORAC_BASE_NF4 || llm->base == LORAC_BASE_GGUF) { /* QLoRA: every Linear quantized */
            LORAC_TRY(lorac_model_quantize(m, LORAC_QF_NF4)); /* no-op for Linears already quantized */
            if (!llm->embed_fp32) LORAC_TRY(lorac_model_quantize_embedding(m, LORAC_QF_NF4)); /* ... or embedding */
        }
        if (m->head && !c->modules_to_save && !lorac_lora_targets(lc, m, m->head)) {
            LORAC_TRY(save_module(lc, m->head->name));
            if (m->pre_head && m->pre_head_fresh && !lorac_lora_targets(lc, m, m->pre_head))
                LORAC_TRY(save_module(lc, m->pre_head->name));
        }
        return lorac_lora_apply(m, lc, NULL);
    case M_FULL: return lorac_make_full_trainable(m);
    case M_LAST: return lorac_make_last_layers_trainable(m, n);
    case M_HEAD:
        if (!m->head) return lorac_fail(LORAC_ERR_ARG, "method head needs the classify task");
        LORAC_TRY(train_linear(m->head));
        return m->pre_head && m->pre_head_fresh ? train_linear(m->pre_head) : LORAC_OK;
    }
    return LORAC_OK;
}

typedef struct {
    lorac_train_cb cb;
    void *user;
    volatile sig_atomic_t stop;
} progress_ctx;

static void on_progress(const lorac_progress *p, void *vctx) {
    progress_ctx *c = vctx;
    if (!c->cb) return;
    const lorac_train_progress q = {p->epoch, p->epochs, p->step, p->total_steps, p->loss, p->lr, p->tokens_per_s,
                                    p->elapsed, p->eta, p->is_eval, p->val_loss, p->val_acc};
    if (c->cb(&q, c->user)) c->stop = 1;
}

static lorac_status score(lorac_model *m, const lorac_api_data *d, int batch, lorac_train_report *r) {
    lorac_split_scores *s[3] = {&r->train, &r->val, &r->test};
    for (int i = 0; i < 3; i++) {
        s[i]->n = d->tok[i].n;
        s[i]->loss = 0;
        s[i]->acc = -1;
        if (d->tok[i].n) LORAC_TRY(lorac_evaluate_dist(m, &d->tok[i], d->task, batch, NULL, &s[i]->loss, &s[i]->acc));
    }
    lorac_count_params(m, &r->params_trainable, &r->params_all);
    r->n_labels = d->set[0].n ? d->set[0].n_labels : d->set[2].n_labels;
    return LORAC_OK;
}

lorac_status lorac_llm_train(lorac_llm *llm, const lorac_train_config *c, lorac_train_report *res) {
    API_NEED(llm, "lorac_llm_train");
    API_NEED(c, "lorac_llm_train");
    API_SIZE(c, lorac_train_config, "lorac_llm_train");
    if (llm->applied || llm->set.n)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_train: the llm already holds an adapter; hint: train on a freshly "
                          "opened llm");
    if (c->epochs < 1 || c->batch < 1 || c->grad_accum < 1 || c->max_steps < 0 || c->lr < 0 || c->warmup < 0 ||
        c->eval_every < 0 || c->clip < 0 || c->weight_decay < 0)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_train: epochs %d, batch %d, grad_accum %d need >= 1; max_steps, lr, "
                          "warmup, eval_every, clip, weight_decay >= 0; hint: lorac_train_config_init sets valid "
                          "defaults", c->epochs, c->batch, c->grad_accum);
    lorac_train_opts o;
    lorac_train_opts_default(&o);
    const char *sch = c->schedule ? c->schedule : "constant";
    if (!strcmp(sch, "constant")) o.schedule = 0;
    else if (!strcmp(sch, "linear")) o.schedule = 1;
    else if (!strcmp(sch, "cosine")) o.schedule = 2;
    else return lorac_fail(LORAC_ERR_ARG, "schedule '%s': expected constant, linear or cosine", sch);
    const char *hi = c->head_init ? c->head_init : "hf";
    if (strcmp(hi, "hf") && strcmp(hi, "torch")) return lorac_fail(LORAC_ERR_ARG, "head_init '%s': expected hf or torch", hi);
    method meth;
    int n_last;
    LORAC_TRY(parse_method(c->method, &meth, &n_last));
    lorac_lora_config lc;
    LORAC_TRY(lora_config(c, &lc));
    lorac_model *m = llm->m;
    lorac_api_data d;
    LORAC_TRY(lorac_api_data_load(llm, &c->data, c->seed, &d));
    lorac_status st = LORAC_OK;
    if (d.task == LORAC_TASK_CLS) {
        const lorac_head_init init = !strcmp(hi, "torch") ? LORAC_HEAD_INIT_TORCH : LORAC_HEAD_INIT_HF;
        /* transformers' decoder score heads have no bias; its encoder classifiers and nn.Linear do */
        const int bias = init == LORAC_HEAD_INIT_TORCH || m->cfg.arch == LORAC_ARCH_BERT;
        st = lorac_model_add_head(m, d.set[0].n_labels, bias, init, lc.seed);
    }
    int is_lora = 0;
    if (st == LORAC_OK) st = apply_method(llm, c, &lc, &is_lora);
    if (st == LORAC_OK && c->gradient_checkpointing) st = lorac_model_set_grad_ckpt(m, 1);
    /* from here on the llm holds what training made, even when it fails */
    llm->applied = 1;
    llm->applied_lora = is_lora;
    llm->applied_cfg = lc;
    for (int i = 0; st == LORAC_OK && d.task == LORAC_TASK_CLS && i < d.set[0].n_labels && i < LORAC_API_MAX_LABELS; i++)
        llm->labels[llm->n_labels++] = strdup(d.set[0].label_names[i]);
    progress_ctx pc = {c->progress, c->user, 0};
    o.task = d.task;
    o.epochs = c->epochs;
    o.batch_size = c->batch;
    o.grad_accum = c->grad_accum;
    o.max_steps = c->max_steps;
    o.lr = c->lr;
    o.weight_decay = c->weight_decay;
    o.warmup_steps = c->warmup;
    o.clip = c->clip;
    o.eval_every = c->eval_every;
    o.skip_nonfinite = c->skip_nonfinite;
    o.padded = c->padded_batches;
    o.seed = c->seed;
    o.metrics_path = c->metrics_path;
    o.progress = on_progress;
    o.progress_ctx = &pc;
    o.stop = &pc.stop;
    lorac_train_result r;
    if (st == LORAC_OK) st = lorac_train(m, &d.tok[0], d.tok[1].n ? &d.tok[1] : NULL, &o, &r);
    if (st == LORAC_OK && r.interrupted)
        st = lorac_fail(LORAC_ERR_CANCELLED, "lorac_llm_train: cancelled by the progress callback after step %d; "
                        "the adapter trained so far stays on the llm", r.steps);
    if (res) memset(res, 0, sizeof *res);
    if (st == LORAC_OK && res) {
        res->steps = r.steps;
        res->final_loss = r.final_loss;
        res->seconds = r.seconds;
        res->tokens_per_s = r.tokens_per_s;
        res->tokens = r.tokens;
        st = score(m, &d, c->batch, res);
    }
    lorac_api_data_free(&d);
    return st;
}

lorac_status lorac_llm_evaluate(lorac_llm *llm, const lorac_data_config *dc, int batch, uint64_t seed,
                                lorac_train_report *res) {
    API_NEED(llm, "lorac_llm_evaluate");
    API_NEED(dc, "lorac_llm_evaluate");
    API_NEED(res, "lorac_llm_evaluate");
    if (batch < 0) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_evaluate: batch %d < 0", batch);
    lorac_api_data d;
    LORAC_TRY(lorac_api_data_load(llm, dc, seed, &d));
    lorac_model *m = llm->m;
    lorac_status st = LORAC_OK;
    if (d.task == LORAC_TASK_CLS && (!m->head || !m->head->W->data))
        st = lorac_fail(LORAC_ERR_ARG, "lorac_llm_evaluate: classification needs the adapter that holds the trained head");
    const int n_labels = d.set[0].n ? d.set[0].n_labels : d.set[2].n_labels;
    if (st == LORAC_OK && d.task == LORAC_TASK_CLS && n_labels > m->n_classes)
        st = lorac_fail(LORAC_ERR_DATA, "%s has %d labels but the head has %d classes", dc->data, n_labels, m->n_classes);
    memset(res, 0, sizeof *res);
    if (st == LORAC_OK) st = score(m, &d, batch ? batch : 8, res);
    lorac_api_data_free(&d);
    return st;
}
