#include "lora/lora.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/dora.h"
#include "lora/lora_init.h"

void lorac_lora_config_default(lorac_lora_config *c) {
    memset(c, 0, sizeof *c);
    c->r = 8;
    c->alpha = 8;
    c->seed = 42;
}

lorac_status lorac_lora_parse_list(const char *s, char (*out)[96], int *n, const char *what) {
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ')) p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len == 0 || len >= 96)
            return lorac_fail(LORAC_ERR_ARG, "%s: empty or too long name in '%s'; hint: a comma-separated list like q_proj,v_proj", what, s);
        if (*n >= LORAC_MAX_TARGETS) return lorac_fail(LORAC_ERR_ARG, "%s: more than %d names", what, LORAC_MAX_TARGETS);
        memcpy(out[*n], p, len);
        out[*n][len] = 0;
        (*n)++;
        if (!e) break;
        p = e + 1;
    }
    return LORAC_OK;
}

lorac_status lorac_lora_parse_layers(const char *s, lorac_lora_config *c) {
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 100000 || (*end && *end != ','))
            return lorac_fail(LORAC_ERR_ARG, "layers_to_transform: bad list '%s'; hint: e.g. 0,1,2", s);
        if (c->n_layers >= 256) return lorac_fail(LORAC_ERR_ARG, "layers_to_transform: too many layers");
        c->layers[c->n_layers++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return LORAC_OK;
}

lorac_status lorac_lora_parse_patterns(const char *s, lorac_pattern *out, int *n, int integer, const char *what) {
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!eq || (e && eq > e) || eq == p || (size_t)(eq - p) >= sizeof out->key)
            return lorac_fail(LORAC_ERR_ARG, "%s: bad entry in '%s'; hint: KEY=VALUE pairs separated by commas, "
                              "e.g. q_proj=16,layers.0.mlp.down_proj=4", what, s);
        if (*n >= LORAC_MAX_PATTERNS) return lorac_fail(LORAC_ERR_ARG, "%s: more than %d entries", what, LORAC_MAX_PATTERNS);
        char num[64];
        const size_t vl = len - (size_t)(eq + 1 - p);
        if (vl == 0 || vl >= sizeof num) return lorac_fail(LORAC_ERR_ARG, "%s: no value for '%.*s'", what, (int)(eq - p), p);
        memcpy(num, eq + 1, vl);
        num[vl] = 0;
        char *end;
        const double v = strtod(num, &end);
        if (*end || !(v > 0) || v > 1e6 || (integer && v != (double)(long)v))
            return lorac_fail(LORAC_ERR_ARG, "%s: value '%s' for '%.*s' is not a positive %s", what, num, (int)(eq - p), p,
                              integer ? "integer" : "number");
        memcpy(out[*n].key, p, (size_t)(eq - p));
        out[*n].key[eq - p] = 0;
        out[*n].value = (float)v;
        (*n)++;
        if (!e) break;
        p = e + 1;
    }
    return LORAC_OK;
}

/* PEFT's get_pattern_key: re.match(rf"(.*\.)?({key})$", name), first match wins */
static const lorac_pattern *pattern_for(const lorac_pattern *pat, int n, const char *name) {
    for (int i = 0; i < n; i++) {
        regex_t re;
        char full[300];
        snprintf(full, sizeof full, "^(.*\\.)?(%s)$", pat[i].key);
        if (regcomp(&re, full, REG_EXTENDED | REG_NOSUB) != 0) continue;
        const int hit = regexec(&re, name, 0, NULL, 0) == 0;
        regfree(&re);
        if (hit) return &pat[i];
    }
    return NULL;
}

void lorac_lora_module_r_alpha(const lorac_lora_config *c, const char *name, int *r, float *alpha) {
    const lorac_pattern *pr = pattern_for(c->rank_pattern, c->n_rank_pattern, name);
    const lorac_pattern *pa = pattern_for(c->alpha_pattern, c->n_alpha_pattern, name);
    *r = pr ? (int)pr->value : c->r;
    *alpha = pa ? pa->value : c->alpha;
}

static int ends_with_dot(const char *name, const char *t) {
    size_t a = strlen(name), b = strlen(t);
    if (!strcmp(name, t)) return 1;
    return a > b && name[a - b - 1] == '.' && !strcmp(name + a - b, t);
}

/* Index of the transformer block a module lives in, or -1. */
static int layer_index(const char *name) {
    static const char *const keys[] = {".layers.", ".h.", ".layer.", ".blocks."};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *p = strstr(name, keys[i]);
        if (p) return atoi(p + strlen(keys[i]));
    }
    return -1;
}

static int is_block_linear(const lorac_model *m, const lorac_linear *L) {
    return L != m->lm_head && L != m->head && L != m->pre_head;
}

int lorac_lora_targets(const lorac_lora_config *c, const lorac_model *m, const lorac_linear *L) {
    int hit = 0;
    if (c->target_regex[0]) {
        regex_t re;
        char full[300];
        snprintf(full, sizeof full, "^(%s)$", c->target_regex);
        if (regcomp(&re, full, REG_EXTENDED | REG_NOSUB) != 0) return 0;
        hit = regexec(&re, L->name, 0, NULL, 0) == 0;
        regfree(&re);
    } else {
        for (int i = 0; i < c->n_targets && !hit; i++) {
            if (!strcmp(c->targets[i], "all-linear"))
                hit = is_block_linear(m, L);
            else
                hit = ends_with_dot(L->name, c->targets[i]);
        }
    }
    if (hit && c->n_layers > 0) {
        int li = layer_index(L->name), ok = 0;
        for (int i = 0; i < c->n_layers; i++) ok |= c->layers[i] == li;
        hit = ok;
    }
    return hit;
}

static int module_to_save(const lorac_lora_config *c, const char *name) {
    for (int i = 0; i < c->n_modules_to_save; i++)
        if (ends_with_dot(name, c->modules_to_save[i])) return 1;
    return 0;
}

lorac_status lorac_lora_new(const lorac_linear *L, int r, int parts, float alpha, float scale, float dropout, int grads,
                            lorac_lora **out) {
    lorac_lora *l;
    *out = NULL;
    LORAC_TRY(lorac_alloc((void **)&l, 1, sizeof *l, "LoRA adapter"));
    l->r = r;
    l->parts = parts;
    l->alpha = alpha;
    l->scale = scale;
    l->dropout = dropout;
    const int R = parts * r;
    snprintf(l->A.name, sizeof l->A.name, "%s.lora_A.weight", L->name);
    snprintf(l->B.name, sizeof l->B.name, "%s.lora_B.weight", L->name);
    l->A.ndim = l->B.ndim = 2;
    l->A.shape[0] = R;
    l->A.shape[1] = L->in;
    l->B.shape[0] = L->out;
    l->B.shape[1] = r;
    l->A.n = (size_t)R * L->in;
    l->B.n = (size_t)L->out * r;
    l->A.owned = l->B.owned = 1;
    lorac_status st = lorac_alloc((void **)&l->A.data, l->A.n, sizeof(float), "lora_A");
    if (st == LORAC_OK) st = lorac_alloc((void **)&l->B.data, l->B.n, sizeof(float), "lora_B");
    if (st == LORAC_OK && grads) st = lorac_alloc((void **)&l->A.grad, l->A.n, sizeof(float), "lora_A grad");
    if (st == LORAC_OK && grads) st = lorac_alloc((void **)&l->B.grad, l->B.n, sizeof(float), "lora_B grad");
    if (st != LORAC_OK) {
        lorac_lora_free(l);
        return st;
    }
    *out = l;
    return LORAC_OK;
}

static lorac_status new_lora(lorac_linear *L, const lorac_lora_config *c, lorac_rng *rng) {
    const int parts = c->split_fused && L->fused_parts > 1 ? L->fused_parts : 1;
    int r;
    float alpha;
    lorac_lora_module_r_alpha(c, L->name, &r, &alpha);
    if (r > 4096) return lorac_fail(LORAC_ERR_ARG, "rank_pattern gives '%s' r=%d; hint: use 1..4096", L->name, r);
    const float scale = c->use_rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
    LORAC_TRY(lorac_lora_new(L, r, parts, alpha, scale, c->dropout, 1, &L->lora));
    LORAC_TRY(lorac_lora_init_weights(L, L->lora, c, rng));
    if (c->use_dora) LORAC_TRY(lorac_dora_attach(L, L->lora, 1));
    return LORAC_OK;
}

lorac_status lorac_lora_check_regex(const lorac_lora_config *c) {
    if (!c->target_regex[0]) return LORAC_OK;
    regex_t re;
    if (regcomp(&re, c->target_regex, REG_EXTENDED | REG_NOSUB) != 0)
        return lorac_fail(LORAC_ERR_ARG, "target_modules regex '%s' does not compile; hint: a POSIX extended regex "
                          "matched against whole module names, e.g. '.*\\.(q|v)_proj'", c->target_regex);
    regfree(&re);
    return LORAC_OK;
}

lorac_status lorac_lora_apply(lorac_model *m, const lorac_lora_config *c, int *n_adapted) {
    if (c->r <= 0 || c->r > 4096) return lorac_fail(LORAC_ERR_ARG, "LoRA rank r=%d; hint: use 1..4096 (8 or 16 are common)", c->r);
    if (!(c->alpha > 0)) return lorac_fail(LORAC_ERR_ARG, "lora_alpha=%g must be positive", (double)c->alpha);
    if (!(c->dropout >= 0 && c->dropout < 1)) return lorac_fail(LORAC_ERR_ARG, "lora_dropout=%g must be in [0, 1)", (double)c->dropout);
    LORAC_TRY(lorac_lora_check_regex(c));
    lorac_rng rng;
    lorac_rng_seed(&rng, c->seed);
    int n = 0;
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        if (!lorac_lora_targets(c, m, L)) continue;
        if (L->lora) return lorac_fail(LORAC_ERR_ARG, "module '%s' already has an adapter", L->name);
        LORAC_TRY(new_lora(L, c, &rng));
        if (c->bias == LORAC_BIAS_LORA_ONLY && L->b) LORAC_TRY(lorac_weight_make_trainable(L->b));
        n++;
    }
    if (lorac_lora_embed_targeted(c, m)) {
        if (m->wte_lora) return lorac_fail(LORAC_ERR_ARG, "the embedding '%s' already has an adapter", m->wte->name);
        LORAC_TRY(lorac_lora_embed_apply(m, c, &rng));
        n++;
    }
    if (n == 0 && (c->n_targets > 0 || c->target_regex[0]))
        return lorac_fail(LORAC_ERR_ARG, "no module matches target_modules %s%s; hint: `lorac modules MODEL` lists the names",
                          c->target_regex[0] ? c->target_regex : c->targets[0], c->n_targets > 1 ? ",..." : "");
    for (int i = 0; i < m->n_w; i++) {
        lorac_weight *w = &m->w[i];
        size_t len = strlen(w->name);
        int is_bias = len > 5 && !strcmp(w->name + len - 5, ".bias");
        if (c->bias == LORAC_BIAS_ALL && is_bias) LORAC_TRY(lorac_weight_make_trainable(w));
    }
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        if (!module_to_save(c, L->name)) continue;
        /* an untied head kept in the GGUF file's blocks for decoding (LORAC_QLOAD_KEEP_HEAD) is trained, or read
           from an adapter, in fp32 as it would be without the flag */
        if (L == m->lm_head && L->q && !L->q_shared) LORAC_TRY(lorac_linear_dequantize(L));
        LORAC_TRY(lorac_weight_make_trainable(L->W));
        if (L->b) LORAC_TRY(lorac_weight_make_trainable(L->b));
    }
    if (n_adapted) *n_adapted = n;
    return LORAC_OK;
}

lorac_status lorac_make_full_trainable(lorac_model *m) {
    for (int i = 0; i < m->n_w; i++) LORAC_TRY(lorac_weight_make_trainable(&m->w[i]));
    return LORAC_OK;
}

void lorac_count_params(const lorac_model *m, int64_t *trainable, int64_t *all) {
    int64_t t = 0, a = 0;
    for (int i = 0; i < m->n_w; i++) {
        a += (int64_t)m->w[i].n;
        if (m->w[i].grad) t += (int64_t)m->w[i].n;
    }
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        const int64_t k = (int64_t)(l->A.n + l->B.n + (l->dora ? l->M.n : 0));
        a += k;
        t += k;
    }
    if (m->wte_lora) {
        a += (int64_t)(m->wte_lora->A.n + m->wte_lora->B.n);
        t += (int64_t)(m->wte_lora->A.n + m->wte_lora->B.n);
    }
    *trainable = t;
    *all = a;
}

void lorac_for_each_trainable(lorac_model *m, lorac_param_fn fn, void *ctx) {
    for (int i = 0; i < m->n_w; i++)
        if (m->w[i].grad) fn(&m->w[i], ctx);
    if (m->wte_lora) {
        fn(&m->wte_lora->A, ctx);
        fn(&m->wte_lora->B, ctx);
    }
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        fn(&l->A, ctx);
        fn(&l->B, ctx);
        if (l->dora && l->M.grad) fn(&l->M, ctx);
    }
}

lorac_status lorac_make_last_layers_trainable(lorac_model *m, int n) {
    int avail = 0;
    for (int i = 0; i < m->n_lin; i++) avail += &m->lin[i] != m->lm_head;
    if (n < 1 || n > avail)
        return lorac_fail(LORAC_ERR_ARG, "last-layers:%d: the model has %d Linear modules besides lm_head; hint: use 1..%d",
                          n, avail, avail);
    for (int i = m->n_lin - 1; i >= 0 && n > 0; i--) {
        lorac_linear *L = &m->lin[i];
        if (L == m->lm_head) continue;
        LORAC_TRY(lorac_weight_make_trainable(L->W));
        if (L->b) LORAC_TRY(lorac_weight_make_trainable(L->b));
        n--;
    }
    return LORAC_OK;
}
