/* adapters.c - the public adapter calls: named adapters over one base
 * (lora/adapter_set.h), one adapter applied straight onto the base
 * (lora/adapter_io.h), saving, merging (lora/merge.h) and GGUF export
 * (lora/export_gguf.h). See lorac.h, "Adapters", for the two ways of
 * holding adapters and why an llm holds one way or the other. */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/adapter_io.h"
#include "lora/export_gguf.h"
#include "lora/merge.h"

static lorac_status no_applied(const lorac_llm *llm, const char *fn) {
    if (llm->applied)
        return lorac_fail(LORAC_ERR_ARG, "%s: the llm holds an adapter applied straight onto its base (or trained); "
                          "hint: named adapters need a fresh llm, or merge it first (lorac_llm_merge)", fn);
    return LORAC_OK;
}

lorac_status lorac_llm_adapter_load(lorac_llm *llm, const char *name, const char *dir) {
    API_NEED(llm, "lorac_llm_adapter_load");
    API_NEED(name, "lorac_llm_adapter_load");
    API_NEED(dir, "lorac_llm_adapter_load");
    LORAC_TRY(no_applied(llm, "lorac_llm_adapter_load"));
    return lorac_adapters_load(&llm->set, name, dir);
}

lorac_status lorac_llm_adapter_unload(lorac_llm *llm, const char *name) {
    API_NEED(llm, "lorac_llm_adapter_unload");
    API_NEED(name, "lorac_llm_adapter_unload");
    return lorac_adapters_unload(&llm->set, name);
}

lorac_status lorac_llm_adapter_use(lorac_llm *llm, const char *name) {
    API_NEED(llm, "lorac_llm_adapter_use");
    if (llm->applied)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_adapter_use: the llm's adapter is applied straight onto its base "
                          "and cannot be switched; hint: load adapters by name (lorac_llm_adapter_load) instead");
    return lorac_adapters_activate(&llm->set, name);
}

lorac_status lorac_llm_adapter_combine(lorac_llm *llm, const char *name, const char *const *names, const float *weights,
                                       int n, const char *type) {
    API_NEED(llm, "lorac_llm_adapter_combine");
    API_NEED(name, "lorac_llm_adapter_combine");
    API_NEED(type, "lorac_llm_adapter_combine");
    if (n < 1 || !names || !weights)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_adapter_combine: needs n >= 1 names and weights (n = %d)", n);
    for (int i = 0; i < n; i++)
        if (!names[i]) return lorac_fail(LORAC_ERR_ARG, "lorac_llm_adapter_combine: names[%d] is NULL", i);
    return lorac_adapters_combine(&llm->set, name, names, weights, n, type);
}

lorac_status lorac_llm_adapter_apply(lorac_llm *llm, const char *dir) {
    API_NEED(llm, "lorac_llm_adapter_apply");
    API_NEED(dir, "lorac_llm_adapter_apply");
    if (llm->set.n)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_adapter_apply: the llm holds named adapters; hint: one applied "
                          "adapter needs an llm without named ones (lorac_llm_adapter_unload)");
    LORAC_TRY(no_applied(llm, "lorac_llm_adapter_apply"));
    lorac_lora_config c;
    char *labels[LORAC_API_MAX_LABELS] = {0};
    int n_classes = 0;
    LORAC_TRY(lorac_adapter_read_config(dir, &c, &n_classes, labels, LORAC_API_MAX_LABELS));
    lorac_status st = lorac_adapter_load(llm->m, dir, &llm->applied_cfg);
    if (st != LORAC_OK) {
        for (int i = 0; i < LORAC_API_MAX_LABELS; i++) free(labels[i]);
        return st;
    }
    llm->applied = llm->applied_lora = 1;
    llm->applied_classes = n_classes;
    for (int i = 0; i < LORAC_API_MAX_LABELS; i++)
        if (labels[i]) llm->labels[llm->n_labels++] = labels[i];
    return LORAC_OK;
}

const char *lorac_api_label(const lorac_llm *llm, int i) {
    if (!llm || i < 0) return NULL;
    if (llm->set.n && llm->set.active >= 0) {
        const lorac_adapter_slot *a = &llm->set.slot[llm->set.active];
        return i < a->n_labels ? a->labels[i] : NULL;
    }
    return llm->applied && i < llm->n_labels ? llm->labels[i] : NULL;
}

const char *lorac_llm_label(const lorac_llm *llm, int i) { return lorac_api_label(llm, i); }

lorac_status lorac_llm_adapter_save(const lorac_llm *llm, const char *dir) {
    API_NEED(llm, "lorac_llm_adapter_save");
    API_NEED(dir, "lorac_llm_adapter_save");
    if (!llm->applied || !llm->applied_lora)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_adapter_save: %s", llm->set.n ? "named adapters are saved already "
                          "(their directories); hint: save a trained or applied adapter" : !llm->applied ?
                          "the llm holds no adapter; hint: lorac_llm_train or lorac_llm_adapter_apply first" :
                          "no LoRA adapter to save (merged into the base, or trained with full / head / last-layers, "
                          "which change base weights); hint: lorac_llm_save writes the whole model");
    const lorac_model *m = llm->m;
    const int n_classes = m->head && m->head->W->data ? m->n_classes : 0;
    const lorac_adapter_meta meta = {m->path, n_classes ? "SEQ_CLS" : "CAUSAL_LM", n_classes,
                                     llm->n_labels ? (const char *const *)llm->labels : NULL};
    return lorac_adapter_save(m, &llm->applied_cfg, &meta, dir);
}

lorac_status lorac_llm_merge(lorac_llm *llm) {
    API_NEED(llm, "lorac_llm_merge");
    if (llm->base == LORAC_BASE_NF4 || llm->base == LORAC_BASE_GGUF)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "lorac_llm_merge: the base is quantized (NF4 / GGML blocks); hint: "
                          "open it with LORAC_BASE_FP32 to merge (lorac merge re-quantizes after merging)");
    if (!llm->applied && (llm->set.n == 0 || llm->set.active < 0))
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_merge: no active adapter to merge; hint: lorac_llm_adapter_use NAME");
    LORAC_TRY(lorac_lora_merge(llm->m));
    /* the merged LoRA pairs are no longer needed: the weights hold them */
    if (llm->set.n) {
        lorac_adapter_slot *a = &llm->set.slot[llm->set.active];
        const int nc = a->n_classes;
        /* a named adapter's head belongs to its slot: keep a copy on the model */
        if (nc > 0) {
            lorac_model *m = llm->m;
            const size_t C = (size_t)m->cfg.dim;
            float *w = malloc(sizeof(float) * (size_t)nc * C), *b = m->head->b ? malloc(sizeof(float) * (size_t)nc) : NULL;
            if (!w || (m->head->b && !b)) {
                free(w);
                free(b);
                return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
            }
            memcpy(w, a->head_W, sizeof(float) * (size_t)nc * C);
            if (b) memcpy(b, a->head_b, sizeof(float) * (size_t)nc);
            for (int i = 0; i < a->n_labels && llm->n_labels < LORAC_API_MAX_LABELS; i++)
                llm->labels[llm->n_labels++] = strdup(a->labels[i]);
            lorac_adapters_free(&llm->set);
            lorac_adapters_init(&llm->set, llm->m);
            m->head->W->data = w;
            m->head->W->owned = 1;
            if (b) {
                m->head->b->data = b;
                m->head->b->owned = 1;
            }
            llm->applied_classes = nc;
        } else {
            lorac_adapters_free(&llm->set);
            lorac_adapters_init(&llm->set, llm->m);
        }
        llm->applied = 1; /* the merged result is the model's own now */
        llm->applied_lora = 0;
        return LORAC_OK;
    }
    llm->applied_lora = 0; /* merged: nothing left to save as an adapter */
    return LORAC_OK;
}

lorac_status lorac_llm_save(lorac_llm *llm, const char *dir) {
    API_NEED(llm, "lorac_llm_save");
    API_NEED(dir, "lorac_llm_save");
    if (llm->base != LORAC_BASE_FP32)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "lorac_llm_save: the base is not fp32; hint: open it with "
                          "LORAC_BASE_FP32 (lorac merge writes quantized checkpoints)");
    LORAC_TRY(lorac_lora_merge(llm->m));
    return lorac_model_save_merged(llm->m, dir, llm->tok_path[0] ? llm->tok_path : NULL);
}

lorac_status lorac_llm_export_gguf(lorac_llm *llm, const char *adapter_dir, const char *path, int f16,
                                   lorac_llm_export_info *info) {
    API_NEED(llm, "lorac_llm_export_gguf");
    API_NEED(adapter_dir, "lorac_llm_export_gguf");
    API_NEED(path, "lorac_llm_export_gguf");
    if (llm->applied || llm->set.n)
        return lorac_fail(LORAC_ERR_ARG, "lorac_llm_export_gguf: the llm already holds adapters; hint: export over a "
                          "freshly opened base");
    lorac_gguf_export_info gi;
    LORAC_TRY(lorac_export_gguf(llm->m, adapter_dir, path, f16 ? LORAC_F16 : LORAC_F32, &gi));
    /* the adapter is on the model now, as lorac_llm_adapter_apply leaves it */
    llm->applied = 1;
    llm->applied_lora = 0;
    if (info) {
        memset(info, 0, sizeof *info);
        info->n_tensors = gi.n_tensors;
        info->n_modules = gi.n_modules;
        info->r = gi.r;
        info->n_fused = gi.n_fused;
        info->alpha = gi.alpha;
        snprintf(info->arch, sizeof info->arch, "%s", gi.arch);
        info->bytes = gi.bytes;
    }
    return LORAC_OK;
}
