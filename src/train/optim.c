/* optim.c - AdamW (torch semantics), gradient clipping and checks, and the
 * learning-rate schedules. See optim.h for the formulas. */
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "ops/vkern.h"

/* ---- creating and filling the optimizer ---- */

static int bad_number(double x) { return !isfinite(x); }

lorac_status lorac_optim_create(const lorac_adamw_cfg *cfg, lorac_optim **out) {
    static const lorac_adamw_cfg defaults = LORAC_ADAMW_DEFAULTS;
    *out = NULL;
    if (!cfg) cfg = &defaults;
    if (bad_number(cfg->lr) || cfg->lr < 0)
        return lorac_fail(LORAC_ERR_ARG, "AdamW: learning rate %g must be >= 0", cfg->lr);
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1))
        return lorac_fail(LORAC_ERR_ARG, "AdamW: betas (%g, %g) must lie in [0, 1)", cfg->beta1, cfg->beta2);
    if (bad_number(cfg->eps) || cfg->eps < 0)
        return lorac_fail(LORAC_ERR_ARG, "AdamW: eps %g must be >= 0", cfg->eps);
    if (bad_number(cfg->weight_decay) || cfg->weight_decay < 0)
        return lorac_fail(LORAC_ERR_ARG, "AdamW: weight decay %g must be >= 0", cfg->weight_decay);
    lorac_optim *o = calloc(1, sizeof *o);
    if (!o) return lorac_fail(LORAC_ERR_NOMEM, "out of memory creating the optimizer");
    o->cfg = *cfg;
    *out = o;
    return LORAC_OK;
}

static void free_param(lorac_param *p) {
    free(p->name);
    free(p->m);
    free(p->v);
    if (p->own_grad) free(p->grad);
}

void lorac_optim_destroy(lorac_optim *o) {
    if (!o) return;
    for (int i = 0; i < o->n_params; i++) free_param(&o->p[i]);
    free(o->p);
    free(o);
}

lorac_status lorac_optim_add(lorac_optim *o, const char *name, float *data, float *grad, size_t n, int decay,
                             lorac_param **out) {
    if (out) *out = NULL;
    if (!data || n == 0) return lorac_fail(LORAC_ERR_ARG, "optimizer: parameter '%s' has no data", name);
    if (o->n_params == o->cap_params) {
        int cap = o->cap_params ? 2 * o->cap_params : 16;
        lorac_param *np = realloc(o->p, (size_t)cap * sizeof *np);
        if (!np) return lorac_fail(LORAC_ERR_NOMEM, "optimizer: out of memory adding '%s'", name);
        o->p = np;
        o->cap_params = cap;
    }
    lorac_param p = {0};
    p.name = strdup(name ? name : "?");
    p.data = data;
    p.n = n;
    p.decay = decay;
    p.m = calloc(n, sizeof *p.m);
    p.v = calloc(n, sizeof *p.v);
    p.grad = grad;
    if (!grad) {
        p.grad = calloc(n, sizeof *p.grad);
        p.own_grad = 1;
    }
    if (!p.name || !p.m || !p.v || !p.grad) {
        free_param(&p);
        return lorac_fail(LORAC_ERR_NOMEM, "optimizer: out of memory for the state of '%s' (%zu values)", name, n);
    }
    o->p[o->n_params] = p;
    if (out) *out = &o->p[o->n_params];
    o->n_params++;
    return LORAC_OK;
}

lorac_param *lorac_optim_find(lorac_optim *o, const char *name) {
    for (int i = 0; i < o->n_params; i++)
        if (strcmp(o->p[i].name, name) == 0) return &o->p[i];
    return NULL;
}

size_t lorac_optim_numel(const lorac_optim *o) {
    size_t n = 0;
    for (int i = 0; i < o->n_params; i++) n += o->p[i].n;
    return n;
}

/* ---- gradients ---- */

void lorac_optim_zero_grad(lorac_optim *o) {
    for (int i = 0; i < o->n_params; i++) memset(o->p[i].grad, 0, o->p[i].n * sizeof(float));
}

lorac_status lorac_optim_check_grads(const lorac_optim *o, int *bad) {
    if (bad) *bad = -1;
    for (int i = 0; i < o->n_params; i++) {
        const lorac_param *p = &o->p[i];
        for (size_t j = 0; j < p->n; j++) {
            if (isfinite(p->grad[j])) continue;
            if (bad) *bad = i;
            return lorac_fail(LORAC_ERR_NUMERIC,
                              "gradient of '%s' is %s at element %zu (optimizer step %lld); hint: lower the learning "
                              "rate or clip gradients (--clip)",
                              p->name, isnan(p->grad[j]) ? "NaN" : "infinite", j, (long long)o->step + 1);
        }
    }
    return LORAC_OK;
}

double lorac_optim_grad_norm(const lorac_optim *o) {
    double sum = 0;
    for (int i = 0; i < o->n_params; i++) {
        const float *g = o->p[i].grad;
        for (size_t j = 0; j < o->p[i].n; j++) sum += (double)g[j] * (double)g[j];
    }
    return sqrt(sum);
}

double lorac_optim_clip_grad_norm(lorac_optim *o, double max_norm) {
    double total = lorac_optim_grad_norm(o);
    if (max_norm <= 0 || !isfinite(total)) return total;
    double clip_coef = max_norm / (total + 1e-6);
    if (clip_coef < 1.0) {
        float c = (float)clip_coef;
        for (int i = 0; i < o->n_params; i++) {
            float *g = o->p[i].grad;
            for (size_t j = 0; j < o->p[i].n; j++) g[j] *= c;
        }
    }
    return total;
}

/* ---- the AdamW step ---- */

void lorac_optim_step(lorac_optim *o, double lr) {
    const lorac_adamw_cfg *c = &o->cfg;
    int64_t t = ++o->step;
    /* Scalars in double, as torch computes them in Python; the per-element
     * arithmetic is float, as torch's on float32 tensors. */
    double bias_correction1 = 1.0 - pow(c->beta1, (double)t);
    double bias_correction2 = 1.0 - pow(c->beta2, (double)t);
    const float step_size = (float)(lr / bias_correction1);
    const float bc2_sqrt = (float)sqrt(bias_correction2);
    const float decay_mul = (float)(1.0 - lr * c->weight_decay);
    lorac_adamw_scalars k = {.step_size = step_size,
                             .bc2_sqrt = bc2_sqrt,
                             .decay_mul = decay_mul,
                             .b1 = (float)c->beta1,
                             .one_minus_b1 = (float)(1.0 - c->beta1),
                             .b2 = (float)c->beta2,
                             .one_minus_b2 = (float)(1.0 - c->beta2),
                             .eps = (float)c->eps};
    /* The per-element update (decoupled weight decay first, eps outside the
     * square root, after the bias correction) is an elementwise kernel of
     * ops/vkern.h: its SIMD versions give the scalar loop's results bit for bit. */
    const lorac_vkern *kern = lorac_vkern_active();
    for (int i = 0; i < o->n_params; i++) {
        lorac_param *p = &o->p[i];
        lorac_adamw_scalars kp = k;
        if (p->group) { /* its own torch param group: lr and weight decay of its own */
            const double lr_p = lr * p->lr_mult;
            kp.step_size = (float)(lr_p / bias_correction1);
            kp.decay_mul = (float)(1.0 - lr_p * p->wd);
            kp.decay = p->wd != 0;
        } else {
            kp.decay = p->decay && c->weight_decay != 0;
        }
        kern->adamw_run(p->data, p->m, p->v, p->grad, p->n, &kp);
    }
}

/* ---- checkpoints ---- */

lorac_status lorac_optim_save(const lorac_optim *o, const char *path) {
    int n = 2 * o->n_params;
    lorac_st_entry *e = calloc((size_t)(n ? n : 1), sizeof *e);
    char (*names)[200] = calloc((size_t)(n ? n : 1), sizeof *names);
    if (!e || !names) {
        free(e);
        free(names);
        return lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < o->n_params; i++) {
        const lorac_param *p = &o->p[i];
        for (int k = 0; k < 2; k++) {
            lorac_st_entry *x = &e[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
            x->name = names[2 * i + k];
            x->data = k ? p->v : p->m;
            x->ndim = 1;
            x->shape[0] = (int64_t)p->n;
            x->dtype = LORAC_F32;
        }
    }
    char step[32], lr[40], b1[40], b2[40], eps[40], wd[40];
    snprintf(step, sizeof step, "%lld", (long long)o->step);
    snprintf(lr, sizeof lr, "%.17g", o->cfg.lr);
    snprintf(b1, sizeof b1, "%.17g", o->cfg.beta1);
    snprintf(b2, sizeof b2, "%.17g", o->cfg.beta2);
    snprintf(eps, sizeof eps, "%.17g", o->cfg.eps);
    snprintf(wd, sizeof wd, "%.17g", o->cfg.weight_decay);
    const char *md[] = {"optimizer", "AdamW", "step", step, "lr", lr, "beta1", b1, "beta2", b2, "eps", eps,
                        "weight_decay", wd, NULL};
    lorac_status st = lorac_st_write(path, e, n, md);
    free(e);
    free(names);
    return st;
}

lorac_status lorac_optim_load(lorac_optim *o, const char *path) {
    lorac_st *st;
    LORAC_TRY(lorac_st_open(path, &st));
    lorac_status s = LORAC_OK;
    const char *step = lorac_st_metadata(st, "step");
    char *end = NULL;
    long long t = step ? strtoll(step, &end, 10) : -1;
    if (!step || *end || t < 0) s = lorac_fail(LORAC_ERR_FORMAT, "%s: no valid \"step\" in the metadata", path);
    if (s == LORAC_OK && lorac_st_count(st) != 2 * o->n_params)
        s = lorac_fail(LORAC_ERR_FORMAT, "%s: %d tensors, the optimizer has %d parameters (x2); hint: the checkpoint is "
                       "from another model or method", path, lorac_st_count(st), o->n_params);
    for (int i = 0; i < o->n_params && s == LORAC_OK; i++) {
        lorac_param *p = &o->p[i];
        for (int k = 0; k < 2 && s == LORAC_OK; k++) {
            char name[200];
            snprintf(name, sizeof name, "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
            const lorac_tensor_desc *d = lorac_st_find(st, name);
            if (!d)
                s = lorac_fail(LORAC_ERR_FORMAT, "%s: no tensor '%s'; hint: the checkpoint is from another model or method",
                               path, name);
            else if (d->numel != (int64_t)p->n)
                s = lorac_fail(LORAC_ERR_SHAPE, "%s: '%s' has %lld values, the parameter %zu", path, name,
                               (long long)d->numel, p->n);
            else
                s = lorac_to_f32(k ? p->v : p->m, d->data, d->dtype, (int64_t)p->n);
        }
    }
    if (s == LORAC_OK) o->step = t;
    lorac_st_close(st);
    return s;
}

/* ---- learning-rate schedules ---- */

static const double pi = 3.14159265358979323846; /* M_PI is not in strict C11 */

double lorac_lr_at(const lorac_sched *s, int step) {
    int warmup = s->warmup_steps > 0 ? s->warmup_steps : 0;
    if (step < warmup) return (double)step / (double)(warmup > 1 ? warmup : 1);
    int span = s->total_steps - warmup;
    if (span < 1) span = 1;
    switch (s->kind) {
    case LORAC_SCHED_CONSTANT: return 1.0;
    case LORAC_SCHED_LINEAR: {
        double f = (double)(s->total_steps - step) / (double)span;
        return f > 0 ? f : 0.0;
    }
    case LORAC_SCHED_COSINE: {
        double cycles = s->num_cycles > 0 ? s->num_cycles : 0.5;
        double progress = (double)(step - warmup) / (double)span;
        double f = 0.5 * (1.0 + cos(pi * cycles * 2.0 * progress));
        return f > 0 ? f : 0.0;
    }
    }
    return 1.0;
}

static const char *const sched_names[] = {"constant", "linear", "cosine"};

lorac_status lorac_sched_parse(const char *name, lorac_sched_kind *out) {
    for (int k = 0; k < 3; k++)
        if (strcmp(name, sched_names[k]) == 0) {
            *out = (lorac_sched_kind)k;
            return LORAC_OK;
        }
    return lorac_fail(LORAC_ERR_ARG, "unknown learning-rate schedule '%s'; hint: constant, linear or cosine", name);
}

const char *lorac_sched_name(lorac_sched_kind k) {
    return (unsigned)k < 3 ? sched_names[k] : "unknown";
}

/* ---- LoRA+ ---- */

lorac_param_kind lorac_loraplus_kind(const char *name, int ndim) {
    const size_t n = strlen(name);
    if (strstr(name, "lora_embedding_")) return LORAC_PKIND_EMBED;
    /* transformers' decay_parameters: not a bias, not inside an nn.LayerNorm (GPT-2's ln_*, BERT's LayerNorm,
     * DistilBERT's *layer_norm; an RMSNorm is no nn.LayerNorm and decays) */
    const int bias = n >= 4 && !strcmp(name + n - 4, "bias");
    const int norm = strstr(name, "ln_") || strstr(name, "LayerNorm") || strstr(name, "layer_norm");
    if (ndim == 1 && (bias || norm)) return LORAC_PKIND_NODECAY;
    if (strstr(name, "lora_B") || ndim == 1) return LORAC_PKIND_B;
    return LORAC_PKIND_A;
}

void lorac_loraplus_set(lorac_param *p, lorac_param_kind kind, const lorac_loraplus_cfg *c, double base_lr) {
    p->group = 1;
    p->wd = kind == LORAC_PKIND_NODECAY ? 0.0 : c->weight_decay;
    p->lr_mult = kind == LORAC_PKIND_EMBED ? (base_lr > 0 ? c->lr_embedding / base_lr : 0.0)
                 : kind == LORAC_PKIND_A   ? 1.0
                                           : c->ratio;
}
