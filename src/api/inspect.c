/* inspect.c - what a model holds, through the public API (lorac info /
 * modules): a model of a config.json's shapes with random weights, a fresh
 * classification head, and the parameter list in PEFT's named_parameters
 * order (each base weight followed by the adapter tensors on it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "models/config.h"

lorac_status lorac_llm_create(const char *config_json, lorac_llm **out) {
    API_NEED(out, "lorac_llm_create");
    *out = NULL;
    API_NEED(config_json, "lorac_llm_create");
    lorac_config c;
    lorac_model *m;
    LORAC_TRY(lorac_config_load_json(config_json, &c));
    LORAC_TRY(lorac_model_create_random(&c, 1, &m));
    const lorac_status st = lorac_api_wrap(m, out);
    if (st != LORAC_OK) lorac_model_free(m);
    return st;
}

lorac_status lorac_llm_add_head(lorac_llm *llm, int n_classes, const char *init, uint64_t seed) {
    API_NEED(llm, "lorac_llm_add_head");
    if (n_classes < 2 || n_classes > 100000)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_add_head: n_classes %d: expected 2..100000", n_classes);
    lorac_head_init hi = LORAC_HEAD_INIT_HF;
    if (init && !strcmp(init, "torch")) hi = LORAC_HEAD_INIT_TORCH;
    else if (init && strcmp(init, "hf"))
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_add_head: init '%s': expected hf or torch", init);
    if (llm->applied || llm->set.n)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_add_head: the llm holds adapters; hint: add the head to a fresh base");
    lorac_model *m = llm->m;
    /* transformers' decoder score heads have no bias; its encoder classifiers and nn.Linear do */
    const int bias = hi == LORAC_HEAD_INIT_TORCH || m->cfg.arch == LORAC_ARCH_BERT;
    return lorac_model_add_head(m, n_classes, bias, hi, seed);
}

/* One entry of the list: a weight, with the pair it belongs to (NULL for base weights). */
static void fill(lorac_llm_param_info *o, const lorac_weight *w, lorac_llm_param_kind kind, const lorac_lora *l,
                 int on_lm_head, int on_embedding) {
    memset(o, 0, sizeof *o);
    o->size = sizeof *o;
    o->name = w->name;
    o->ndim = w->ndim;
    o->shape[0] = w->shape[0];
    o->shape[1] = w->ndim > 1 ? w->shape[1] : 0;
    o->trainable = w->grad != NULL;
    o->kind = kind;
    o->on_lm_head = on_lm_head;
    o->on_embedding = on_embedding;
    if (l) {
        o->r = l->r;
        o->parts = l->parts;
        o->alpha = l->alpha;
        o->scale = l->scale;
        o->residual_init = l->A0 != NULL;
    }
}

/* Walk the list; entry `want` goes to *o. Returns the entry count. */
static int walk(const lorac_model *m, int want, lorac_llm_param_info *o) {
    int k = 0;
#define EMIT(w, kind, l, head, emb)                                                                              \
    do {                                                                                                         \
        if (k == want) fill(o, (w), (kind), (l), (head), (emb));                                                \
        k++;                                                                                                     \
    } while (0)
    for (int i = 0; i < m->n_w; i++) {
        const lorac_weight *w = &m->w[i];
        EMIT(w, LORAC_PARAM_BASE, NULL, 0, 0);
        if (w == m->wte && m->wte_lora) {
            EMIT(&m->wte_lora->A, LORAC_PARAM_LORA_A, m->wte_lora, 0, 1);
            EMIT(&m->wte_lora->B, LORAC_PARAM_LORA_B, m->wte_lora, 0, 1);
        }
        for (int j = 0; j < m->n_lin; j++) {
            const lorac_linear *L = &m->lin[j];
            if (L->W != w || !L->lora) continue;
            const int head = L == m->lm_head;
            EMIT(&L->lora->A, LORAC_PARAM_LORA_A, L->lora, head, 0);
            EMIT(&L->lora->B, LORAC_PARAM_LORA_B, L->lora, head, 0);
            if (L->lora->dora) EMIT(&L->lora->M, LORAC_PARAM_DORA_M, L->lora, head, 0);
        }
    }
#undef EMIT
    return k;
}

int lorac_llm_param_count(const lorac_llm *llm) { return llm ? walk(llm->m, -1, NULL) : -1; }

lorac_status lorac_llm_param(const lorac_llm *llm, int i, lorac_llm_param_info *out) {
    API_NEED(llm, "lorac_llm_param");
    API_NEED(out, "lorac_llm_param");
    API_SIZE(out, lorac_llm_param_info, "lorac_llm_param");
    const int n = walk(llm->m, i, out);
    if (i < 0 || i >= n) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_param: index %d outside 0..%d", i, n - 1);
    return LORAC_OK;
}
