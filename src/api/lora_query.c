/* lora_query.c - what a lorac_train_config's LoRA fields mean before
 * anything is applied (lorac info / modules): the settings PEFT's
 * LoraConfig would hold (lorac_train_config_lora) and, per module of an
 * llm, whether the config targets it, with which r / alpha and how many
 * trainable parameters its pair adds (lorac_llm_module_target). The
 * matching is lora/lora.c's, the one lorac_llm_prepare applies. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/stages.h"
#include "lora/lora_init.h"

lorac_status lorac_train_config_lora(const lorac_train_config *c, lorac_train_config_lora_info *out) {
    API_NEED(c, "lorac_train_config_lora");
    API_NEED(out, "lorac_train_config_lora");
    API_SIZE(out, lorac_train_config_lora_info, "lorac_train_config_lora");
    LORAC_TRY(lorac_train_config_check(c));
    lorac_lora_config lc;
    LORAC_TRY(lorac_api_lora_config(c, &lc));
    static const char *const bias[] = {"none", "all", "lora_only"};
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    out->r = lc.r;
    out->alpha = lc.alpha;
    out->dropout = lc.dropout;
    out->rslora = lc.use_rslora;
    out->dora = lc.use_dora;
    out->split_qkv = lc.split_fused;
    lorac_lora_init_name(&lc, out->init, sizeof out->init);
    out->default_init = lc.init == LORAC_INIT_DEFAULT;
    snprintf(out->bias, sizeof out->bias, "%s", bias[lc.bias]);
    out->n_targets = lc.target_regex[0] ? 0 : lc.n_targets;
    out->n_modules_to_save = lc.n_modules_to_save;
    out->n_layers = lc.n_layers;
    out->n_rank_pattern = lc.n_rank_pattern;
    out->n_alpha_pattern = lc.n_alpha_pattern;
    return LORAC_OK;
}

/* The token embedding's module name: its weight's name without ".weight". */
static int is_embedding(const lorac_model *m, const char *name) {
    const char *w = m->wte->name;
    const size_t n = strlen(name);
    return !strncmp(w, name, n) && (!w[n] || !strcmp(w + n, ".weight"));
}

static void pair(lorac_llm_target_info *out, const lorac_lora_config *lc, const char *name, int64_t in, int64_t out_dim,
                 int parts) {
    int r;
    float alpha;
    lorac_lora_module_r_alpha(lc, name, &r, &alpha);
    out->targeted = 1;
    out->r = r;
    out->parts = parts;
    out->alpha = alpha;
    out->scale = lc->use_rslora ? alpha / sqrtf((float)r) : alpha / (float)r; /* as the pair will hold it */
    out->params = (int64_t)parts * r * in + out_dim * r; /* A [parts*r, in], B [out, r] */
    if (out->dora) out->params += out_dim;                 /* the magnitude, one per output row */
}

lorac_status lorac_llm_module_target(const lorac_llm *llm, const lorac_train_config *c, const char *module,
                                     lorac_llm_target_info *out) {
    API_NEED(llm, "lorac_llm_module_target");
    API_NEED(module, "lorac_llm_module_target");
    API_NEED(out, "lorac_llm_module_target");
    API_SIZE(out, lorac_llm_target_info, "lorac_llm_module_target");
    LORAC_TRY(lorac_api_check_config(c, "lorac_llm_module_target"));
    lorac_lora_config lc;
    LORAC_TRY(lorac_api_lora_config(c, &lc));
    const lorac_model *m = llm->m;
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (strcmp(L->name, module)) continue;
        if (lorac_lora_targets(&lc, m, L)) {
            out->dora = lc.use_dora;
            pair(out, &lc, L->name, L->in, L->out, lc.split_fused && L->fused_parts > 1 ? L->fused_parts : 1);
        }
        return LORAC_OK;
    }
    if (is_embedding(m, module)) {
        out->embedding = 1;
        if (lorac_lora_embed_targeted(&lc, m)) pair(out, &lc, module, m->cfg.vocab, m->cfg.dim, 1);
        return LORAC_OK;
    }
    return lorac_fail(LORAC_ERR_ARG, "lorac_llm_module_target: no module '%s' in this model; hint: lorac_llm_module "
                      "lists the Linear modules, the token embedding is its lorac_llm_param name without .weight",
                      module);
}
