/* parity_common.c - the fixture checks of test_parity / test_parity_archs
 * (see parity_common.h). Moved here from tests/model/test_parity.c. */
#include "parity_common.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "lora/lora.h"
#include "lora/lora_init.h"
#include "models/model.h"
#include "ops/ops.h"
#include "testutil.h"
#include "train/optim.h"

static const char *g_fixture = ""; /* the fixture being checked: prefixes every label */

static const char *label(const char *what) {
    static char buf[4][512];
    static int k;
    char *out = buf[k++ % 4];
    const char *base = strrchr(g_fixture, '/');
    snprintf(out, 512, "%s: %s", base ? base + 1 : g_fixture, what);
    return out;
}

/* The fixture's tensor `key`, or a failed CHECK naming lorac's weight when the
 * fixture has no such tensor (a naming mismatch must not abort the test). */
static float *fixture_f32(const lorac_st *st, const char *key, size_t *n) {
    if (!lorac_st_find(st, key)) {
        CHECK(0, "%s: the fixture has no tensor '%s' (lorac's weight name + suffix)", label("tensor"), key);
        return NULL;
    }
    return test_st_f32(st, key, n);
}

/* Copy fixture tensor "base_model.model.<w->name><suffix>" into dst. */
static void load_named(const lorac_st *st, const lorac_weight *w, const char *prefix, const char *suffix, float *dst) {
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", prefix, w->name, suffix);
    size_t n;
    float *x = fixture_f32(st, key, &n);
    if (!x) return;
    CHECK(n == w->n, "%s: fixture has %zu elements, lorac %zu", label(key), n, w->n);
    memcpy(dst, x, sizeof(float) * (n < w->n ? n : w->n));
    free(x);
}

static void compare_named(const lorac_st *st, const lorac_weight *w, const char *prefix, const char *suffix,
                          const float *got, double rtol, double atol) {
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", prefix, w->name, suffix);
    size_t n;
    float *want = fixture_f32(st, key, &n);
    if (!want) return;
    CHECK(n == w->n, "%s: fixture has %zu elements, lorac %zu", label(key), n, w->n);
    test_close(label(key), got, want, n < w->n ? n : w->n, rtol, atol);
    free(want);
}

int parity_close_rows(const char *what, const float *got, const float *want, const unsigned char *mask, int B, int T,
                      int V, double rtol, double atol) {
    double worst = 0, maxabs = 0;
    size_t wi = 0, nbad = 0, ntot = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            if (!mask[b * T + t]) continue;
            for (int v = 0; v < V; v++) {
                const size_t i = ((size_t)b * T + t) * V + v;
                const double d = fabs((double)got[i] - (double)want[i]);
                const double ratio = d / (atol + rtol * fabs((double)want[i]));
                ntot++;
                if (!(ratio <= 1.0)) nbad++;
                if (!(d <= maxabs)) maxabs = d;
                if (!(ratio <= worst)) {
                    worst = ratio;
                    wi = i;
                }
            }
        }
    const int ok = worst <= 1.0;
    if (ok) {
        g_test_pass++;
    } else {
        g_test_fail++;
        const int v = (int)(wi % (size_t)V), t = (int)(wi / (size_t)V % (size_t)T), b = (int)(wi / ((size_t)V * T));
        fprintf(stderr,
                "FAIL %s: worst at b=%d t=%d v=%d: got %.8g want %.8g (rtol %g atol %g); max |diff| %.3g, %zu of %zu "
                "elements out of tolerance\n",
                what, b, t, v, (double)got[wi], (double)want[wi], rtol, atol, maxabs, nbad, ntot);
    }
    return ok;
}

typedef struct { lorac_optim *opt; const lorac_loraplus_cfg *lp; } optctx;
static void add_to_opt(lorac_weight *w, void *c) {
    const optctx *o = c;
    lorac_param *p = NULL;
    lorac_optim_add(o->opt, w->name, w->data, w->grad, w->n, 1, &p);
    if (p && o->lp) lorac_loraplus_set(p, lorac_loraplus_kind(w->name, w->ndim), o->lp, 0.01);
}

static double loss_and_grad(lorac_model *m, const int *ids, const uint8_t *mask, const int *targets, const int *labels,
                            int B, int T, int cls) {
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, cls ? LORAC_FWD_CLS : LORAC_FWD_LM));
    int count = 0;
    double sum;
    if (cls) {
        sum = op_xent(m->acts.cls_logits, m->acts.cls_logits, labels, B, m->n_classes, 1.0f / B, &count);
    } else {
        int valid = 0;
        for (int i = 0; i < B * T; i++) valid += targets[i] >= 0;
        sum = op_xent(m->acts.logits, m->acts.logits, targets, B * T, m->cfg.vocab, 1.0f / valid, &count);
    }
    lorac_model_backward(m, ids, B, T, cls ? LORAC_FWD_CLS : LORAC_FWD_LM);
    return sum / count;
}

static void zero_grads(lorac_weight *w, void *c) {
    (void)c;
    memset(w->grad, 0, sizeof(float) * w->n);
}

typedef struct { const lorac_st *st; const char *prefix; const char *suffix; int mode; } wctx;
static void visit_lora(lorac_model *m, void (*fn)(lorac_weight *, const wctx *), const wctx *c) {
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora) {
            fn(&m->lin[i].lora->A, c);
            fn(&m->lin[i].lora->B, c);
            if (m->lin[i].lora->dora) fn(&m->lin[i].lora->M, c);
        }
    if (m->wte_lora) {
        fn(&m->wte_lora->A, c);
        fn(&m->wte_lora->B, c);
    }
}

/* rank_pattern / alpha_pattern from the fixture's JSON metadata */
static void read_patterns(const lorac_st *st, const char *key, lorac_pattern *p, int *n) {
    const char *js = lorac_st_metadata(st, key);
    cJSON *o = js ? cJSON_Parse(js) : NULL, *e;
    cJSON_ArrayForEach(e, o) {
        snprintf(p[*n].key, sizeof p[*n].key, "%s", e->string);
        p[(*n)++].value = (float)e->valuedouble;
    }
    cJSON_Delete(o);
}

/* PiSSA / OLoRA: lorac's own initial pairs against PEFT's (compared as s B A,
 * which the signs of singular / QR vectors do not change) and the residual
 * base weights (".residual") against PEFT's (1e-4); then the base takes
 * PEFT's residual, so the training checks start from PEFT's very model. */
static void check_mutated_init(lorac_model *m, const lorac_st *st) {
    double worst = 0;
    int n = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        const lorac_lora *l = L->lora;
        if (!l) continue;
        char ka[256], kb[256];
        snprintf(ka, sizeof ka, "base_model.model.%s.init", l->A.name);
        snprintf(kb, sizeof kb, "base_model.model.%s.init", l->B.name);
        float *A = fixture_f32(st, ka, NULL), *B = fixture_f32(st, kb, NULL);
        if (!A || !B) {
            free(A);
            free(B);
            continue;
        }
        double maxref = 0, maxd = 0;
        for (int o = 0; o < L->out; o++)
            for (int c = 0; c < L->in; c++) {
                double want = 0, got = 0;
                for (int k = 0; k < l->r; k++) {
                    want += (double)B[(size_t)o * l->r + k] * A[(size_t)k * L->in + c];
                    got += (double)l->B.data[(size_t)o * l->r + k] * l->A.data[(size_t)k * L->in + c];
                }
                maxref = fmax(maxref, fabs(want));
                maxd = fmax(maxd, fabs(got - want) * l->scale);
            }
        worst = fmax(worst, maxd / (1e-6 + maxref * l->scale));
        free(A);
        free(B);
        /* the residual W - s B0 A0 the init left in the base (HF layout, Conv1D [in, out] too) */
        char kr[256];
        snprintf(kr, sizeof kr, "%s.residual", L->W->name);
        float *W = fixture_f32(st, kr, NULL);
        if (W) {
            test_close(label(kr), L->W->data, W, (size_t)L->out * L->in, 1e-4, 1e-5);
            /* From here on PEFT's residual: it comes from a float32 SVD / QR whose rounding (~1e-6 of |W|) lorac's
             * double one does not share, and the checks below are of training, not of the init. */
            memcpy(L->W->data, W, sizeof(float) * (size_t)L->out * L->in);
        }
        free(W);
        n++;
    }
    CHECK(n > 0 && worst <= 1e-4, "%s: %d initial pairs, worst |s B A - PEFT's| / max|PEFT's| = %.3g",
          label("PiSSA/OLoRA init (s B0 A0)"), n, worst);
}
static void set_w(lorac_weight *w, const wctx *c) { load_named(c->st, w, c->prefix, "", w->data); }
static void cmp_grad(lorac_weight *w, const wctx *c) { compare_named(c->st, w, c->prefix, ".grad", w->grad, 1e-3, 1e-6); }
/* The weights after 5 AdamW steps, 1e-3 relative + atol. atol is 1e-6, and
 * 2e-4 (0.4% of the 5e-2 five steps of lr 1e-2 can move a weight) for the
 * fixtures of make_peft_variant_fixtures.py (DoRA, PiSSA / OLoRA, LoRA+,
 * ...): there a few elements whose gradient is near AdamW's eps end up
 * 1e-6..1e-4 apart, depending on the build's float rounding (the DoRA run
 * with its norm summed in float instead of double moves them by 1e-5; an
 * -O1 ASan build moves one OLoRA element by 4e-6), while every gradient,
 * every loss and all other elements agree. */
static double g_after_atol = 1e-6;
static void cmp_after(lorac_weight *w, const wctx *c) {
    compare_named(c->st, w, c->prefix, ".after5", w->data, 1e-3, g_after_atol);
}

static int is_head_weight(const lorac_model *m, const lorac_weight *w) {
    const lorac_linear *hs[2] = {m->head, m->pre_head};
    for (int k = 0; k < 2; k++)
        if (hs[k] && (w == hs[k]->W || w == hs[k]->b)) return 1;
    return 0;
}

/* the head's weights (and an encoder's pre_head, trained as modules_to_save) */
static void visit_head(lorac_model *m, void (*fn)(lorac_weight *, const wctx *), const wctx *c) {
    for (int i = 0; i < m->n_w; i++)
        if (is_head_weight(m, &m->w[i]) && m->w[i].grad) fn(&m->w[i], c);
}

void parity_run_fixture(const char *model_dir, const char *fixture, int cls) {
    fprintf(stderr, "-- %s\n", fixture);
    g_fixture = fixture;
    lorac_model *m = NULL;
    lorac_st *st = NULL;
    const lorac_status ls = lorac_model_load(test_src_path(model_dir), &m);
    CHECK(ls == LORAC_OK, "%s: lorac_model_load(%s) -> %s", label("load"), model_dir, lorac_last_error());
    CHECK_OK(lorac_st_open(test_src_path(fixture), &st));
    if (!m || !st) {
        if (st) lorac_st_close(st);
        if (m) lorac_model_free(m);
        return;
    }
    const lorac_tensor_desc *idt = test_st_need(st, "input_ids");
    const int B = (int)idt->shape[0], T = (int)idt->shape[1], V = m->cfg.vocab;
    int *ids = test_st_ints(st, "input_ids"), *am = test_st_ints(st, "attention_mask");
    uint8_t *mask = malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) mask[i] = (uint8_t)am[i];
    int *targets = NULL, *labels = NULL;
    const int enc = m->cfg.arch == LORAC_ARCH_BERT;
    if (cls && enc) { /* the head comes from the checkpoint; it must hold the fixture's values */
        labels = test_st_ints(st, "labels");
        CHECK(m->head != NULL && (m->cfg.distil ? m->pre_head != NULL : 1), "%s", label("the checkpoint's head was not loaded"));
        if (!m->head) return;
        compare_named(st, m->head->W, "", "", m->head->W->data, 0, 1e-9);
        if (m->cfg.distil) compare_named(st, m->pre_head->W, "", "", m->pre_head->W->data, 0, 1e-9);
        CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_HIDDEN));
        float *h = test_st_f32(st, "hidden_base", NULL);
        test_close(label("hidden_base (every row)"), m->acts.lnf, h, (size_t)B * T * m->cfg.dim, 1e-4, 1e-5);
        free(h);
    } else if (cls) {
        labels = test_st_ints(st, "labels");
        CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_TORCH, 0));
        load_named(st, m->head->W, "", "", m->head->W->data);
        load_named(st, m->head->b, "", "", m->head->b->data);
    } else {
        int *lab = test_st_ints(st, "labels");
        targets = malloc(sizeof(int) * (size_t)B * T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) targets[b * T + t] = t + 1 < T && lab[b * T + t + 1] >= 0 ? lab[b * T + t + 1] : -1;
        free(lab);
    }
    const lorac_fwd_mode mode = cls ? LORAC_FWD_CLS : LORAC_FWD_LM;
    const size_t nout = cls ? (size_t)B * m->n_classes : (size_t)B * T * V;

    /* 1. base model */
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
    float *base = malloc(sizeof(float) * nout);
    memcpy(base, cls ? m->acts.cls_logits : m->acts.logits, sizeof(float) * nout);
    size_t nref = 0;
    float *ref = test_st_f32(st, "logits_base", &nref);
    CHECK(nref == nout, "%s: the fixture has %zu logits, lorac %zu (vocab %d)", label("logits_base"), nref, nout, V);
    if (nref != nout) return;
    /* padded rows of the LM logits are not compared: HF computes them with a
     * different (fully masked) attention pattern that lorac leaves undefined */
    if (cls)
        test_close(label("logits_base"), base, ref, nout, 1e-4, 1e-5);
    else
        parity_close_rows(label("logits_base (real positions)"), base, ref, mask, B, T, V, 1e-4, 1e-5);
    free(ref);

    /* 2. inject LoRA like the fixture's LoraConfig: B = 0 must change nothing */
    lorac_lora_config lc;
    lorac_lora_config_default(&lc);
    lc.r = atoi(lorac_st_metadata(st, "r"));
    lc.alpha = (float)atof(lorac_st_metadata(st, "lora_alpha"));
    cJSON *tl = cJSON_Parse(lorac_st_metadata(st, "target_modules"));
    const cJSON *e;
    cJSON_ArrayForEach(e, tl) strcpy(lc.targets[lc.n_targets++], e->valuestring);
    cJSON_Delete(tl);
    const char *mts = lorac_st_metadata(st, "modules_to_save");
    if (cls && !mts) strcpy(lc.modules_to_save[lc.n_modules_to_save++], "score");
    cJSON *ml = mts ? cJSON_Parse(mts) : NULL;
    cJSON_ArrayForEach(e, ml) strcpy(lc.modules_to_save[lc.n_modules_to_save++], e->valuestring);
    cJSON_Delete(ml);
    const char *dora = lorac_st_metadata(st, "use_dora"), *init = lorac_st_metadata(st, "init_lora_weights");
    lc.use_dora = dora && !strcmp(dora, "true");
    g_after_atol = lorac_st_metadata(st, "feature") ? 2e-4 : 1e-6;
    read_patterns(st, "rank_pattern", lc.rank_pattern, &lc.n_rank_pattern);
    read_patterns(st, "alpha_pattern", lc.alpha_pattern, &lc.n_alpha_pattern);
    if (init) CHECK_OK(lorac_lora_init_parse(init, &lc));
    const int mutated = lc.init == LORAC_INIT_PISSA || lc.init == LORAC_INIT_OLORA;
    int n_adapted = 0;
    CHECK_OK(lorac_lora_apply(m, &lc, &n_adapted));
    int want_adapted = 0; /* the fixture's LoRA layers: its "...lora_A.weight" tensors */
    for (int i = 0; i < lorac_st_count(st); i++) {
        const char *nm = lorac_st_get(st, i)->name;
        const size_t len = strlen(nm), sl = strlen(".lora_A.weight"), se = strlen(".lora_embedding_A");
        want_adapted += (len > sl && !strcmp(nm + len - sl, ".lora_A.weight")) || (len > se && !strcmp(nm + len - se, ".lora_embedding_A"));
    }
    CHECK(n_adapted == want_adapted, "%s: lorac adapted %d modules, the fixture has %d LoRA layers", label("LoRA"), n_adapted,
          want_adapted);
    CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
    if (lc.init == LORAC_INIT_DEFAULT && !lc.use_dora)
        CHECK(memcmp(base, cls ? m->acts.cls_logits : m->acts.logits, sizeof(float) * nout) == 0,
              "%s", label("output with fresh LoRA (B = 0) differs from the base model"));
    else if (cls) /* DoRA rescales by m / ||W|| = 1, PiSSA / OLoRA split W: equal up to rounding */
        test_close(label("output with fresh DoRA / PiSSA / OLoRA vs the base model"), m->acts.cls_logits, base, nout, 1e-4, 1e-5);
    else
        parity_close_rows(label("output with fresh DoRA / PiSSA / OLoRA vs the base model"), m->acts.logits, base, mask,
                          B, T, V, 1e-4, 1e-5);
    if (mutated) check_mutated_init(m, st);

    /* 3. reference LoRA weights: logits, loss, gradients */
    wctx c = {st, "base_model.model.", "", 0};
    visit_lora(m, set_w, &c);
    int64_t tr, all;
    lorac_count_params(m, &tr, &all);
    const char *lpr = lorac_st_metadata(st, "loraplus_lr_ratio"), *lpw = lorac_st_metadata(st, "loraplus_weight_decay");
    lorac_loraplus_cfg lp = {lpr ? atof(lpr) : 0, 1e-6, lpw ? atof(lpw) : 0};
    optctx oc = {NULL, lpr ? &lp : NULL};
    lorac_adamw_cfg acfg = {0.01, 0.9, 0.999, 1e-8, 0.1};
    CHECK_OK(lorac_optim_create(&acfg, &oc.opt));
    lorac_for_each_trainable(m, add_to_opt, &oc);
    lorac_for_each_trainable(m, zero_grads, NULL);
    double loss = loss_and_grad(m, ids, mask, targets, labels, B, T, cls);
    float *want_loss = test_st_f32(st, "loss", NULL);
    float got_loss = (float)loss;
    test_close(label("loss"), &got_loss, want_loss, 1, 1e-4, 0);
    free(want_loss);
    visit_lora(m, cmp_grad, &c);
    wctx hc = {st, "", "", 0};
    visit_head(m, cmp_grad, &hc);
    int frozen_with_grad = 0;
    for (int i = 0; i < m->n_w; i++)
        if (m->w[i].grad && !is_head_weight(m, &m->w[i])) frozen_with_grad++;
    CHECK(frozen_with_grad == 0, "%s: %d frozen base weights received gradient buffers", label("frozen"), frozen_with_grad);
    if (!cls) {
        /* logits with LoRA, checked after the step above overwrote them: redo */
        CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
        float *want = test_st_f32(st, "logits_lora", NULL);
        parity_close_rows(label("logits_lora (real positions)"), m->acts.logits, want, mask, B, T, V, 1e-4, 1e-5);
        free(want);
    } else {
        CHECK_OK(lorac_model_forward(m, ids, mask, B, T, mode));
        float *want = test_st_f32(st, "logits", NULL);
        test_close(label("logits (cls, LoRA)"), m->acts.cls_logits, want, nout, 1e-4, 1e-5);
        free(want);
        if (enc) {
            CHECK_OK(lorac_model_forward(m, ids, mask, B, T, LORAC_FWD_HIDDEN));
            float *h = test_st_f32(st, "hidden", NULL);
            test_close(label("hidden (LoRA, every row)"), m->acts.lnf, h, (size_t)B * T * m->cfg.dim, 1e-4, 1e-5);
            free(h);
        }
    }

    /* 4. five AdamW steps (lr 1e-2, wd 0.1) on the same batch */
    float losses[5];
    lorac_for_each_trainable(m, zero_grads, NULL);
    for (int s = 0; s < 5; s++) {
        losses[s] = (float)loss_and_grad(m, ids, mask, targets, labels, B, T, cls);
        lorac_optim_step(oc.opt, 0.01f);
        lorac_optim_zero_grad(oc.opt);
    }
    float *want5 = test_st_f32(st, "adamw_losses", NULL);
    test_close(label("adamw_losses"), losses, want5, 5, 1e-4, 1e-6);
    free(want5);
    visit_lora(m, cmp_after, &c);
    visit_head(m, cmp_after, &hc);
    fprintf(stderr, "   trainable %lld of %lld params; loss %.6f\n", (long long)tr, (long long)all, loss);
    lorac_optim_destroy(oc.opt);
    free(base);
    free(ids);
    free(am);
    free(mask);
    free(targets);
    free(labels);
    lorac_st_close(st);
    lorac_model_free(m);
}
