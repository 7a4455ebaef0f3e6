/* inspect.c - what a model holds, through the public API (lorac info /
 * modules): a model of a config.json's shapes with random weights, a fresh
 * classification head, the parameter list in PEFT's named_parameters order
 * (each base weight followed by the adapter tensors on it), which Linear is
 * the output layer or the head, holding the base in NF4 afterwards (QLoRA's
 * figures for a lorac_llm_create model) and a llama.cpp LoRA GGUF's header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "io/gguf.h"
#include "io/tensorfile.h"
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
    if (n_classes < 1 || n_classes > 100000)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_add_head: n_classes %d: expected 1..100000", n_classes);
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
        EMIT(w, LORAC_PARAM_BASE, NULL, 0, w == m->wte);
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

int lorac_llm_module_role(const lorac_llm *llm, int i) {
    if (!llm || i < 0 || i >= llm->m->n_lin) return -1;
    const lorac_linear *L = &llm->m->lin[i];
    return L == llm->m->lm_head ? 1 : L == llm->m->head ? 2 : 0;
}

lorac_status lorac_llm_quantize_nf4(lorac_llm *llm, int embed_fp32) {
    API_NEED(llm, "lorac_llm_quantize_nf4");
    if (llm->base == LORAC_BASE_BF16)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_quantize_nf4: the base is held in bf16; hint: open it with "
                          "lorac_llm_opts.base = LORAC_BASE_FP32, or LORAC_BASE_NF4 straight away");
    if (llm->applied || llm->set.n || llm->merged || llm->prepared)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_quantize_nf4: the llm holds an adapter (or was prepared or merged); "
                          "hint: quantize a freshly opened llm, before lorac_llm_prepare / lorac_llm_apply_method");
    lorac_model *m = llm->m;
    LORAC_TRY(lorac_model_quantize(m, LORAC_QF_NF4)); /* Linears quantized already keep their format */
    if (!embed_fp32) LORAC_TRY(lorac_model_quantize_embedding(m, LORAC_QF_NF4)); /* no-op when it is quantized */
    if (llm->base == LORAC_BASE_FP32) {
        llm->base = LORAC_BASE_NF4;
        llm->embed_fp32 = embed_fp32 != 0;
    } else { /* NF4 / GGUF: an embedding quantized at load stays so */
        llm->embed_fp32 = llm->embed_fp32 && embed_fp32;
    }
    return LORAC_OK;
}

/* ---- llama.cpp LoRA GGUF files ---- */

struct lorac_lorafile {
    lorac_gguf *g;
};

lorac_status lorac_lorafile_open(const char *path, lorac_lorafile **out) {
    API_NEED(out, "lorac_lorafile_open");
    *out = NULL;
    API_NEED(path, "lorac_lorafile_open");
    lorac_gguf *g;
    LORAC_TRY(lorac_gguf_open(path, &g));
    const char *type = lorac_gguf_get_str(g, "general.type");
    if (!type || strcmp(type, "adapter")) {
        lorac_gguf_close(g);
        return lorac_fail(LORAC_ERR_FORMAT, "%s: general.type is %s%s%s, not adapter; hint: a GGUF LoRA adapter "
                          "(lorac export, convert_lora_to_gguf.py)", path, type ? "'" : "", type ? type : "missing",
                          type ? "'" : "");
    }
    *out = calloc(1, sizeof **out);
    if (!*out) {
        lorac_gguf_close(g);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    }
    (*out)->g = g;
    return LORAC_OK;
}

void lorac_lorafile_close(lorac_lorafile *f) {
    if (!f) return;
    lorac_gguf_close(f->g);
    free(f);
}

lorac_status lorac_lorafile_get_info(const lorac_lorafile *f, lorac_lorafile_info *info) {
    API_NEED(f, "lorac_lorafile_get_info");
    API_NEED(info, "lorac_lorafile_get_info");
    API_SIZE(info, lorac_lorafile_info, "lorac_lorafile_get_info");
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    info->version = lorac_gguf_version(f->g);
    const char *arch = lorac_gguf_get_str(f->g, "general.architecture"), *at = lorac_gguf_get_str(f->g, "adapter.type");
    snprintf(info->arch, sizeof info->arch, "%s", arch ? arch : "");
    snprintf(info->adapter_type, sizeof info->adapter_type, "%s", at ? at : "");
    info->has_alpha = lorac_gguf_get_float(f->g, "adapter.lora.alpha", &info->alpha);
    info->n_tensors = lorac_gguf_tensor_count(f->g);
    return LORAC_OK;
}

lorac_status lorac_lorafile_tensor(const lorac_lorafile *f, int i, lorac_lorafile_tensor_info *out) {
    API_NEED(f, "lorac_lorafile_tensor");
    API_NEED(out, "lorac_lorafile_tensor");
    const int n = lorac_gguf_tensor_count(f->g);
    if (i < 0 || i >= n) return lorac_fail(LORAC_ERR_ARG, "lorac_lorafile_tensor: index %d outside 0..%d", i, n - 1);
    const lorac_tensor_desc *t = lorac_gguf_tensor(f->g, i);
    memset(out, 0, sizeof *out);
    out->name = t->name;
    /* the reader reports shapes row-major (ne reversed); GGUF's own order back */
    out->ne[0] = t->shape[t->ndim - 1];
    out->ne[1] = t->ndim > 1 ? t->shape[t->ndim - 2] : 1;
    snprintf(out->type, sizeof out->type, "%s", lorac_dtype_name(t->dtype));
    return LORAC_OK;
}
