/* stages.c - lorac_llm_train in stages (lorac.h "training in stages"):
 * the data handle (lorac_data_*), preparing an llm for a method
 * (lorac_llm_prepare), training it with checkpoints, resume, a stop flag
 * and data-parallel ranks (lorac_llm_fit), scoring a split
 * (lorac_llm_score), and finding / clearing checkpoints. lorac_llm_train
 * (train.c) is these stages run in a row; lorac train (the CLI) runs them
 * with its own output in between.
 *
 * As PEFT's task_type SEQ_CLS, LoRA on a classifier also trains the new
 * head in full (its name goes into modules_to_save) unless modules_to_save
 * is given or the head is a LoRA target. */
#include "api/stages.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "lora/lora_init.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

/* ---- the data handle ---- */

lorac_status lorac_data_load(lorac_llm *llm, const lorac_data_config *d, uint64_t seed, lorac_data **out) {
    API_NEED(out, "lorac_data_load");
    *out = NULL;
    API_NEED(llm, "lorac_data_load");
    API_NEED(d, "lorac_data_load");
    if (!llm->tok.t)
        return lorac_fail(LORAC_ERR_ARG, "lorac_data_load: the llm was opened without a tokenizer; hint: open it with "
                          "no_tokenizer 0");
    lorac_data *h = calloc(1, sizeof *h);
    if (!h) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    lorac_status st = lorac_api_data_load(llm, d, seed, &h->d);
    if (st != LORAC_OK) {
        free(h);
        return st;
    }
    *out = h;
    return LORAC_OK;
}

void lorac_data_free(lorac_data *data) {
    if (!data) return;
    lorac_api_data_free(&data->d);
    free(data);
}

lorac_status lorac_data_get_info(const lorac_data *data, lorac_data_info *info) {
    API_NEED(data, "lorac_data_get_info");
    API_NEED(info, "lorac_data_get_info");
    API_SIZE(info, lorac_data_info, "lorac_data_get_info");
    static const char *const tasks[] = {"classify", "lm", "instruct"};
    const lorac_api_data *d = &data->d;
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    snprintf(info->task, sizeof info->task, "%s",
             d->task == LORAC_TASK_CLS ? tasks[0] : d->task == LORAC_TASK_LM ? tasks[1] : tasks[2]);
    for (int i = 0; i < 3; i++) {
        info->n[i] = d->tok[i].n;
        info->skipped[i] = d->skipped[i];
        info->truncated[i] = d->tok[i].n_truncated;
    }
    info->max_len = d->max_len;
    info->n_labels = d->task == LORAC_TASK_CLS ? (d->set[0].n ? d->set[0].n_labels : d->set[2].n_labels) : 0;
    info->has_chat = d->has_chat;
    info->chat = d->chat;
    return LORAC_OK;
}

const char *lorac_data_label(const lorac_data *data, int i, int *count) {
    if (count) *count = 0;
    if (!data || data->d.task != LORAC_TASK_CLS) return NULL;
    const lorac_dataset *s = data->d.set[0].n ? &data->d.set[0] : &data->d.set[2];
    if (i < 0 || i >= s->n_labels) return NULL;
    if (count) *count = lorac_dataset_count(&data->d.set[0], i);
    return s->label_names[i];
}

/* ---- checking a config ---- */

lorac_status lorac_api_check_config(const lorac_train_config *c, const char *fn) {
    API_NEED(c, fn);
    API_SIZE(c, lorac_train_config, fn);
    if (c->epochs < 1 || c->batch < 1 || c->grad_accum < 1 || c->max_steps < 0 || c->lr < 0 || c->warmup < 0 ||
        c->eval_every < 0 || c->clip < 0 || c->weight_decay < 0)
        return lorac_fail(LORAC_ERR_ARG, "%s: epochs %d, batch %d, grad_accum %d need >= 1; max_steps, lr, "
                          "warmup, eval_every, clip, weight_decay >= 0; hint: lorac_train_config_init sets valid "
                          "defaults", fn, c->epochs, c->batch, c->grad_accum);
    if (c->loraplus_ratio < 0 || c->loraplus_lr_embedding < 0 || c->loraplus_weight_decay < 0 || c->save_every < 0 ||
        c->keep_checkpoints < 0)
        return lorac_fail(LORAC_ERR_ARG, "%s: loraplus_ratio, loraplus_lr_embedding, loraplus_weight_decay, "
                          "save_every and keep_checkpoints need >= 0", fn);
    if (c->model_dropout != 0 && c->model_dropout != 1)
        return lorac_fail(LORAC_ERR_ARG, "%s: model_dropout %d; hint: 1 (the rates in the model's config.json) or 0 "
                          "(off)", fn, c->model_dropout);
    const char *hi = c->head_init ? c->head_init : "hf";
    if (strcmp(hi, "hf") && strcmp(hi, "torch")) return lorac_fail(LORAC_ERR_ARG, "head_init '%s': expected hf or torch", hi);
    const char *sch = c->schedule ? c->schedule : "constant";
    if (strcmp(sch, "constant") && strcmp(sch, "linear") && strcmp(sch, "cosine"))
        return lorac_fail(LORAC_ERR_ARG, "schedule '%s': expected constant, linear or cosine", sch);
    return LORAC_OK;
}

/* ---- preparing an llm for a method ---- */

lorac_status lorac_api_lora_config(const lorac_train_config *c, lorac_lora_config *lc) {
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
        LORAC_TRY(lorac_lora_check_regex(lc)); /* lorac_lora_apply's check, before anything is changed */
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
    lc->use_dora = c->dora;
    if (c->rank_pattern)
        LORAC_TRY(lorac_lora_parse_patterns(c->rank_pattern, lc->rank_pattern, &lc->n_rank_pattern, 1, "rank_pattern"));
    if (c->alpha_pattern)
        LORAC_TRY(lorac_lora_parse_patterns(c->alpha_pattern, lc->alpha_pattern, &lc->n_alpha_pattern, 0, "alpha_pattern"));
    if (c->init) LORAC_TRY(lorac_lora_init_parse(c->init, lc));
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
        return lorac_fail(LORAC_ERR_ARG, "method '%s': expected lora, qlora, full, last-layers:N or head", s);
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

/* seq_cls (lorac_llm_prepare with data): PEFT's SEQ_CLS, the head trained in full (modules_to_save); fn names
 * the public call in messages. */
static lorac_status apply_method(lorac_llm *llm, const lorac_train_config *c, method meth, int n, lorac_lora_config *lc,
                                 int seq_cls, int *head_in_full, const char *fn) {
    lorac_model *m = llm->m;
    /* A GGUF base keeps an untied LM head's blocks for decoding (LORAC_QLOAD_KEEP_HEAD); training runs over an
       fp32 head, as QLoRA always has (the same values: the blocks dequantized exactly). */
    if (m->lm_head && m->lm_head->q && !m->lm_head->q_shared) LORAC_TRY(lorac_linear_dequantize(m->lm_head));
    if ((meth == M_FULL || meth == M_LAST) && llm->base != LORAC_BASE_FP32)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: method %s trains base weights, and this base is "
                          "held %s; hint: open the model with lorac_llm_opts.base = LORAC_BASE_FP32 (LORAC_BASE_AUTO "
                          "keeps a .gguf's quantized blocks)", fn, c->method,
                          llm->base == LORAC_BASE_BF16 ? "in bf16" : "quantized");
    switch (meth) {
    case M_LORA:
        if (llm->base == LORAC_BASE_NF4 || llm->base == LORAC_BASE_GGUF) { /* QLoRA: every Linear quantized */
            LORAC_TRY(lorac_model_quantize(m, LORAC_QF_NF4)); /* no-op for Linears already quantized */
            if (!llm->embed_fp32) LORAC_TRY(lorac_model_quantize_embedding(m, LORAC_QF_NF4)); /* ... or embedding */
        }
        if (seq_cls && m->head && !c->modules_to_save && !lorac_lora_targets(lc, m, m->head)) {
            LORAC_TRY(save_module(lc, m->head->name));
            if (m->pre_head && m->pre_head_fresh && !lorac_lora_targets(lc, m, m->pre_head))
                LORAC_TRY(save_module(lc, m->pre_head->name));
            *head_in_full = 1;
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

/* lorac_llm_prepare (data) and lorac_llm_apply_method (data NULL). */
static lorac_status prepare(lorac_llm *llm, const lorac_train_config *c, const lorac_data *data, int *head_in_full,
                            const char *fn) {
    LORAC_TRY(lorac_api_check_config(c, fn));
    if (llm->applied || llm->set.n)
        return lorac_fail(LORAC_ERR_ARG, "%s: the llm already holds an adapter; hint: %s a freshly opened llm", fn,
                          data ? "train on" : "use");
    const char *mname = c->method ? c->method : "lora";
    if (strlen(mname) >= sizeof llm->method) return lorac_fail(LORAC_ERR_ARG, "method '%.40s...' is too long", mname);
    method meth = M_LORA;
    int n_last = 0;
    LORAC_TRY(parse_method(mname, &meth, &n_last));
    lorac_lora_config lc;
    LORAC_TRY(lorac_api_lora_config(c, &lc));
    lorac_model *m = llm->m;
    if (!data && meth == M_HEAD && !m->head)
        return lorac_fail(LORAC_ERR_ARG, "%s: method head needs a classification head; hint: lorac_llm_add_head first", fn);
    const lorac_api_data *d = data ? &data->d : NULL;
    const int cls = d && d->task == LORAC_TASK_CLS;
    lorac_status st = LORAC_OK;
    if (cls) {
        const char *hi = c->head_init ? c->head_init : "hf";
        const lorac_head_init init = !strcmp(hi, "torch") ? LORAC_HEAD_INIT_TORCH : LORAC_HEAD_INIT_HF;
        /* transformers' decoder score heads have no bias; its encoder classifiers and nn.Linear do */
        const int bias = init == LORAC_HEAD_INIT_TORCH || m->cfg.arch == LORAC_ARCH_BERT;
        st = lorac_model_add_head(m, d->set[0].n_labels, bias, init, lc.seed);
    }
    int in_full = 0;
    if (st == LORAC_OK) st = apply_method(llm, c, meth, n_last, &lc, data != NULL, &in_full, fn);
    if (st == LORAC_OK && c->gradient_checkpointing) st = lorac_model_set_grad_ckpt(m, 1);
    /* from here on the llm holds what the method made, even when it failed */
    llm->applied = 1;
    llm->applied_lora = meth == M_LORA;
    llm->applied_cfg = lc;
    for (int i = 0; st == LORAC_OK && cls && i < d->set[0].n_labels && i < LORAC_API_MAX_LABELS; i++)
        llm->labels[llm->n_labels++] = strdup(d->set[0].label_names[i]);
    if (st != LORAC_OK) return st;
    snprintf(llm->method, sizeof llm->method, "%s", mname);
    llm->prepared = data != NULL; /* lorac_llm_fit trains what lorac_llm_prepare made */
    if (head_in_full) *head_in_full = in_full;
    return LORAC_OK;
}

lorac_status lorac_llm_prepare(lorac_llm *llm, const lorac_train_config *c, const lorac_data *data, int *head_in_full) {
    if (head_in_full) *head_in_full = 0;
    API_NEED(llm, "lorac_llm_prepare");
    API_NEED(data, "lorac_llm_prepare");
    return prepare(llm, c, data, head_in_full, "lorac_llm_prepare");
}

lorac_status lorac_llm_apply_method(lorac_llm *llm, const lorac_train_config *c) {
    API_NEED(llm, "lorac_llm_apply_method");
    return prepare(llm, c, NULL, NULL, "lorac_llm_apply_method");
}

lorac_status lorac_train_config_check(const lorac_train_config *c) {
    LORAC_TRY(lorac_api_check_config(c, "lorac_train_config_check"));
    method meth = M_LORA;
    int n_last = 0;
    LORAC_TRY(parse_method(c->method, &meth, &n_last));
    lorac_lora_config lc;
    return lorac_api_lora_config(c, &lc);
}

/* ---- training ---- */

typedef struct {
    lorac_train_cb cb;
    void *user;
    volatile sig_atomic_t *stop;
} progress_ctx;

static void on_progress(const lorac_progress *p, void *vctx) {
    progress_ctx *c = vctx;
    if (!c->cb) return;
    const lorac_train_progress q = {p->epoch, p->epochs, p->step, p->total_steps, p->loss, p->lr, p->tokens_per_s,
                                    p->elapsed, p->eta, p->is_eval, p->val_loss, p->val_acc};
    if (c->cb(&q, c->user)) *c->stop = 1;
}

/* every checkpoint of a LoRA run holds the PEFT adapter too, so that it is also an adapter directory */
static lorac_status save_adapter(const char *dir, void *llm) { return lorac_llm_adapter_save(llm, dir); }

static void join_list(char *buf, size_t n, char (*items)[96], int k) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < k && o < n; i++) o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? "," : "", items[i]);
}

/* The settings a resumed run must share with its checkpoint besides the
 * trainer's own: the method, for LoRA its settings as trained (the head
 * put into modules_to_save included), then the caller's pairs. */
typedef struct {
    char r[16], alpha[32], dropout[32], target[2048], mts[2048], layers[1200];
    const char *kv[96];
} run_settings;

static lorac_status run_config(const lorac_llm *llm, const lorac_train_config *c, run_settings *s) {
    const lorac_lora_config *lc = &llm->applied_cfg;
    int k = 0;
    s->kv[k++] = "method";
    s->kv[k++] = llm->method;
    if (llm->applied_lora) {
        static const char *const bias_names[] = {"none", "all", "lora_only"};
        snprintf(s->r, sizeof s->r, "%d", lc->r);
        snprintf(s->alpha, sizeof s->alpha, "%.7g", lc->alpha);
        snprintf(s->dropout, sizeof s->dropout, "%.7g", lc->dropout);
        if (lc->target_regex[0]) snprintf(s->target, sizeof s->target, "regex %s", lc->target_regex);
        else join_list(s->target, sizeof s->target, (char (*)[96])lc->targets, lc->n_targets);
        join_list(s->mts, sizeof s->mts, (char (*)[96])lc->modules_to_save, lc->n_modules_to_save);
        char *q = s->layers;
        s->layers[0] = 0;
        for (int i = 0; i < lc->n_layers && q < s->layers + sizeof s->layers - 16; i++)
            q += sprintf(q, "%s%d", i ? "," : "", lc->layers[i]);
        const char *lora[] = {"r", s->r, "alpha", s->alpha, "dropout", s->dropout, "target", s->target, "bias",
                              bias_names[lc->bias], "modules-to-save", s->mts, "rslora", lc->use_rslora ? "1" : "0",
                              "layers", s->layers, "split-qkv", lc->split_fused ? "1" : "0", "dora",
                              lc->use_dora ? "1" : "0", "init", c->init ? c->init : "true", "rank-pattern",
                              c->rank_pattern ? c->rank_pattern : "", "alpha-pattern",
                              c->alpha_pattern ? c->alpha_pattern : ""};
        for (size_t i = 0; i < sizeof lora / sizeof lora[0]; i++) s->kv[k++] = lora[i];
    }
    for (int i = 0; c->run_config && c->run_config[i]; i += 2) {
        if (!c->run_config[i + 1])
            return lorac_fail(LORAC_ERR_ARG, "run_config: '%s' has no value; hint: (name, value) pairs, then NULL",
                              c->run_config[i]);
        if (k + 3 > (int)(sizeof s->kv / sizeof s->kv[0])) return lorac_fail(LORAC_ERR_ARG, "run_config: too many pairs");
        s->kv[k++] = c->run_config[i];
        s->kv[k++] = c->run_config[i + 1];
    }
    s->kv[k] = NULL;
    return LORAC_OK;
}

lorac_status lorac_api_train_opts(const lorac_train_config *c, lorac_task task, lorac_train_opts *o) {
    lorac_train_opts_default(o);
    const char *sch = c->schedule ? c->schedule : "constant";
    o->schedule = !strcmp(sch, "linear") ? 1 : !strcmp(sch, "cosine") ? 2 : 0;
    o->task = task;
    o->epochs = c->epochs;
    o->batch_size = c->batch;
    o->grad_accum = c->grad_accum;
    o->max_steps = c->max_steps;
    o->lr = c->lr;
    o->weight_decay = c->weight_decay;
    o->loraplus = (lorac_loraplus_cfg){c->loraplus_ratio, c->loraplus_lr_embedding, c->loraplus_weight_decay};
    o->warmup_steps = c->warmup;
    o->clip = c->clip;
    o->eval_every = c->eval_every;
    o->skip_nonfinite = c->skip_nonfinite;
    o->model_dropout = c->model_dropout;
    o->padded = c->padded_batches;
    o->seed = c->seed;
    o->metrics_path = c->metrics_path;
    o->checkpoint_dir = c->checkpoint_dir;
    o->save_every = c->save_every;
    o->keep_checkpoints = c->keep_checkpoints;
    o->resume_from = c->resume_from;
    o->dist = c->ranks ? c->ranks->d : NULL;
    if (o->batch_size < lorac_dist_size(o->dist))
        return lorac_fail(LORAC_ERR_ARG, "batch %d is smaller than the %d ranks; hint: batch is the global batch, shared "
                          "out over the ranks: give at least one example per rank", o->batch_size, lorac_dist_size(o->dist));
    return LORAC_OK;
}

lorac_status lorac_llm_fit(lorac_llm *llm, const lorac_train_config *c, lorac_data *data, lorac_fit_report *rep) {
    API_NEED(llm, "lorac_llm_fit");
    API_NEED(data, "lorac_llm_fit");
    API_SIZE(rep, lorac_fit_report, "lorac_llm_fit");
    LORAC_TRY(lorac_api_check_config(c, "lorac_llm_fit"));
    if (rep) {
        memset(rep, 0, sizeof *rep);
        rep->size = sizeof *rep;
    }
    if (!llm->prepared)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_fit: the llm is not prepared for training; hint: lorac_llm_prepare "
                          "first, with the same config");
    if (c->save_every > 0 && !c->checkpoint_dir)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_fit: save_every %d needs checkpoint_dir", c->save_every);
    lorac_train_opts o;
    LORAC_TRY(lorac_api_train_opts(c, data->d.task, &o));
    run_settings *rs = malloc(sizeof *rs);
    if (!rs) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    lorac_status st = run_config(llm, c, rs);
    volatile sig_atomic_t own_stop = 0;
    progress_ctx pc = {c->progress, c->user, c->stop ? c->stop : &own_stop};
    o.run_config = rs->kv;
    o.progress = on_progress;
    o.progress_ctx = &pc;
    o.stop = pc.stop;
    if (llm->applied_lora) {
        o.checkpoint_extra = save_adapter;
        o.checkpoint_extra_ctx = llm;
    }
    const lorac_api_data *d = &data->d;
    lorac_train_result r;
    memset(&r, 0, sizeof r);
    if (st == LORAC_OK) st = lorac_train(llm->m, &d->tok[0], d->tok[1].n ? &d->tok[1] : NULL, &o, &r);
    free(rs);
    if (st != LORAC_OK) return st;
    if (rep) {
        rep->steps = r.steps;
        rep->final_loss = r.final_loss;
        rep->seconds = r.seconds;
        rep->eval_seconds = r.eval_seconds;
        rep->tokens = r.tokens;
        rep->padded_tokens = r.padded_tokens;
        rep->tokens_per_s = r.tokens_per_s;
        rep->resumed_step = r.resumed_step;
        rep->stopped = r.interrupted;
        snprintf(rep->checkpoint, sizeof rep->checkpoint, "%s", r.checkpoint);
    }
    if (r.interrupted)
        return lorac_fail(LORAC_ERR_CANCELLED, "lorac_llm_fit: stopped after step %d%s%s; the adapter trained so far "
                          "stays on the llm", r.steps, r.checkpoint[0] ? "; checkpoint " : "", r.checkpoint);
    return LORAC_OK;
}

lorac_status lorac_llm_score(lorac_llm *llm, const lorac_data *data, int split, int batch, lorac_ranks *ranks,
                             lorac_split_scores *out) {
    API_NEED(llm, "lorac_llm_score");
    API_NEED(data, "lorac_llm_score");
    API_NEED(out, "lorac_llm_score");
    if (split < 0 || split > 2)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: split %d; hint: 0 train, 1 validation, 2 test", split);
    if (batch < 0) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: batch %d < 0", batch);
    const lorac_api_data *d = &data->d;
    out->n = d->tok[split].n;
    out->loss = NAN;
    out->acc = -1;
    if (!out->n) return LORAC_OK;
    if (d->task == LORAC_TASK_CLS && (!llm->m->head || !llm->m->head->W->data))
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_score: classification needs a head (none here); hint: lorac_llm_prepare, "
                          "or the adapter that holds the trained head");
    return lorac_evaluate_dist(llm->m, &d->tok[split], d->task, batch ? batch : 8, ranks ? ranks->d : NULL, &out->loss,
                               &out->acc);
}

/* ---- checkpoints ---- */

lorac_status lorac_checkpoint_find(const char *path, char *ckpt, size_t n, char *run_dir, size_t n_run) {
    API_NEED(path, "lorac_checkpoint_find");
    API_NEED(ckpt, "lorac_checkpoint_find");
    if (n == 0 || (run_dir && n_run == 0)) return lorac_fail(LORAC_ERR_ARG, "lorac_checkpoint_find: a buffer of 0 bytes");
    ckpt[0] = 0;
    if (run_dir) run_dir[0] = 0;
    LORAC_TRY(lorac_ckpt_resolve(path, ckpt, n));
    if (run_dir && !lorac_ckpt_run_dir(ckpt, run_dir, n_run)) run_dir[0] = 0;
    return LORAC_OK;
}

int lorac_checkpoint_exists(const char *dir) { return dir ? lorac_ckpt_exists(dir) : 0; }

lorac_status lorac_checkpoint_clear(const char *dir) {
    API_NEED(dir, "lorac_checkpoint_clear");
    return lorac_ckpt_clear(dir);
}
