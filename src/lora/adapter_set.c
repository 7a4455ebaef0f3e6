/* adapter_set.c - named adapters over one base (see adapter_set.h).
 *
 * Loading reuses lorac_adapter_load on the bare base, then "detaches" what
 * it attached: the LoRA pairs move from the model's Linears into the slot,
 * and the head's weights move into the slot too. Activation re-attaches.
 * The model itself only ever sees one adapter at a time, so the forward
 * and backward code needs no knowledge of sets. */
#include "lora/adapter_set.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/adapter_io.h"

void lorac_adapters_init(lorac_adapter_set *s, lorac_model *m) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->active = -1;
}

int lorac_adapters_find(const lorac_adapter_set *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->slot[i].name, name)) return i;
    return -1;
}

/* Point the model at nothing: no LoRA anywhere, the head's data detached. */
static void detach_all(lorac_adapter_set *s) {
    lorac_model *m = s->m;
    for (int i = 0; i < m->n_lin; i++) m->lin[i].lora = NULL;
    lorac_linear *hs[2] = {m->head, m->pre_head_fresh ? m->pre_head : NULL};
    for (int k = 0; k < 2; k++) {
        if (!hs[k]) continue;
        hs[k]->W->data = NULL;
        hs[k]->W->owned = 0;
        if (hs[k]->b) {
            hs[k]->b->data = NULL;
            hs[k]->b->owned = 0;
        }
    }
    s->active = -1;
}

/* The model's head shaped for n classes (data attached separately). */
static void shape_head(lorac_model *m, int n) {
    lorac_linear *H = m->head;
    H->out = n;
    H->W->shape[0] = n;
    H->W->n = (size_t)n * H->in;
    if (H->b) {
        H->b->shape[0] = n;
        H->b->n = (size_t)n;
    }
    m->n_classes = n;
}

static lorac_status check_shareable(const lorac_lora_config *c, const char *dir, const lorac_model *m) {
    if (c->bias != LORAC_BIAS_NONE)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: bias='%s' trains base biases, which adapters over one base cannot share; "
                          "hint: load this adapter alone, or merge it", dir, c->bias == LORAC_BIAS_ALL ? "all" : "lora_only");
    for (int i = 0; i < c->n_modules_to_save; i++) {
        const char *mt = c->modules_to_save[i];
        int is_head = !strcmp(mt, "score") || !strcmp(mt, "classifier") || (m->cfg.distil && !strcmp(mt, "pre_classifier"));
        if (!is_head)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "%s: modules_to_save '%s' replaces a base module, which adapters over one "
                              "base cannot share; hint: load this adapter alone, or merge it", dir, mt);
    }
    return LORAC_OK;
}

static lorac_status grow(lorac_adapter_set *s) {
    if (s->n < s->cap) return LORAC_OK;
    int cap = s->cap ? 2 * s->cap : 4;
    lorac_adapter_slot *p = realloc(s->slot, sizeof *p * (size_t)cap);
    if (!p) return lorac_fail(LORAC_ERR_NOMEM, "adapter table: out of memory");
    s->slot = p;
    s->cap = cap;
    return LORAC_OK;
}

static void slot_free(lorac_adapter_slot *a, int n_lin) {
    for (int i = 0; a->lora && i < n_lin; i++) lorac_lora_free(a->lora[i]);
    free(a->lora);
    free(a->head_W);
    free(a->head_b);
    free(a->pre_W);
    free(a->pre_b);
    for (int i = 0; i < a->n_labels; i++) free(a->labels[i]);
    free(a->labels);
    memset(a, 0, sizeof *a);
}

/* Move what is attached to the model into a new slot. */
static lorac_status detach_into(lorac_adapter_set *s, const char *name, const lorac_lora_config *c, int n_classes) {
    lorac_model *m = s->m;
    LORAC_TRY(grow(s));
    lorac_adapter_slot *a = &s->slot[s->n];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->cfg = *c;
    LORAC_TRY(lorac_alloc((void **)&a->lora, (size_t)m->n_lin, sizeof *a->lora, "adapter table"));
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        free(l->A.grad); /* inference only: no gradients kept */
        free(l->B.grad);
        l->A.grad = l->B.grad = NULL;
        a->lora[i] = l;
    }
    if (n_classes > 0 && m->head) {
        a->n_classes = n_classes;
        a->head_W = m->head->W->data;
        a->head_b = m->head->b ? m->head->b->data : NULL;
        free(m->head->W->grad);
        m->head->W->grad = NULL;
        if (m->head->b) {
            free(m->head->b->grad);
            m->head->b->grad = NULL;
        }
        if (m->pre_head && m->pre_head_fresh) {
            a->pre_W = m->pre_head->W->data;
            a->pre_b = m->pre_head->b->data;
            free(m->pre_head->W->grad);
            free(m->pre_head->b->grad);
            m->pre_head->W->grad = m->pre_head->b->grad = NULL;
        }
    }
    s->n++;
    detach_all(s);
    return LORAC_OK;
}

lorac_status lorac_adapters_load(lorac_adapter_set *s, const char *name, const char *dir) {
    lorac_model *m = s->m;
    if (!name[0] || strlen(name) >= sizeof s->slot[0].name || !strcmp(name, "none"))
        return lorac_fail(LORAC_ERR_ARG, "adapter name '%s': use 1..63 characters, not 'none'", name);
    if (lorac_adapters_find(s, name) >= 0) return lorac_fail(LORAC_ERR_ARG, "adapter name '%s' is used twice", name);
    lorac_lora_config c;
    int n_classes = 0;
    char *labels[64] = {0};
    LORAC_TRY(lorac_adapter_read_config(dir, &c, &n_classes, labels, 64));
    lorac_status st = check_shareable(&c, dir, m);
    int prev = s->active;
    if (st == LORAC_OK) {
        detach_all(s); /* load onto the bare base */
        if (n_classes > 0 && m->head) {
            /* the head object exists (an earlier adapter made it): give it this adapter's size and fresh memory */
            shape_head(m, n_classes);
            lorac_linear *hs[2] = {m->head, m->pre_head_fresh ? m->pre_head : NULL};
            for (int k = 0; k < 2 && st == LORAC_OK; k++) {
                if (!hs[k]) continue;
                st = lorac_alloc((void **)&hs[k]->W->data, hs[k]->W->n, sizeof(float), "head");
                if (st == LORAC_OK) hs[k]->W->owned = 1;
                if (st == LORAC_OK && hs[k]->b) st = lorac_alloc((void **)&hs[k]->b->data, hs[k]->b->n, sizeof(float), "head");
                if (st == LORAC_OK && hs[k]->b) hs[k]->b->owned = 1;
            }
        }
    }
    if (st == LORAC_OK) st = lorac_adapter_load(m, dir, NULL);
    if (st == LORAC_OK) st = detach_into(s, name, &c, n_classes);
    if (st != LORAC_OK) {
        for (int k = 0; k < 64; k++) free(labels[k]);
        lorac_error_prefix("adapter '%s'", name);
        return st;
    }
    lorac_adapter_slot *a = &s->slot[s->n - 1];
    int nl = 0;
    while (nl < 64 && labels[nl]) nl++;
    if (nl) {
        a->labels = malloc(sizeof(char *) * (size_t)nl);
        if (a->labels) {
            memcpy(a->labels, labels, sizeof(char *) * (size_t)nl);
            a->n_labels = nl;
        } else {
            for (int k = 0; k < nl; k++) free(labels[k]);
        }
    }
    if (prev >= 0) return lorac_adapters_activate(s, s->slot[prev].name);
    return LORAC_OK;
}

lorac_status lorac_adapters_activate(lorac_adapter_set *s, const char *name) {
    lorac_model *m = s->m;
    if (!name || !strcmp(name, "none")) {
        detach_all(s);
        return LORAC_OK;
    }
    int k = lorac_adapters_find(s, name);
    if (k < 0) return lorac_fail(LORAC_ERR_ARG, "no adapter named '%s' is loaded; hint: --adapter %s=DIR", name, name);
    detach_all(s);
    lorac_adapter_slot *a = &s->slot[k];
    for (int i = 0; i < m->n_lin; i++) m->lin[i].lora = a->lora[i];
    if (a->n_classes > 0) {
        shape_head(m, a->n_classes);
        m->head->W->data = a->head_W;
        if (m->head->b) m->head->b->data = a->head_b;
        if (m->pre_head && m->pre_head_fresh) {
            m->pre_head->W->data = a->pre_W;
            m->pre_head->b->data = a->pre_b;
        }
    }
    s->active = k;
    return LORAC_OK;
}

lorac_status lorac_adapters_combine(lorac_adapter_set *s, const char *name, const char *const *names, const float *weights,
                                    int n, const char *type) {
    lorac_model *m = s->m;
    const int cat = !strcmp(type, "cat");
    if (!cat && strcmp(type, "linear"))
        return lorac_fail(LORAC_ERR_ARG, "combination '%s': lorac has 'linear' and 'cat' (PEFT's other types are not implemented)", type);
    if (n < 1) return lorac_fail(LORAC_ERR_ARG, "combination '%s' needs at least one adapter", name);
    if (lorac_adapters_find(s, name) >= 0 || !strcmp(name, "none") || !name[0] || strlen(name) >= sizeof s->slot[0].name)
        return lorac_fail(LORAC_ERR_ARG, "adapter name '%s' is taken or invalid", name);
    int idx[64], r_sum = 0;
    if (n > 64) return lorac_fail(LORAC_ERR_ARG, "at most 64 adapters in one combination");
    for (int j = 0; j < n; j++) {
        idx[j] = lorac_adapters_find(s, names[j]);
        if (idx[j] < 0) return lorac_fail(LORAC_ERR_ARG, "combination '%s': no adapter named '%s'", name, names[j]);
        const lorac_adapter_slot *a = &s->slot[idx[j]];
        if (a->n_classes > 0)
            return lorac_fail(LORAC_ERR_UNSUPPORTED, "combination '%s': adapter '%s' carries a classification head, which cannot "
                              "be combined (PEFT refuses modules_to_save too)", name, names[j]);
        if (!cat && a->cfg.r != s->slot[idx[0]].cfg.r)
            return lorac_fail(LORAC_ERR_ARG, "combination '%s': 'linear' needs the same r in every adapter ('%s' r=%d, '%s' r=%d); "
                              "hint: use 'cat'", name, names[0], s->slot[idx[0]].cfg.r, names[j], a->cfg.r);
        for (int i = 0; i < m->n_lin; i++)
            if (a->lora[i] && a->lora[i]->parts > 1)
                return lorac_fail(LORAC_ERR_UNSUPPORTED, "combination '%s': adapter '%s' uses --split-qkv parts, which "
                                  "combinations do not handle", name, names[j]);
        r_sum += a->cfg.r;
    }
    const int r = cat ? r_sum : s->slot[idx[0]].cfg.r;
    lorac_lora_config c = s->slot[idx[0]].cfg; /* PEFT: replace(config of the first, r=new, lora_alpha=new) */
    c.r = r;
    c.alpha = (float)r;
    const float scale = c.use_rslora ? c.alpha / sqrtf((float)r) : 1.0f;
    int prev = s->active;
    detach_all(s);
    lorac_status st = LORAC_OK;
    for (int i = 0; i < m->n_lin && st == LORAC_OK; i++) {
        int any = 0;
        for (int j = 0; j < n; j++) any |= s->slot[idx[j]].lora[i] != NULL;
        if (!any) continue;
        lorac_linear *L = &m->lin[i];
        lorac_lora *t;
        st = lorac_lora_new(L, r, 1, c.alpha, scale, 0.0f, 0, &t);
        if (st != LORAC_OK) break;
        L->lora = t; /* owned by the model until detach_into takes it */
        int row = 0;
        for (int j = 0; j < n; j++) {
            const lorac_lora *a = s->slot[idx[j]].lora[i];
            const int ra = s->slot[idx[j]].cfg.r;
            if (!a) {
                row += ra;
                continue;
            }
            const double ws = (double)weights[j] * a->scale;
            if (cat) { /* A rows [row, row+ra) = w s A_j; B columns [row, row+ra) = B_j */
                for (size_t e = 0; e < (size_t)ra * L->in; e++) t->A.data[(size_t)row * L->in + e] = (float)(ws * a->A.data[e]);
                for (int o = 0; o < L->out; o++)
                    for (int q = 0; q < ra; q++) t->B.data[(size_t)o * r + row + q] = a->B.data[(size_t)o * ra + q];
                row += ra;
            } else {
                const double sa = (ws >= 0 ? 1 : -1) * sqrt(fabs(ws)), sb = sqrt(fabs(ws));
                for (size_t e = 0; e < a->A.n; e++) t->A.data[e] += (float)(sa * a->A.data[e]);
                for (size_t e = 0; e < a->B.n; e++) t->B.data[e] += (float)(sb * a->B.data[e]);
            }
        }
    }
    if (st == LORAC_OK) st = detach_into(s, name, &c, 0);
    if (st != LORAC_OK) {
        for (int i = 0; i < m->n_lin; i++) {
            lorac_lora_free(m->lin[i].lora);
            m->lin[i].lora = NULL;
        }
        return st;
    }
    if (prev >= 0) return lorac_adapters_activate(s, s->slot[prev].name);
    return LORAC_OK;
}

size_t lorac_adapters_bytes(const lorac_adapter_set *s) {
    size_t b = 0;
    for (int k = 0; k < s->n; k++) {
        const lorac_adapter_slot *a = &s->slot[k];
        for (int i = 0; i < s->m->n_lin; i++)
            if (a->lora[i]) b += (a->lora[i]->A.n + a->lora[i]->B.n) * sizeof(float);
        if (a->n_classes) b += ((size_t)a->n_classes * (s->m->cfg.dim + 1)) * sizeof(float);
        if (a->pre_W) b += ((size_t)s->m->cfg.dim * (s->m->cfg.dim + 1)) * sizeof(float);
    }
    return b;
}

lorac_status lorac_adapters_unload(lorac_adapter_set *s, const char *name) {
    const int k = lorac_adapters_find(s, name);
    if (k < 0) return lorac_fail(LORAC_ERR_ARG, "no adapter named '%s' is loaded", name);
    const int was = s->active;
    detach_all(s);
    slot_free(&s->slot[k], s->m->n_lin);
    memmove(&s->slot[k], &s->slot[k + 1], sizeof s->slot[0] * (size_t)(s->n - k - 1));
    s->n--;
    if (was >= 0 && was != k) return lorac_adapters_activate(s, s->slot[was > k ? was - 1 : was].name);
    return LORAC_OK;
}

void lorac_adapters_free(lorac_adapter_set *s) {
    if (!s->m) return;
    if (s->n == 0) { /* an unused set: the model's own adapter (if any) stays the model's */
        memset(s, 0, sizeof *s);
        return;
    }
    detach_all(s);
    for (int k = 0; k < s->n; k++) slot_free(&s->slot[k], s->m->n_lin);
    free(s->slot);
    memset(s, 0, sizeof *s);
}
