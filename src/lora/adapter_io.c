#include "lora/adapter_io.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "lora/lora_init.h"

/* Sanity bounds on numbers read from adapter_config.json, checked before
 * anything is allocated from them (the CLI caps --r at 4096). */
#define LORAC_ADAPTER_MAX_R 65536
#define LORAC_ADAPTER_MAX_CLASSES 65536

#define PREFIX "base_model.model."

/* ---- save ---------------------------------------------------------------- */

typedef struct { lorac_st_entry *e; char (*names)[192]; float **owned; int n, cap; } entry_list;

/* The classification head, and a pre_head that training created fresh
 * (DistilBERT's pre_classifier), travel with the adapter even when frozen:
 * the base checkpoint does not have them. */
static int is_head_weight(const lorac_model *m, const lorac_weight *w) {
    if (m->head && (w == m->head->W || w == m->head->b)) return 1;
    return m->pre_head && m->pre_head_fresh && (w == m->pre_head->W || w == m->pre_head->b);
}

/* The name PEFT gives a base tensor in adapter_model.safetensors: a module
 * that carries LoRA is wrapped, so its own weight / bias live under
 * "<module>.base_layer.<weight|bias>" (bias="lora_only"/"all"); every other
 * tensor keeps its name. */
static void peft_key(const lorac_model *m, const lorac_weight *w, char *key, size_t n) {
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        if (!L->lora || (w != L->W && w != L->b)) continue;
        snprintf(key, n, PREFIX "%s.base_layer.%s", L->name, w == L->W ? "weight" : "bias");
        return;
    }
    snprintf(key, n, PREFIX "%s", w->name);
}

static void add_entry(entry_list *l, const lorac_weight *w) {
    if (l->n >= l->cap) return;
    lorac_st_entry *e = &l->e[l->n];
    snprintf(l->names[l->n], 192, PREFIX "%s", w->name);
    e->name = l->names[l->n];
    e->data = w->data;
    e->ndim = w->ndim;
    e->shape[0] = w->shape[0];
    e->shape[1] = w->shape[1];
    e->dtype = LORAC_F32;
    l->n++;
}

/* A PiSSA / OLoRA pair converted to a plain LoRA on the original base
 * (PEFT's subtract_mutated_init): the trained W_res + s B A equals
 * W + s' [B | -B0] [A ; A0] with the rank doubled and s' = s (alpha doubled,
 * or times sqrt 2 with rsLoRA). */
static void add_converted(entry_list *l, const lorac_linear *L, const lorac_lora *a) {
    if (l->n + 2 > l->cap) return;
    const int r = a->r, in = L->in, out = L->out;
    float *A2 = malloc(sizeof(float) * 2 * (size_t)r * in), *B2 = malloc(sizeof(float) * (size_t)out * 2 * r);
    l->owned[l->n] = A2;
    l->owned[l->n + 1] = B2;
    if (!A2 || !B2) return; /* lorac_st_write refuses the NULL data below */
    memcpy(A2, a->A.data, sizeof(float) * (size_t)r * in);
    memcpy(A2 + (size_t)r * in, a->A0, sizeof(float) * (size_t)r * in);
    for (int o = 0; o < out; o++)
        for (int k = 0; k < r; k++) {
            B2[(size_t)o * 2 * r + k] = a->B.data[(size_t)o * r + k];
            B2[(size_t)o * 2 * r + r + k] = -a->B0[(size_t)o * r + k];
        }
    const lorac_weight *w[2] = {&a->A, &a->B};
    float *d[2] = {A2, B2};
    for (int k = 0; k < 2; k++) {
        add_entry(l, w[k]);
        l->e[l->n - 1].data = d[k];
        l->e[l->n - 1].shape[k] *= 2; /* A [2r, in], B [out, 2r] */
    }
}

static cJSON *pattern_object(const lorac_pattern *p, int n, double mul) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) cJSON_AddNumberToObject(o, p[i].key, mul * p[i].value);
    return o;
}

/* Has any adapter of m been initialised by PiSSA / OLoRA (saved converted)? */
static int mutated_init(const lorac_model *m) {
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora && m->lin[i].lora->A0) return 1;
    return 0;
}

static cJSON *str_array(char (*items)[96], int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(items[i]));
    return a;
}

/* target_modules as PEFT writes it: with "all-linear" among the targets, the
 * resolved set of module names (the last name component of every adapted
 * module, which all-linear covers exactly); otherwise the user's list. */
static cJSON *target_list(const lorac_model *m, const lorac_lora_config *c) {
    int all = 0;
    for (int i = 0; i < c->n_targets; i++) all |= !strcmp(c->targets[i], "all-linear");
    if (!all) return str_array((char (*)[96])c->targets, c->n_targets);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < m->n_lin; i++) {
        if (!m->lin[i].lora) continue;
        const char *dot = strrchr(m->lin[i].name, '.'), *leaf = dot ? dot + 1 : m->lin[i].name;
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) {
            const char *d2 = strrchr(m->lin[k].name, '.');
            seen = m->lin[k].lora && !strcmp(d2 ? d2 + 1 : m->lin[k].name, leaf);
        }
        if (!seen) cJSON_AddItemToArray(a, cJSON_CreateString(leaf));
    }
    return a;
}

lorac_status lorac_adapter_save(const lorac_model *m, const lorac_lora_config *c, const lorac_adapter_meta *meta,
                                const char *dir) {
    LORAC_TRY(lorac_mkdirs(dir));
    entry_list l = {0};
    l.cap = 3 * m->n_lin + m->n_w + 4;
    LORAC_TRY(lorac_alloc((void **)&l.e, (size_t)l.cap, sizeof *l.e, "adapter entries"));
    lorac_status st = lorac_alloc((void **)&l.names, (size_t)l.cap, sizeof *l.names, "adapter names");
    if (st == LORAC_OK) st = lorac_alloc((void **)&l.owned, (size_t)l.cap, sizeof *l.owned, "adapter buffers");
    if (st != LORAC_OK) {
        free(l.e);
        free(l.names);
        return st;
    }
    const int convert = mutated_init(m);
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_lora *a = m->lin[i].lora;
        if (!a) continue;
        if (convert && !a->A0) {
            st = lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: '%s' has no PiSSA/OLoRA initial pair while others do; hint: "
                            "one init for every module", dir, m->lin[i].name);
            break;
        }
        if (convert) {
            add_converted(&l, &m->lin[i], a);
        } else {
            add_entry(&l, &a->A);
            add_entry(&l, &a->B);
        }
        if (a->dora) add_entry(&l, &a->M);
    }
    if (m->wte_lora) { /* lora_embedding_A [r, vocab], lora_embedding_B [dim, r] */
        add_entry(&l, &m->wte_lora->A);
        add_entry(&l, &m->wte_lora->B);
    }
    for (int i = 0; i < m->n_w; i++) {
        const lorac_weight *w = &m->w[i];
        if (w->grad || is_head_weight(m, w)) {
            add_entry(&l, w);
            peft_key(m, w, l.names[l.n - 1], 192);
        }
    }
    char path[1200];
    const char *md[] = {"format", "pt", "created_by", "lorac " LORAC_VERSION, NULL};
    for (int i = 0; i < l.n && st == LORAC_OK; i++)
        if (!l.e[i].data) st = lorac_fail(LORAC_ERR_NOMEM, "out of memory converting the PiSSA/OLoRA adapter");
    if (st == LORAC_OK) st = lorac_st_write(lorac_path_join(path, sizeof path, dir, "adapter_model.safetensors"), l.e, l.n, md);
    for (int i = 0; i < l.cap; i++) free(l.owned[i]);
    free(l.owned);
    free(l.e);
    free(l.names);
    LORAC_TRY(st);
    const double rmul = convert ? 2 : 1, amul = convert ? (c->use_rslora ? sqrt(2.0) : 2.0) : 1;

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddStringToObject(j, "task_type", meta && meta->task_type ? meta->task_type : "CAUSAL_LM");
    cJSON_AddStringToObject(j, "base_model_name_or_path", meta && meta->base_model ? meta->base_model : m->path);
    cJSON_AddNumberToObject(j, "r", rmul * c->r);
    cJSON_AddNumberToObject(j, "lora_alpha", amul * c->alpha);
    cJSON_AddItemToObject(j, "rank_pattern", pattern_object(c->rank_pattern, c->n_rank_pattern, rmul));
    cJSON_AddItemToObject(j, "alpha_pattern", pattern_object(c->alpha_pattern, c->n_alpha_pattern, rmul));
    cJSON_AddBoolToObject(j, "use_dora", c->use_dora);
    cJSON_AddNumberToObject(j, "lora_dropout", c->dropout);
    if (c->target_regex[0])
        cJSON_AddStringToObject(j, "target_modules", c->target_regex);
    else
        cJSON_AddItemToObject(j, "target_modules", target_list(m, c));
    static const char *const bias_names[] = {"none", "all", "lora_only"};
    cJSON_AddStringToObject(j, "bias", bias_names[c->bias]);
    cJSON_AddBoolToObject(j, "fan_in_fan_out", m->cfg.arch == LORAC_ARCH_GPT2);
    cJSON_AddBoolToObject(j, "use_rslora", c->use_rslora);
    if (c->n_modules_to_save)
        cJSON_AddItemToObject(j, "modules_to_save", str_array((char (*)[96])c->modules_to_save, c->n_modules_to_save));
    else
        cJSON_AddNullToObject(j, "modules_to_save");
    if (c->n_layers) {
        cJSON *a = cJSON_CreateArray();
        for (int i = 0; i < c->n_layers; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(c->layers[i]));
        cJSON_AddItemToObject(j, "layers_to_transform", a);
    } else {
        cJSON_AddNullToObject(j, "layers_to_transform");
    }
    cJSON_AddBoolToObject(j, "inference_mode", 1);
    if (convert || c->init == LORAC_INIT_DEFAULT || c->init == LORAC_INIT_FALSE) {
        cJSON_AddBoolToObject(j, "init_lora_weights", !(c->init == LORAC_INIT_FALSE && !convert));
    } else {
        char ib[32];
        cJSON_AddStringToObject(j, "init_lora_weights", lorac_lora_init_name(c, ib, sizeof ib));
    }
    /* lorac's own fields (PEFT ignores unknown keys only in newer releases;
     * issue 4 turns split adapters into plain PEFT ones on export) */
    cJSON *x = cJSON_CreateObject();
    cJSON_AddBoolToObject(x, "split_fused", c->split_fused);
    cJSON_AddNumberToObject(x, "seed", (double)c->seed);
    if (meta && meta->n_classes > 0) {
        cJSON_AddNumberToObject(x, "num_classes", meta->n_classes);
        cJSON_AddBoolToObject(x, "head_bias", m->head && m->head->b);
        if (meta->label_names) {
            cJSON *a = cJSON_CreateArray();
            for (int i = 0; i < meta->n_classes; i++) cJSON_AddItemToArray(a, cJSON_CreateString(meta->label_names[i]));
            cJSON_AddItemToObject(x, "labels", a);
        }
    }
    cJSON_AddItemToObject(j, "lorac", x);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    if (!txt) return lorac_fail(LORAC_ERR_NOMEM, "out of memory writing adapter_config.json");
    st = lorac_write_atomic(lorac_path_join(path, sizeof path, dir, "adapter_config.json"), txt, strlen(txt));
    free(txt);
    return st;
}

/* ---- load ---------------------------------------------------------------- */

lorac_status lorac_adapter_read_config(const char *dir, lorac_lora_config *c, int *n_classes, char **label_names,
                                       int max_labels) {
    char path[1200], *txt;
    lorac_path_join(path, sizeof path, dir, "adapter_config.json");
    LORAC_TRY(lorac_read_file(path, 1u << 20, &txt, NULL));
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return lorac_fail(LORAC_ERR_FORMAT, "%s: not a JSON object; hint: is this a PEFT adapter directory?", path);
    }
    lorac_lora_config_default(c);
    lorac_status st = LORAC_OK;
    const cJSON *v;
#define FAIL(...) do { st = lorac_fail(LORAC_ERR_FORMAT, __VA_ARGS__); goto done; } while (0)
    v = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA"))) FAIL("%s: peft_type is not LORA; hint: lorac reads LoRA adapters", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "r");
    if (!cJSON_IsNumber(v) || v->valuedouble < 1) FAIL("%s: 'r' missing or not a positive number", path);
    if (v->valuedouble > LORAC_ADAPTER_MAX_R) FAIL("%s: 'r' = %g is more than %d; hint: the file is corrupt", path, v->valuedouble, LORAC_ADAPTER_MAX_R);
    c->r = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    if (cJSON_IsNumber(v)) c->alpha = (float)v->valuedouble;
    else c->alpha = (float)c->r;
    v = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    if (cJSON_IsNumber(v)) c->dropout = (float)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(j, "use_rslora");
    c->use_rslora = cJSON_IsTrue(v);
    c->use_dora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "use_dora"));
    static const char *const pat_names[2] = {"rank_pattern", "alpha_pattern"};
    for (int k = 0; k < 2; k++) {
        lorac_pattern *pl = k ? c->alpha_pattern : c->rank_pattern;
        int *pn = k ? &c->n_alpha_pattern : &c->n_rank_pattern;
        v = cJSON_GetObjectItemCaseSensitive(j, pat_names[k]);
        if (v && !cJSON_IsObject(v) && !cJSON_IsNull(v)) FAIL("%s: %s is not an object", path, pat_names[k]);
        const cJSON *e, *obj = cJSON_IsObject(v) ? v : NULL;
        cJSON_ArrayForEach(e, obj) {
            if (!cJSON_IsNumber(e) || !(e->valuedouble > 0) || e->valuedouble > (k ? 1e6 : LORAC_ADAPTER_MAX_R) ||
                (!k && e->valuedouble != (double)(int)e->valuedouble))
                FAIL("%s: %s['%s'] must be a positive %s", path, pat_names[k], e->string, k ? "number" : "integer");
            if (*pn >= LORAC_MAX_PATTERNS || strlen(e->string) >= sizeof pl->key)
                FAIL("%s: %s has more than %d entries or a key longer than %zu", path, pat_names[k], LORAC_MAX_PATTERNS,
                     sizeof pl->key - 1);
            strcpy(pl[*pn].key, e->string);
            pl[(*pn)++].value = (float)e->valuedouble;
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "init_lora_weights");
    if (cJSON_IsString(v) && lorac_lora_init_parse(v->valuestring, c) != LORAC_OK) {
        lorac_clear_error();
        FAIL("%s: init_lora_weights '%.64s' is not supported; hint: true, false, gaussian, pissa, pissa_niter_K or "
             "olora", path, v->valuestring);
    } else if (cJSON_IsFalse(v)) {
        c->init = LORAC_INIT_FALSE;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (cJSON_IsString(v)) {
        snprintf(c->target_regex, sizeof c->target_regex, "%s", v->valuestring);
        if (!strcmp(v->valuestring, "all-linear")) {
            c->target_regex[0] = 0;
            strcpy(c->targets[c->n_targets++], "all-linear");
        }
    } else if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsString(e) || strlen(e->valuestring) >= 96 || c->n_targets >= LORAC_MAX_TARGETS)
                FAIL("%s: target_modules entries must be short strings", path);
            strcpy(c->targets[c->n_targets++], e->valuestring);
        }
    } else {
        FAIL("%s: target_modules missing", path);
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "bias");
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "none")) c->bias = LORAC_BIAS_NONE;
        else if (!strcmp(v->valuestring, "all")) c->bias = LORAC_BIAS_ALL;
        else if (!strcmp(v->valuestring, "lora_only")) c->bias = LORAC_BIAS_LORA_ONLY;
        else FAIL("%s: bias '%s' unknown; hint: none, all or lora_only", path, v->valuestring);
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "modules_to_save");
    if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsString(e) || strlen(e->valuestring) >= 96 || c->n_modules_to_save >= LORAC_MAX_TARGETS)
                FAIL("%s: modules_to_save entries must be short strings", path);
            strcpy(c->modules_to_save[c->n_modules_to_save++], e->valuestring);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "layers_to_transform");
    if (cJSON_IsNumber(v)) c->layers[c->n_layers++] = v->valueint; /* saturated: a cast of 1e300 is undefined */
    else if (cJSON_IsArray(v)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, v) if (cJSON_IsNumber(e) && c->n_layers < 256) c->layers[c->n_layers++] = e->valueint;
    }
    if (n_classes) *n_classes = 0;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "lorac");
    if (cJSON_IsObject(x)) {
        c->split_fused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "split_fused"));
        v = cJSON_GetObjectItemCaseSensitive(x, "num_classes");
        if (cJSON_IsNumber(v) && !(v->valuedouble >= 0 && v->valuedouble <= LORAC_ADAPTER_MAX_CLASSES))
            FAIL("%s: lorac.num_classes = %g is out of range [0, %d]; hint: the file is corrupt", path, v->valuedouble, LORAC_ADAPTER_MAX_CLASSES);
        if (n_classes && cJSON_IsNumber(v)) *n_classes = (int)v->valuedouble;
        v = cJSON_GetObjectItemCaseSensitive(x, "labels");
        if (label_names && cJSON_IsArray(v)) {
            int i = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, v) if (cJSON_IsString(e) && i < max_labels) label_names[i++] = strdup(e->valuestring);
        }
    }
#undef FAIL
done:
    cJSON_Delete(j);
    return st;
}

static lorac_status load_into(const lorac_st *st, const char *file, const lorac_model *m, lorac_weight *w) {
    char key[200];
    peft_key(m, w, key, sizeof key);
    const lorac_tensor_desc *t = lorac_st_find(st, key);
    if (!t) { /* adapters lorac wrote before it used PEFT's base_layer names */
        snprintf(key, sizeof key, PREFIX "%s", w->name);
        t = lorac_st_find(st, key);
    }
    if (!t) {
        /* PEFT's in-memory names carry the adapter name ("...lora_A.default.weight") */
        return lorac_fail(LORAC_ERR_FORMAT, "%s: tensor '%s' is missing; hint: the adapter was trained for another model or config", file, key);
    }
    int64_t d1 = t->ndim > 1 ? t->shape[1] : 1;
    if (t->ndim != w->ndim || t->shape[0] != w->shape[0] || d1 != w->shape[1])
        return lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' is [%lld,%lld], the model expects [%lld,%lld]; hint: adapter for another base model?",
                          file, key, (long long)t->shape[0], (long long)d1, (long long)w->shape[0], (long long)w->shape[1]);
    if (!w->owned) {
        float *buf;
        LORAC_TRY(lorac_alloc((void **)&buf, w->n, sizeof(float), w->name));
        w->data = buf;
        w->owned = 1;
    }
    lorac_status cs = lorac_to_f32(w->data, t->data, t->dtype, (int64_t)w->n);
    if (cs != LORAC_OK) {
        lorac_error_prefix("%s: tensor '%s'", file, key); /* the file a non-float dtype came from */
        return cs;
    }
    /* A NaN or Inf would silently poison every output: refuse the file. */
    return lorac_check_finite(w->data, w->n, file, key, "the adapter is corrupt (or its training diverged)");
}

lorac_status lorac_adapter_load(lorac_model *m, const char *dir, lorac_lora_config *c_out) {
    lorac_lora_config c;
    int n_classes = 0;
    LORAC_TRY(lorac_adapter_read_config(dir, &c, &n_classes, NULL, 0));
    char path[1200];
    lorac_path_join(path, sizeof path, dir, "adapter_model.safetensors");
    lorac_st *st;
    LORAC_TRY(lorac_st_open(path, &st));
    lorac_status s = LORAC_OK;
    if (n_classes > 0 && !m->head) {
        int bias = m->cfg.arch == LORAC_ARCH_BERT || lorac_st_find(st, PREFIX "score.bias") != NULL;
        s = lorac_model_add_head(m, n_classes, bias, LORAC_HEAD_INIT_HF, 0); /* its values are read below */
    }
    if (s == LORAC_OK) s = lorac_lora_apply(m, &c, NULL);
    for (int i = 0; i < m->n_lin && s == LORAC_OK; i++) {
        lorac_lora *a = m->lin[i].lora;
        if (!a) continue;
        s = load_into(st, path, m, &a->A);
        if (s == LORAC_OK) s = load_into(st, path, m, &a->B);
        if (s == LORAC_OK && a->dora) s = load_into(st, path, m, &a->M);
    }
    if (s == LORAC_OK && m->wte_lora) s = load_into(st, path, m, &m->wte_lora->A);
    if (s == LORAC_OK && m->wte_lora) s = load_into(st, path, m, &m->wte_lora->B);
    for (int i = 0; i < m->n_w && s == LORAC_OK; i++) {
        lorac_weight *w = &m->w[i];
        /* a head is read only for an adapter that has one (an LM adapter over a
         * model whose head another adapter made carries none) */
        if (w->grad || (n_classes > 0 && is_head_weight(m, w))) s = load_into(st, path, m, w);
    }
    lorac_st_close(st);
    if (s == LORAC_OK && c_out) *c_out = c;
    return s;
}
